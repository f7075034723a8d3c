"""Point-in-time customer features: one row per customer scored at `as_of`.

Only rows with ``timestamp < as_of`` are used (transactions and interactions); customer profiles whose
``signup_date`` is at or after ``as_of`` are treated as unknown. String columns become integer codes
(`tiercast.features.encoding`), and every aggregate is a vectorised numpy group reduction over customer
codes (`tiercast.features.aggregates`), so a customer's row never depends on
which other customers are in the batch; the only population-dependent state (RFM quintile
edges, quantity cap, channels seen, profile levels, optional columns present) is learned in `fit` and
frozen, which is what makes scoring one customer online agree with scoring the whole population in batch.
`fit_parts` / `FitParts.combine` / `fit_from_parts` learn the same state bucket by bucket of customers
(`tiercast.features.population`), so the batch engines never hold the whole log's aggregates at once.

Output columns and their order come from `tiercast.features.registry.feature_definitions`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tiercast.features.aggregates import (
    Orders,
    basket_size,
    category_mix,
    channel_shares,
    group_count,
    group_max,
    group_min,
    orders,
    purchase_rhythm,
    ratio,
    returns,
    rfm_score,
    window_sums,
)
from tiercast.features.encoding import (
    NAT,
    NS_PER_DAY,
    FloatArray,
    IntArray,
    encode,
    group_codes,
    instant_ns,
    instants_ns,
    lookup,
    sort_encoded,
)
from tiercast.features.lifecycle import lifecycle_stage
from tiercast.features.population import RFM_COLUMNS, FitParts, counted_quantile, value_counts
from tiercast.features.privacy import PersonalData
from tiercast.features.registry import OPTIONAL_FEATURE_COLUMNS, FeatureDef, feature_definitions, slug
from tiercast.features.spec import FeatureSpec

_FORMAT = "tiercast.feature_builder/1"
# Transactions as a frame, or its columns as arrays (the service's request: no frame needed to read them).
Table = pd.DataFrame | Mapping[str, np.ndarray]


def _age_days(as_of_ns: int, ns: IntArray) -> FloatArray:
    """Days from each instant to as_of. Exact in int64 nanoseconds, except that an instant more than 292 years
    before as_of would overflow int64 there (the service accepts 1900 to 2199): those are measured in float
    days instead (off by microseconds at most, far beyond every window)."""
    delta = as_of_ns - ns
    age = delta / NS_PER_DAY
    wrapped = (delta < 0) & (ns < as_of_ns)
    if wrapped.any():
        age[wrapped] = as_of_ns / NS_PER_DAY - ns[wrapped] / NS_PER_DAY
    return age


@dataclass(frozen=True)
class CodedText:
    """A string column of the kept rows as codes (-1 = missing) into `uniques`."""

    codes: IntArray
    uniques: npt.NDArray[np.object_]


@dataclass(frozen=True)
class History:
    """Transactions before as_of as aligned arrays, customers coded 0..n-1 in sorted id order: what fitting and
    transforming read of them (:meth:`FeatureBuilder.history`).

    Optional columns are None when absent from the input frame; ``present`` names the optional columns the
    frame had."""

    as_of_ns: int
    present: tuple[str, ...]
    ids: npt.NDArray[np.object_]
    codes: IntArray
    ts: IntArray
    age: FloatArray  # days from the line to as_of (> 0)
    amount: FloatArray
    order: IntArray | None
    product: IntArray | None
    quantity: FloatArray | None
    category: CodedText | None
    channel: CodedText | None

    @property
    def n(self) -> int:
        return len(self.ids)

    @cached_property
    def rfm(self) -> _Rfm:
        """The customers' recency, frequency and monetary value, computed once (and kept with the history)."""
        return _Rfm.of(self)


