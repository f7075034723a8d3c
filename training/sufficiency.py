"""Data sufficiency: is there enough history to train, and enough of a customer's own to trust a model?

Training on too little data gives confident-looking numbers that mean nothing. Before a run starts, the
whole log is checked against minimums in config and the run stops with a message that says what is
missing and what would work: the longest label window the history before the cutoff holds, and the
cutoffs at which the requested one fits. (At scoring time, a customer whose own history is too short gets
the rule fallback with that reason instead of a model number: see
``tiercast.serving.fallback.FallbackRules.min_history_days``.)

The checks are read at the earliest training window (:class:`LabelWindows`). All of them but the last
order's distance from the cutoff only get easier as that window moves later, so the longest label window
at a cutoff and the earliest cutoff for a label window are found by bisection over whole days.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tiercast.training.labels import rolling_cutoffs


class SufficiencyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_customers: int = Field(default=200, ge=1, description="customers with a purchase before the first window")
    min_repeat_customers: int = Field(default=50, ge=0, description="of them, customers with 2+ purchase days")
    min_history_days: int = Field(default=30, ge=1,
                                  description="days of history before the earliest training window starts")
    max_days_since_last_order: int = Field(default=90, ge=1,
                                           description="the log must have an order this close to the cutoff")


class InsufficientData(Exception):
    """Training stopped before it started: the message lists what is missing."""


@dataclass(frozen=True)
class SufficiencyCheck:
    name: str
    required: float
    found: float
    passed: bool
    explanation: str


def check_training_data(transactions: pd.DataFrame, cutoff: pd.Timestamp, earliest_window: pd.Timestamp,
                        config: SufficiencyConfig) -> list[SufficiencyCheck]:
    """Each minimum in config, what the data has, and whether it passes (all rows before ``cutoff``)."""
    # Masks, not filtered copies of the log: the bisections below call this many times on every row.
    ts = transactions["timestamp"]
    before = (ts < cutoff).to_numpy()
    bought = before & (transactions["amount"] > 0).to_numpy()
    first_purchases = bought & (ts < earliest_window).to_numpy()
    days = ts[first_purchases].dt.normalize()
    purchase_days = days.groupby(transactions["customer_id"][first_purchases]).nunique()
    history_days = (earliest_window - ts[before].min()).days if before.any() else 0
    since_last = (cutoff - ts[bought].max()).days if before.any() else np.inf
    return [
        SufficiencyCheck("customers", config.min_customers, len(purchase_days),
                         len(purchase_days) >= config.min_customers,
                         f"customers with a purchase before the earliest training window ({earliest_window.date()})"),
        SufficiencyCheck("repeat customers", config.min_repeat_customers, int((purchase_days >= 2).sum()),
                         int((purchase_days >= 2).sum()) >= config.min_repeat_customers,
                         "of those, customers who bought on two or more days"),
        SufficiencyCheck("days of history", config.min_history_days, history_days,
                         history_days >= config.min_history_days,
                         f"days from the first transaction to the earliest training window ({earliest_window.date()})"),
        SufficiencyCheck("days since the last order", config.max_days_since_last_order, since_last,
                         since_last <= config.max_days_since_last_order,
                         f"days from the latest order to the cutoff ({cutoff.date()}); at most the minimum"),
    ]


def require_training_data(transactions: pd.DataFrame, cutoff: pd.Timestamp, earliest_window: pd.Timestamp,
                          config: SufficiencyConfig) -> list[SufficiencyCheck]:
    """Raise InsufficientData naming every failed check; return the checks when all pass."""
    checks = check_training_data(transactions, pd.Timestamp(cutoff), pd.Timestamp(earliest_window), config)
    if not all(c.passed for c in checks):
        raise InsufficientData("\n".join(["not enough data to train:", *_failed_checks(checks)]))
    return checks



@dataclass(frozen=True)
class LabelWindows:
    """The rolling label windows of a training: ``n_windows`` windows of ``label_days``, ``step_days``
    apart, the latest ending at the cutoff (:func:`tiercast.training.labels.rolling_cutoffs`)."""

    label_days: int
    n_windows: int
    step_days: int

    def earliest(self, cutoff: pd.Timestamp) -> pd.Timestamp:
        """The cutoff of the earliest window, where the minimums are checked."""
        return min(rolling_cutoffs(cutoff, self.label_days, self.n_windows, self.step_days))

    def __str__(self) -> str:
        return f"{self.n_windows} windows of {self.label_days} days, {self.step_days} days apart"


def windows_fit(transactions: pd.DataFrame, cutoff: pd.Timestamp, windows: LabelWindows,
                config: SufficiencyConfig) -> bool:
    """Whether every minimum holds for ``windows`` before ``cutoff``."""
    cutoff = pd.Timestamp(cutoff)
    return all(c.passed for c in check_training_data(transactions, cutoff, windows.earliest(cutoff), config))


def _last_true(low: int, high: int, holds) -> int:  # noqa: ANN001 (a predicate on int)
    """The largest k in [low, high] with ``holds(k)``, for a ``holds`` true up to some k and false after it;
    ``low - 1`` when it holds nowhere."""
    while low <= high:
        middle = (low + high) // 2
        if holds(middle):
            low = middle + 1
        else:
            high = middle - 1
    return high


def longest_label_window(transactions: pd.DataFrame, cutoff: pd.Timestamp, n_windows: int, step_days: int,
                         config: SufficiencyConfig) -> int:
    """The longest label window (days) for which ``n_windows`` windows ``step_days`` apart meet every
    minimum before ``cutoff``; 0 when none does (too few customers, or no recent order)."""
    cutoff = pd.Timestamp(cutoff)
    first = transactions["timestamp"].min()
    if not len(transactions) or first >= cutoff:
        return 0
    longest = (cutoff - first).days  # no window can start before the first transaction

    def fits(days: int) -> bool:
        return windows_fit(transactions, cutoff, LabelWindows(days, n_windows, step_days), config)

    return max(_last_true(1, longest, fits), 0)


def data_end(transactions: pd.DataFrame) -> pd.Timestamp:
    """The end of the log: the day after its last transaction, the latest cutoff with all of it as history."""
    return transactions["timestamp"].max().normalize() + pd.Timedelta(days=1)


def supported_cutoffs(transactions: pd.DataFrame, windows: LabelWindows, config: SufficiencyConfig
                      ) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """(earliest, latest) whole-day cutoffs within the log at which ``windows`` meet every minimum; the
    latest is the end of the log (:func:`data_end`). None when no cutoff in the log does."""
    if not len(transactions):
        return None
    end = data_end(transactions)
    first = transactions["timestamp"].min().normalize()
    days = (end - first).days

    def fits_by(offset: int) -> bool:  # the minimums read at the earliest window, not the last-order one
        cutoff = end - pd.Timedelta(days=offset)
        checks = check_training_data(transactions, cutoff, windows.earliest(cutoff), config)
        return all(c.passed for c in checks if not c.name.startswith("days since"))

    # Offsets back from the end: the window minimums hold from offset 0 up to some offset and not beyond.
    furthest = _last_true(0, days, fits_by)
    if furthest < 0:
        return None
    for offset in range(furthest, -1, -1):  # the last order's distance is not monotone: step forward
        cutoff = end - pd.Timedelta(days=offset)
        if windows_fit(transactions, cutoff, windows, config):
            return cutoff, end
    return None


def shorter_windows(transactions: pd.DataFrame, cutoff: pd.Timestamp, requested: LabelWindows,
                    config: SufficiencyConfig, min_label_days: int) -> LabelWindows | None:
    """The label windows to train on when ``requested`` do not fit before ``cutoff``: the requested number
    of windows with the longest label window that meets the minimums, if it is at least ``min_label_days``
    long; else the most windows, down to two (one to train on, the latest to validate), that hold one that
    long (again the longest). None when even two do not.

    Why windows before length: each extra window is another period of examples, and the boosters learn
    corrections that must hold across periods (each has its own level, and early stopping is on a later
    one), while the classic model's formulas carry a prediction from a few months to a few more well. On
    The Complete Journey at 2017-07-01 for 184 days, 4 windows of 60 days gave a better backtest than 3 of
    90 or 2 of 120 (value Gini 0.871 / 0.867 / 0.866, decile error 0.113 / 0.109 / 0.136, churn AUC
    0.906 / 0.894 / 0.890, total 1.02 / 1.01 / 1.10); on CDNOW at 1997-09-01 for 181 days, 4 of 123 days
    beat 3 of 153 and 2 of 181 (decile error 0.195 / 0.224 / 0.306, total 0.97 / 0.88 / 0.87)."""
    for n_windows in range(requested.n_windows, 1, -1):
        days = min(longest_label_window(transactions, cutoff, n_windows, requested.step_days, config),
                   requested.label_days)
        if days >= min_label_days:
            return LabelWindows(days, n_windows, requested.step_days)
    return None


def _failed_checks(checks: list[SufficiencyCheck]) -> list[str]:
    return [f"- {c.name}: found {c.found:,.0f}, need "
            f"{'at most' if c.name.startswith('days since') else 'at least'} {c.required:,.0f} ({c.explanation})"
            for c in checks if not c.passed]


def what_would_work(transactions: pd.DataFrame, cutoff: pd.Timestamp, requested: LabelWindows,
                    config: SufficiencyConfig) -> list[str]:
    """Lines saying what the data supports instead of ``requested`` at ``cutoff``: the longest label window
    there (with the requested number of windows and step), and the cutoffs at which ``requested`` fits."""
    cutoff = pd.Timestamp(cutoff)
    days = requested.label_days
    longest = longest_label_window(transactions, cutoff, requested.n_windows, requested.step_days, config)
    lines = ["What the data supports:"]
    if longest > 0:
        lines.append(f"- at {cutoff.date()}: label windows of at most {longest} days "
                     f"({requested.n_windows} windows, {requested.step_days} days apart), i.e. "
                     f"--horizon-days {longest}")
    else:
        lines.append(f"- at {cutoff.date()}: no label window, however short "
                     f"({requested.n_windows} windows, {requested.step_days} days apart)")
    span = supported_cutoffs(transactions, requested, config)
    if span is None:
        lines.append(f"- {days}-day windows: no cutoff within the data ({requested})")
        return lines
    earliest, end = span
    lines.append(f"- {days}-day windows: cutoffs from {earliest.date()} to {end.date()} (the end of the data)")
    latest_backtest = end - pd.Timedelta(days=days)
    lines.append(f"  a backtest also needs {days} days of data after its cutoff: "
                 + (f"cutoffs from {earliest.date()} to {latest_backtest.date()}" if latest_backtest >= earliest
                    else "none fits in this data"))
    return lines


def choose_windows(transactions: pd.DataFrame, cutoff: pd.Timestamp, requested: LabelWindows,
                   config: SufficiencyConfig, extend: bool, min_label_days: int) -> LabelWindows:
    """The label windows to train on before ``cutoff``: ``requested`` when they meet every minimum;
    otherwise, when ``extend``, :func:`shorter_windows` of at least ``min_label_days`` (whose predictions the
    caller extends to the requested horizon). Raises InsufficientData naming what is missing and what
    would work when neither fits."""
    cutoff = pd.Timestamp(cutoff)
    checks = check_training_data(transactions, cutoff, requested.earliest(cutoff), config)
    if all(c.passed for c in checks):
        return requested
    shorter = shorter_windows(transactions, cutoff, requested, config, min_label_days) if extend else None
    if shorter is not None:
        return shorter
    lines = [f"not enough data before {cutoff.date()} to train on {requested}:", *_failed_checks(checks),
             *what_would_work(transactions, cutoff, requested, config)]
    if extend:
        lines.append(f"- training.extend_short_history found no label window of training.min_label_days "
                     f"({min_label_days}) or more with 2 to {requested.n_windows} windows at {cutoff.date()}")
    else:
        lines.append(f"- or set training.extend_short_history: true to train on the label windows the history "
                     f"holds and extend their predictions to {requested.label_days} days")
    raise InsufficientData("\n".join(lines))
