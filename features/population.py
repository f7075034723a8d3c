"""The feature builder's population state gathered in parts, one bucket of customers at a time.

What `FeatureBuilder.fit` learns from the whole population (optional columns present, channel line counts,
profile level counts, the customers' recency/frequency/monetary for the RFM quintile edges, the purchase
lines' quantities for the quantity cap) is kept here in a form that adds up: counts per value and
per-customer arrays. Buckets that partition the customers each give a `FitParts`; `FitParts.combine`
gives exactly the parts of all customers at once, so a builder fitted from the combined parts equals one
fitted on everything, bit for bit. A part is small: O(customers + distinct values), never O(lines).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from tiercast.features.encoding import FloatArray, IntArray

RFM_COLUMNS = ("recency_days", "frequency", "monetary_total")


@dataclass(frozen=True)
class FitParts:
    """One bucket's share of the population state at ``as_of_ns`` (see the module doc).

    ``profile_kinds`` is None when the bucket had no customer profiles at all, else attribute -> "levels"
    or "numeric" (the attribute's dtype in the customers table); ``profile_counts`` counts the levels of the
    profiles known at as_of. ``rfm`` holds one value per customer with history (None when the spec does not
    learn RFM edges); ``quantity_values`` are the distinct known quantities of purchase lines, sorted, with
    their line counts in ``quantity_counts``.
    """

    as_of_ns: int
    customers: int
    optional_columns: tuple[str, ...]
    channel_lines: Mapping[str, int]
    profile_kinds: Mapping[str, str] | None
    profile_counts: Mapping[str, Mapping[str, int]]
    rfm: Mapping[str, FloatArray] | None
    quantity_values: FloatArray
    quantity_counts: IntArray

    @classmethod
    def combine(cls, parts: Iterable[FitParts]) -> FitParts:
        """The parts of the union of the buckets (disjoint customers). Associative and order-independent in
        everything a builder learns from it."""
        parts = list(parts)
        if not parts:
            raise ValueError("no FitParts to combine")
        first = parts[0]
        for p in parts[1:]:
            if p.as_of_ns != first.as_of_ns:
                raise ValueError("cannot combine FitParts of different as_of dates")
            if p.optional_columns != first.optional_columns:
                raise ValueError(f"cannot combine FitParts of inputs with different optional columns: "
                                 f"{list(first.optional_columns)} and {list(p.optional_columns)}")
            if (p.rfm is None) != (first.rfm is None):
                raise ValueError("cannot combine FitParts of specs that differ in rfm_learn_edges")
        kinds = [p.profile_kinds for p in parts if p.profile_kinds is not None]
        for k in kinds[1:]:
            if list(k.items()) != list(kinds[0].items()):
                raise ValueError(f"cannot combine FitParts whose customer tables differ in attributes or their "
                                 f"kinds: {dict(kinds[0])} and {dict(k)}")
        values, counts = merge_counts([(p.quantity_values, p.quantity_counts) for p in parts])
        return cls(
            as_of_ns=first.as_of_ns,
            customers=sum(p.customers for p in parts),
            optional_columns=first.optional_columns,
            channel_lines=_sum_counts(p.channel_lines for p in parts),
            profile_kinds=kinds[0] if kinds else None,
            profile_counts={col: _sum_counts(p.profile_counts.get(col, {}) for p in parts)
                            for col in (kinds[0] if kinds else {})},
            rfm=(None if first.rfm is None
                 else {c: np.concatenate([p.rfm[c] for p in parts if p.rfm is not None]) for c in RFM_COLUMNS}),
            quantity_values=values,
            quantity_counts=counts,
        )


def _sum_counts(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for c in counts:
        total.update(c)
    return dict(sorted(total.items()))


def value_counts(values: FloatArray) -> tuple[FloatArray, IntArray]:
    """Distinct values (sorted) and how often each occurs."""
    distinct, counts = np.unique(values, return_counts=True)
    return distinct.astype(np.float64, copy=False), counts.astype(np.int64, copy=False)


def merge_counts(pairs: Iterable[tuple[FloatArray, IntArray]]) -> tuple[FloatArray, IntArray]:
    """(values, counts) of several multisets as the (values, counts) of their union."""
    pairs = list(pairs)
    values = np.concatenate([np.asarray(v, dtype=np.float64) for v, _ in pairs] or [np.empty(0)])
    counts = np.concatenate([np.asarray(c, dtype=np.int64) for _, c in pairs] or [np.empty(0, dtype=np.int64)])
    distinct, position = np.unique(values, return_inverse=True)
    total = np.zeros(len(distinct), dtype=np.int64)
    np.add.at(total, position, counts)
    return distinct, total


def counted_quantile(values: FloatArray, counts: IntArray, q: float) -> float:
    """``np.quantile(np.repeat(values, counts), q)`` (the default linear method) without repeating: the same
    virtual index, neighbours and interpolation as numpy's, so the result is bit-for-bit numpy's.
    `values` are sorted and distinct, without NaN; counts are positive."""
    n = int(np.sum(counts))
    if n == 0:
        raise ValueError("quantile of no values")
    virtual = (n - 1) * np.asarray(q, dtype=np.float64)  # numpy: (n - 1) * quantiles
    previous = np.floor(virtual)
    low, high = int(previous), int(previous) + 1
    if virtual >= n - 1:  # numpy takes the last value, at index -1 (which also enters gamma)
        previous, low, high = np.float64(-1), n - 1, n - 1
    elif virtual < 0:
        previous, low, high = np.float64(0), 0, 0
    ends = np.cumsum(counts)  # the sorted positions below ends[i] hold values[0..i]
    a = values[np.searchsorted(ends, low, side="right")]
    b = values[np.searchsorted(ends, high, side="right")]
    gamma = virtual - previous
    diff = b - a  # numpy's _lerp: from b downwards when gamma >= 0.5, from a upwards below
    return float(b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma)