def _history(transactions: Table, as_of_ns: int, items: bool = True) -> History:
    """The history at as_of; without ``items`` (what fitting needs), no product ids or categories."""
    ts = instants_ns(transactions["timestamp"])
    codes, uniques = encode(transactions["customer_id"])
    keep = (ts < as_of_ns) & (ts != NAT) & (codes >= 0)  # code -1: no customer id
    codes, ids = sort_encoded(codes, uniques, keep)
    ts = ts[keep]

    def text(name: str) -> CodedText | None:
        if name not in transactions or (name == "category" and not items):
            return None
        c, u = encode(transactions[name])
        return CodedText(c[keep], u)

    return History(
        as_of_ns=as_of_ns,
        present=tuple(c for c in OPTIONAL_FEATURE_COLUMNS if c in transactions),
        ids=ids,
        codes=codes,
        ts=ts,
        age=_age_days(as_of_ns, ts),
        amount=np.asarray(transactions["amount"], dtype=np.float64)[keep],
        order=group_codes(transactions["order_id"])[keep] if "order_id" in transactions else None,
        product=group_codes(transactions["product_id"])[keep] if items and "product_id" in transactions else None,
        quantity=(np.asarray(transactions["quantity"], dtype=np.float64)[keep]
                  if "quantity" in transactions else None),
        category=text("category"),
        channel=text("channel"),
    )


