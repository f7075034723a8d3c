"""The seasonal clock: operational time on which BG/NBD runs when two full years of history show a season.

With at least two full years of history before a cutoff, the population's purchase days per calendar
month, over a centred 2x12 moving average, give a seasonal index (shrunk towards 1 by its sampling noise).
BG/NBD then runs on operational time (days weighted by the index), as a Pareto/NBD world with seasonal
intensity would: right after a December peak it no longer reads the peak as every customer's new normal.
Shorter histories keep calendar time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Complete calendar months of purchase history needed to estimate all twelve seasonal indices.
SEASONAL_MONTHS = 24


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


def seasonal_clock(transactions: pd.DataFrame, cutoff: pd.Timestamp) -> SeasonalClock:
    """The seasonal clock at ``cutoff`` from the purchase days (customer-days with an amount > 0) before it.

    Needs :data:`SEASONAL_MONTHS` complete months; each month's count over the centred 2x12 moving
    average is one seasonal ratio, averaged per calendar month. Each average is shrunk towards 1 by the
    share of its spread that Poisson noise cannot explain (empirical Bayes), then scaled to mean 1.
    """
    cutoff = pd.Timestamp(cutoff)
    ts = transactions["timestamp"]
    bought = ((ts < cutoff) & (transactions["amount"] > 0)).to_numpy()
    if not bought.any():
        return SeasonalClock(cutoff)
    days = pd.DataFrame({"customer_id": transactions["customer_id"].to_numpy()[bought],
                         "day": ts.to_numpy()[bought].astype("datetime64[D]")}).drop_duplicates()
    month = pd.PeriodIndex(days["day"], freq="M")
    first = ts.min().floor("D")
    complete = (month.start_time >= first) & (month.end_time < cutoff)
    counts = pd.Series(1, index=month[complete]).groupby(level=0).sum().sort_index()
    counts = counts.reindex(pd.period_range(counts.index.min(), counts.index.max(), freq="M"), fill_value=0) \
        if len(counts) else counts
    if len(counts) < SEASONAL_MONTHS:
        return SeasonalClock(cutoff)
    trend = counts.rolling(12, center=True).mean()
    trend = (trend + trend.shift(-1)) / 2  # 2x12: centred on the month itself
    ratio = (counts / trend).dropna()
    noise = ratio**2 / counts.reindex(ratio.index).clip(lower=1)  # Poisson variance of each ratio
    by_month = ratio.groupby(ratio.index.month)
    mean = by_month.mean().reindex(range(1, 13))
    if mean.isna().any():
        return SeasonalClock(cutoff)
    error = noise.groupby(noise.index.month).sum().reindex(range(1, 13)) / by_month.size().reindex(range(1, 13)) ** 2
    signal = max(float(mean.var(ddof=0) - error.mean()), 0.0)
    shrunk = 1.0 + signal / (signal + error) * (mean - 1.0)
    return SeasonalClock(cutoff, (shrunk / shrunk.mean()).to_numpy())
