"""The canonical tables, each declared once: its columns, their kinds, which are optional, and their limits.

Four tables: the three inputs (:data:`TRANSACTIONS`, :data:`CUSTOMERS`, :data:`INTERACTIONS`) and the
scorer's output (:data:`SCORED`). Each is a :class:`Table` of :class:`Column` declarations, read by both
sides that check data: the file loader (:mod:`tiercast.features.loading`) checks whole columns of a frame
with them, the service (:mod:`tiercast.serving.api`) derives its pydantic request and response models from
them (so its OpenAPI document states the same limits), and ``read_scores`` (in the loader) reads a scored file by them.

Why plain declarations rather than pandera: the service validates each request as JSON with pydantic
already, so a frame-level validator would be a second check on top of it
per request and a new dependency, and its error messages differ from the loader's (file, column, sample
rows). Declaring the rules once and interpreting them in both places keeps one rule per column, the
loader's messages and the service's speed; ``tests/serving/test_api.py`` runs one table of cases
through both and requires the same verdicts.

The rules every column follows by its kind:

- ``id``: text, surrounding whitespace stripped; blank, or a missing-value marker (:data:`MISSING_IDS`),
  is refused.
- ``text``: surrounding whitespace stripped; blank means missing.
- ``label``: stripped and lower-cased; blank is refused.
- ``instant``: ISO 8601 text (:data:`INSTANT_PATTERN`: a date, or a date and time with an optional
  fraction of up to six digits and an optional ``Z`` or ``+HH:MM`` offset) or a datetime; an offset is
  converted to UTC, naive means UTC; stored naive. Between :data:`EARLIEST` and :data:`LATEST` (after the
  conversion), well inside datetime64[ns] (1677-2262), so feature windows reaching years back stay
  representable.
- ``number``: a finite float with ``|value| <= bound``.
- ``date`` (scored file): ``YYYY-MM-DD`` text; ``list``: a list of text; ``choice``: one of ``choices``.

A required column must be present and every value valid; an optional column may be absent, and a blank
(or null) value means missing. The customers' other columns are profile attributes: the loader keeps them as
read; the service takes text, numbers, booleans or null within :attr:`Table.attributes`' limits.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tiercast.features.problems import Phrase

Kind = Literal["id", "text", "label", "instant", "number", "date", "list", "choice"]

EARLIEST = datetime(1900, 1, 1)
LATEST = datetime(2199, 12, 31, 23, 59, 59)
INSTANT_PATTERN = r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
MISSING_IDS = ("nan", "none", "<na>")  # what a missing id becomes when a tool writes it as text


@dataclass(frozen=True)
class Column:
    """One column of a canonical table (see the module docstring for what each kind means)."""

    name: str
    kind: Kind
    required: bool = True  # the column must be there; else it may be absent, and blank means missing
    nullable: bool = False  # scored file: a row may have no value (inputs: every optional column may)
    bound: float | None = None  # numbers: |value| <= bound
    max_length: int | None = None  # text: characters after stripping
    choices: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class Table:
    """A canonical table: its columns in order; ``attributes`` declares the free columns a table may carry
    beside them (customers' profile attributes), at most ``max_attributes`` of them."""

    name: str
    columns: tuple[Column, ...]
    attributes: Column | None = None
    max_attributes: int = 0

    def __getitem__(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def of_kind(self, *kinds: Kind) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.kind in kinds)


_CUSTOMER_ID = Column("customer_id", "id", max_length=200, description="the customer's identifier, kept as text")

TRANSACTIONS = Table("transactions", (
    _CUSTOMER_ID,
    Column("timestamp", "instant"),
    Column("amount", "number", bound=1e12, description="money; negative = refund or return; zero is allowed"),
    Column("order_id", "text", required=False, max_length=500,
           description="lines of one order share it; blank = not given"),
    Column("product_id", "text", required=False, max_length=500,
           description="the item of a line (SKU, stock code); blank = not given"),
    Column("quantity", "number", required=False, bound=1e9),
    Column("category", "text", required=False, max_length=500),
    Column("channel", "text", required=False, max_length=500),
))

CUSTOMERS = Table("customers", (
    _CUSTOMER_ID,
    Column("signup_date", "instant", required=False),
), attributes=Column("attribute", "text", required=False, bound=1e15, max_length=1000,
                     description="text, number, boolean or null"), max_attributes=200)

INTERACTIONS = Table("interactions", (
    _CUSTOMER_ID,
    Column("timestamp", "instant"),
    Column("kind", "label", max_length=100, description="e.g. survey, support_ticket, complaint (lower-cased)"),
    Column("score", "number", required=False, bound=1e6, description="a survey's score"),
))

SCORED = Table("scored", (
    Column("customer_id", "id"),
    Column("as_of", "date", description="the cutoff the predictions were made at"),
    Column("predicted_value", "number"),
    Column("churn_probability", "number"),
    Column("segment", "text"),
    Column("lifecycle_stage", "text"),
    Column("tier", "text"),
    Column("action", "text"),
    Column("source", "choice", choices=("model", "fallback")),
    Column("fallback_reason", "text", nullable=True),
    Column("reasons", "list"),
    # Beside the contract's columns above: the value tier before the overlays, the membership level by
    # trailing spend, and when the next order is expected.
    Column("value_tier", "text"),
    Column("membership", "text", description="membership level by trailing spend"),
    Column("trailing_spend", "number"),
    Column("avg_days_between_orders", "number", nullable=True,
           description="mean days between purchase days; null with one"),
    Column("expected_next_order_date", "date", nullable=True,
           description="YYYY-MM-DD, from the customer's rhythm and the models; null without history"),
    Column("next_order_probability", "number", description="probability of an order within the model's horizon"),
    Column("churn_risk_band", "text", description="churn risk band (low, medium, high), in the configured language"),
    # Stable codes for programs beside the labels above, which follow the configured language (in English a
    # label is its code).
    Column("segment_code", "text", description="the segment's name as the segment namer wrote it, in English"),
    Column("lifecycle_stage_code", "choice", choices=("new", "active", "dormant", "lost")),
    Column("churn_risk_band_code", "choice", choices=("low", "medium", "high")),
    Column("actual_value", "number", required=False, nullable=True, description="backtests: what was spent"),
))
SCORED_CONTRACT = SCORED.names[:SCORED.names.index("value_tier")]  # the columns every scored file starts with


class ColumnMapping(BaseModel):
    """Maps canonical column names to the names used in a user's file (``{canonical: in_file}``)."""

    model_config = ConfigDict(extra="forbid")

    transactions: dict[str, str] = Field(default_factory=dict)
    customers: dict[str, str] = Field(default_factory=dict)
    interactions: dict[str, str] = Field(default_factory=dict)


class DataConfig(BaseModel):
    """How input files are read: column names, text encoding, which columns are personal data, and whether
    rows identical to an earlier one are dropped."""

    model_config = ConfigDict(extra="forbid")

    columns: ColumnMapping = Field(default_factory=ColumnMapping)
    # Never features, never logged, never echoed in error messages or service logs; a column is one when its name
    # matches ignoring case, spaces, underscores and hyphens (Email, E-Mail: email), by tiercast.features.privacy.
    personal_data_columns: list[str] = Field(default_factory=lambda: ["name", "email", "phone", "address"])
    # Rows shown in an error message to illustrate what is wrong.
    error_sample_rows: int = Field(default=5, ge=1, le=50)
    # The text encoding of CSV and CDNOW .txt inputs (Python's codec names, e.g. gb18030 for what Excel writes
    # in China). A UTF-8 byte-order mark is honoured whatever this says.
    encoding: str = "utf-8"
    # Two lines of one order can be identical (two products at the same quantity and price, exported without a
    # product column), so identical rows are kept and counted; true drops every repeat of an earlier row.
    drop_identical_rows: bool = False

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, name: str) -> str:
        try:
            return codecs.lookup(name).name
        except LookupError:
            raise ValueError(f"unknown text encoding '{name}' (e.g. utf-8, gb18030, gbk, latin-1)") from None


@dataclass
class DataError(Exception):
    """A bad input file: names the file, the column and a sample of the offending rows."""

    path: Path | str
    problem: str
    column: str | None = None
    sample: pd.DataFrame | None = None
    # The problem's key (tiercast.features.problems; the catalogues' ``data_error.KEY``) and its values, where
    # the raise site gives them (:meth:`of`): the command line then says it in the configured language.
    # ``problem`` is its English.
    key: str | None = None
    values: dict[str, object] = field(default_factory=dict)

    @classmethod
    def of(cls, path: Path | str, said: Phrase, column: str | None = None,
           sample: pd.DataFrame | None = None) -> "DataError":
        """The error for a problem said as a :class:`~tiercast.features.problems.Phrase`."""
        return cls(path, str(said), column, sample, said.key, dict(said.values))

    def __str__(self) -> str:
        where = f"{self.path}" + (f", column '{self.column}'" if self.column else "")
        message = f"{where}: {self.problem}"
        if self.sample is not None and len(self.sample):
            message += "\nsample of bad rows:\n" + self.sample.to_string(max_colwidth=40)
        return message
