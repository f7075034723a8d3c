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
import string
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from tiercast.features.builder import FeatureColumns
from tiercast.serving.i18n import ENGLISH, Messages

Texts = np.ndarray  # 1-D object array of str, one per customer
# How to phrase a feature: the columns it reads, the text of one customer's values of them, and (for the features
# phrased most) the texts of many customers' values at once, arrays in and out.
Phrasing = tuple[tuple[str, ...], Callable[..., str], Callable[..., Texts] | None]

# From this many customers a feature's texts are made by array operations where it has them (each distinct number
# formatted once, the catalogue's texts filled in by adding arrays of strings); for fewer, as a request for one
# customer, setting up the arrays costs more than phrasing each customer. Both give the same texts.
ARRAYS_FROM = 64

# Windows named as periods ("the last month"); others are said in days.
NAMED_PERIOD_DAYS = frozenset((7, 30, 90, 180, 365))


def number_text(values: np.ndarray, m: Messages = ENGLISH) -> Texts:
    """Numbers as readable text: whole from 10 up or when whole, else one decimal; missing as 'unknown'."""
    v = np.asarray(values, dtype=float)
    return np.array([m.number(x) for x in v.ravel().tolist()], dtype=object).reshape(v.shape)


def _filled(template: str, **fields: np.ndarray) -> Texts:
    """``template.format(**fields)`` for each row of ``fields`` (object arrays of str of one length): by adding
    arrays of strings from :data:`ARRAYS_FROM` rows, else (or for a field with a format spec) row by row."""
    n = len(next(iter(fields.values())))
    parts = list(string.Formatter().parse(template))
    if n < ARRAYS_FROM or any(spec or conversion for _, _, spec, conversion in parts):
        return np.array([template.format(**{k: v[i] for k, v in fields.items()}) for i in range(n)], dtype=object)
    out = np.full(n, "", dtype=object)
    for literal, name, _, _ in parts:
        out = out + literal if literal else out
        if name is not None:
            out = out + fields[name]
    return out


def _period(m: Messages, kind: str, days: int) -> str:
    """'the last month', 'the previous 45 days', 'the last two quarters' (``kind``: last, previous, last_two)."""
    if days in NAMED_PERIOD_DAYS:
        return m[f"period.{kind}.{days}"]
    return m.text(f"period.{kind}.days", days=2 * days if kind == "last_two" else days)


def _recency(m: Messages) -> Callable[..., str]:
    overdue, recent, usually = m["reason.recency.overdue"], m["reason.recency.recent"], m["reason.recency.usually"]
    number = m.number

    def text(recency: float, gap: float = math.nan) -> str:
        has_gap = math.isfinite(gap) and gap > 0
        late = recency > gap if has_gap else recency >= 30
        head = (overdue if late else recent).format(days=number(recency))
        return usually.format(head=head, gap=number(gap)) if has_gap else head
    return text


def _recency_texts(m: Messages) -> Callable[..., Texts]:
    """:func:`_recency` of arrays."""
    overdue, recent, usually = m["reason.recency.overdue"], m["reason.recency.recent"], m["reason.recency.usually"]

    def texts(recency: np.ndarray, gap: np.ndarray | None = None) -> Texts:
        gap = np.full(len(recency), np.nan) if gap is None else gap
        has_gap = np.isfinite(gap) & (gap > 0)
        late = np.where(has_gap, recency > gap, recency >= 30)
        days = m.numbers(recency)
        out = np.where(late, _filled(overdue, days=days), _filled(recent, days=days))
        if has_gap.any():
            out[has_gap] = _filled(usually, head=out[has_gap], gap=m.numbers(gap[has_gap]))
        return out
    return texts


def _trend(m: Messages, noun_key: str, days: int) -> Callable[..., str]:
    """The text of a symmetric trend t = (recent - before) / (|recent| + |before|) and the recent amount, with t
    as a percentage change: recent / before - 1 = 2t / (1 - t) for non-negative amounts."""
    noun = m[noun_key]
    previous = _period(m, "previous", days)
    after_none = m.text("reason.trend.after_none", noun=noun, last=_period(m, "last", days))
    none = m.text("reason.trend.none", noun=noun, last_two=_period(m, "last_two", days))
    unknown = m.text("reason.trend.unknown", noun=noun)
    steady = m.text("reason.trend.steady", noun=noun, previous=previous)
    up, down = m["reason.trend.up"], m["reason.trend.down"]

    def text(t: float, recent: float = math.nan) -> str:
        if not math.isfinite(t):
            return unknown
        if t >= 1:
            return after_none
        if t == 0:
            return none if recent == 0 else steady
        return (up if t > 0 else down).format(noun=noun, percent=m.percent(abs(2 * t / (1 - t))), previous=previous)
    return text


