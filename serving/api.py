"""The service's JSON contract: pydantic request and response models, and their conversion to frames.

The models are derived from the canonical tables of :mod:`tiercast.features.schema`, so the service and the
file loader follow the same rules per column. Requests are checked here, before any scoring: types are
strict (a number is not a timestamp, a string is not an amount), numbers must be finite and within their
column's bound, timestamps are ISO 8601 dates or datetimes converted to naive UTC, and list lengths follow the
limits of :class:`ServiceConfig`. Those limits are runtime settings, so the request model is built for them by
:func:`request_model`; its JSON schema (the OpenAPI document) then states them too. Errors hide the input
values (``hide_input_in_errors``), so a personal-data field in a bad request never reaches the log through an
error message.

The valid request becomes the canonical frames of ``features`` (transactions, customers, interactions);
the scorer's table becomes the response, one prediction per requested customer in request order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timezone
from typing import Annotated, Any, Literal

import numpy as np
import orjson
import pandas as pd
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StrictBool,
    StringConstraints,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from tiercast.features.loading import identical_repeats
from tiercast.features.privacy import PersonalData
from tiercast.features.schema import (
    CUSTOMERS,
    EARLIEST,
    INSTANT_PATTERN,
    INTERACTIONS,
    LATEST,
    MISSING_IDS,
    SCORED,
    TRANSACTIONS,
    Column,
    Table,
)
from tiercast.serving.config import ServiceConfig
from tiercast.serving.fallback import FallbackRules
from tiercast.serving.i18n import ENGLISH, Messages, localised
from tiercast.training.policy import TierPolicy

NO_HISTORY_REASON = ENGLISH["fallback.no_transactions"]
NO_HISTORY_SEGMENT = "no history"  # the segment code of customers without history
FALLBACK_VERSION = "fallback"


def _iso_text(value: Any) -> Any:
    """A date or datetime (from Python callers) as its ISO 8601 text; JSON gives text, never a date."""
    return value.isoformat() if isinstance(value, date) else value


def _naive_utc(text: str) -> datetime:
    """ISO 8601 text (of :data:`INSTANT_PATTERN`) as a naive UTC datetime within the schema's range."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is not None:
        try:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError:  # year 1 or 9999 shifted past the calendar's ends
            value = datetime.min if value.year < EARLIEST.year else datetime.max
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"must be between {EARLIEST.date()} and {LATEST.date()}")
    return value


def _known_id(value: str) -> str:
    if value.lower() in MISSING_IDS:
        raise ValueError(f"'{value}' stands for a missing id")
    return value


