"""Reasons: the main drivers of a prediction, from LightGBM's per-feature contributions, in plain words.

:func:`phrase` says what one feature's value means for a person ("no purchase for 120 days, usually every
30", "spend up 40% on the previous quarter"), vectorised over customers. :func:`top_reasons` picks each
customer's strongest contributions and phrases them; its loops run over the features picked, never over
customers, so one customer on the service's hot path costs a few small array operations.
:func:`reason_lists` builds each customer's list (the output's shape: one list per customer), joining the
effects of a phrase given by several models ("no purchase for 120 days, usually every 30 (lowers value,
raises churn risk)").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

Texts = np.ndarray  # 1-D object array of str, one per customer

PERIOD_NAMES = {7: "week", 30: "month", 90: "quarter", 180: "half-year", 365: "year"}

_format_whole = np.frompyfunc("{:,.0f}".format, 1, 1)
_format_tenth = np.frompyfunc("{:,.1f}".format, 1, 1)


def number_text(values: np.ndarray) -> Texts:
    """Numbers as readable text: whole from 10 up or when whole, else one decimal; missing as 'unknown'."""
    v = np.asarray(values, dtype=float)
    out = np.full(v.shape, "unknown", dtype=object)
    finite = np.isfinite(v)
    whole = finite & ((np.abs(v) >= 10) | (v == np.round(v)))
    for mask, form in ((whole, _format_whole), (finite & ~whole, _format_tenth)):  # each number formatted once
        if mask.any():
            out[mask] = form(v[mask])
    return out


def _count(values: np.ndarray, one: str, many: str) -> Texts:
    """'1 order', '3 orders', '1,204 orders'."""
    v = np.asarray(values, dtype=float)
    return number_text(v) + np.where(v == 1, " " + one, " " + many).astype(object)


def _percent(values: np.ndarray) -> Texts:
    return _format_whole(np.asarray(values, dtype=float) * 100).astype(object) + "%"


def _period(days: int) -> str:
    return PERIOD_NAMES.get(days, f"{days} days")


def _recency(frame: pd.DataFrame) -> Texts:
    recency = frame["recency_days"].to_numpy(dtype=float)
    gap = frame["gap_mean_days"].to_numpy(dtype=float) if "gap_mean_days" in frame else np.full(len(frame), np.nan)
    has_gap = np.isfinite(gap) & (gap > 0)
    overdue = np.where(has_gap, recency > gap, recency >= 30)
    head = np.where(overdue, "no purchase for " + number_text(recency) + " days",
                    "last purchase " + number_text(recency) + " days ago")
    return (head + np.where(has_gap, ", usually every " + number_text(gap), "")).astype(object)


def _trend(kind: str, days: int, frame: pd.DataFrame, feature: str) -> Texts:
    """The symmetric trend t = (recent - before) / (|recent| + |before|) as a percentage change:
    recent / before - 1 = 2t / (1 - t) for non-negative amounts."""
    t = frame[feature].to_numpy(dtype=float)
    noun = "spend" if kind == "spend" else "orders"
    period = _period(days)
    recent_col = f"{kind}_{days}d"
    recent = frame[recent_col].to_numpy(dtype=float) if recent_col in frame else np.full(len(t), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.where(t < 1, 2 * t / (1 - t), np.nan)
    up = f"{noun} up " + _percent(np.abs(change)) + f" on the previous {period}"
    down = f"{noun} down " + _percent(np.abs(change)) + f" on the previous {period}"
    return np.select(
        [~np.isfinite(t), t >= 1, (t == 0) & (recent == 0), t == 0, t > 0],
        [f"{noun} trend unknown", f"{noun} in the last {period} after none in the one before",
         f"no {noun} in the last two {period}s" if days in PERIOD_NAMES else f"no {noun} in the last {2 * days} days",
         f"{noun} steady on the previous {period}", up],
        default=down).astype(object)


def _known(missing: str, text: Callable[[pd.Series], Texts]) -> Callable[[pd.Series], Texts]:
    """Phrase a column with ``text`` where its value is known, ``missing`` where it is not."""
    return lambda s: np.where(s.isna(), missing, text(s)).astype(object)


def _generic(feature: str) -> Callable[[pd.Series], Texts]:
    name = feature.replace("_", " ")
    return _known(f"{name} unknown", lambda s: name + " " + number_text(s))


# Features phrased from their own value alone: name -> text from the column.
_SIMPLE: dict[str, Callable[[pd.Series], Texts]] = {
    "frequency": lambda s: _count(s, "order", "orders") + " so far",
    "purchase_days": lambda s: "bought on " + _count(s, "day", "different days"),
    "monetary_total": lambda s: "spent " + number_text(s) + " in total",
    "monetary_mean": _known("no order value yet", lambda s: "average order " + number_text(s)),
    "monetary_max": _known("no order value yet", lambda s: "largest order " + number_text(s)),
    "tenure_days": lambda s: "customer for " + number_text(s) + " days",
    "gap_mean_days": _known("no repeat purchase yet", lambda s: "usually buys every " + number_text(s) + " days"),
    "gap_std_days": _known("too few purchases to judge the rhythm",
                           lambda s: "purchase gaps vary by " + number_text(s) + " days"),
    "refund_count": lambda s: np.where(s == 0, "no refunds", _count(s, "refund", "refunds")).astype(object),
    "refund_share": _known("no purchase to refund", lambda s: _percent(s) + " of spend refunded"),
    "quantity_total": lambda s: _count(s, "item", "items") + " bought",
    "quantity_per_order": _known("no order yet", lambda s: number_text(s) + " items per order"),
    "n_categories": lambda s: "bought in " + _count(s, "category", "categories"),
    "top_category_share": _known("no category on record",
                                 lambda s: _percent(s) + " of purchases in the favourite category"),
    "category_entropy": _known("no category on record", lambda s: "category variety " + number_text(s)),
    "survey_score_last": _known("no satisfaction survey", lambda s: "latest satisfaction score " + number_text(s)),
    "survey_score_mean": _known("no satisfaction survey", lambda s: "average satisfaction score " + number_text(s)),
    "days_since_interaction": _known("no contact on record", lambda s: "last contact " + number_text(s) + " days ago"),
    "signup_tenure_days": _known("no signup date", lambda s: "signed up " + number_text(s) + " days ago"),
}

# Model inputs derived inside a model (not builder columns): named without a value.
_DERIVED = {
    "bgnbd_expected_purchases": "purchases expected from the buying pattern",
    "bgnbd_probability_alive": "chance of still being a customer, from the buying pattern",
    "bgnbd_expected_value": "spend expected from the buying pattern",
    "bgnbd_churn_probability": "chance of no purchase, from the buying pattern",
}

_WINDOW = re.compile(r"(orders|spend|trend_orders|trend_spend|support_tickets|complaints)_(\d+)d")


def phrase(feature: str, frame: pd.DataFrame) -> Texts:
    """One feature's value, phrased for a person, for every row of ``frame`` (the feature builder's output).

    A feature the frame does not hold (a model input derived elsewhere) is named without a value."""
    if feature in ("recency_days", "recency_over_gap") and "recency_days" in frame:
        return _recency(frame)
    if feature not in frame:
        return np.full(len(frame), _DERIVED.get(feature, feature.replace("_", " ")), dtype=object)
    column = frame[feature]
    if feature in _SIMPLE:
        return np.asarray(_SIMPLE[feature](column), dtype=object)
    window = _WINDOW.fullmatch(feature)
    if window:
        kind, days = window[1], int(window[2])
        period = f"the last {_period(days)}" if days in PERIOD_NAMES else f"the last {days} days"
        values = column.to_numpy(dtype=float)
        if kind.startswith("trend_"):
            return _trend(kind.removeprefix("trend_"), days, frame, feature)
        if kind == "spend":
            return np.where(values == 0, f"no spend in {period}",
                            "spent " + number_text(values) + f" in {period}").astype(object)
        nouns = {"orders": ("order", "orders"), "support_tickets": ("support ticket", "support tickets"),
                 "complaints": ("complaint", "complaints")}[kind]
        return np.where(values == 0, f"no {nouns[1]} in {period}",
                        _count(values, *nouns) + f" in {period}").astype(object)
    if feature.startswith("channel_share_"):
        channel = feature.removeprefix("channel_share_").replace("_", " ")
        return _known("no purchase channel on record", lambda s: _percent(s) + f" of purchases via {channel}")(column)
    name = feature.removeprefix("profile_").replace("_", " ")
    if pd.api.types.is_numeric_dtype(column):
        return _generic(name)(column)
    return _known(f"{name} unknown", lambda s: f"{name}: " + s.astype(str).to_numpy(dtype=object))(column)


def top_reasons(contributions: np.ndarray, names: Sequence[str], features: pd.DataFrame, label: str,
                n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's ``n`` strongest contributions to ``label``, phrased, with their effect.

    ``contributions`` (customers, features named by ``names``) and ``features`` have one row per customer
    in the same order. Returns two object arrays of shape (customers, n): the phrases and the effects
    ("raises value"); None where a contribution is zero (the feature did not move this prediction)."""
    values = np.asarray(contributions, dtype=float)
    if values.shape != (len(features), len(names)):
        raise ValueError(f"contributions of shape {values.shape} for {len(features)} customers and "
                         f"{len(names)} features")
    n = min(n, values.shape[1])
    picked = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :n]
    strength = np.take_along_axis(values, picked, axis=1)
    phrases = np.full(picked.shape, None, dtype=object)
    for j in np.unique(picked):  # one pass per feature chosen by anyone, over the customers who chose it
        rows, ranks = np.nonzero(picked == j)
        phrases[rows, ranks] = phrase(names[j], features.iloc[rows] if len(rows) < len(features) else features)
    effects = np.where(strength > 0, f"raises {label}", f"lowers {label}").astype(object)
    moved = strength != 0
    phrases[~moved] = None
    effects[~moved] = None
    return phrases, effects


def reason_lists(*reasons: tuple[np.ndarray, np.ndarray]) -> list[list[str]]:
    """One list of reasons per customer from several :func:`top_reasons` results, strongest first; a phrase
    given by more than one model is said once with all its effects."""
    phrases = np.hstack([p for p, _ in reasons]).tolist()
    effects = np.hstack([e for _, e in reasons]).tolist()
    out: list[list[str]] = []
    for row_phrases, row_effects in zip(phrases, effects):
        merged: dict[str, list[str]] = {}
        for text, effect in zip(row_phrases, row_effects):
            if text is not None:
                merged.setdefault(text, []).append(effect)
        out.append([f"{text} ({', '.join(dict.fromkeys(found))})" for text, found in merged.items()])
    return out