def _known(missing: str, text: Callable[[float], str]) -> Callable[[float], str]:
    """Phrase a value with ``text`` where it is known, ``missing`` where it is not."""
    return lambda x: missing if math.isnan(x) else text(x)


# Features phrased from their own value alone: name -> (how the value is shown, the catalogue key of the text
# when it is missing, or None when it cannot be). "number" and "percent" fill ``reason.NAME`` with the value;
# "count" chooses ``reason.NAME.one`` or ``.other``; "count0" says ``reason.NAME.zero`` for none.
_SIMPLE: dict[str, tuple[str, str | None]] = {
    "frequency": ("count", None),
    "purchase_days": ("count", None),
    "monetary_total": ("number", None),
    "monetary_mean": ("number", "missing.order_value"),
    "monetary_max": ("number", "missing.order_value"),
    "tenure_days": ("number", None),
    "gap_mean_days": ("number", "missing.repeat_purchase"),
    "gap_std_days": ("number", "missing.rhythm"),
    "refund_count": ("count0", None),
    "refund_share": ("percent", "missing.purchase_to_refund"),
    "return_line_share": ("percent", None),
    "cancelled_orders": ("count0", None),
    "largest_order_share": ("percent", "missing.order_value"),
    "orders_per_purchase_day": ("number", "missing.purchase_day"),
    "lines_per_order": ("number", "missing.order"),
    "n_products": ("count", "missing.products"),
    "products_per_order": ("number", "missing.products"),
    # Unknown item counts and categories: none bought yet, or none sent (a request without those columns).
    "quantity_total": ("count", "missing.item_counts"),
    "quantity_per_order": ("number", "missing.item_counts"),
    "n_categories": ("count", "missing.category"),
    "top_category_share": ("percent", "missing.category"),
    "category_entropy": ("number", "missing.category"),
    "survey_score_last": ("number", "missing.survey"),
    "survey_score_mean": ("number", "missing.survey"),
    "days_since_interaction": ("number", "missing.contact"),
    "signup_tenure_days": ("number", "missing.signup"),
}

# Model inputs derived inside a model (not builder columns): named without a value.
_DERIVED = ("bgnbd_expected_purchases", "bgnbd_probability_alive", "bgnbd_expected_value", "bgnbd_churn_probability")

_WINDOW = re.compile(r"(orders|spend|trend_orders|trend_spend|support_tickets|complaints)_(\d+)d")


def _simple(m: Messages, feature: str) -> Callable[[float], str]:
    """The text of one customer's value of a :data:`_SIMPLE` feature."""
    shown, missing = _SIMPLE[feature]
    key, number = f"reason.{feature}", m.number  # looked up once: phrased for thousands of customers
    if shown in ("number", "percent"):
        template, shown_as = m[key], (number if shown == "number" else m.percent)
        text: Callable[[float], str] = lambda x: template.format(n=shown_as(x))  # noqa: E731
    else:
        one, other = m[f"{key}.one"], m[f"{key}.other"]
        text = lambda x: (one if x == 1 else other).format(n=number(x))  # noqa: E731
        if shown == "count0":
            zero, counted = m[f"{key}.zero"], text
            text = lambda x: zero if x == 0 else counted(x)  # noqa: E731
    return _known(m[missing], text) if missing else text


def _simple_texts(m: Messages, feature: str) -> Callable[[np.ndarray], Texts]:
    """:func:`_simple` of an array."""
    shown, missing = _SIMPLE[feature]
    key = f"reason.{feature}"

    def texts(x: np.ndarray) -> Texts:
        if shown in ("number", "percent"):
            out = _filled(m[key], n=m.numbers(x) if shown == "number" else m.percents(x))
        else:
            n = m.numbers(x)
            out = np.where(x == 1, _filled(m[f"{key}.one"], n=n), _filled(m[f"{key}.other"], n=n))
            if shown == "count0":
                out[x == 0] = m[f"{key}.zero"]
        if missing:
            out[np.isnan(x)] = m[missing]
        return out
    return texts