class _InstantSchema:
    """Validation of an instant: text of the schema's ISO 8601 pattern (checked by pydantic-core, not per value
    in Python) or a date/datetime, never a number; then naive UTC within the schema's range. One core schema,
    so that a model derived from the request model (as BentoML derives one) keeps the steps in this order."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        text = core_schema.str_schema(strict=True, strip_whitespace=True, pattern=INSTANT_PATTERN)
        return core_schema.no_info_before_validator_function(
            _iso_text, core_schema.no_info_after_validator_function(_naive_utc, text))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}],
                "description": "ISO 8601 date or datetime; an offset is converted to UTC, naive means UTC"}


Instant = Annotated[datetime, _InstantSchema()]


def _number(bound: float) -> Any:
    return Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-bound, le=bound)]


def _input_type(column: Column) -> Any:
    """The pydantic type of one input column, by the rules of its kind."""
    if column.kind == "instant":
        return Instant
    if column.kind == "number":
        return _number(column.bound)
    if column.kind == "id":
        return Annotated[str, StringConstraints(strict=True, strip_whitespace=True, min_length=1,
                                                max_length=column.max_length), AfterValidator(_known_id)]
    if column.kind == "label":
        return Annotated[str, StringConstraints(strict=True, strip_whitespace=True, to_lower=True, min_length=1,
                                                max_length=column.max_length)]
    # text: blank = missing (an order_id "" is no order)
    return Annotated[str, StringConstraints(strict=True, strip_whitespace=True, max_length=column.max_length),
                     AfterValidator(lambda v: v or None)]


def _field(column: Column) -> tuple[Any, Any]:
    """(type, default) of one column for :func:`pydantic.create_model`: optional columns may be null or absent."""
    if column.required:
        return _input_type(column), Field(description=column.description or None)
    return _input_type(column) | None, Field(default=None, description=column.description or None)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


def _row_model(name: str, table: Table) -> type[_Model]:
    """The model of one row of ``table`` as it comes nested under its customer (so without customer_id)."""
    fields = {c.name: _field(c) for c in table.columns if c.name != "customer_id"}
    return create_model(name, __base__=_Model, **fields)


CustomerId = _input_type(TRANSACTIONS["customer_id"])
TransactionIn = _row_model("TransactionIn", TRANSACTIONS)
InteractionIn = _row_model("InteractionIn", INTERACTIONS)
_ATTRIBUTE = CUSTOMERS.attributes
ProfileValue = (Annotated[str, StringConstraints(strict=True, max_length=_ATTRIBUTE.max_length)] | StrictBool
                | _number(_ATTRIBUTE.bound) | None)


class ProfileIn(BaseModel):
    """signup_date plus any attributes (text, number, boolean or null)."""

    model_config = ConfigDict(extra="allow", hide_input_in_errors=True)
    __pydantic_extra__: dict[str, ProfileValue]

    signup_date: Instant | None = None

    @field_validator("signup_date", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    def attributes(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})

    @model_validator(mode="after")
    def _check_attributes(self) -> "ProfileIn":
        extra = self.__pydantic_extra__ or {}
        if "customer_id" in extra:
            raise ValueError("profile must not repeat customer_id")
        if len(extra) > CUSTOMERS.max_attributes:
            raise ValueError(f"profile has more than {CUSTOMERS.max_attributes} attributes")
        return self


class CustomerIn(_Model):
    customer_id: CustomerId
    transactions: list[TransactionIn] = Field(default_factory=list)
    profile: ProfileIn = Field(default_factory=ProfileIn)
    interactions: list[InteractionIn] = Field(default_factory=list)


class PredictRequest(_Model):
    as_of: Instant | None = Field(default=None, description="scoring cutoff; default: now (UTC)")
    customers: list[CustomerIn]

    @field_validator("customers")
    @classmethod
    def _check_customers(cls, customers: list[CustomerIn]) -> list[CustomerIn]:
        """Each customer once; a bounded set of profile attribute names (they become frame columns)."""
        first: dict[str, int] = {}
        for i, customer in enumerate(customers):
            if customer.customer_id in first:
                raise ValueError(f"customers[{i}].customer_id repeats customers[{first[customer.customer_id]}]"
                                 ".customer_id; send each customer once")
            first[customer.customer_id] = i
        names = {name for customer in customers for name in customer.profile.attributes()}
        if len(names) > CUSTOMERS.max_attributes:
            raise ValueError(f"the profiles use {len(names)} attribute names, at most {CUSTOMERS.max_attributes} "
                             "per request")
        return customers


def request_model(limits: ServiceConfig) -> type[PredictRequest]:
    """The request model with the list limits of ``limits`` (per request and per customer)."""
    per_customer = limits.max_transactions_per_customer

    class Customer(CustomerIn):
        transactions: list[TransactionIn] = Field(default_factory=list, max_length=per_customer)
        interactions: list[InteractionIn] = Field(default_factory=list, max_length=per_customer)

    class Request(PredictRequest):
        model_config = ConfigDict(title="PredictRequest")
        customers: list[Customer] = Field(min_length=1, max_length=limits.max_customers_per_request)

    return Request


# The fields of one prediction, in the order of its JSON: a part of the scored table's columns.
PREDICTION_FIELDS = ("customer_id", "tier", "segment", "lifecycle_stage", "predicted_value", "churn_probability",
                     "action", "source", "fallback_reason", "reasons", "membership", "avg_days_between_orders",
                     "expected_next_order_date", "next_order_probability", "churn_risk_band", "segment_code",
                     "lifecycle_stage_code", "churn_risk_band_code")


def _output_field(column: Column) -> tuple[Any, Any]:
    """(type, field) of one scored column in the response."""
    kind = {"number": float, "list": list[str]}.get(column.kind, str)
    if column.kind == "choice":
        kind = Literal[column.choices]
    return (kind | None if column.nullable else kind), Field(description=column.description or None)


Prediction = create_model("Prediction", **{name: _output_field(SCORED[name]) for name in PREDICTION_FIELDS})


class PredictResponse(BaseModel):
    model_version: str = Field(description="registered model versions used, or 'fallback' without models")
    as_of: datetime = Field(description="the cutoff the predictions were made at (naive UTC)")
    predictions: list[Prediction]


class ReloadResponse(BaseModel):
    model_version: str
    changed: bool = Field(description="whether the service now answers with other models than before")
    detail: str


def error_message(errors: Sequence[dict[str, Any]], limit: int = 5) -> str:
    """One line naming each bad field, e.g. ``customers[0].transactions[2].amount: Input should be ...``."""
    parts = []
    for err in errors[:limit]:
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.get("loc", ())).lstrip(".")
        parts.append(f"{path or 'body'}: {err.get('msg', 'invalid')}")
    more = f" (and {len(errors) - limit} more)" if len(errors) > limit else ""
    return "invalid request: " + "; ".join(parts) + more


# ------------------------------------------------------------------------------------------ conversion
def _owners(customers: Sequence[CustomerIn], items: Sequence[Sequence[Any]]) -> np.ndarray:
    """The customer_id of each item, ``items`` being every customer's list: one repeat, no loop per item."""
    return np.repeat(np.array([c.customer_id for c in customers], dtype=object), list(map(len, items)))


