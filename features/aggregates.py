"""Per-customer group reductions over integer customer codes: the arithmetic behind the transaction features.

No Python loop over customers: each function reduces aligned arrays (one entry per line, order or day)
into one value per customer code ``0..n-1``, so a customer's value never depends on which other
customers are in the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tiercast.features.encoding import NS_PER_DAY, FloatArray, IntArray
from tiercast.features.pair_codes import pair_codes
from tiercast.features.registry import slug

SUM_DECIMALS = 6


def group_max(codes: IntArray, values: FloatArray, n: int) -> FloatArray:
    """Per-group maximum; NaN for empty groups."""
    out = reduce_groups(np.maximum, codes, values, np.full(n, -np.inf))
    out[out == -np.inf] = np.nan
    return out


def group_min(codes: IntArray, values: FloatArray, n: int) -> FloatArray:
    """Per-group minimum; NaN for empty groups."""
    out = reduce_groups(np.minimum, codes, values, np.full(n, np.inf))
    out[out == np.inf] = np.nan
    return out


def reduce_groups(ufunc: np.ufunc, codes: IntArray, values: npt.NDArray[Any], out: npt.NDArray[Any]
                  ) -> npt.NDArray[Any]:
    """``ufunc`` (a commutative reduction, as np.maximum) of each group's values folded into ``out[code]``, in
    place. Codes in order, as a customer's lines and orders are, are reduced a run at a time by
    ``ufunc.reduceat``, far cheaper than ``ufunc.at`` value by value."""
    starts = _run_starts(codes) if len(codes) else None
    if starts is not None:
        runs = codes[starts]
        out[runs] = ufunc(out[runs], ufunc.reduceat(values, starts))
    else:
        ufunc.at(out, codes, values)
    return out


def _run_starts(keys: IntArray) -> IntArray | None:
    """Where each run of equal keys starts, for keys in order (a history's lines are in customer and time order);
    None for keys out of order."""
    if not bool((keys[1:] >= keys[:-1]).all()):
        return None
    return np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))


def group_count(codes: IntArray, n: int, weights: FloatArray | None = None) -> FloatArray:
    """Per-group count, or per-group sum of weights rounded to SUM_DECIMALS.

    The rounding makes sums independent of row order (float addition is not associative), so a
    customer's features do not depend on how the rows were ordered in the file or the request.
    """
    if weights is None:
        return np.bincount(codes, minlength=n).astype(np.float64)
    return np.bincount(codes, weights=weights, minlength=n).round(SUM_DECIMALS)


# Keys (>= 0) below this many times their number are counted in a table of every possible key, not sorted.
_TABLE_PER_KEY = 4


def distinct(keys: IntArray) -> tuple[IntArray, FloatArray]:
    """The distinct keys, sorted, and the lines holding each. Keys in order already (a customer's days, in a
    history's customer and time order) are only compared with their neighbours; keys of a small range (a
    customer's few categories) are counted in a table of the range; others are sorted by numpy's unique, in a
    fraction of the time of a hash table (pandas' factorize, or numpy's unique asked for the keys alone)."""
    if not len(keys):
        return keys.copy(), np.empty(0, dtype=np.float64)
    starts = _run_starts(keys)
    if starts is not None:
        return keys[starts], np.diff(np.append(starts, len(keys))).astype(np.float64)
    if keys.min() >= 0 and keys.max() < _TABLE_PER_KEY * len(keys):
        lines = np.bincount(keys)
        values = np.flatnonzero(lines)
        return values.astype(keys.dtype, copy=False), lines[values].astype(np.float64)
    values, lines = np.unique(keys, return_counts=True)
    return values, lines.astype(np.float64)


def ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    """num / den with NaN where den is 0."""
    return np.divide(num, den, out=np.full(np.shape(den), np.nan), where=den != 0)


def trend(recent: FloatArray, before: FloatArray) -> FloatArray:
    """Symmetric relative change in [-1, 1]; 0 when both periods are 0."""
    den = np.abs(recent) + np.abs(before)
    return np.divide(recent - before, den, out=np.zeros(np.shape(den)), where=den > 0)


def rfm_score(values: FloatArray, edges: Sequence[float], higher_is_better: bool) -> IntArray:
    """1-5 from four edges: 1 + number of edges strictly below the value (reversed for recency)."""
    above = np.searchsorted(np.asarray(edges, dtype=float), values, side="left").astype(np.int64)
    return 5 - above if not higher_is_better else 1 + above


def order_index(order_codes: IntArray | None, customer_codes: IntArray, ts: IntArray) -> IntArray:
    """Order number 0..k-1 of each line: one order_id of one customer; lines without an order_id (code -1,
    or no order_id column at all: None) are grouped by customer and timestamp instead, so the lines of one
    basket exported without an id (several CDNOW rows of one customer and day) are one order. Order ids
    shared between customers give one order per customer."""
    if order_codes is None:
        key = pd.factorize(ts)[0].astype(np.int64, copy=False)  # equal timestamps share a code
    else:  # named orders first, then the timestamps of the unnamed lines above every order code
        key = order_codes.copy()
        unnamed = key < 0
        if unnamed.any():
            key[unnamed] = key.max() + 1 + pd.factorize(ts[unnamed])[0]
    return pair_codes(key, customer_codes)


@dataclass(frozen=True)
class Orders:
    """The orders of a set of lines (see `order_index`): which order each line belongs to, and per order its
    customer code, net value (every line, returns included) and the age of its first line.

    A *purchase order* has net value > 0 and is not cancelled. A negative line is a return or cancellation:
    it lowers its order's value and is never an order of its own, and an order whose net value is <= 0
    (fully cancelled or refunded under its own id) is no purchase. ``cancelled`` marks the orders cancelled
    in full by a separate cancellation invoice (see `cancelled_by_invoice`)."""

    line: IntArray
    customer: IntArray
    value: FloatArray
    age: FloatArray
    cancelled: npt.NDArray[np.bool_]

    @property
    def purchase(self) -> npt.NDArray[np.bool_]:
        return (self.value > 0) & ~self.cancelled

    def __len__(self) -> int:
        return len(self.value)


def orders(order_codes: IntArray | None, codes: IntArray, ts: IntArray, amount: FloatArray, n: int,
           age: FloatArray | None = None) -> Orders:
    """The `Orders` of lines given their order codes (None without an order_id column), customer codes,
    timestamps (int ns), amounts and, for the orders' ages, ages in days (None: ages NaN)."""
    line = order_index(order_codes, codes, ts)
    n_orders = int(line.max(initial=-1)) + 1
    cust = np.empty(n_orders, dtype=np.int64)
    cust[line] = codes
    first = np.full(n_orders, np.nan) if age is None else group_max(line, age, n_orders)
    value = group_count(line, n_orders, amount)
    placed = reduce_groups(np.minimum, line, ts, np.full(n_orders, np.iinfo(np.int64).max))
    return Orders(line, cust, value, first, cancelled_by_invoice(cust, value, placed))


def cancelled_by_invoice(customer: IntArray, value: FloatArray, placed: IntArray) -> npt.NDArray[np.bool_]:
    """Orders cancelled in full by a later order of their own: a cancellation invoice (net value < 0, as
    online retailers number them apart, e.g. C536379 for 536379) of the same customer and exactly minus the
    order's value, to the cent, placed at or after it. Each cancellation takes the latest such order before
    it, and cancels at most one. Partial cancellations cancel nothing (they only lower value)."""
    cents = np.round(value * 100).astype(np.int64)
    orders_ = pd.DataFrame({"customer": customer, "cents": cents, "placed": placed, "order": np.arange(len(value))})
    cancellations = orders_[cents < 0].assign(cents=lambda f: -f["cents"])
    purchases = orders_[cents > 0]
    cancelled = np.zeros(len(value), dtype=bool)
    if cancellations.empty or purchases.empty:
        return cancelled
    matched = pd.merge_asof(cancellations.sort_values("placed"), purchases.sort_values("placed"), on="placed",
                            by=["customer", "cents"], direction="backward", suffixes=("_cancel", ""))
    order = matched["order"].dropna().astype(np.int64).drop_duplicates()
    cancelled[order.to_numpy()] = True
    return cancelled


def basket_size(o: Orders, amount: FloatArray, n: int, product: IntArray | None, quantity: FloatArray | None,
                quantity_cap: float | None) -> dict[str, FloatArray]:
    """Size and breadth of each customer's purchase orders, from their purchase lines (amount > 0; a cancelled
    order's lines do not count): lines per order, with product codes (-1 = missing) distinct products and
    products per order, with quantities the items in all and per order, each line's quantity capped at
    `quantity_cap` (None: no cap) so that a few absurd quantities (fuel sold by the thousandth of a gallon)
    do not swamp everything else a customer buys."""
    bought = o.purchase[o.line] & (amount > 0)
    line_order = o.line[bought]
    cust = o.customer[line_order]
    frequency = group_count(o.customer[o.purchase], n)
    out = {"lines_per_order": ratio(group_count(cust, n), frequency)}
    if product is not None:
        code = product[bought]
        known = code >= 0
        span = max(int(code.max(initial=-1)) + 1, 1)
        of_customer = distinct(cust[known] * span + code[known])[0] // span  # a customer per distinct product
        out["n_products"] = group_count(of_customer, n)
        in_order = distinct(line_order[known] * span + code[known])[0] // span  # an order per distinct product
        out["products_per_order"] = ratio(group_count(o.customer[in_order], n), frequency)
    if quantity is not None:
        q = np.nan_to_num(quantity[bought], nan=0.0)
        if quantity_cap is not None:
            q = np.minimum(q, quantity_cap)
        total = group_count(cust, n, q)
        out["quantity_total"] = total
        out["quantity_per_order"] = ratio(total, frequency)
    return out


def returns(o: Orders, codes: IntArray, amount: FloatArray, n: int) -> dict[str, FloatArray]:
    """Return and cancellation lines' share of all lines, and the orders they cancel: orders with such a
    line whose net value is <= 0."""
    back = amount < 0
    has_return = group_count(o.line[back], len(o)) > 0
    return {
        "return_line_share": ratio(group_count(codes[back], n), group_count(codes, n)),
        "cancelled_orders": group_count(o.customer[has_return & ~o.purchase], n),
    }


def purchase_rhythm(codes: IntArray, ts: IntArray, n: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Mean and sample std of the gaps between distinct UTC purchase days, and the number of those days."""
    day = ts // NS_PER_DAY
    if len(day):
        d0, span = int(day.min()), int(day.max() - day.min()) + 1
        key = distinct(codes * span + (day - d0))[0]  # (customer, day)
        d_cust, d_day = key // span, key % span
    else:
        d_cust = d_day = np.empty(0, dtype=np.int64)
    same = d_cust[1:] == d_cust[:-1]
    g_cust, gaps = d_cust[1:][same], np.diff(d_day)[same].astype(np.float64)
    g_n = group_count(g_cust, n)
    g_mean = ratio(group_count(g_cust, n, gaps), g_n)
    g_var = np.divide(group_count(g_cust, n, gaps**2) - g_n * g_mean**2, g_n - 1, out=np.full(n, np.nan),
                      where=g_n >= 2)
    g_std = np.sqrt(np.maximum(g_var, 0.0))  # NaN with fewer than two gaps
    return g_mean, g_std, group_count(d_cust, n)


def category_mix(cat: IntArray, codes: IntArray, n: int) -> dict[str, FloatArray]:
    """Distinct categories, favourite-category share and entropy of purchase lines (codes aligned)."""
    ok = cat >= 0
    n_cat = max(int(cat.max(initial=-1)) + 1, 1)
    pairs, count = distinct(codes[ok] * n_cat + cat[ok])
    cust = pairs // n_cat
    lines = group_count(cust, n, count)
    p = count / lines[cust] if len(cust) else count
    return {
        "n_categories": group_count(cust, n),
        "top_category_share": ratio(group_max(cust, count, n), lines),
        "category_entropy": np.where(lines > 0, group_count(cust, n, -p * np.log(p)), np.nan),
    }


def channel_shares(channel: IntArray, uniques: npt.NDArray[np.object_], codes: IntArray, channels: Sequence[str],
                   n: int) -> dict[str, FloatArray]:
    """Share of each customer's purchase lines in each fitted channel slug (channel codes into `uniques`,
    aligned with the purchase lines' customer codes)."""
    slot = pd.Index(list(channels)).get_indexer([slug(u) for u in uniques])
    row_slot = np.where(channel >= 0, slot[channel] if len(slot) else -1, -1)
    lines = group_count(codes, n)
    return {f"channel_share_{c}": ratio(group_count(codes[row_slot == j], n), lines) for j, c in enumerate(channels)}


def window_sums(windows_days: Sequence[int], codes: IntArray, age: FloatArray, amount: FloatArray,
                order_cust: IntArray, order_age: FloatArray, n: int) -> dict[str, FloatArray]:
    """Orders and spend in each window [as_of - w, as_of) and trends against [as_of - 2w, as_of - w).

    Lines (customer codes, ages in days, amounts) give the spend, purchase orders (their customer codes and
    ages) the orders. One pass: every line (order) falls in a bucket between consecutive window edges
    {w, 2w}; per customer bucket totals are accumulated once and cumulated into each window."""
    edges = np.array(sorted({float(k * w) for w in windows_days for k in (1, 2)}))
    m = len(edges) + 1  # the last bucket holds everything older than the oldest edge

    def cumulative(codes: IntArray, age: FloatArray, weights: FloatArray | None) -> FloatArray:
        bucket = edges.searchsorted(age, side="left")  # age <= edges[b] -> bucket b
        table = group_count(codes * m + bucket, n * m, weights).reshape(n, m)
        return table[:, :-1].cumsum(axis=1).round(SUM_DECIMALS)  # column j: age <= edges[j]

    counts = cumulative(order_cust, order_age, None)
    spend = cumulative(codes, age, amount)
    col = {e: j for j, e in enumerate(edges)}
    now = [col[float(w)] for w in windows_days]
    upto = [col[float(2 * w)] for w in windows_days]
    # Every window's trend at once (element by element, so the same numbers as window by window).
    order_trend = trend(counts[:, now], counts[:, upto] - counts[:, now])
    spend_trend = trend(spend[:, now], (spend[:, upto] - spend[:, now]).round(SUM_DECIMALS))
    out: dict[str, FloatArray] = {}
    for i, w in enumerate(windows_days):
        out[f"orders_{w}d"] = counts[:, now[i]]
        out[f"spend_{w}d"] = spend[:, now[i]]
        out[f"trend_orders_{w}d"] = order_trend[:, i]
        out[f"trend_spend_{w}d"] = spend_trend[:, i]
    return out
