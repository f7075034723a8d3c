"""The classic forecast columns of a feature row: BG/NBD x Gamma-Gamma fitted on one population's rows.

:class:`ClassicFeatures` turns the builder's RFM columns (:func:`~tiercast.training.classic.rfm.rfm_from_features`)
into forecasts over the horizon, :data:`CLASSIC_COLUMNS`. The boosters start from them and read them as
features. In training it is refitted at every window cutoff on the customers known then
(:func:`add_classic_columns`), so no window sees parameters learnt from its own future.

For the attributions, :meth:`ClassicFeatures.coalitions` gives the forecast of every coalition of the four
RFM inputs (the row's own values or the reference customer's), and :meth:`ClassicFeatures.shapley` their
exact Shapley values.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from functools import cache

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from tiercast.training.attribution import coalition_shapley
from tiercast.training.classic.bgnbd import BetaGeoFitter
from tiercast.training.classic.gamma_gamma import GammaGammaFitter
from tiercast.training.classic.rfm import RFM_INPUTS, rfm_from_features
from tiercast.training.classic.seasonality import SeasonalClock

CLASSIC_COLUMNS = ["bgnbd_expected_purchases", "bgnbd_probability_alive", "bgnbd_expected_value",
                   "bgnbd_churn_probability"]

Columns = Mapping[str, np.ndarray]  # classic columns by name, one value per customer


class ClassicFeatures(BaseEstimator):
    """BG/NBD x Gamma-Gamma fitted on one population's feature rows; their horizon forecasts as columns.

    Reads the builder's :data:`~tiercast.training.classic.rfm.RFM_INPUTS` (see
    :mod:`tiercast.training.classic.rfm` for how this convention differs from the baseline's). Times run on
    ``clock`` (the seasonal clock of the cutoff the rows were built at; calendar days without one); rows
    built at a later date are forecast by :meth:`at` that date. When Gamma-Gamma cannot be fitted (fewer
    than two repeat buyers, or an infinite mean), spend is the mean spend per purchase day.
    """

    def __init__(self, horizon_days: int = 180, clock: SeasonalClock | None = None):
        self.horizon_days = horizon_days
        self.clock = clock

    def _on_clock(self, rfm: np.ndarray) -> np.ndarray:
        """The RFM inputs (columns of ``rfm``) with recency and tenure as operational days on the clock: what
        BG/NBD reads of them (the rows as they are on calendar time)."""
        if self.clock is None:
            return rfm
        timed = np.array(rfm, dtype=np.float64)
        for name in ("recency_days", "tenure_days"):
            timed[:, RFM_INPUTS.index(name)] = self.clock.before(timed[:, RFM_INPUTS.index(name)])
        return timed

    def _inputs(self, rfm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return rfm_from_features(self._on_clock(rfm))

    def fit(self, X: pd.DataFrame) -> "ClassicFeatures":
        x, t_x, T, m = self._inputs(X[RFM_INPUTS].to_numpy(dtype=np.float64))
        self.horizon_ = self._operational(self.horizon_days)
        self.bgnbd_ = BetaGeoFitter().fit(x, t_x, T)
        buyers = m > 0
        self.mean_spend_ = float(m[buyers].mean()) if buyers.any() else 0.0
        repeat = (x > 0) & buyers
        self.gamma_gamma_ = None
        if repeat.sum() >= 2:
            gamma_gamma = GammaGammaFitter().fit(x[repeat], m[repeat])
            if gamma_gamma.params_.q > 1.0:
                self.gamma_gamma_ = gamma_gamma
        # The reference customer of the attributions: the population's median RFM.
        self.reference_ = X[RFM_INPUTS].median().to_numpy(dtype=np.float64)
        return self

    def _operational(self, days: float) -> float:
        """Operational length of ``days`` after the cutoff, on the clock (calendar days without one)."""
        return self.clock.after(days) if self.clock is not None else float(days)

    def at_horizon(self, horizon_days: int) -> "ClassicFeatures":
        """This fit's forecasts over another horizon: the fitted parameters do not depend on it."""
        check_is_fitted(self)
        other = copy.copy(self)
        other.horizon_days = horizon_days
        other.horizon_ = self._operational(horizon_days)
        return other

    def at(self, as_of: pd.Timestamp) -> "ClassicFeatures":
        """This fit forecasting rows built at ``as_of``, a later scoring date than the cutoff it was fitted at:
        the same parameters and seasonal index, with the clock anchored at ``as_of``. The rows' recency and
        tenure are measured back from ``as_of``, and the horizon weighs the months that follow it, not those
        after the cutoff. Itself on calendar time (where the anchor changes nothing) and at its own anchor."""
        check_is_fitted(self)
        if self.clock is None or self.clock.index is None:
            return self
        clock = SeasonalClock(as_of, self.clock.index)
        if clock.anchor == self.clock.anchor:
            return self
        other = copy.copy(self)
        other.clock = clock
        other.horizon_ = other._operational(self.horizon_days)
        return other

    def _purchases(self, timed: np.ndarray, tail: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """BG/NBD's P(alive), expected purchases and P(no purchase) over the horizon, of RFM inputs
        :meth:`_on_clock`; they read purchase days, recency and tenure. ``tail`` as in
        :meth:`BetaGeoFitter.forecast`."""
        x, t_x, T, _ = rfm_from_features(timed)
        return self.bgnbd_.forecast(self.horizon_, x, t_x, T, tail)

    def _spend(self, rfm: np.ndarray) -> np.ndarray:
        """Expected spend per purchase day (Gamma-Gamma, else the mean); reads purchase days and spend."""
        x, _, _, m = rfm_from_features(rfm)
        return (self.gamma_gamma_.conditional_expected_spend(x, m) if self.gamma_gamma_ is not None
                else np.full(len(x), self.mean_spend_))

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(self.forecast(X[RFM_INPUTS].to_numpy(dtype=np.float64)), index=X.index,
                            columns=CLASSIC_COLUMNS)

    def forecast(self, rfm: np.ndarray) -> np.ndarray:
        """The classic columns as a (rows, 4) matrix in :data:`CLASSIC_COLUMNS` order, from the rows'
        :data:`RFM_INPUTS` (columns of ``rfm``)."""
        check_is_fitted(self)
        alive, purchases, no_purchase = self._purchases(self._on_clock(rfm))
        return _classic_matrix(alive, purchases, no_purchase, self._spend(rfm))

    def coalitions(self, rfm: np.ndarray) -> np.ndarray:
        """The classic columns of every coalition of the four RFM inputs (columns of ``rfm``, in
        :data:`RFM_INPUTS` order): shape (16, rows, 4), :data:`CLASSIC_COLUMNS` last. Coalition ``mask``
        takes input i from the row where bit i of ``mask`` is set, else from the reference (median)
        customer; the last one is the rows' own forecast.

        Each part of the forecast is worked out once per combination of the inputs it reads, and shared by
        the coalitions that mix those inputs alike: BG/NBD (purchase days, recency, tenure) for 8, its
        costly hypergeometric term (:meth:`BetaGeoFitter.purchase_tail`: purchase days, tenure) for 4, the
        spend (purchase days, spend) for 4. Every coalition still gets exactly its own forecast."""
        check_is_fitted(self)
        # on the clock before mixing: each row's and the reference's operational days worked out once
        values = self._on_clock(np.asarray(rfm, dtype=np.float64))
        reference = self._on_clock(self.reference_[None, :])[0]
        n, n_inputs = values.shape
        mixed = np.where(_COALITIONS[:, None, :], values[None, :, :], reference[None, None, :])

        def rows_of(combos: np.ndarray) -> np.ndarray:
            return mixed[combos].reshape(-1, n_inputs)

        tails, tail_of = _shared(_TAIL_BITS)
        x, _, T, _ = rfm_from_features(rows_of(tails))
        tail = self.bgnbd_.purchase_tail(self.horizon_, x, T).reshape(len(tails), n)
        bgnbd, bgnbd_of = _shared(_BGNBD_BITS)
        alive, purchases, no_purchase = (part.reshape(len(bgnbd), n)[bgnbd_of] for part in
                                         self._purchases(rows_of(bgnbd), tail[tail_of[bgnbd]].reshape(-1)))
        spenders, spend_of = _shared(_SPEND_BITS)
        spend = self._spend(rows_of(spenders)).reshape(len(spenders), n)[spend_of]
        return _classic_matrix(alive, purchases, no_purchase, spend)

    def shapley(self, rfm: np.ndarray, link: Callable[[Columns], np.ndarray]) -> np.ndarray:
        """Exact Shapley values of ``link(classic columns)`` over the four RFM inputs (columns of ``rfm``,
        in :data:`RFM_INPUTS` order), against the reference (median) customer: how much each input moves
        this customer's classic forecast. Same shape as ``rfm``."""
        return shapley_values(self.coalitions(rfm), link)


# Coalition k of the RFM inputs holds input i when bit i of k is set.
_COALITIONS = np.array([[(k >> i) & 1 for i in range(len(RFM_INPUTS))] for k in range(2 ** len(RFM_INPUTS))],
                       dtype=bool)


def _bits(*inputs: str) -> int:
    return sum(1 << RFM_INPUTS.index(name) for name in inputs)


# The inputs each part of the classic forecast reads, as coalition bits.
_BGNBD_BITS = _bits("purchase_days", "recency_days", "tenure_days")
_TAIL_BITS = _bits("purchase_days", "tenure_days")
_SPEND_BITS = _bits("purchase_days", "monetary_total")


@cache
def _shared(bits: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct coalitions of the inputs in ``bits`` (those inputs own or the reference's, the others the
    reference's), and for every coalition the position among them of the one that mixes those inputs alike."""
    alike = np.arange(len(_COALITIONS)) & bits
    combos = np.unique(alike)
    return combos, np.searchsorted(combos, alike)


def _classic_matrix(alive: np.ndarray, purchases: np.ndarray, no_purchase: np.ndarray, spend: np.ndarray
                    ) -> np.ndarray:
    """The classic columns, in :data:`CLASSIC_COLUMNS` order, stacked on a new last axis."""
    columns = {"bgnbd_expected_purchases": purchases, "bgnbd_probability_alive": alive,
               "bgnbd_expected_value": purchases * spend, "bgnbd_churn_probability": no_purchase}
    return np.stack([columns[name] for name in CLASSIC_COLUMNS], axis=-1)


def shapley_values(coalitions: np.ndarray, link: Callable[[Columns], np.ndarray]) -> np.ndarray:
    """Shapley values (rows, 4) of ``link`` over the RFM inputs, from :meth:`ClassicFeatures.coalitions`."""
    n_coalitions, n, n_columns = coalitions.shape
    columns = dict(zip(CLASSIC_COLUMNS, coalitions.reshape(-1, n_columns).T, strict=True))
    return coalition_shapley(np.asarray(link(columns), dtype=np.float64).reshape(n_coalitions, n))


def add_classic_columns(examples: pd.DataFrame, window: pd.Series, horizon_days: int,
                        clocks: dict[pd.Timestamp, SeasonalClock] | None = None) -> pd.DataFrame:
    """``examples`` with the classic columns, each window's from a :class:`ClassicFeatures` fitted on
    that window's rows (the customers known at its cutoff) on that window's seasonal clock."""
    win = np.asarray(window)
    values = [window_classic_columns(examples[win == w], horizon_days, (clocks or {}).get(pd.Timestamp(w)))
              for w in np.unique(win)]
    return with_classic_columns(examples, window, values)


def window_classic_columns(rows: pd.DataFrame, horizon_days: int, clock: SeasonalClock | None) -> np.ndarray:
    """The classic columns (rows, 4) of one window's examples, from a :class:`ClassicFeatures` fitted on them."""
    return ClassicFeatures(horizon_days, clock).fit(rows).transform(rows).to_numpy()


def with_classic_columns(examples: pd.DataFrame, window: pd.Series, values: list[np.ndarray]) -> pd.DataFrame:
    """``examples`` with the classic columns, ``values[k]`` those of the rows of the k-th window cutoff in
    sorted order (:func:`window_classic_columns`)."""
    win = np.asarray(window)
    columns = np.empty((len(examples), len(CLASSIC_COLUMNS)))
    for w, part in zip(np.unique(win), values, strict=True):
        columns[win == w] = part
    return examples.assign(**{c: columns[:, i] for i, c in enumerate(CLASSIC_COLUMNS)})