def _timestamps(values: Sequence[datetime | None]) -> np.ndarray:
    """Validated (naive UTC) datetimes (or None) as datetime64[ns]."""
    return pd.DatetimeIndex(np.array(values, dtype=object)).as_unit("ns").to_numpy()


def to_frames(customers: Sequence[CustomerIn], personal_data_columns: Sequence[str] = (),
              drop_identical_rows: bool = False) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """Canonical transactions, customers (None without profiles) and interactions (None without any).

    Optional transaction columns appear when any line has them; personal-data profile attributes are
    dropped here, before anything else sees them. Lines identical to an earlier line of the customer are
    kept, as the file loader keeps them, unless ``drop_identical_rows`` (``data.drop_identical_rows``, which
    ``tiercast serve`` hands over) says to drop them: the loader's rule, :func:`identical_repeats`.
    """
    tx, people, interactions = to_columns(customers, personal_data_columns, drop_identical_rows)
    return pd.DataFrame(tx), people, interactions


def to_columns(customers: Sequence[CustomerIn], personal_data_columns: Sequence[str] = (),
               drop_identical_rows: bool = False
               ) -> tuple[dict[str, np.ndarray], pd.DataFrame | None, pd.DataFrame | None]:
    """:func:`to_frames` with the transactions as columns (name -> array): the scorer reads them without a
    frame."""
    baskets = [c.transactions for c in customers]
    lines = [t for basket in baskets for t in basket]
    tx: dict[str, np.ndarray] = {"customer_id": _owners(customers, baskets)}
    for column in TRANSACTIONS.columns[1:]:
        values = [getattr(t, column.name) for t in lines]
        if column.required or values.count(None) < len(values):  # some line has it; a missing number is NaN
            tx[column.name] = (_timestamps(values) if column.kind == "instant" else
                               np.array(values, dtype=np.float64 if column.kind == "number" else object))
    if drop_identical_rows and lines:
        repeats = identical_repeats(tx)
        if repeats.any():
            tx = {column: values[~repeats] for column, values in tx.items()}

    personal = PersonalData(personal_data_columns)
    profiles = [(c.customer_id, p) for c in customers
                if (p := c.profile).signup_date is not None or p.__pydantic_extra__]
    people = None
    if profiles:
        rows = [{"customer_id": cid,
                 **{k: v for k, v in p.attributes().items() if k not in personal}} for cid, p in profiles]
        people = pd.DataFrame(rows)
        people["customer_id"] = people["customer_id"].astype(object)
        people["signup_date"] = _timestamps([p.signup_date for _, p in profiles])

    histories = [c.interactions for c in customers]
    events = [e for history in histories for e in history]
    interactions = None
    if events:
        interactions = pd.DataFrame({
            "customer_id": _owners(customers, histories),
            "timestamp": _timestamps([e.timestamp for e in events]),
            "kind": np.array([e.kind for e in events], dtype=object),
            "score": np.array([e.score for e in events], dtype=np.float64),  # None -> NaN
        })
    return tx, people, interactions


