"""Words for people in the configured language: one catalogue per language (:mod:`.en`, :mod:`.zh`), looked up
by key through one :class:`Messages`.

Programs read codes, people read labels. Lifecycle stages, churn risk bands and segments are computed as
codes (``lost``, ``high``, the segment namer's English name) and shown through the catalogue: in English a
label is its code, so English output is what it always was. Configured tier names, actions and
membership levels are shown as configured; only the default membership levels have catalogue labels.
"""

from __future__ import annotations

import math
import re
from functools import cache
from typing import Any, Literal

import numpy as np

from tiercast.features.problems import Joined, Phrase
from tiercast.features.schema import DataError
from tiercast.serving.i18n import en, zh
from tiercast.training.policy import TierPolicy

Language = Literal["en", "zh"]
CATALOGUES: dict[str, dict[str, str]] = {"en": en.MESSAGES, "zh": zh.MESSAGES}
# The lang attribute of pages written in each language.
HTML_LANG = {"en": "en", "zh": "zh-CN"}

_QUALIFIERS = {"more recent": "more_recent", "less recent": "less_recent", "more orders": "more_orders",
               "fewer orders": "fewer_orders", "higher spend": "higher_spend", "lower spend": "lower_spend"}
_RFM = {"Champions": "champions", "Loyal": "loyal", "New": "new", "Potential loyalists": "potential_loyalists",
        "Can't lose them": "cant_lose_them", "At risk": "at_risk", "Lost": "lost", "Hibernating": "hibernating",
        "Need attention": "need_attention", "no history": None}
_NEW = re.compile(r"(.+) \(new\)")
_QUALIFIED = re.compile(r"(.+) \((" + "|".join(_QUALIFIERS) + r")(?: (\d+))?\)")
_ONE_TIMERS = re.compile(r"(lapsing|active|cooling) one-timers(, high spend)?")
_REPEAT = re.compile(r"(lapsing|active|cooling) (loyal|occasional) (high|mid|low) spenders")


class Messages:
    """One language's catalogue: :meth:`text` of a key, numbers in its format, and labels of codes."""

    def __init__(self, language: str):
        if language not in CATALOGUES:
            raise ValueError(f"unknown language '{language}' (one of {sorted(CATALOGUES)})")
        self.language = language
        self.table = CATALOGUES[language]
        self.html_lang = HTML_LANG[language]

    def __getitem__(self, key: str) -> str:
        return self.table[key]

    def text(self, key: str, **values: object) -> str:
        return self.table[key].format(**values)

    def number(self, x: float) -> str:
        """Whole from 10 up or when whole, else one decimal; not finite: the word for unknown."""
        x = float(x)
        if not math.isfinite(x):
            return self.table["number.unknown"]
        return f"{x:,.0f}" if abs(x) >= 10 or x.is_integer() else f"{x:,.1f}"

    def percent(self, x: float) -> str:
        return f"{x * 100:,.0f}%"

    def numbers(self, values: np.ndarray) -> np.ndarray:
        """:meth:`number` of each value, as an object array, each distinct value formatted once."""
        x = np.asarray(values, dtype=np.float64)
        out = np.full(x.shape, self.table["number.unknown"], dtype=object)
        finite = np.isfinite(x)
        whole = finite & ((np.abs(x) >= 10) | (x == np.trunc(x)))
        # rint rounds the exact value half to even, as the format does: the text of the rounded value is the same
        _formatted(out, whole, np.rint(x), "{:,.0f}")
        _formatted(out, finite & ~whole, x, "{:,.1f}")
        return out

    def percents(self, values: np.ndarray) -> np.ndarray:
        """:meth:`percent` of each value, as an object array, each distinct value formatted once."""
        with np.errstate(over="ignore"):  # too large for a float: inf%, as percent says it
            x = np.asarray(values, dtype=np.float64) * 100
        out = np.empty(x.shape, dtype=object)
        finite = np.isfinite(x)
        _formatted(out, finite, np.rint(x), "{:,.0f}%")
        _formatted(out, ~finite, x, "{:,.0f}%")
        return out

    def count(self, key: str, x: float, **values: object) -> str:
        """``key.one`` for exactly one, ``key.other`` otherwise, with the number as ``{n}``."""
        return self.table[f"{key}.one" if x == 1 else f"{key}.other"].format(n=self.number(x), **values)

    def join(self, items: list[str]) -> str:
        return self.table["list.separator"].join(items)

    # ----------------------------------------------------------------------------------------- labels
    def stage(self, code: str) -> str:
        return self.table.get(f"stage.{code}", code)

    def band(self, code: str) -> str:
        return self.table.get(f"band.{code}", code)

    def source(self, code: str) -> str:
        return self.table.get(f"source.{code}", code)

    def segment(self, code: str) -> str:
        """The label of a segment name as the namer (or the rule fallback) wrote it; a name of another shape
        (a future namer's) is shown as it is."""
        return _segment_label(self.language, code)

    def labels(self, kind: Literal["stage", "band", "segment", "source"], codes: np.ndarray) -> np.ndarray:
        """Labels of an array of codes (object array), each distinct code looked up once."""
        codes = np.asarray(codes, dtype=object)
        if self.language == "en" and kind != "segment":
            return codes
        lookup = getattr(self, kind)
        known: dict[object, object] = {}
        out = np.empty(len(codes), dtype=object)
        for i, code in enumerate(codes.tolist()):
            if code not in known:
                known[code] = lookup(code) if isinstance(code, str) else code
            out[i] = known[code]
        return out


