"""Reasons: the main drivers of a prediction, from LightGBM's per-feature contributions, in plain words.

:func:`phrase` says what one feature's value means for a person ("no purchase for 120 days, usually every
30", "spend up 40% on the previous quarter"), for every customer of a frame. :func:`top_reasons` picks each
customer's strongest contributions and phrases them, reading per feature picked only the values of the
customers who picked it. :func:`reason_lists` builds each customer's list (the output's shape: one list per
customer), joining the effects of a phrase given by several models ("no purchase for 120 days, usually every
30 (lowers value, raises churn risk)").
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from tiercast.features.builder import FeatureColumns

Texts = np.ndarray  # 1-D object array of str, one per customer
# How to phrase a feature: the columns it reads, and the text of one customer's values of them.
Phrasing = tuple[tuple[str, ...], Callable[..., str]]

PERIOD_NAMES = {7: "week", 30: "month", 90: "quarter", 180: "half-year", 365: "year"}


def _number(x: float) -> str:
    if not math.isfinite(x):
        return "unknown"
    return f"{x:,.0f}" if abs(x) >= 10 or x.is_integer() else f"{x:,.1f}"


def number_text(values: np.ndarray) -> Texts:
    """Numbers as readable text: whole from 10 up or when whole, else one decimal; missing as 'unknown'."""
    v = np.asarray(values, dtype=float)
    return np.array([_number(x) for x in v.ravel().tolist()], dtype=object).reshape(v.shape)


def _count(x: float, one: str, many: str) -> str:
    """'1 order', '3 orders', '1,204 orders'."""
    return f"{_number(x)} {one if x == 1 else many}"


def _percent(x: float) -> str:
    return f"{x * 100:,.0f}%"


def _period(days: int) -> str:
    return PERIOD_NAMES.get(days, f"{days} days")


def _recency(recency: float, gap: float = math.nan) -> str:
    has_gap = math.isfinite(gap) and gap > 0
    overdue = recency > gap if has_gap else recency >= 30
    head = f"no purchase for {_number(recency)} days" if overdue else f"last purchase {_number(recency)} days ago"
    return f"{head}, usually every {_number(gap)}" if has_gap else head


def _trend(noun: str, days: int) -> Callable[..., str]:
    """The text of a symmetric trend t = (recent - before) / (|recent| + |before|) and the recent amount, with t
    as a percentage change: recent / before - 1 = 2t / (1 - t) for non-negative amounts."""
    period = _period(days)
    none = f"no {noun} in the last two {period}s" if days in PERIOD_NAMES else f"no {noun} in the last {2 * days} days"

    def text(t: float, recent: float = math.nan) -> str:
        if not math.isfinite(t):
            return f"{noun} trend unknown"
        if t >= 1:
            return f"{noun} in the last {period} after none in the one before"
        if t == 0:
            return none if recent == 0 else f"{noun} steady on the previous {period}"
        return f"{noun} {'up' if t > 0 else 'down'} {_percent(abs(2 * t / (1 - t)))} on the previous {period}"
    return text


def _known(missing: str, text: Callable[[float], str]) -> Callable[[float], str]:
    """Phrase a value with ``text`` where it is known, ``missing`` where it is not."""
    return lambda x: missing if math.isnan(x) else text(x)


# Features phrased from their own value alone: name -> text of one customer's value.
_SIMPLE: dict[str, Callable[[float], str]] = {
    "frequency": lambda x: f"{_count(x, 'order', 'orders')} so far",
    "purchase_days": lambda x: f"bought on {_count(x, 'day', 'different days')}",
    "monetary_total": lambda x: f"spent {_number(x)} in total",
    "monetary_mean": _known("no order value yet", lambda x: f"average order {_number(x)}"),
    "monetary_max": _known("no order value yet", lambda x: f"largest order {_number(x)}"),
    "tenure_days": lambda x: f"customer for {_number(x)} days",
    "gap_mean_days": _known("no repeat purchase yet", lambda x: f"usually buys every {_number(x)} days"),
    "gap_std_days": _known("too few purchases to judge the rhythm",
                           lambda x: f"purchase gaps vary by {_number(x)} days"),
    "refund_count": lambda x: "no refunds" if x == 0 else _count(x, "refund", "refunds"),
    "refund_share": _known("no purchase to refund", lambda x: f"{_percent(x)} of spend refunded"),
    "return_line_share": lambda x: f"{_percent(x)} of lines returned or cancelled",
    "cancelled_orders": lambda x: "no cancelled orders" if x == 0 else _count(x, "cancelled order", "cancelled orders"),
    "largest_order_share": _known("no order value yet", lambda x: f"largest order {_percent(x)} of spend"),
    "orders_per_purchase_day": _known("no purchase day yet", lambda x: f"{_number(x)} orders per shopping day"),
    "lines_per_order": _known("no order yet", lambda x: f"{_number(x)} lines per order"),
    "n_products": _known("no products on record", lambda x: f"bought {_count(x, 'product', 'different products')}"),
    "products_per_order": _known("no products on record", lambda x: f"{_number(x)} products per order"),
    # Unknown item counts and categories: none bought yet, or none sent (a request without those columns).
    "quantity_total": _known("no item counts on record", lambda x: f"{_count(x, 'item', 'items')} bought"),
    "quantity_per_order": _known("no item counts on record", lambda x: f"{_number(x)} items per order"),
    "n_categories": _known("no category on record", lambda x: f"bought in {_count(x, 'category', 'categories')}"),
    "top_category_share": _known("no category on record",
                                 lambda x: f"{_percent(x)} of purchases in the favourite category"),
    "category_entropy": _known("no category on record", lambda x: f"category variety {_number(x)}"),
    "survey_score_last": _known("no satisfaction survey", lambda x: f"latest satisfaction score {_number(x)}"),
    "survey_score_mean": _known("no satisfaction survey", lambda x: f"average satisfaction score {_number(x)}"),
    "days_since_interaction": _known("no contact on record", lambda x: f"last contact {_number(x)} days ago"),
    "signup_tenure_days": _known("no signup date", lambda x: f"signed up {_number(x)} days ago"),
}

# Model inputs derived inside a model (not builder columns): named without a value.
_DERIVED = {
    "bgnbd_expected_purchases": "purchases expected from the buying pattern",
    "bgnbd_probability_alive": "chance of still being a customer, from the buying pattern",
    "bgnbd_expected_value": "spend expected from the buying pattern",
    "bgnbd_churn_probability": "chance of no purchase, from the buying pattern",
}

_WINDOW = re.compile(r"(orders|spend|trend_orders|trend_spend|support_tickets|complaints)_(\d+)d")
_NOUNS = {"orders": ("order", "orders"), "support_tickets": ("support ticket", "support tickets"),
          "complaints": ("complaint", "complaints")}


def _phrasing(feature: str, frame: pd.DataFrame | FeatureColumns) -> Phrasing:
    """How ``feature`` is phrased from ``frame``'s columns; a column missing from the frame reads as NaN."""
    if feature in ("recency_days", "recency_over_gap") and "recency_days" in frame:
        return ("recency_days", "gap_mean_days") if "gap_mean_days" in frame else ("recency_days",), _recency
    if feature not in frame:
        text = _DERIVED.get(feature, feature.replace("_", " "))
        return (), lambda: text
    if feature in _SIMPLE:
        return (feature,), _SIMPLE[feature]
    window = _WINDOW.fullmatch(feature)
    if window:
        kind, days = window[1], int(window[2])
        if kind.startswith("trend_"):
            noun, recent = ("spend" if kind == "trend_spend" else "orders"), f"{kind.removeprefix('trend_')}_{days}d"
            return (feature, recent) if recent in frame else (feature,), _trend(noun, days)
        period = f"the last {_period(days)}" if days in PERIOD_NAMES else f"the last {days} days"
        if kind == "spend":
            return (feature,), lambda x: f"no spend in {period}" if x == 0 else f"spent {_number(x)} in {period}"
        one, many = _NOUNS[kind]
        return (feature,), lambda x: f"no {many} in {period}" if x == 0 else f"{_count(x, one, many)} in {period}"
    if feature.startswith("channel_share_"):
        channel = feature.removeprefix("channel_share_").replace("_", " ")
        return (feature,), _known("no purchase channel on record",
                                  lambda x: f"{_percent(x)} of purchases via {channel}")
    name = feature.removeprefix("profile_").replace("_", " ")
    if pd.api.types.is_numeric_dtype(frame[feature].dtype):
        return (feature,), _known(f"{name} unknown", lambda x: f"{name} {_number(x)}")
    return (feature,), lambda x: f"{name} unknown" if x is None else f"{name}: {x}"