def response_payload(customer_ids: Sequence[str], scored: Mapping[str, Any], as_of: datetime, model_version: str,
                     policy: TierPolicy, rules: FallbackRules, m: Messages = ENGLISH) -> dict[str, Any]:
    """:class:`PredictResponse` as plain values (dicts, lists, str, float, None), which :func:`response_json`
    writes as the model would: one prediction per requested customer, in request order, from the scorer's
    table (a frame, or its columns).

    The scorer answers for customers with history before ``as_of``; the others get the onboarding tier
    of the policy with the rule fallback's churn probability for new customers and no value, marked
    as a fallback with the reason.
    """
    rows = {}
    for values in zip(*(scored[name].tolist() for name in PREDICTION_FIELDS)):
        row = dict(zip(PREDICTION_FIELDS, values))
        if not isinstance(row["fallback_reason"], str):
            row["fallback_reason"] = None
        if row["avg_days_between_orders"] != row["avg_days_between_orders"]:  # NaN: null
            row["avg_days_between_orders"] = None
        rows[row["customer_id"]] = row
    no_reason = m["fallback.no_transactions"]
    no_history = {"tier": policy.new_customer.name, "segment": m.segment(NO_HISTORY_SEGMENT),
                  "lifecycle_stage": m.stage("new"),
                  "predicted_value": 0.0, "churn_probability": rules.churn_probability_by_stage.get("new", 0.5),
                  "action": policy.new_customer.action, "source": "fallback", "fallback_reason": no_reason,
                  "reasons": [no_reason], "membership": localised(policy, m).membership.levels[0].name,
                  "avg_days_between_orders": None, "expected_next_order_date": None,
                  "segment_code": NO_HISTORY_SEGMENT, "lifecycle_stage_code": "new"}
    no_history["next_order_probability"] = 1.0 - no_history["churn_probability"]
    no_history["churn_risk_band_code"] = policy.churn_risk_bands.assign([no_history["churn_probability"]])[0]
    no_history["churn_risk_band"] = m.band(no_history["churn_risk_band_code"])
    no_history = {name: no_history[name] for name in PREDICTION_FIELDS[1:]}  # in the answer's order
    predictions = [rows.get(cid) or {"customer_id": cid, **no_history} for cid in customer_ids]
    return {"model_version": model_version, "as_of": as_of, "predictions": predictions}


def response_json(payload: Mapping[str, Any]) -> bytes:
    """A :func:`response_payload` as the JSON of its :class:`PredictResponse`, byte for byte, written by orjson
    without building the model (see docs/performance.md for what that saves). Non-finite numbers
    become null, as the model writes them; the tests hold this JSON to the model's. A value of a type orjson does
    not write is answered through the validated model instead, which converts it, rather than failing the request."""
    try:
        return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    except orjson.JSONEncodeError:
        return PredictResponse.model_validate(payload).model_dump_json().encode()


def to_response(customer_ids: Sequence[str], scored: Mapping[str, Any], as_of: datetime, model_version: str,
                policy: TierPolicy, rules: FallbackRules, m: Messages = ENGLISH) -> PredictResponse:
    """:func:`response_payload` as the validated :class:`PredictResponse`."""
    return PredictResponse.model_validate(response_payload(customer_ids, scored, as_of, model_version, policy, rules,
                                                           m))
