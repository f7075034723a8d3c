"""Point-in-time customer features: one row per customer scored at `as_of`.

Only rows with ``timestamp < as_of`` are used (transactions and interactions); customer profiles whose
``signup_date`` is at or after ``as_of`` are treated as unknown. String columns become integer codes
(Arrow dictionary encoding; order ids hashed by DuckDB), and every aggregate is a vectorised numpy group
reduction over customer codes (no Python loop over customers), so a customer's row never depends on
which other customers are in the batch; the only population-dependent state (RFM quintile
edges, channels seen, profile levels, optional columns present) is learned in `fit` and frozen, which
is what makes scoring one customer online agree with scoring the whole population in batch.

Output columns and their order come from `tiercast.features.registry.feature_definitions`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tiercast.features.lifecycle import lifecycle_stage
from tiercast.features.registry import OPTIONAL_FEATURE_COLUMNS, FeatureDef, feature_definitions, slug
from tiercast.features.spec import FeatureSpec

NS_PER_DAY = 86_400 * 10**9
SUM_DECIMALS = 6
_FORMAT = "tiercast.feature_builder/1"
_NAT = np.iinfo(np.int64).min
# Ids from which Arrow sorts them (faster alone: 1,000 shuffled ids 0.22 vs 0.47 ms; 20,000: 5 vs 15 ms). Below, numpy:
# inside a service request Arrow's sort of 500 ids took 1.2 ms against numpy's 0.1 (already sorted ids are cheap).
ARROW_SORT_FROM = 2000

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
# Transactions as a frame, or its columns as arrays (the service's request: no frame needed to read them).
Table = pd.DataFrame | Mapping[str, np.ndarray]


# ----------------------------------------------------------------------------------------------- helpers
def _as_of_ns(as_of: Any) -> int:
    """as_of (str, date, Timestamp; tz-aware converted to UTC) as int nanoseconds since the epoch."""
    ts = pd.Timestamp(as_of)
    if ts is pd.NaT:
        raise ValueError("as_of must be a date, got NaT")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(ts.as_unit("ns").value)


def instants_ns(values: pd.Series | np.ndarray) -> IntArray:
    """Timestamps as int64 ns since the epoch (naive = UTC); NaT becomes int64 min."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return np.asarray(values, dtype="datetime64[ns]").view(np.int64)


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


def _group_max(codes: IntArray, values: FloatArray, n: int) -> FloatArray:
    """Per-group maximum; NaN for empty groups."""
    out = np.full(n, -np.inf)
    np.maximum.at(out, codes, values)
    out[out == -np.inf] = np.nan
    return out


def _group_min(codes: IntArray, values: FloatArray, n: int) -> FloatArray:
    """Per-group minimum; NaN for empty groups."""
    out = np.full(n, np.inf)
    np.minimum.at(out, codes, values)
    out[out == np.inf] = np.nan
    return out


def _count(codes: IntArray, n: int, weights: FloatArray | None = None) -> FloatArray:
    """Per-group count, or per-group sum of weights rounded to SUM_DECIMALS.

    The rounding makes sums independent of row order (float addition is not associative), so a
    customer's features do not depend on how the rows were ordered in the file or the request.
    """
    if weights is None:
        return np.bincount(codes, minlength=n).astype(np.float64)
    # Array methods rather than np.round / np.cumsum / np.searchsorted here and below: the same operation
    # without numpy's Python wrapper, which costs as much as the work on one customer's arrays.
    return np.bincount(codes, weights=weights, minlength=n).round(SUM_DECIMALS)


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    """num / den with NaN where den is 0."""
    # Dividing only where den is not 0 (``where=``) needs no np.errstate: that context manager cost more than
    # the division on one customer's arrays (1.8 vs 0.4 us), and a request entered it a dozen times.
    return np.divide(num, den, out=np.full(np.shape(den), np.nan), where=den != 0)