def _values(column: pd.Series | np.ndarray | pd.Categorical, rows: np.ndarray) -> list[float] | list[str | None]:
    """A column's values at positions ``rows``: floats if numeric, else text as pandas prints it (None if missing)."""
    if pd.api.types.is_numeric_dtype(column.dtype):
        return np.asarray(column, dtype=float)[rows].tolist()
    part = np.asarray(column, dtype=object)[rows]
    return [None if missing else str(value) for value, missing in zip(part.tolist(), pd.isna(part).tolist())]


def _phrases(feature: str, frame: pd.DataFrame | FeatureColumns, rows: np.ndarray) -> list[str]:
    """:func:`phrase` for the customers at positions ``rows`` of ``frame``, reading only their values."""
    needs, text = _phrasing(feature, frame)
    if not needs:
        return [text()] * len(rows)
    return list(map(text, *(_values(frame[name], rows) for name in needs)))


def phrase(feature: str, frame: pd.DataFrame | FeatureColumns) -> Texts:
    """One feature's value, phrased for a person, for every row of ``frame`` (the feature builder's output).

    A feature the frame does not hold (a model input derived elsewhere) is named without a value."""
    return np.array(_phrases(feature, frame, np.arange(len(frame))), dtype=object)


def _strongest(values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``n`` largest ``|values|``: their columns and values, ties by column, NaN last."""
    size = np.fmax(np.abs(values), -1.0)  # fmax turns NaN into -1: below every magnitude
    picked = np.argsort(-size, axis=1, kind="stable")[:, :n]
    return picked, np.take_along_axis(values, picked, axis=1)


def top_reasons(contributions: np.ndarray, names: Sequence[str], features: pd.DataFrame | FeatureColumns, label: str,
                n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's ``n`` strongest contributions to ``label``, phrased, with their effect.

    ``contributions`` (customers, features named by ``names``) and ``features`` have one row per customer
    in the same order. Returns two object arrays of shape (customers, n): the phrases and the effects
    ("raises value"); None where a contribution is zero (the feature did not move this prediction)."""
    values = np.asarray(contributions, dtype=float)
    if values.shape != (len(features), len(names)):
        raise ValueError(f"contributions of shape {values.shape} for {len(features)} customers and "
                         f"{len(names)} features")
    picked, strength = _strongest(values, min(n, values.shape[1]))
    moved = strength != 0
    rows, ranks = moved.nonzero()  # only moved reasons are phrased: the rest are None
    chosen = picked[rows, ranks]
    by_feature = np.argsort(chosen, kind="stable")  # each feature's customers together: one slice each
    rows, ranks = rows[by_feature], ranks[by_feature]
    count = np.bincount(chosen, minlength=len(names))
    end = count.cumsum()
    texts: list[str] = []
    for j in count.nonzero()[0]:  # one pass per feature chosen by anyone
        texts += _phrases(names[j], features, rows[end[j] - count[j]:end[j]])
    phrases = np.full(picked.shape, None, dtype=object)
    phrases[rows, ranks] = np.array(texts, dtype=object)
    effects = np.array([f"lowers {label}", f"raises {label}"], dtype=object)[(strength > 0).astype(np.intp)]
    effects[~moved] = None
    return phrases, effects


def _merged(phrases: list[str | None], effects: list[str | None]) -> list[str]:
    """One customer's reasons, each phrase said once with all its effects."""
    found: dict[str, dict[str, None]] = {}  # phrase -> its effects, each once, in order
    for text, effect in zip(phrases, effects):
        if text is not None:
            found.setdefault(text, {})[effect] = None
    return [f"{text} ({', '.join(said)})" for text, said in found.items()]


def reason_lists(*reasons: tuple[np.ndarray, np.ndarray]) -> list[list[str]]:
    """One list of reasons per customer from several :func:`top_reasons` results, strongest first; a phrase
    given by more than one model is said once with all its effects."""
    phrases = np.hstack([p for p, _ in reasons])
    effects = np.hstack([e for _, e in reasons])
    return [_merged(p, e) for p, e in zip(phrases.tolist(), effects.tolist())]
