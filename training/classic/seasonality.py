"""The seasonal clock: operational time on which BG/NBD runs when the history shows a season.

A seasonal index (twelve numbers with mean 1, one per calendar month) says how busy each month is. BG/NBD
then runs on operational time (days weighted by their month's index), as a Pareto/NBD world with seasonal
intensity would: right after a December peak it no longer reads the peak as every customer's new normal,
and before an autumn peak it expects the autumn to be busy.

The index is read off the history before the cutoff by comparing each complete month's repeat purchase
days with what BG/NBD (fitted on the same history, on the clock estimated so far) expects of the customers
known then. The model's expectation carries the acquisition of customers and their dying out, so no
moving average is needed and a year of history plus the horizon is enough: every month of the forecast
window has then been seen at least once, and last year's same window next to the months around it. Each
month's ratio is shrunk towards 1 by the share of its spread that Poisson noise cannot explain (empirical
Bayes). Shorter histories keep calendar time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tiercast.training.classic.bgnbd import BetaGeoFitter

# Complete calendar months of history needed before the horizon's months count: one of each month.
YEAR_MONTHS = 12
# Refits of BG/NBD on the clock estimated so far; the index settles after two.
REFITS = 2


class SeasonalClock:
    """Operational time around an anchor (the cutoff): each calendar day counts its month's seasonal index
    (twelve numbers with mean 1), or 1 without an index (calendar time)."""

    def __init__(self, anchor: pd.Timestamp, index: np.ndarray | None = None):
        self.anchor = pd.Timestamp(anchor).floor("D")
        self.index = None if index is None else np.asarray(index, dtype=np.float64)

    def _cumulative(self, days: float, forward: bool) -> np.ndarray:
        """Operational length of the first k whole days after (or before) the anchor, k = 0..days."""
        n = int(np.ceil(days)) + 1
        steps = np.arange(n) if forward else -np.arange(1, n + 1)
        months = (self.anchor + pd.to_timedelta(steps, unit="D")).month.to_numpy()
        return np.concatenate([[0.0], np.cumsum(self.index[months - 1])])

    def before(self, days: np.ndarray) -> np.ndarray:
        """Operational length of [anchor - days, anchor)."""
        days = np.asarray(days, dtype=np.float64)
        finite = days[np.isfinite(days)]
        if self.index is None or not len(finite):
            return days
        cumulative = self._cumulative(max(float(finite.max()), 0.0), forward=False)
        return np.interp(days, np.arange(len(cumulative)), cumulative)

    def after(self, days: float) -> float:
        """Operational length of [anchor, anchor + days)."""
        if self.index is None:
            return float(days)
        cumulative = self._cumulative(days, forward=True)
        return float(np.interp(days, np.arange(len(cumulative)), cumulative))


def months_needed(horizon_days: int) -> int:
    """Complete months of history the seasonal clock needs for a horizon: a year plus the horizon's months."""
    return YEAR_MONTHS + int(np.ceil(horizon_days / 30.4375))


def seasonal_clock(transactions: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: int) -> SeasonalClock:
    """The seasonal clock at ``cutoff`` for a forecast over ``horizon_days``, from the purchase days
    (customer-days with an amount > 0) before the cutoff; calendar time with fewer than
    :func:`months_needed` complete months."""
    cutoff = pd.Timestamp(cutoff)
    ts = transactions["timestamp"]
    bought = ((ts < cutoff) & (transactions["amount"] > 0)).to_numpy()
    if not bought.any():
        return SeasonalClock(cutoff)
    days = pd.DataFrame({"customer": pd.factorize(transactions["customer_id"][bought])[0],
                         "day": ts.to_numpy()[bought].astype("datetime64[D]")}).drop_duplicates()
    first_day = ts.min().floor("D")
    months = pd.period_range(first_day, cutoff - pd.Timedelta(days=1), freq="M")
    months = months[(months.start_time >= first_day) & (months.end_time < cutoff)]
    if len(months) < months_needed(horizon_days):
        return SeasonalClock(cutoff)
    history = _RepeatHistory(days, cutoff, months)
    index = np.ones(YEAR_MONTHS)
    for _ in range(REFITS):
        index = history.refine(index)
    return SeasonalClock(cutoff, index)


class _RepeatHistory:
    """Purchase days as BG/NBD sees them (days before the cutoff), and their repeats per complete month."""

    def __init__(self, days: pd.DataFrame, cutoff: pd.Timestamp, months: pd.PeriodIndex):
        anchor = cutoff.floor("D")
        age = (anchor - pd.to_datetime(days["day"])).dt.days.to_numpy(dtype=np.float64)  # whole days before
        customer = days["customer"].to_numpy()
        n = int(customer.max()) + 1
        self.birth = np.zeros(n)
        np.maximum.at(self.birth, customer, age)
        self.last = np.full(n, np.inf)
        np.minimum.at(self.last, customer, age)
        self.repeats = np.bincount(customer, minlength=n) - 1.0
        self.anchor = anchor
        self.calendar_month = months.month.to_numpy()
        # Each month as [start, end) in days before the anchor, and its repeat purchase days (births excluded).
        self.month_start = (anchor - months.start_time).days.to_numpy(dtype=np.float64)
        self.month_end = (anchor - (months.end_time + pd.Timedelta(1, "ns"))).days.to_numpy(dtype=np.float64)
        repeat_age = age[age < self.birth[customer]]
        self.actual = np.array([np.sum((repeat_age < s) & (repeat_age >= e))
                                for s, e in zip(self.month_start, self.month_end, strict=True)], dtype=np.float64)

    def refine(self, index: np.ndarray) -> np.ndarray:
        """The seasonal index after one more BG/NBD fit on the clock of ``index``."""
        clock = SeasonalClock(self.anchor, index)
        birth_op, last_op = clock.before(self.birth), clock.before(self.last)
        x = self.repeats
        model = BetaGeoFitter().fit(x, np.where(x > 0, birth_op - last_op, 0.0), birth_op)
        births, count = np.unique(self.birth, return_counts=True)
        born_op = clock.before(births)
        expected = np.empty(len(self.actual))
        for k, (s, e) in enumerate(zip(self.month_start, self.month_end, strict=True)):
            known = births > e  # born before the month ends; repeats counted from birth on
            if not known.any():
                expected[k] = 0.0
                continue
            start = born_op[known] - clock.before(np.minimum(s, births[known]))
            end = born_op[known] - clock.before(np.array(e))
            zero = np.zeros_like(start)
            gained = model.expected_purchases(end, zero, zero, zero) - model.expected_purchases(start, zero, zero, zero)
            expected[k] = float(np.sum(count[known] * gained))
        usable = (expected > 0) & (self.actual > 0)
        ratio = pd.Series(self.actual[usable] / expected[usable], index=self.calendar_month[usable])
        # Each month's new index: its old index times how far the model still misses it.
        ratio = ratio * index[ratio.index.to_numpy() - 1]
        noise = ratio**2 / self.actual[usable]  # Poisson variance of each ratio
        by_month = ratio.groupby(level=0)
        mean = by_month.mean().reindex(range(1, 13))
        if mean.isna().any():
            return np.ones(YEAR_MONTHS)
        mean = mean / mean.mean()
        error = noise.groupby(level=0).sum().reindex(range(1, 13)) / by_month.size().reindex(range(1, 13)) ** 2
        signal = max(float(mean.var(ddof=0) - error.mean()), 0.0)
        shrunk = 1.0 + signal / (signal + error) * (mean - 1.0)
        return (shrunk / shrunk.mean()).to_numpy()
