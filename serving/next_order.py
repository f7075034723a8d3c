"""What CRMs show per customer beside the tier: their rhythm, when the next order is expected, and a risk band.

The probability of an order within the horizon is the churn model's complement (churned = no positive
order in the horizon). The expected date comes from the customer's own rhythm when it points into the
horizon (last purchase + usual gap), and otherwise from the models: taking orders as a Poisson stream
whose rate makes that probability come true over the horizon H, the median wait given an order within
the horizon is ``H * ln(1 - p/2) / ln(1 - p)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tiercast.features.builder import FeatureColumns
from tiercast.training.policy import ChurnRiskBands

NEXT_ORDER_COLUMNS = ["avg_days_between_orders", "expected_next_order_date", "next_order_probability",
                      "churn_risk_band"]


def _model_wait_days(probability: np.ndarray, horizon_days: int) -> np.ndarray:
    p = np.minimum(np.maximum(probability, 1e-6), 1 - 1e-6)
    return horizon_days * np.log1p(-p / 2) / np.log1p(-p)


def next_order(features: pd.DataFrame | FeatureColumns, churn_probability: np.ndarray, as_of: pd.Timestamp,
               horizon_days: int, bands: ChurnRiskBands) -> dict[str, np.ndarray]:
    """The :data:`NEXT_ORDER_COLUMNS` for each customer, as arrays aligned with the rows of ``features``."""
    gap = np.asarray(features["gap_mean_days"], dtype=float)
    since_last = np.asarray(features["recency_days"], dtype=float)
    probability = 1.0 - np.asarray(churn_probability, dtype=float)
    by_rhythm = gap - since_last  # days from as_of to last purchase + usual gap
    rhythm_fits = np.isfinite(by_rhythm) & (by_rhythm >= 0) & (by_rhythm < horizon_days)
    wait = np.where(rhythm_fits, by_rhythm, _model_wait_days(probability, horizon_days))
    dates = np.full(len(wait), None, dtype=object)
    known = np.isfinite(wait)
    # Whole days on datetime64[D], written as ISO dates.
    day = np.datetime64(pd.Timestamp(as_of).date(), "D")
    dates[known] = (day + np.ceil(wait[known]).astype(np.int64)).astype(str).tolist()
    return {
        "avg_days_between_orders": gap.round(1),
        "expected_next_order_date": dates,
        "next_order_probability": probability,
        "churn_risk_band": bands.assign(churn_probability),
    }