def _phrasing(feature: str, frame: pd.DataFrame | FeatureColumns, m: Messages = ENGLISH) -> Phrasing:
    """How ``feature`` is phrased from ``frame``'s columns; a column missing from the frame reads as NaN."""
    if feature in ("recency_days", "recency_over_gap") and "recency_days" in frame:
        needs = ("recency_days", "gap_mean_days") if "gap_mean_days" in frame else ("recency_days",)
        return needs, _recency(m), _recency_texts(m)
    if feature not in frame:
        text = m[f"derived.{feature}"] if feature in _DERIVED else feature.replace("_", " ")
        return (), lambda: text, None
    if feature in _SIMPLE:
        return (feature,), _simple(m, feature), _simple_texts(m, feature)
    window = _WINDOW.fullmatch(feature)
    if window:
        kind, days = window[1], int(window[2])
        if kind.startswith("trend_"):
            noun, recent = ("noun.spend" if kind == "trend_spend" else "noun.orders"), f"{kind.removeprefix('trend_')}_{days}d"
            return (feature, recent) if recent in frame else (feature,), _trend(m, noun, days), None
        last = _period(m, "last", days)
        if kind == "spend":
            none, spent = m.text("reason.window.no_spend", last=last), m["reason.window.spend"]
            return (feature,), lambda x: none if x == 0 else spent.format(amount=m.number(x), last=last), None
        none, counted = m.text("reason.window.none", noun=m[f"noun.{kind}"], last=last), m["reason.window.count"]
        return ((feature,), lambda x: none if x == 0 else counted.format(count=m.count(f"count.{kind}", x), last=last),
                None)
    if feature.startswith("channel_share_"):
        channel, template = feature.removeprefix("channel_share_").replace("_", " "), m["reason.channel_share"]
        return ((feature,), _known(m["missing.channel"], lambda x: template.format(n=m.percent(x), channel=channel)),
                None)
    name = feature.removeprefix("profile_").replace("_", " ")
    unknown = m.text("reason.profile_unknown", name=name)
    if pd.api.types.is_numeric_dtype(frame[feature].dtype):
        return (feature,), _known(unknown, lambda x: m.text("reason.profile_number", name=name, n=m.number(x))), None
    return (feature,), lambda x: unknown if x is None else m.text("reason.profile_text", name=name, value=x), None


def _values(column: pd.Series | np.ndarray | pd.Categorical, rows: np.ndarray) -> list[float] | list[str | None]:
    """A column's values at positions ``rows``: floats if numeric, else text as pandas prints it (None if missing)."""
    if pd.api.types.is_numeric_dtype(column.dtype):
        return np.asarray(column, dtype=float)[rows].tolist()
    part = np.asarray(column, dtype=object)[rows]
    return [None if missing else str(value) for value, missing in zip(part.tolist(), pd.isna(part).tolist())]


def _phrases(feature: str, frame: pd.DataFrame | FeatureColumns, rows: np.ndarray, m: Messages = ENGLISH
             ) -> list[str] | Texts:
    """:func:`phrase` for the customers at positions ``rows`` of ``frame``, reading only their values."""
    needs, text, texts = _phrasing(feature, frame, m)
    if not needs:
        return [text()] * len(rows)
    if (texts is not None and len(rows) >= ARRAYS_FROM
            and all(pd.api.types.is_numeric_dtype(frame[name].dtype) for name in needs)):
        return texts(*(np.asarray(frame[name], dtype=float)[rows] for name in needs))
    return list(map(text, *(_values(frame[name], rows) for name in needs)))


def phrase(feature: str, frame: pd.DataFrame | FeatureColumns, m: Messages = ENGLISH) -> Texts:
    """One feature's value, phrased for a person in ``m``'s language, for every row of ``frame`` (the feature
    builder's output). A feature the frame does not hold (a model input derived elsewhere) is named without a
    value."""
    return np.array(_phrases(feature, frame, np.arange(len(frame)), m), dtype=object)


