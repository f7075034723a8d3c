"""Gamma-Gamma: the model of a customer's mean spend per repeat purchase.

Fader, Hardie & Lee (2005), "RFM and CLV: using iso-value curves for customer base analysis", JMR 42(4),
and Fader & Hardie (2013), "The Gamma-Gamma model of monetary value". Fitted by maximum likelihood on the
repeat buyers' (frequency x, mean spend m).
"""

from __future__ import annotations

from typing import NamedTuple, Self

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import digamma, gammaln

from tiercast.training.classic.likelihood import FloatArray, as_float, fit_log_params


def _gamma_gamma_ll_grad(params: FloatArray, x: FloatArray, m: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Gamma-Gamma log density of the mean spend m over x purchases, and its gradient in (p, q, v)."""
    p, q, v = params
    px = p * x
    log_vxm = np.log(v + x * m)
    ll = (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v)
          + (px - 1.0) * np.log(m) + px * np.log(x) - (px + q) * log_vxm)
    psi = digamma(px + q)
    grad = np.stack(
        [
            x * (psi - digamma(px) + np.log(m) + np.log(x) - log_vxm),
            psi - digamma(q) + np.log(v) - log_vxm,
            q / v - (px + q) / (v + x * m),
        ],
        axis=1,
    )
    return ll, grad


class GammaGammaParams(NamedTuple):
    """Gamma-Gamma parameters: spend ~ Gamma(p, nu) per purchase, nu ~ Gamma(q, v) per customer."""

    p: float
    q: float
    v: float


class GammaGammaFitter:
    """Gamma-Gamma model of the mean spend per repeat purchase (Fader & Hardie 2013).

    Fit on repeat buyers (frequency > 0, monetary_value > 0). ``l2_penalty`` as in
    ``BetaGeoFitter``. After ``fit``: ``params_`` (p, q, v) and ``log_likelihood_``.
    """

    def __init__(self, l2_penalty: float = 0.0) -> None:
        self.l2_penalty = l2_penalty

    @staticmethod
    def log_likelihood(
        params: GammaGammaParams, frequency: ArrayLike, monetary_value: ArrayLike
    ) -> FloatArray:
        """Per-customer log density of the observed mean spend m over x purchases."""
        x, m = as_float(frequency, monetary_value)
        return _gamma_gamma_ll_grad(np.asarray(params, dtype=np.float64), x, m)[0]

    def fit(self, frequency: ArrayLike, monetary_value: ArrayLike) -> Self:
        """Maximum-likelihood fit; identical (frequency, monetary_value) rows are evaluated once."""
        x, m = as_float(frequency, monetary_value)
        if x.size == 0 or np.any(x <= 0) or np.any(m <= 0):
            raise ValueError("GammaGammaFitter.fit needs repeat buyers: frequency > 0 and monetary_value > 0")
        rows, counts = np.unique(np.column_stack([x, m]), axis=0, return_counts=True)

        def ll_and_grad(params: FloatArray) -> tuple[FloatArray, FloatArray]:
            return _gamma_gamma_ll_grad(params, rows[:, 0], rows[:, 1])

        # Start with p = 1, q = 2 and v matching the mean spend p v / (q - 1).
        start = np.log([1.0, 2.0, float(m.mean())])
        fitted = fit_log_params(ll_and_grad, counts / counts.sum(), start, self.l2_penalty)
        self.params_ = GammaGammaParams(*map(float, fitted))
        self.log_likelihood_ = float(self.log_likelihood(self.params_, x, m).sum())
        return self

    def conditional_expected_spend(self, frequency: ArrayLike, monetary_value: ArrayLike) -> FloatArray:
        """E[spend per purchase | x, m] = p (v + x m) / (p x + q - 1).

        A weighted mean of the population mean p v / (q - 1) and the customer's own mean m; with
        frequency 0 it is the population mean.
        """
        p, q, v = self.params_
        if q <= 1.0:
            raise ValueError(f"Gamma-Gamma q = {q:.4g} <= 1: the population mean spend is infinite")
        x, m = as_float(frequency, monetary_value)
        return p * (v + x * np.where(x > 0, m, 0.0)) / (p * x + q - 1.0)
