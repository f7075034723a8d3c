"""Per-customer group reductions over integer customer codes: the arithmetic behind the transaction features.

No Python loop over customers: each function reduces aligned arrays (one entry per line, order or day)
into one value per customer code ``0..n-1``, so a customer's value never depends on which other
customers are in the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from tiercast.features.encoding import NS_PER_DAY, FloatArray, IntArray
from tiercast.features.registry import slug

SUM_DECIMALS = 6


def group_max(codes: IntArray, values: FloatArray, n: int) -> FloatArray:
    """Per-group maximum; NaN for empty groups."""
    out = np.full(n, -np.inf)
    np.maximum.at(out, codes, values)
    out[out == -np.inf] = np.nan
    return out


def group_min(codes: IntArray, values: FloatArray, n: int) -> FloatArray:
    """Per-group minimum; NaN for empty groups."""
    out = np.full(n, np.inf)
    np.minimum.at(out, codes, values)
    out[out == np.inf] = np.nan
    return out


def group_count(codes: IntArray, n: int, weights: FloatArray | None = None) -> FloatArray:
    """Per-group count, or per-group sum of weights rounded to SUM_DECIMALS.

    The rounding makes sums independent of row order (float addition is not associative), so a
    customer's features do not depend on how the rows were ordered in the file or the request.
    """
    if weights is None:
        return np.bincount(codes, minlength=n).astype(np.float64)
    return np.bincount(codes, weights=weights, minlength=n).round(SUM_DECIMALS)


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


def order_index(order_codes: IntArray, customer_codes: IntArray, n_customers: int) -> IntArray:
    """Order number 0..k-1 of each line: one order_id of one customer, or one line when the order_id
    code is -1 (missing). Order ids shared between customers give one order per customer."""
    oid = order_codes.copy()
    missing = oid < 0
    oid[missing] = oid.max(initial=-1) + 1 + np.arange(int(missing.sum()))
    order, _ = pd.factorize(oid * n_customers + customer_codes)
    return order.astype(np.int64, copy=False)


def orders(order_codes: IntArray | None, codes: IntArray, amount: FloatArray, age: FloatArray, n: int
           ) -> tuple[IntArray, FloatArray, FloatArray]:
    """(customer code, net value, age of first line) per order (see `order_index`) from the lines' order
    codes, customer codes, amounts and ages; each line is an order when order_id is absent (None)."""
    if order_codes is None:
        return codes, amount, age
    order = order_index(order_codes, codes, n)
    n_orders = int(order.max(initial=-1)) + 1
    cust = np.empty(n_orders, dtype=np.int64)
    cust[order] = codes
    value = group_count(order, n_orders, amount)
    first = group_max(order, age, n_orders)
    return cust, value, first


def purchase_rhythm(codes: IntArray, ts: IntArray, n: int) -> tuple[FloatArray, FloatArray, FloatArray]:
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
    pair, uniq = pd.factorize(codes[ok] * n_cat + cat[ok])
    count = np.bincount(pair, minlength=len(uniq)).astype(np.float64)
    cust = (np.asarray(uniq) // n_cat).astype(np.int64)
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