def _formatted(out: np.ndarray, at: np.ndarray, values: np.ndarray, form: str) -> None:
    """``out[at]`` = ``form`` of ``values[at]``, formatted once per distinct value (told apart by their bits, so
    that -0.0 is not 0.0)."""
    chosen = np.ascontiguousarray(values[at])
    if not len(chosen):
        return
    distinct, each = np.unique(chosen.view(np.int64), return_inverse=True)
    out[at] = np.array([form.format(v) for v in distinct.view(np.float64).tolist()], dtype=object)[each]


@cache
def messages(language: str = "en") -> Messages:
    return Messages(language)


ENGLISH = messages("en")


@cache
def _segment_label(language: str, code: str) -> str:
    m = messages(language)
    if (found := _NEW.fullmatch(code)) is not None:
        return m.text("segment.new", name=_segment_label(language, found[1]))
    if (found := _QUALIFIED.fullmatch(code)) is not None:
        name, qualifier = _segment_label(language, found[1]), m[f"segment.qualifier.{_QUALIFIERS[found[2]]}"]
        if found[3] is None:
            return m.text("segment.qualified", name=name, qualifier=qualifier)
        return m.text("segment.qualified_rank", name=name, qualifier=qualifier, rank=found[3])
    if code in _RFM:
        return m[f"segment.rfm.{_RFM[code]}"] if _RFM[code] else m["segment.no_history"]
    if (found := _ONE_TIMERS.fullmatch(code)) is not None:
        key = "segment.one_timers_high_spend" if found[2] else "segment.one_timers"
        return m.text(key, activity=m[f"segment.activity.{found[1]}"])
    if (found := _REPEAT.fullmatch(code)) is not None:
        return m.text("segment.repeat_buyers", activity=m[f"segment.activity.{found[1]}"],
                      loyalty=m[f"segment.loyalty.{found[2]}"], spend=m[f"segment.spend.{found[3]}"])
    return code


DEFAULT_MEMBERSHIP = ("standard", "silver", "gold", "diamond")


def localised(policy: TierPolicy, m: Messages) -> TierPolicy:
    """``policy`` with the default membership levels named in ``m``'s language; a policy whose levels were
    configured (any other names) is returned as it is."""
    names = policy.membership.level_order
    if m.language == "en" or tuple(names) != DEFAULT_MEMBERSHIP:
        return policy
    levels = [level.model_copy(update={"name": m[f"membership.{level.name}"]}) for level in policy.membership.levels]
    return policy.model_copy(update={"membership": policy.membership.model_copy(update={"levels": levels})})


def card_lines(card: dict[str, Any], m: Messages) -> list[str]:
    """The model-quality card's sentences (tiercast.training.quality_card) in ``m``'s language, from its numbers;
    a card without them (written by another version) keeps the sentences it was logged with."""
    try:
        share = f"{card['value_top_share']:.0%}"
        lines = [m.text("card.value", window=card["window"], share=share, capture=f"{card['value_top_capture']:.0%}",
                        lift=f"{card['lift_over_random']:.1f}")]
        base, base_auc = card.get("baseline_top_capture"), card.get("baseline_churn_auc")
        if base is not None:
            capture = card["value_top_capture"]
            lines.append(m.text("card.baseline_more" if capture >= base else "card.baseline_less", base=f"{base:.0%}",
                                points=f"{abs(capture - base) * 100:.1f}"))
        then = (m.text("card.churn_then_baseline", auc=f"{base_auc:.0%}") if base_auc is not None
                else m["card.churn_then_end"])
        lines.append(m.text("card.churn", auc=f"{card['churn_auc']:.0%}", then=then))
    except (KeyError, TypeError, ValueError):
        return [str(line) for line in card.get("summary", [])]
    return lines


def card_text(card: dict[str, Any], m: Messages) -> str:
    """The card as a few lines of plain text, for the terminal."""
    return "\n".join([m.text("card.title", grade=card["grade"]), *card_lines(card, m)])


def said(value: object, m: Messages) -> str:
    """A data problem's :class:`Phrase` (or :class:`Joined` list, or plain value) in ``m``'s language."""
    if isinstance(value, Phrase):
        return m.text(f"data_error.{value.key}", **{name: said(v, m) for name, v in value.values.items()})
    if isinstance(value, Joined):
        return m[f"data_error.{value.separator}"].join(said(item, m) for item in value.items)
    return str(value)


# How the loader names a sample row: its line in a text file, its row in Parquet or a table.
_PLACE = re.compile(r"(line|row) ([\d,]+)")


def data_error_text(err: DataError, m: Messages) -> str:
    """A data problem as :class:`DataError` says it, in ``m``'s language: its words from the catalogue where the
    raise site gave a key, its English ``problem`` otherwise."""
    problem = said(Phrase(err.key, err.values), m) if err.key else err.problem
    where = f"{err.path}" + (m.text("data_error.column", column=err.column) if err.column else "")
    message = m.text("data_error.message", where=where, problem=problem)
    if err.sample is not None and len(err.sample):
        def place(name: object) -> object:
            found = _PLACE.fullmatch(name) if isinstance(name, str) else None
            return m.text(f"data_error.place.{found[1]}", n=found[2]) if found else name
        message += m["data_error.sample"] + err.sample.rename(index=place).to_string(max_colwidth=40)
    return message
