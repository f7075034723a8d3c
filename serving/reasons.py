"""Reasons: the main drivers of a prediction, from LightGBM's per-feature contributions, in plain words."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:,.1f}"


def describe(feature: str, row: pd.Series) -> str:
    """A person's phrasing of one feature's value for one customer."""
    value = row.get(feature)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"no {feature.replace('_', ' ')} on record"
    if feature in ("recency_days", "recency_over_gap"):
        gap = row.get("gap_mean_days")
        usual = f", usually every {_number(gap)}" if gap is not None and np.isfinite(gap) and gap > 0 else ""
        return f"no purchase for {_number(row['recency_days'])} days{usual}"
    if feature == "frequency":
        return f"{_number(value)} orders so far"
    if feature == "purchase_days":
        return f"bought on {_number(value)} different days"
    if feature.startswith("monetary_"):
        what = {"monetary_total": "spent", "monetary_mean": "average order", "monetary_max": "largest order"}
        return f"{what.get(feature, feature)} {_number(value)}"
    if feature == "tenure_days":
        return f"customer for {_number(value)} days"
    if feature.startswith("gap_"):
        return f"usually buys every {_number(value)} days" if feature == "gap_mean_days" else \
            f"irregular rhythm (gap spread {_number(value)} days)"
    match = re.fullmatch(r"(orders|spend)_(\d+)d", feature)
    if match:
        noun = "orders" if match[1] == "orders" else "spent"
        return f"{_number(value)} {noun} in the last {match[2]} days" if noun == "orders" else \
            f"{noun} {_number(value)} in the last {match[2]} days"
    match = re.fullmatch(r"trend_(orders|spend)_(\d+)d", feature)
    if match:
        direction = "up" if value >= 0 else "down"
        return f"{match[1]} {direction} {abs(value) * 100:.0f}% on the previous {match[2]} days"
    if feature.startswith("survey_score"):
        return f"satisfaction score {_number(value)}"
    if feature.startswith(("support_tickets", "complaints")):
        return f"{_number(value)} {feature.split('_')[0].replace('support', 'support tickets')} recently"
    if feature.startswith("refund"):
        return f"refunds: {feature.replace('refund_', '')} {_number(value)}"
    if isinstance(value, (int, float, np.number)):
        return f"{feature.replace('_', ' ')} {_number(float(value))}"
    return f"{feature.replace('_', ' ')}: {value}"


def top_reasons(contributions: pd.DataFrame, features: pd.DataFrame, label: str, n: int = 2) -> list[list[str]]:
    """For each customer, the ``n`` features that moved ``label`` most, phrased with their direction."""
    values = contributions.to_numpy()
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :n]
    columns = contributions.columns
    out: list[list[str]] = []
    for i, (customer, row) in enumerate(features.iterrows()):
        reasons = []
        for j in order[i]:
            if values[i, j] == 0:
                continue
            direction = "raises" if values[i, j] > 0 else "lowers"
            reasons.append(f"{describe(columns[j], row)} ({direction} {label})")
        out.append(reasons)
    return out
