"""Outcome labels after a cutoff and the rolling training windows built from them.

At a cutoff c with horizon H the outcome window is [c, c + H). A customer is labelled when they have at
least one transaction before c. value = net sum of amount in the window (refunds included); churned =
no purchase order in the window: the window's lines are grouped into orders as the feature builder groups
them (`tiercast.features.aggregates.orders`: one order_id of the customer, or one timestamp of the customer
for lines without an order_id), and an order is a purchase when its net amount inside the window is > 0,
so a return or a fully cancelled order is no purchase. This matches `frequency` in
tiercast.features.builder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tiercast.features.aggregates import SUM_DECIMALS, orders
from tiercast.features.builder import FeatureBuilder
from tiercast.features.encoding import group_codes, instants_ns, lookup, sorted_codes


def make_labels(transactions: pd.DataFrame, cutoff: Any, horizon_days: int) -> pd.DataFrame:
    """Labels at `cutoff`: index customer_id (sorted, customers with a transaction before cutoff),
    columns value (float) and churned (bool)."""
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    cutoff = pd.Timestamp(cutoff)
    end = cutoff + pd.Timedelta(days=horizon_days)
    ts = transactions["timestamp"]
    before = (ts < cutoff).to_numpy() & transactions["customer_id"].notna().to_numpy()
    _, ids = sorted_codes(transactions["customer_id"], before)
    n = len(ids)

    inside = transactions.loc[((ts >= cutoff) & (ts < end)).to_numpy()]
    code = lookup(inside["customer_id"], ids)
    known = code >= 0
    inside, code = inside.loc[known], code[known]
    amount = inside["amount"].to_numpy(dtype=np.float64)
    value = np.round(np.bincount(code, weights=amount, minlength=n), SUM_DECIMALS)
    order_codes = group_codes(inside["order_id"]) if "order_id" in inside.columns else None
    o = orders(order_codes, code, instants_ns(inside["timestamp"]), amount, n)
    purchases = np.bincount(o.customer[o.purchase], minlength=n)
    return pd.DataFrame({"value": value, "churned": purchases == 0},
                        index=pd.Index(ids, dtype=object, name="customer_id"))


def rolling_cutoffs(cutoff: Any, horizon_days: int, n_windows: int, step_days: int) -> list[pd.Timestamp]:
    """Training cutoffs whose label windows end at or before `cutoff`, latest first:
    cutoff - H, cutoff - H - step, ... (n_windows of them)."""
    if n_windows < 1 or step_days <= 0 or horizon_days <= 0:
        raise ValueError("n_windows >= 1, step_days > 0 and horizon_days > 0 are required")
    latest = pd.Timestamp(cutoff) - pd.Timedelta(days=horizon_days)
    return [latest - pd.Timedelta(days=step_days * k) for k in range(n_windows)]


def seasonal_cutoffs(cutoff: Any, horizon_days: int, first_timestamp: Any, min_history_days: int) -> list[pd.Timestamp]:
    """The training cutoff a year before ``cutoff``, whose label window is last year's same season, when
    the history before it holds ``min_history_days`` (and the window ends by the cutoff); else none."""
    year_ago = pd.Timestamp(cutoff) - pd.DateOffset(years=1)
    enough = year_ago - pd.Timedelta(days=min_history_days) >= pd.Timestamp(first_timestamp)
    ends_in_time = year_ago + pd.Timedelta(days=horizon_days) <= pd.Timestamp(cutoff)
    return [pd.Timestamp(year_ago)] if enough and ends_in_time else []


def training_examples(
    transactions: pd.DataFrame,
    cutoff: Any,
    horizon_days: int,
    builder: FeatureBuilder,
    n_windows: int,
    step_days: int,
    customers: pd.DataFrame | None = None,
    interactions: pd.DataFrame | None = None,
    extra_cutoffs: Sequence[pd.Timestamp] = (),
) -> pd.DataFrame:
    """Stacked (features at c, labels over [c, c + H)) for each rolling cutoff c, oldest window first.

    Columns: window_cutoff, customer_id, the builder's columns, value, churned. Only data before
    `cutoff` is read. ``extra_cutoffs`` (earlier than the rolling ones, e.g. :func:`seasonal_cutoffs`) add
    windows. An unfitted builder is fitted in place at the latest window (cutoff - H), so the
    learned state (RFM edges, levels) comes from training data only; a fitted builder is used as is.
    """
    cutoffs = sorted(set(rolling_cutoffs(cutoff, horizon_days, n_windows, step_days)) | set(extra_cutoffs))
    cutoff = pd.Timestamp(cutoff)
    history = transactions.loc[(transactions["timestamp"] < cutoff).to_numpy()]
    if interactions is not None:
        interactions = interactions.loc[(interactions["timestamp"] < cutoff).to_numpy()]
    if not builder.is_fitted:
        builder.fit(history, cutoffs[-1], customers, interactions)
    parts = []
    for c in cutoffs:
        part = builder.transform(history, c, customers, interactions).join(
            make_labels(history, c, horizon_days), how="inner").reset_index()
        part.insert(0, "window_cutoff", c)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)