def _trend(recent: FloatArray, before: FloatArray) -> FloatArray:
    """Symmetric relative change in [-1, 1]; 0 when both periods are 0."""
    den = np.abs(recent) + np.abs(before)
    return np.divide(recent - before, den, out=np.zeros(np.shape(den)), where=den > 0)


def _score(values: FloatArray, edges: Sequence[float], higher_is_better: bool) -> IntArray:
    """1-5 from four edges: 1 + number of edges strictly below the value (reversed for recency)."""
    above = np.searchsorted(np.asarray(edges, dtype=float), values, side="left").astype(np.int64)
    return 5 - above if not higher_is_better else 1 + above


def _arrow_backed(values: pd.Series | np.ndarray) -> bool:
    dtype = values.dtype
    return isinstance(dtype, pd.ArrowDtype) or (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow")


def _arrow_strings(values: pd.Series | np.ndarray) -> pa.Array | None:
    """The column as one Arrow string array, or None when it does not hold only strings (and nulls)."""
    try:
        if _arrow_backed(values):
            array = pa.array(values.array)
        else:
            array = pa.array(np.asarray(values, dtype=object), type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    return array if pa.types.is_string(array.type) or pa.types.is_large_string(array.type) else None


def encode(values: pd.Series | np.ndarray) -> tuple[IntArray, npt.NDArray[np.object_]]:
    """Integer codes (-1 = missing) and uniques (object array) of a string-like column of any dtype.

    Categoricals reuse their codes (the uniques may include values no row uses); Arrow-backed strings are
    dictionary-encoded by Arrow without leaving Arrow; anything else (object columns of Python strings) is
    hashed by pandas, which reuses each string's cached hash: faster than converting them for Arrow
    (measured: 3x for one customer, 2.5x for 1.4 million CDNOW ids, as fast for 2 million distinct ids).
    Both number the uniques in order of first appearance.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        return (np.asarray(values.array.codes, dtype=np.int64),
                np.asarray(values.dtype.categories.astype(object), dtype=object))
    array = _arrow_strings(values) if _arrow_backed(values) else None
    if array is None:
        codes, uniques = pd.factorize(np.asarray(values, dtype=object))
        return codes.astype(np.int64, copy=False), np.asarray(uniques, dtype=object)
    encoded = pc.dictionary_encode(array)
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)


def group_codes(values: pd.Series | np.ndarray, hash_from_rows: int = 200_000) -> IntArray:
    """Codes (-1 = missing) that group equal values, for high-cardinality strings such as order ids.

    From `hash_from_rows` rows on, where a hash table over millions of distinct strings gets slow,
    DuckDB hashes the strings (in parallel), rows are grouped by sorting the 64-bit hashes, and the
    grouping is then checked exactly (every row equals its group's first row; a hash collision falls
    back to `encode`). Smaller columns (one customer online) skip DuckDB's start-up cost: `encode`.
    """
    array = None if isinstance(values.dtype, pd.CategoricalDtype) else _arrow_strings(values)
    if array is None or len(array) < max(hash_from_rows, 1):
        return encode(values)[0]
    with duckdb.connect() as con:
        con.register("t", pa.table({"v": array}))
        hashes = con.execute("SELECT hash(v) AS h FROM t").fetchnumpy()["h"]  # insertion order is kept
    order = np.argsort(hashes)
    ranked = hashes[order]
    first = np.concatenate(([True], ranked[1:] != ranked[:-1]))
    codes = np.empty(len(hashes), dtype=np.int64)
    codes[order] = np.cumsum(first) - 1
    same = pc.equal(array, array.take(pa.array(order[first][codes])))
    if not pc.all(pc.fill_null(same, True)).as_py():
        return encode(values)[0]
    return np.where(array.is_null().to_numpy(zero_copy_only=False), -1, codes)


def sorted_codes(values: pd.Series, keep: npt.NDArray[np.bool_]) -> tuple[IntArray, npt.NDArray[np.object_]]:
    """Codes 0..k-1 of the kept rows' customer ids in sorted id order, and the sorted ids."""
    return _sorted(*encode(values), keep)


def _sorted(codes: IntArray, uniques: npt.NDArray[np.object_], keep: npt.NDArray[np.bool_]
            ) -> tuple[IntArray, npt.NDArray[np.object_]]:
    """:func:`sorted_codes` from the column's :func:`encode` result."""
    codes = codes[keep]
    used = np.flatnonzero(np.bincount(codes[codes >= 0], minlength=len(uniques)))
    ids = uniques[used]
    order = None
    if len(ids) >= ARROW_SORT_FROM:  # Arrow sorts strings in C (UTF-8 byte order = Python's str order)
        try:
            order = pc.sort_indices(pa.array(ids, type=pa.string())).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # ids that are not all strings
            pass
    if order is None:
        order = np.argsort(ids, kind="stable")
    rank = np.full(len(uniques), -1, dtype=np.int64)
    rank[used[order]] = np.arange(len(used))
    return rank[codes], ids[order]


def lookup(values: pd.Series | np.ndarray, ids: npt.NDArray[np.object_]) -> IntArray:
    """Position of each row's customer id among `ids` (-1 when absent), one hash per distinct id."""
    codes, uniques = encode(values)
    position = pd.Index(ids).get_indexer(uniques)
    return np.where(codes >= 0, position[codes] if len(position) else -1, -1)


@dataclass(frozen=True)
class _Text:
    """A string column of the kept rows as codes (-1 = missing) into `uniques`."""

    codes: IntArray
    uniques: npt.NDArray[np.object_]


@dataclass(frozen=True)
class _History:
    """Transactions before as_of as aligned arrays, customers coded 0..n-1 in sorted id order.

    Optional columns are None when absent from the input frame."""

    ids: npt.NDArray[np.object_]
    codes: IntArray
    ts: IntArray
    age: FloatArray  # days from the line to as_of (> 0)
    amount: FloatArray
    order: IntArray | None
    quantity: FloatArray | None
    category: _Text | None
    channel: _Text | None

    @property
    def n(self) -> int:
        return len(self.ids)


def _history(transactions: Table, as_of_ns: int) -> _History:
    ts = instants_ns(transactions["timestamp"])
    codes, uniques = encode(transactions["customer_id"])
    keep = (ts < as_of_ns) & (ts != _NAT) & (codes >= 0)  # code -1: no customer id
    codes, ids = _sorted(codes, uniques, keep)
    ts = ts[keep]

    def text(name: str) -> _Text | None:
        if name not in transactions:
            return None
        c, u = encode(transactions[name])
        return _Text(c[keep], u)

    return _History(
        ids=ids,
        codes=codes,
        ts=ts,
        age=_age_days(as_of_ns, ts),
        amount=np.asarray(transactions["amount"], dtype=np.float64)[keep],
        order=group_codes(transactions["order_id"])[keep] if "order_id" in transactions else None,
        quantity=(np.asarray(transactions["quantity"], dtype=np.float64)[keep]
                  if "quantity" in transactions else None),
        category=text("category"),
        channel=text("channel"),
    )


def order_index(order_codes: IntArray, customer_codes: IntArray, n_customers: int) -> IntArray:
    """Order number 0..k-1 of each line: one order_id of one customer, or one line when the order_id
    code is -1 (missing). Order ids shared between customers give one order per customer."""
    oid = order_codes.copy()
    missing = oid < 0
    oid[missing] = oid.max(initial=-1) + 1 + np.arange(int(missing.sum()))
    n_oid = int(oid.max(initial=-1)) + 1
    owner = np.empty(n_oid, dtype=np.int64)
    owner[oid] = customer_codes
    if np.array_equal(owner[oid], customer_codes):  # each order_id has one customer: no pair hashing
        used = np.bincount(oid, minlength=n_oid) > 0
        return (np.cumsum(used) - 1)[oid]
    order, _ = pd.factorize(oid * n_customers + customer_codes)
    return order.astype(np.int64, copy=False)


def _orders(h: _History) -> tuple[IntArray, FloatArray, FloatArray]:
    """(customer code, net value, age of first line) per order (see `order_index`); each line is an
    order when order_id is absent."""
    if h.order is None:
        return h.codes, h.amount, h.age
    order = order_index(h.order, h.codes, h.n)
    n_orders = int(order.max(initial=-1)) + 1
    cust = np.empty(n_orders, dtype=np.int64)
    cust[order] = h.codes
    value = _count(order, n_orders, h.amount)
    age = _group_max(order, h.age, n_orders)
    return cust, value, age


def _purchase_rhythm(codes: IntArray, ts: IntArray, n: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Mean and sample std of the gaps between distinct UTC purchase days, and the number of those days."""
    day = ts // NS_PER_DAY
    if len(day):
        d0, span = int(day.min()), int(day.max() - day.min()) + 1
        key = np.sort(codes * span + (day - d0))
        key = key[np.concatenate(([True], key[1:] != key[:-1]))]  # distinct (customer, day), sorted
        d_cust, d_day = key // span, key % span
    else:
        d_cust = d_day = np.empty(0, dtype=np.int64)
    same = d_cust[1:] == d_cust[:-1]
    g_cust, gaps = d_cust[1:][same], np.diff(d_day)[same].astype(np.float64)
    g_n = _count(g_cust, n)
    g_mean = _ratio(_count(g_cust, n, gaps), g_n)
    g_var = np.divide(_count(g_cust, n, gaps**2) - g_n * g_mean**2, g_n - 1, out=np.full(n, np.nan), where=g_n >= 2)
    g_std = np.sqrt(np.maximum(g_var, 0.0))  # NaN with fewer than two gaps
    return g_mean, g_std, _count(d_cust, n)


def _category_mix(cat: IntArray, codes: IntArray, n: int) -> dict[str, FloatArray]:
    """Distinct categories, favourite-category share and entropy of purchase lines (codes aligned)."""
    ok = cat >= 0
    n_cat = max(int(cat.max(initial=-1)) + 1, 1)
    pair, uniq = pd.factorize(codes[ok] * n_cat + cat[ok])
    count = np.bincount(pair, minlength=len(uniq)).astype(np.float64)
    cust = (np.asarray(uniq) // n_cat).astype(np.int64)
    lines = _count(cust, n, count)
    p = count / lines[cust] if len(cust) else count
    return {
        "n_categories": _count(cust, n),
        "top_category_share": _ratio(_group_max(cust, count, n), lines),
        "category_entropy": np.where(lines > 0, _count(cust, n, -p * np.log(p)), np.nan),
    }


def _channel_shares(channel: _Text, pos: npt.NDArray[np.bool_], codes: IntArray, channels: Sequence[str],
                    n: int) -> dict[str, FloatArray]:
    """Share of each customer's purchase lines in each fitted channel slug."""
    slot = pd.Index(list(channels)).get_indexer([slug(u) for u in channel.uniques])
    row = channel.codes[pos]
    row_slot = np.where(row >= 0, slot[row] if len(slot) else -1, -1)
    lines = _count(codes, n)
    return {f"channel_share_{c}": _ratio(_count(codes[row_slot == j], n), lines) for j, c in enumerate(channels)}


@dataclass(frozen=True)
class FeatureColumns:
    """:meth:`FeatureBuilder.transform`'s table before it becomes a frame: sorted customer ids and each
    output column as one array (float64, int64, object, or a Categorical of profile levels), in registry order.

    Reads like the frame where the scorer needs it (``table[name]``, ``name in table``, ``len(table)`` rows)
    without a frame's costs: building one and reading its columns back (each a new Series) took a third of
    a one-customer request's scoring time."""

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
        # Every column is one 1-D array of the index's length and of its final dtype, so pandas' checks of
        # each column (a third of the frame's cost for one customer) are skipped: a private but long-standing
        # constructor, held to the public one by a test.
        return pd.DataFrame._from_arrays(list(self.columns.values()), columns=pd.Index(list(self.columns)),
                                         index=pd.Index(self.ids, dtype=object, name="customer_id"),
                                         verify_integrity=False)


# ---------------------------------------------------------------------------------------------- builder
class FeatureBuilder:
    """Point-in-time feature transformer (fit learns population state, transform applies it).

    Fitted attributes: ``optional_columns_`` (quantity/category/channel present at fit), ``channels_``
    (channel slugs with a share feature), ``profile_levels_`` (customer attribute -> levels, None for
    numeric), ``rfm_edges_`` (four edges each for recency_days, frequency, monetary).
    Unfitted, `transform` still works (the rule fallback): spec RFM edges, no channel or profile features.
    """

    def __init__(self, spec: FeatureSpec | None = None, personal_data_columns: Sequence[str] = ()) -> None:
        self.spec = spec if spec is not None else FeatureSpec()
        self.personal_data_columns = tuple(personal_data_columns)

    # ------------------------------------------------------------------------------------- public API
    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "rfm_edges_")

    def definitions(self) -> list[FeatureDef]:
        """The registry entries of this fitted builder's output columns, in order.

        Kept from the last call while the spec and fitted state compare equal (a copy of them is the key):
        expanding the registry costs a quarter of a one-customer request's feature time."""
        self._check_fitted()
        state = (self.spec, self.optional_columns_, self.channels_, self.profile_levels_)
        cached = getattr(self, "_definitions", None)
        if cached is None or cached[0] != state:
            defs = feature_definitions(self.spec, optional_columns=self.optional_columns_, channels=self.channels_,
                                       profile=self.profile_levels_)
            self._definitions = (copy.deepcopy(state), defs)
        return list(self._definitions[1])

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
        """Learn optional columns, channels, profile levels and RFM edges from the population at as_of."""
        self.fit_transform(transactions, as_of, customers, interactions)
        return self

    def fit_transform(
        self,
        transactions: Table,
        as_of: Any,
        customers: pd.DataFrame | None = None,
        interactions: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """`fit` then `transform` on the same data, computing the aggregates once."""
        as_of_ns = _as_of_ns(as_of)
        h = _history(transactions, as_of_ns)
        if h.n == 0:
            raise ValueError(f"cannot fit features: no transaction before as_of={pd.Timestamp(as_of)}")
        optional = [c for c in OPTIONAL_FEATURE_COLUMNS if c in transactions]
        channels = self._learn_channels(h) if "channel" in optional else []
        profile = self._learn_profile(customers, h.ids, as_of_ns)
        frame = self._frame(h, as_of_ns, customers, interactions, optional, channels, profile)
        edges = self.spec.rfm_edges.model_dump()
        if self.spec.rfm_learn_edges:
            q = [0.2, 0.4, 0.6, 0.8]
            edges = {
                "recency_days": np.quantile(frame["recency_days"], q).tolist(),
                "frequency": np.quantile(frame["frequency"], q).tolist(),
                "monetary": np.quantile(frame["monetary_total"], q).tolist(),
            }
        self.optional_columns_ = optional
        self.channels_ = channels
        self.profile_levels_ = profile
        self.rfm_edges_ = edges
        return self._finish(frame, edges, self.definitions()).frame()

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
        as_of_ns = _as_of_ns(as_of)
        h = _history(transactions, as_of_ns)
        if self.is_fitted:
            optional, channels, profile = self.optional_columns_, self.channels_, self.profile_levels_
            edges, defs = self.rfm_edges_, self.definitions()
        else:
            optional = [c for c in OPTIONAL_FEATURE_COLUMNS if c in transactions]
            channels, profile = [], {}
            edges = self.spec.rfm_edges.model_dump()
            defs = feature_definitions(self.spec, optional_columns=optional)
        frame = self._frame(h, as_of_ns, customers, interactions, optional, channels, profile)
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
        return builder

    # ------------------------------------------------------------------------------------ fit helpers
    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError("FeatureBuilder is not fitted; call fit() first")

    def _learn_channels(self, h: _History) -> list[str]:
        """The most frequent channel slugs among purchase lines (at most spec.max_channels), sorted."""
        if h.channel is None:
            return []
        codes = h.channel.codes[h.amount > 0]
        counts = np.bincount(codes[codes >= 0], minlength=len(h.channel.uniques))
        seen = counts > 0
        if not seen.any():
            return []
        slugs = pd.Series(counts[seen], index=[slug(u) for u in h.channel.uniques[seen]]).groupby(level=0).sum()
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
            has_signup = signup != _NAT
            known &= ~has_signup | (signup < as_of_ns)
            with_date = known & has_signup
            tenure[code[with_date]] = _age_days(as_of_ns, signup[with_date])
        return cust.loc[known], code[known], tenure

    def _profile_candidates(self, customers: pd.DataFrame) -> list[str]:
        personal = {c.lower() for c in self.personal_data_columns}
        return [c for c in customers.columns
                if c not in ("customer_id", "signup_date") and c.lower() not in personal]

    def _learn_profile(self, customers: pd.DataFrame | None, ids: npt.NDArray[np.object_],
                       as_of_ns: int) -> dict[str, list[str] | None]:
        """Attribute -> frequent levels (categorical) or None (numeric); datetime attributes are skipped."""
        rows, _, _ = self._profile_rows(customers, ids, as_of_ns)
        if rows is None:
            return {}
        profile: dict[str, list[str] | None] = {}
        for col in self._profile_candidates(rows):
            s = rows[col]
            if pd.api.types.is_bool_dtype(s) or not (
                pd.api.types.is_numeric_dtype(s) or pd.api.types.is_datetime64_any_dtype(s)
            ):
                counts = s.dropna().astype(str).value_counts()
                counts = counts[counts >= self.spec.min_profile_level_count]
                counts = counts.sort_index().sort_values(ascending=False, kind="stable")
                levels = sorted(counts.index[: self.spec.max_profile_levels])
                if levels:
                    profile[col] = levels
            elif pd.api.types.is_numeric_dtype(s):
                profile[col] = None
        return profile

    # ---------------------------------------------------------------------------------- computation
    def _frame(
        self,
        h: _History,
        as_of_ns: int,
        customers: pd.DataFrame | None,
        interactions: pd.DataFrame | None,
        optional: Sequence[str],
        channels: Sequence[str],
        profile: Mapping[str, list[str] | None],
    ) -> dict[str, Any]:
        """All features except the RFM scores, as name -> per-customer array (plus `_ids`).
        Features of an optional column absent from this input are left out (NaN in `_finish`)."""
        n, spec = h.n, self.spec
        out: dict[str, Any] = {"_ids": h.ids}
        pos = h.amount > 0
        pcodes = h.codes[pos]

        # recency / frequency / monetary
        first_age = _group_max(h.codes, h.age, n)
        last_purchase = _group_min(pcodes, h.age[pos], n)
        first_purchase = _group_max(pcodes, h.age[pos], n)
        recency = np.where(np.isnan(last_purchase), first_age, last_purchase)
        o_cust, o_value, o_age = _orders(h)
        o_pos = o_value > 0
        frequency = _count(o_cust[o_pos], n)
        total = _count(h.codes, n, h.amount)
        g_mean, g_std, n_days = _purchase_rhythm(pcodes, h.ts[pos], n)
        out.update(recency_days=recency, frequency=frequency, purchase_days=n_days, monetary_total=total,
                   monetary_mean=_ratio(total, frequency), monetary_max=_group_max(o_cust, o_value, n))
        out.update(self._windows(h, o_cust[o_pos], o_age[o_pos]))
        out.update(tenure_days=first_age, gap_mean_days=g_mean, gap_std_days=g_std,
                   recency_over_gap=_ratio(recency, g_mean))

        neg = h.amount < 0
        out["refund_count"] = _count(h.codes[neg], n)
        out["refund_share"] = _ratio(_count(h.codes[neg], n, -h.amount[neg]), _count(pcodes, n, h.amount[pos]))

        if "quantity" in optional and h.quantity is not None:
            q_total = _count(pcodes, n, np.nan_to_num(h.quantity[pos], nan=0.0))
            out["quantity_total"] = q_total
            out["quantity_per_order"] = _ratio(q_total, frequency)
        if "category" in optional and h.category is not None:
            out.update(_category_mix(h.category.codes[pos], pcodes, n))
        if "channel" in optional and h.channel is not None:
            out.update(_channel_shares(h.channel, pos, pcodes, channels, n))

        out.update(self._interactions(interactions, h.ids, as_of_ns))

        rows, p_codes, signup_tenure = self._profile_rows(customers, h.ids, as_of_ns)
        out["signup_tenure_days"] = signup_tenure
        for col, levels in profile.items():
            values = rows[col] if rows is not None and col in rows.columns else None
            out[f"profile_{slug(col)}"] = self._profile_values(values, p_codes, n, levels)

        fp_age = np.where(np.isnan(first_purchase), first_age, first_purchase)
        out["lifecycle_stage"] = lifecycle_stage(recency, fp_age, g_mean, spec.lifecycle)
        return out

    def _windows(self, h: _History, order_cust: IntArray, order_age: FloatArray) -> dict[str, FloatArray]:
        """Orders and spend in each window [as_of - w, as_of) and trends against [as_of - 2w, as_of - w).

        One pass: every line (order) falls in a bucket between consecutive window edges {w, 2w}; per
        customer bucket totals are accumulated once and cumulated into each window."""
        n = h.n
        edges = np.array(sorted({float(k * w) for w in self.spec.windows_days for k in (1, 2)}))
        m = len(edges) + 1  # the last bucket holds everything older than the oldest edge

        def cumulative(codes: IntArray, age: FloatArray, weights: FloatArray | None) -> FloatArray:
            bucket = edges.searchsorted(age, side="left")  # age <= edges[b] -> bucket b
            table = _count(codes * m + bucket, n * m, weights).reshape(n, m)
            return table[:, :-1].cumsum(axis=1).round(SUM_DECIMALS)  # column j: age <= edges[j]

        orders = cumulative(order_cust, order_age, None)
        spend = cumulative(h.codes, h.age, h.amount)
        col = {e: j for j, e in enumerate(edges)}
        now = [col[float(w)] for w in self.spec.windows_days]
        upto = [col[float(2 * w)] for w in self.spec.windows_days]
        # Every window's trend at once (element by element, so the same numbers as window by window).
        order_trend = _trend(orders[:, now], orders[:, upto] - orders[:, now])
        spend_trend = _trend(spend[:, now], (spend[:, upto] - spend[:, now]).round(SUM_DECIMALS))
        out: dict[str, FloatArray] = {}
        for i, w in enumerate(self.spec.windows_days):
            out[f"orders_{w}d"] = orders[:, now[i]]
            out[f"spend_{w}d"] = spend[:, now[i]]
            out[f"trend_orders_{w}d"] = order_trend[:, i]
            out[f"trend_spend_{w}d"] = spend_trend[:, i]
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
            keep = (ts < as_of_ns) & (ts != _NAT) & (code >= 0)
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
        out["survey_score_mean"] = _ratio(_count(s_code, n, s_score), _count(s_code, n))
        for w in self.spec.interaction_windows_days:
            recent = age <= w
            out[f"support_tickets_{w}d"] = _count(code[recent & (kind == kinds.support_ticket)], n)
            out[f"complaints_{w}d"] = _count(code[recent & (kind == kinds.complaint)], n)
        out["days_since_interaction"] = _group_min(code, age, n)
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
        frame["r_score"] = _score(frame["recency_days"], edges["recency_days"], higher_is_better=False)
        frame["f_score"] = _score(frame["frequency"], edges["frequency"], higher_is_better=True)
        frame["m_score"] = _score(frame["monetary_total"], edges["monetary"], higher_is_better=True)
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
