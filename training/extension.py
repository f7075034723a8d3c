"""Predictions over a longer horizon than the models were trained on, carried there by the classic model.

When the history before a cutoff cannot hold label windows as long as the requested horizon H, the models
are trained on shorter windows of h days (:func:`tiercast.training.sufficiency.choose_windows`) and their
predictions are extended to H by BG/NBD x Gamma-Gamma fitted at the cutoff, whose formulas cover any
horizon. Per customer:

    value over H = value over h x classic value over H / classic value over h
    P(no purchase in H) = P(no purchase in h) x classic P(no purchase in H) / classic P(no purchase in h)

The models keep what they learnt about each customer over h days; the classic model says, for that
customer's frequency, recency and tenure, how value grows and the chance of no purchase shrinks from h to
H. The classic value's spend per purchase does not depend on the horizon, so its value ratio is its ratio
of expected purchases.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tiercast.training.classic.forecast import CLASSIC_COLUMNS, ClassicFeatures
from tiercast.training.classic.rfm import RFM_INPUTS

_PURCHASES = CLASSIC_COLUMNS.index("bgnbd_expected_purchases")
_NO_PURCHASE = CLASSIC_COLUMNS.index("bgnbd_churn_probability")
_TINY = 1e-12  # keeps a ratio finite where the classic model says (all but) nothing happens over h days


@dataclass(frozen=True)
class HorizonExtension:
    """Carries value and churn predictions over ``short.horizon_days`` (the label windows) to
    ``long.horizon_days`` (the requested horizon); both are the same classic fit at the training cutoff."""

    short: ClassicFeatures
    long: ClassicFeatures

    @classmethod
    def of(cls, classic: ClassicFeatures, horizon_days: int) -> HorizonExtension:
        """The extension from ``classic`` (fitted at the cutoff over the label windows' days) to
        ``horizon_days``."""
        if horizon_days <= classic.horizon_days:
            raise ValueError(f"an extension goes to a longer horizon: {horizon_days} days is not longer than "
                             f"the {classic.horizon_days}-day label windows")
        return cls(classic, classic.at_horizon(horizon_days))

    def at(self, as_of: pd.Timestamp) -> HorizonExtension:
        """The extension of predictions for rows built at ``as_of``: both horizons on the clock anchored there
        (:meth:`ClassicFeatures.at`)."""
        short, long = self.short.at(as_of), self.long.at(as_of)
        return self if short is self.short and long is self.long else HorizonExtension(short, long)

    @property
    def label_days(self) -> int:
        return int(self.short.horizon_days)

    @property
    def horizon_days(self) -> int:
        return int(self.long.horizon_days)

    def factors(self, features: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Per customer of ``features`` (the builder's columns, as a frame or FeatureColumns): the factor
        taking predicted value from h to H days, and the one taking P(no purchase) from h to H days."""
        rfm = np.column_stack([np.asarray(features[name], dtype=np.float64) for name in RFM_INPUTS])
        short, long = self.short.forecast(rfm), self.long.forecast(rfm)
        value = long[:, _PURCHASES] / np.maximum(short[:, _PURCHASES], _TINY)
        no_purchase = long[:, _NO_PURCHASE] / np.maximum(short[:, _NO_PURCHASE], _TINY)
        return value, no_purchase

    def extend_value(self, features: Mapping[str, np.ndarray], value: np.ndarray) -> np.ndarray:
        """Predicted value over h days, extended to H days."""
        return np.asarray(value, dtype=np.float64) * self.factors(features)[0]

    def extend(self, features: Mapping[str, np.ndarray], value: np.ndarray, churn_probability: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """Predicted value and churn probability over h days, extended to H days."""
        value_factor, no_purchase_factor = self.factors(features)
        return (np.asarray(value, dtype=np.float64) * value_factor,
                np.clip(np.asarray(churn_probability, dtype=np.float64) * no_purchase_factor, 0.0, 1.0))
