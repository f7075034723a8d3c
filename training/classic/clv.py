"""The classic CLV baseline: BG/NBD purchases x Gamma-Gamma spend, fitted on the transactions.

The baseline every learned model has to beat (``bgnbd_gamma_gamma`` in the evaluation). It reads
:func:`tiercast.training.classic.rfm.rfm_summary` (the customer-day convention of BTYD models), checked
against the published CDNOW figures and against lifetimes.
"""

from __future__ import annotations

from typing import Self

import pandas as pd

from tiercast.training.classic.bgnbd import BetaGeoFitter
from tiercast.training.classic.gamma_gamma import GammaGammaFitter
from tiercast.training.classic.rfm import rfm_summary


class ClassicCLV:
    """BG/NBD x Gamma-Gamma customer value over a horizon, as a baseline or feature source.

    ``fit(transactions, cutoff)`` fits both models on ``rfm_summary`` at the cutoff (Gamma-Gamma on
    the repeat buyers). ``predict(transactions, cutoff, horizon_days)`` scores every customer with a
    transaction before ``cutoff``; ``cutoff`` must not precede the fit cutoff, so that no parameter
    has seen data after the prediction cutoff.
    """

    def __init__(self, time_unit_days: float = 1.0, l2_penalty: float = 0.0) -> None:
        self.time_unit_days = time_unit_days
        self.l2_penalty = l2_penalty

    def fit(self, transactions: pd.DataFrame, cutoff: pd.Timestamp | str) -> Self:
        """Fit BG/NBD on every customer and Gamma-Gamma on the repeat buyers, from rows before cutoff."""
        return self.fit_summary(rfm_summary(transactions, cutoff, self.time_unit_days), cutoff)

    def fit_summary(self, summary: pd.DataFrame, cutoff: pd.Timestamp | str) -> Self:
        """:meth:`fit` from the :func:`rfm_summary` of the rows before cutoff (it may be gathered from parts of
        the customers, in customer order)."""
        repeat = summary[summary["frequency"] > 0]  # monetary_value > 0 by construction
        if repeat.empty:
            raise ValueError(f"no repeat buyers before {cutoff}: cannot fit the Gamma-Gamma spend model")
        self.bgnbd_ = BetaGeoFitter(self.l2_penalty).fit(
            summary["frequency"], summary["recency"], summary["T"]
        )
        self.gamma_gamma_ = GammaGammaFitter(self.l2_penalty).fit(
            repeat["frequency"], repeat["monetary_value"]
        )
        self.cutoff_ = pd.Timestamp(cutoff)
        return self

    def predict(
        self, transactions: pd.DataFrame, cutoff: pd.Timestamp | str, horizon_days: float
    ) -> pd.DataFrame:
        """Columns: customer_id, expected_purchases, probability_alive, expected_value, churn_probability.

        ``expected_value`` = expected purchases x conditional expected spend per purchase (refunds
        outside purchase days are not modelled, so it leans slightly high against net value);
        ``churn_probability`` = P(no purchase day with positive amount within the horizon).
        """
        return self.predict_summary(rfm_summary(transactions, cutoff, self.time_unit_days), cutoff, horizon_days)

    def predict_summary(self, s: pd.DataFrame, cutoff: pd.Timestamp | str, horizon_days: float) -> pd.DataFrame:
        """:meth:`predict` from the :func:`rfm_summary` of the rows before cutoff."""
        cutoff = pd.Timestamp(cutoff)
        if cutoff < self.cutoff_:
            raise ValueError(f"prediction cutoff {cutoff} is before the fit cutoff {self.cutoff_}")
        t = horizon_days / self.time_unit_days
        x, t_x, T = s["frequency"].to_numpy(), s["recency"].to_numpy(), s["T"].to_numpy()
        purchases = self.bgnbd_.expected_purchases(t, x, t_x, T)
        spend = self.gamma_gamma_.conditional_expected_spend(x, s["monetary_value"].to_numpy())
        return pd.DataFrame(
            {
                "customer_id": s.index.to_numpy(),
                "expected_purchases": purchases,
                "probability_alive": self.bgnbd_.probability_alive(x, t_x, T),
                "expected_value": purchases * spend,
                "churn_probability": self.bgnbd_.probability_no_purchase(t, x, t_x, T),
            }
        )