@dataclass(frozen=True)
class CodedLines:
    """Transaction lines whose text is coded already (a spilled bucket's, :mod:`tiercast.features.spill`), of which
    :meth:`history` makes the :class:`History` that :meth:`FeatureBuilder.history` makes of a frame. Each column is
    one array of the lines in any order; ``rows`` are the positions of the lines to read, in the frame's order.
    Customers are coded by their rank among ``ids``, sorted as :func:`~tiercast.features.encoding.sorted_codes`
    sorts them; other text columns by any codes that group equal values (-1 = missing)."""

    present: tuple[str, ...]
    rows: IntArray
    ids: npt.NDArray[np.object_]
    customer: IntArray
    ts: IntArray
    amount: FloatArray
    order: IntArray | None = None
    product: IntArray | None = None
    quantity: FloatArray | None = None
    category: CodedText | None = None
    channel: CodedText | None = None

    def history(self, as_of_ns: int) -> History:
        """The lines before as_of with a customer id, as :func:`_history` gives them of a frame holding ``rows``."""
        ts = self.ts[self.rows]
        rows = self.rows[(ts < as_of_ns) & (ts != NAT) & (self.customer[self.rows] >= 0)]
        customer = self.customer[rows]
        held = np.bincount(customer, minlength=len(self.ids)) > 0
        rank = np.cumsum(held) - 1  # among the customers the history holds, in the same order

        def taken(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[rows]

        def text(values: CodedText | None) -> CodedText | None:
            return None if values is None else CodedText(values.codes[rows], values.uniques)

        ts = self.ts[rows]
        return History(as_of_ns=as_of_ns, present=self.present, ids=self.ids[held], codes=rank[customer], ts=ts,
                       age=_age_days(as_of_ns, ts), amount=self.amount[rows], order=taken(self.order),
                       product=taken(self.product), quantity=taken(self.quantity), category=text(self.category),
                       channel=text(self.channel))


@dataclass(frozen=True)
class _Rfm:
    """Recency, frequency and monetary per customer of a history, with the orders and ages they come from."""

    first_age: FloatArray
    first_purchase: FloatArray
    recency: FloatArray
    orders: Orders
    frequency: FloatArray
    total: FloatArray

    @classmethod
    def of(cls, h: History) -> _Rfm:
        n, pos = h.n, h.amount > 0
        first_age = group_max(h.codes, h.age, n)
        last_purchase = group_min(h.codes[pos], h.age[pos], n)
        recency = np.where(np.isnan(last_purchase), first_age, last_purchase)
        o = orders(h.order, h.codes, h.ts, h.amount, n, h.age)
        return cls(first_age=first_age, first_purchase=group_max(h.codes[pos], h.age[pos], n), recency=recency,
                   orders=o, frequency=group_count(o.customer[o.purchase], n), total=group_count(h.codes, n, h.amount))


@dataclass(frozen=True)
class FeatureColumns:
    """:meth:`FeatureBuilder.transform`'s table before it becomes a frame: sorted customer ids and each
    output column as one array (float64, int64, object, or a Categorical of profile levels), in registry order.

    Reads like the frame where the scorer needs it (``table[name]``, ``name in table``, ``len(table)`` rows),
    without building one."""

    ids: npt.NDArray[np.object_]
    columns: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.columns[name]

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __len__(self) -> int:
        return len(self.ids)

    def frame(self) -> pd.DataFrame:
        """The table as :meth:`FeatureBuilder.transform` returns it: index customer_id, registry order."""
        return pd.DataFrame(self.columns, index=pd.Index(self.ids, dtype=object, name="customer_id"), copy=False)


# ---------------------------------------------------------------------------------------------- builder
class FeatureBuilder:
    """Point-in-time feature transformer (fit learns population state, transform applies it).

    Fitted attributes: ``optional_columns_`` (product_id/quantity/category/channel present at fit),
    ``channels_`` (channel slugs with a share feature), ``profile_levels_`` (customer attribute -> levels,
    None for numeric), ``rfm_edges_`` (four edges each for recency_days, frequency, monetary),
    ``quantity_cap_`` (the per-line quantity cap of the item features; None without quantities).
    Unfitted, `transform` still works (the rule fallback): spec RFM edges, no quantity cap, no channel or
    profile features.
    """

    def __init__(self, spec: FeatureSpec | None = None, personal_data_columns: Sequence[str] = ()) -> None:
        self.spec = spec if spec is not None else FeatureSpec()
        self.personal_data_columns = tuple(personal_data_columns)

    # ------------------------------------------------------------------------------------- public API
    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "rfm_edges_")

    def definitions(self) -> list[FeatureDef]:
        """The registry entries of this fitted builder's output columns, in order."""
        self._check_fitted()
        return feature_definitions(self.spec, optional_columns=self.optional_columns_, channels=self.channels_,
                                   profile=self.profile_levels_)

    @property
    def feature_names_(self) -> list[str]:
        """Model-input columns: numeric and categorical features. Excludes r/f/m_score and
        lifecycle_stage, which restate recency/frequency/monetary and rhythm for segments and rules."""
        return [d.name for d in self.definitions() if d.model_input]

    def fit(
        self,
        transactions: Table,
        as_of: Any,
        customers: pd.DataFrame | None = None,
        interactions: pd.DataFrame | None = None,
    ) -> FeatureBuilder:
        """Learn optional columns, quantity cap, channels, profile levels and RFM edges from the population at
        as_of."""
        return self.fit_from_parts(self.fit_parts(transactions, as_of, customers, interactions))

    def fit_parts(
        self,
        transactions: Table,
        as_of: Any,
        customers: pd.DataFrame | None = None,
        interactions: pd.DataFrame | None = None,
    ) -> FitParts:
        """What `fit` learns from these customers, in parts that `FitParts.combine` adds up over buckets of
        customers (every row of a customer in one bucket) to the parts of all of them. Interactions play no
        part in fitting; the parameter keeps the signature of `fit`."""
        return self.fit_parts_of(_history(transactions, instant_ns(as_of), items=False), customers)

    def history(self, transactions: Table, as_of: Any) -> History:
        """The transactions before as_of as :meth:`fit_parts_of` and :meth:`transform_history` read them, so that
        work over buckets computes it once for both (a spilled bucket's is kept on disk in between)."""
        return _history(transactions, instant_ns(as_of))

    def fit_parts_of(self, history: History, customers: pd.DataFrame | None = None) -> FitParts:
        """:meth:`fit_parts` of the transactions' :meth:`history`."""
        return self._parts(history, history.rfm, customers)

    def fit_from_parts(self, parts: FitParts) -> FeatureBuilder:
        """Fit from the (combined) parts of the population: the same fitted state as `fit` on all of it."""
        if parts.customers == 0:
            raise ValueError(f"cannot fit features: no transaction before as_of={pd.Timestamp(parts.as_of_ns)}")
        edges = self.spec.rfm_edges.model_dump()
        if self.spec.rfm_learn_edges:
            if parts.rfm is None:
                raise ValueError("these FitParts carry no RFM values: they come from a spec that does not learn "
                                 "RFM edges")
            q = [0.2, 0.4, 0.6, 0.8]
            edges = {key: np.quantile(parts.rfm[col], q).tolist()
                     for key, col in zip(("recency_days", "frequency", "monetary"), RFM_COLUMNS, strict=True)}
        self.optional_columns_ = list(parts.optional_columns)
        self.channels_ = self._top_channels(parts.channel_lines) if "channel" in parts.optional_columns else []
        self.profile_levels_ = self._profile_levels(parts)
        self.rfm_edges_ = edges
        self.quantity_cap_ = (counted_quantile(parts.quantity_values, parts.quantity_counts,
                                               self.spec.quantity_cap_quantile)
                              if len(parts.quantity_values) else None)
        return self

    def fit_transform(
        self,
        transactions: Table,
        as_of: Any,
        customers: pd.DataFrame | None = None,
        interactions: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """`fit` then `transform` on the same data, computing the aggregates once."""
        as_of_ns = instant_ns(as_of)
        h = _history(transactions, as_of_ns)
        rfm = h.rfm
        self.fit_from_parts(self._parts(h, rfm, customers))
        frame = self._frame(h, rfm, as_of_ns, customers, interactions, self.optional_columns_, self.channels_,
                            self.profile_levels_, self.quantity_cap_)
        return self._finish(frame, self.rfm_edges_, self.definitions()).frame()

    def transform(
        self,
        transactions: Table,
        as_of: Any,
        customers: pd.DataFrame | None = None,
        interactions: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """Features at as_of: index customer_id (sorted), columns in registry order."""
        return self.transform_columns(transactions, as_of, customers, interactions).frame()

    def transform_columns(
        self,
        transactions: Table,
        as_of: Any,
        customers: pd.DataFrame | None = None,
        interactions: pd.DataFrame | None = None,
    ) -> FeatureColumns:
        """:meth:`transform`'s table as arrays (the scorer's input: it needs no frame)."""
        return self.transform_history(_history(transactions, instant_ns(as_of)), customers, interactions)

    def transform_history(self, h: History, customers: pd.DataFrame | None = None,
                          interactions: pd.DataFrame | None = None) -> FeatureColumns:
        """:meth:`transform_columns` of the transactions' :meth:`history`."""
        if self.is_fitted:
            optional, channels, profile = self.optional_columns_, self.channels_, self.profile_levels_
            edges, cap, defs = self.rfm_edges_, self.quantity_cap_, self.definitions()
        else:
            optional = list(h.present)
            channels, profile, cap = [], {}, None
            edges = self.spec.rfm_edges.model_dump()
            defs = feature_definitions(self.spec, optional_columns=optional)
        frame = self._frame(h, h.rfm, h.as_of_ns, customers, interactions, optional, channels, profile, cap)
        return self._finish(frame, edges, defs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable spec and fitted state; `from_dict` rebuilds an identical builder."""
        d: dict[str, Any] = {
            "format": _FORMAT,
            "spec": self.spec.model_dump(mode="json"),
            "personal_data_columns": list(self.personal_data_columns),
        }
        if self.is_fitted:
            d["state"] = {
                "optional_columns_": list(self.optional_columns_),
                "channels_": list(self.channels_),
                "profile_levels_": {k: (None if v is None else list(v)) for k, v in self.profile_levels_.items()},
                "rfm_edges_": {k: [float(x) for x in v] for k, v in self.rfm_edges_.items()},
                "quantity_cap_": self.quantity_cap_,
            }
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureBuilder:
        if d.get("format") != _FORMAT:
            raise ValueError(f"unknown feature builder format {d.get('format')!r}, expected {_FORMAT!r}")
        builder = cls(FeatureSpec.model_validate(d["spec"]), d.get("personal_data_columns", ()))
        state = d.get("state")
        if state is not None:
            builder.optional_columns_ = list(state["optional_columns_"])
            builder.channels_ = list(state["channels_"])
            builder.profile_levels_ = dict(state["profile_levels_"])
            builder.rfm_edges_ = {k: list(v) for k, v in state["rfm_edges_"].items()}
            # Builders saved before the cap existed counted quantities uncapped: they still do.
            builder.quantity_cap_ = state.get("quantity_cap_")
        return builder

    # ------------------------------------------------------------------------------------ fit helpers
    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError("FeatureBuilder is not fitted; call fit() first")

    def _parts(self, h: History, rfm: _Rfm, customers: pd.DataFrame | None) -> FitParts:
        kinds, counts = self._profile_parts(customers, h.ids, h.as_of_ns)
        quantities = (np.empty(0) if h.quantity is None
                      else h.quantity[(h.amount > 0) & ~np.isnan(h.quantity)] + 0.0)  # + 0.0: -0.0 is 0.0
        values, value_lines = value_counts(quantities)
        return FitParts(
            as_of_ns=h.as_of_ns,
            customers=h.n,
            optional_columns=h.present,
            channel_lines=self._channel_lines(h),
            profile_kinds=kinds,
            profile_counts=counts,
            rfm=(dict(zip(RFM_COLUMNS, (rfm.recency, rfm.frequency, rfm.total), strict=True))
                 if self.spec.rfm_learn_edges else None),
            quantity_values=values,
            quantity_counts=value_lines,
        )

    @staticmethod
    def _channel_lines(h: History) -> dict[str, int]:
        """Purchase lines per channel slug."""
        if h.channel is None:
            return {}
        codes = h.channel.codes[h.amount > 0]
        counts = np.bincount(codes[codes >= 0], minlength=len(h.channel.uniques))
        seen = counts > 0
        slugs = pd.Series(counts[seen], index=[slug(u) for u in h.channel.uniques[seen]], dtype=np.int64)
        return {str(k): int(v) for k, v in slugs.groupby(level=0).sum().items()}

    def _top_channels(self, lines: Mapping[str, int]) -> list[str]:
        """The most frequent channel slugs among purchase lines (at most spec.max_channels), sorted."""
        if not lines:
            return []
        slugs = pd.Series(list(lines.values()), index=list(lines), dtype=np.int64)
        top = slugs.sort_index().sort_values(ascending=False, kind="stable").head(self.spec.max_channels)
        return sorted(top.index)

    def _profile_rows(self, customers: pd.DataFrame | None, ids: npt.NDArray[np.object_],
                      as_of_ns: int) -> tuple[pd.DataFrame | None, IntArray, FloatArray]:
        """Known profile rows of scored customers (first row per id; signup_date >= as_of = unknown),
        their customer codes, and signup tenure in days per customer (NaN if unknown)."""
        tenure = np.full(len(ids), np.nan)
        if customers is None or len(customers) == 0 or len(ids) == 0:
            return None, np.empty(0, dtype=np.int64), tenure
        cust = customers.drop_duplicates("customer_id", keep="first")
        code = lookup(cust["customer_id"], ids)
        known = code >= 0
        if "signup_date" in cust.columns:
            signup = instants_ns(cust["signup_date"])
            has_signup = signup != NAT
            known &= ~has_signup | (signup < as_of_ns)
            with_date = known & has_signup
            tenure[code[with_date]] = _age_days(as_of_ns, signup[with_date])
        return cust.loc[known], code[known], tenure

    def _profile_candidates(self, customers: pd.DataFrame) -> list[str]:
        personal = PersonalData(self.personal_data_columns)
        return [c for c in customers.columns if c not in ("customer_id", "signup_date") and c not in personal]

    def _profile_parts(self, customers: pd.DataFrame | None, ids: npt.NDArray[np.object_], as_of_ns: int
                       ) -> tuple[dict[str, str] | None, dict[str, dict[str, int]]]:
        """Attribute -> "levels" (text, bool) or "numeric" (datetime attributes are skipped), and the level
        counts of the profiles known at as_of; (None, {}) without any profile."""
        if customers is None or len(customers) == 0:
            return None, {}
        kinds: dict[str, str] = {}
        for col in self._profile_candidates(customers):
            s = customers[col]
            if pd.api.types.is_bool_dtype(s) or not (
                pd.api.types.is_numeric_dtype(s) or pd.api.types.is_datetime64_any_dtype(s)
            ):
                kinds[col] = "levels"
            elif pd.api.types.is_numeric_dtype(s):
                kinds[col] = "numeric"
        rows, _, _ = self._profile_rows(customers, ids, as_of_ns)
        counts = {col: ({} if rows is None else
                        {str(k): int(v) for k, v in rows[col].dropna().astype(str).value_counts().items()})
                  for col, kind in kinds.items() if kind == "levels"}
        return kinds, counts

    def _profile_levels(self, parts: FitParts) -> dict[str, list[str] | None]:
        """Attribute -> frequent levels (categorical) or None (numeric)."""
        if parts.profile_kinds is None:
            return {}
        profile: dict[str, list[str] | None] = {}
        for col, kind in parts.profile_kinds.items():
            if kind == "numeric":
                profile[col] = None
                continue
            lines = parts.profile_counts.get(col, {})
            counts = pd.Series(list(lines.values()), index=list(lines), dtype=np.int64)
            counts = counts[counts >= self.spec.min_profile_level_count]
            counts = counts.sort_index().sort_values(ascending=False, kind="stable")
            levels = sorted(counts.index[: self.spec.max_profile_levels])
            if levels:
                profile[col] = levels
        return profile

    # ---------------------------------------------------------------------------------- computation
    def _frame(
        self,
        h: History,
        rfm: _Rfm,
        as_of_ns: int,
        customers: pd.DataFrame | None,
        interactions: pd.DataFrame | None,
        optional: Sequence[str],
        channels: Sequence[str],
        profile: Mapping[str, list[str] | None],
        quantity_cap: float | None,
    ) -> dict[str, Any]:
        """All features except the RFM scores, as name -> per-customer array (plus `_ids`).
        Features of an optional column absent from this input are left out (NaN in `_finish`)."""
        n, spec = h.n, self.spec
        out: dict[str, Any] = {"_ids": h.ids}
        pos = h.amount > 0
        pcodes = h.codes[pos]

        # recency / frequency / monetary
        first_age, first_purchase, recency = rfm.first_age, rfm.first_purchase, rfm.recency
        o, frequency, total = rfm.orders, rfm.frequency, rfm.total
        bought = o.purchase
        g_mean, g_std, n_days = purchase_rhythm(pcodes, h.ts[pos], n)
        out.update(recency_days=recency, frequency=frequency, purchase_days=n_days, monetary_total=total,
                   monetary_mean=ratio(total, frequency), monetary_max=group_max(o.customer, o.value, n),
                   largest_order_share=ratio(group_max(o.customer[bought], o.value[bought], n),
                                             group_count(o.customer[bought], n, o.value[bought])))
        out.update(window_sums(spec.windows_days, h.codes, h.age, h.amount, o.customer[bought], o.age[bought], n))
        out.update(tenure_days=first_age, gap_mean_days=g_mean, gap_std_days=g_std,
                   recency_over_gap=ratio(recency, g_mean), orders_per_purchase_day=ratio(frequency, n_days))

        neg = h.amount < 0
        out["refund_count"] = group_count(h.codes[neg], n)
        out["refund_share"] = ratio(group_count(h.codes[neg], n, -h.amount[neg]), group_count(pcodes, n, h.amount[pos]))
        out.update(returns(o, h.codes, h.amount, n))

        # Item features of an optional column seen at fit but absent now stay NaN (`_finish`).
        out.update(basket_size(o, h.amount, n,
                               h.product if "product_id" in optional else None,
                               h.quantity if "quantity" in optional else None, quantity_cap))
        if "category" in optional and h.category is not None:
            out.update(category_mix(h.category.codes[pos], pcodes, n))
        if "channel" in optional and h.channel is not None:
            out.update(channel_shares(h.channel.codes[pos], h.channel.uniques, pcodes, channels, n))

        out.update(self._interactions(interactions, h.ids, as_of_ns))

        rows, p_codes, signup_tenure = self._profile_rows(customers, h.ids, as_of_ns)
        out["signup_tenure_days"] = signup_tenure
        for col, levels in profile.items():
            values = rows[col] if rows is not None and col in rows.columns else None
            out[f"profile_{slug(col)}"] = self._profile_values(values, p_codes, n, levels)

        fp_age = np.where(np.isnan(first_purchase), first_age, first_purchase)
        out["lifecycle_stage"] = lifecycle_stage(recency, fp_age, g_mean, spec.lifecycle)
        return out

    def _interactions(self, interactions: pd.DataFrame | None, ids: npt.NDArray[np.object_],
                      as_of_ns: int) -> dict[str, FloatArray]:
        """Satisfaction and service-contact features; NaN (scores, days) / 0 (counts) without data."""
        n, kinds = len(ids), self.spec.interaction_kinds
        out: dict[str, FloatArray] = {}
        if interactions is None or len(interactions) == 0 or n == 0:
            code = np.empty(0, dtype=np.int64)
            age = score = np.empty(0)
            kind = np.empty(0, dtype=object)
        else:
            ts = instants_ns(interactions["timestamp"])
            code = lookup(interactions["customer_id"], ids)
            keep = (ts < as_of_ns) & (ts != NAT) & (code >= 0)
            code, ts = code[keep], ts[keep]
            age = _age_days(as_of_ns, ts)
            k_codes, k_uniques = encode(interactions["kind"])
            kind = np.append(k_uniques, None)[k_codes[keep]]  # code -1 (missing) -> None
            score = (interactions["score"].to_numpy(dtype=np.float64)[keep]
                     if "score" in interactions.columns else np.full(len(code), np.nan))
        survey = (kind == kinds.survey) & ~np.isnan(score)
        s_code, s_age, s_score = code[survey], age[survey], score[survey]
        order = np.lexsort((s_score, -s_age, s_code))  # by customer, then time, then score
        s_code, s_score = s_code[order], s_score[order]
        latest = np.flatnonzero(np.append(s_code[1:] != s_code[:-1], True)) if len(s_code) else order
        last = np.full(n, np.nan)
        last[s_code[latest]] = s_score[latest]  # the latest survey; the highest score on equal times
        out["survey_score_last"] = last
        out["survey_score_mean"] = ratio(group_count(s_code, n, s_score), group_count(s_code, n))
        for w in self.spec.interaction_windows_days:
            recent = age <= w
            out[f"support_tickets_{w}d"] = group_count(code[recent & (kind == kinds.support_ticket)], n)
            out[f"complaints_{w}d"] = group_count(code[recent & (kind == kinds.complaint)], n)
        out["days_since_interaction"] = group_min(code, age, n)
        return out

    @staticmethod
    def _profile_values(values: pd.Series | None, codes: IntArray, n: int,
                        levels: list[str] | None) -> FloatArray | pd.Categorical:
        if levels is None:
            out = np.full(n, np.nan)
            if values is not None:
                out[codes] = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
            return out
        text = np.full(n, None, dtype=object)
        if values is not None:
            known = values.notna().to_numpy()
            text[codes[known]] = values[known].astype(str).to_numpy(dtype=object)
        return pd.Categorical(text, categories=levels)

    @staticmethod
    def _finish(frame: dict[str, Any], edges: Mapping[str, Sequence[float]],
                defs: Sequence[FeatureDef]) -> FeatureColumns:
        """Add RFM scores and give each column in registry order its registry dtype."""
        frame = dict(frame)
        frame["r_score"] = rfm_score(frame["recency_days"], edges["recency_days"], higher_is_better=False)
        frame["f_score"] = rfm_score(frame["frequency"], edges["frequency"], higher_is_better=True)
        frame["m_score"] = rfm_score(frame["monetary_total"], edges["monetary"], higher_is_better=True)
        ids = frame.pop("_ids")
        n = len(ids)
        for d in defs:  # features whose source column was seen at fit but is absent now: unknown
            if d.name not in frame and d.requires is not None:
                frame[d.name] = np.full(n, np.nan)
        missing = [d.name for d in defs if d.name not in frame]
        if missing:
            raise RuntimeError(f"registry columns not computed by the builder: {missing}")
        columns: dict[str, Any] = {}
        for d in defs:
            v = frame[d.name]
            if d.kind == "numeric":
                v = np.asarray(v, dtype=np.float64)
            elif d.kind == "score":
                v = np.asarray(v, dtype=np.int64)
            elif d.kind == "stage":
                v = np.asarray(v, dtype=object)
            columns[d.name] = v
        return FeatureColumns(np.asarray(ids, dtype=object), columns)