def _strongest(values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``n`` largest ``|values|``: their columns and values, ties by column, NaN last. One argmax
    per place (the first of equals), the column taken then ruled out: a sort of every row costs far more."""
    size = np.fmax(np.abs(values), -1.0)  # fmax turns NaN into -1: below every magnitude
    rows = np.arange(len(size))
    picked = np.empty((len(size), n), dtype=np.intp)
    for place in range(n):
        picked[:, place] = np.argmax(size, axis=1)
        size[rows, picked[:, place]] = -np.inf
    return picked, np.take_along_axis(values, picked, axis=1)


EFFECT_KEYS = {"value": "effect.value", "churn risk": "effect.churn"}


def _phrases_kept(feature: str, features: pd.DataFrame | FeatureColumns, rows: np.ndarray, m: Messages,
                  phrased: dict[str, np.ndarray] | None) -> np.ndarray:
    """:func:`_phrases` of ``rows``, those ``phrased`` keeps taken from it and the others kept there."""
    if phrased is None:
        return np.array(_phrases(feature, features, rows, m), dtype=object)
    kept = phrased.setdefault(feature, np.full(len(features), None, dtype=object))
    texts = kept[rows]
    new = rows[np.equal(texts, None)]
    if len(new):
        kept[new] = np.array(_phrases(feature, features, new, m), dtype=object)
        texts = kept[rows]
    return texts


def top_reasons(contributions: np.ndarray, names: Sequence[str], features: pd.DataFrame | FeatureColumns, label: str,
                n: int = 2, m: Messages = ENGLISH, phrased: dict[str, np.ndarray] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's ``n`` strongest contributions to ``label`` (``value`` or ``churn risk``), phrased in
    ``m``'s language, with their effect.

    ``contributions`` (customers, features named by ``names``) and ``features`` have one row per customer
    in the same order. Returns two object arrays of shape (customers, n): the phrases and the effects
    ("raises value"); None where a contribution is zero (the feature did not move this prediction).
    ``phrased``, shared by the calls of several models on the same ``features`` and ``m``, keeps each feature's
    phrases (None where not yet phrased), so that a customer's feature both models pick is phrased once."""
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
    phrases = np.full(picked.shape, None, dtype=object)
    for j in count.nonzero()[0]:  # one pass per feature chosen by anyone
        at = slice(end[j] - count[j], end[j])
        phrases[rows[at], ranks[at]] = _phrases_kept(names[j], features, rows[at], m, phrased)
    key = EFFECT_KEYS[label]
    effects = np.array([m[f"{key}.lowers"], m[f"{key}.raises"]], dtype=object)[(strength > 0).astype(np.intp)]
    effects[~moved] = None
    return phrases, effects


def reason_lists(*reasons: tuple[np.ndarray, np.ndarray], m: Messages = ENGLISH) -> list[list[str]]:
    """One list of reasons per customer from several :func:`top_reasons` results, strongest first; a phrase
    given by more than one model is said once, where it first comes, with all its effects (each once, joined in
    ``m``'s language)."""
    phrases = np.hstack([p for p, _ in reasons])
    effects = np.hstack([e for _, e in reasons])
    n, k = phrases.shape
    present = ~np.equal(phrases, None)
    # first[r, j]: the first place of row r saying the phrase of place j (j itself when none before it does)
    first = np.tile(np.arange(k), (n, 1))
    for j in range(k):
        for i in range(j):
            alike = present[:, i] & present[:, j] & (first[:, j] == j) & np.equal(phrases[:, i], phrases[:, j])
            first[alike, j] = i
    told = effects.copy()  # each said phrase's effects, joined
    for j in range(k):
        rows = np.flatnonzero(present[:, j] & (first[:, j] != j))
        at, effect = first[rows, j], effects[rows, j]
        known = np.equal(effects[rows, at], effect)  # an effect said there already is not said again
        for before in range(j):
            known |= (first[rows, before] == at) & np.equal(effects[rows, before], effect)
        rows, at = rows[~known], at[~known]
        told[rows, at] = told[rows, at] + m["list.separator"] + effects[rows, j]
    said = present & (first == np.arange(k))
    template = m["reason.with_effects"]
    cells = np.full((n, k), None, dtype=object)
    cells[said] = _filled(template, text=phrases[said], effects=told[said])
    return [[cell for cell in row if cell is not None] for row in cells.tolist()]
