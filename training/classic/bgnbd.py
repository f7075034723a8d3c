"""BG/NBD: the beta-geometric / negative binomial model of repeat purchases.

Fader, Hardie & Lee (2005), "Counting your customers the easy way: an alternative to the Pareto/NBD
model", Marketing Science 24(2). Fitted by maximum likelihood on (frequency x, recency t_x, age T), with
the log-likelihood in closed form and its exact gradient (:mod:`tiercast.training.classic.likelihood`).
"""

from __future__ import annotations

from typing import NamedTuple, Self

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

from tiercast.training.classic.likelihood import FloatArray, as_float, fit_log_params


def _bgnbd_ll_grad(
    params: FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """BG/NBD per-customer log-likelihood (FHL 2005, eq. 6) and its gradient in (r, alpha, a, b).

    LL = common + logaddexp(alive, dropped): "alive" = no dropout after the x-th purchase and no
    purchase in (t_x, T]; "dropped" (x > 0 only) = dropout right after the x-th purchase.
    """
    r, alpha, a, b = params
    x1 = np.maximum(x, 1.0)
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
    alive = betaln(a, b + x) - (r + x) * np.log(alpha + T)
    dropped = np.where(x > 0, betaln(a + 1.0, b + x1 - 1.0) - (r + x) * np.log(alpha + t_x), -np.inf)
    ll = common + np.logaddexp(alive, dropped)
    w = expit(alive - dropped)  # share of the likelihood from the "alive" branch
    psi_abx = digamma(a + b + x)
    d_common = np.stack(
        [
            digamma(r + x) - digamma(r) + np.log(alpha),
            np.full_like(x, r / alpha),
            np.full_like(x, digamma(a + b) - digamma(a)),
            np.full_like(x, digamma(a + b) - digamma(b)),
        ],
        axis=1,
    )
    d_alive = np.stack(
        [-np.log(alpha + T), -(r + x) / (alpha + T), digamma(a) - psi_abx, digamma(b + x) - psi_abx], axis=1
    )
    d_dropped = np.stack(
        [-np.log(alpha + t_x), -(r + x) / (alpha + t_x), digamma(a + 1.0) - psi_abx,
         digamma(b + x1 - 1.0) - psi_abx],
        axis=1,
    )
    return ll, d_common + w[:, None] * d_alive + (1.0 - w)[:, None] * d_dropped


class BetaGeoParams(NamedTuple):
    """BG/NBD parameters: purchase rate lambda ~ Gamma(r, alpha), dropout p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


class BetaGeoFitter:
    """BG/NBD model of repeat purchases (Fader, Hardie & Lee 2005).

    ``l2_penalty`` adds ``l2_penalty * sum(log(param)^2)`` to the mean negative log-likelihood,
    shrinking parameters towards 1; 0 (default) is plain maximum likelihood. After ``fit``:
    ``params_`` (r, alpha, a, b) and ``log_likelihood_`` (total over customers).
    """

    def __init__(self, l2_penalty: float = 0.0) -> None:
        self.l2_penalty = l2_penalty

    @staticmethod
    def log_likelihood(
        params: BetaGeoParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """Per-customer log-likelihood (FHL 2005, eq. 6), evaluated in log space with logaddexp."""
        x, t_x, T = as_float(frequency, recency, T)
        return _bgnbd_ll_grad(np.asarray(params, dtype=np.float64), x, t_x, T)[0]

    def fit(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> Self:
        """Maximum-likelihood fit; identical (frequency, recency, T) rows are evaluated once."""
        x, t_x, T = as_float(frequency, recency, T)
        if x.size == 0:
            raise ValueError("BetaGeoFitter.fit needs at least one customer")
        rows, counts = np.unique(np.column_stack([x, t_x, T]), axis=0, return_counts=True)

        def ll_and_grad(params: FloatArray) -> tuple[FloatArray, FloatArray]:
            return _bgnbd_ll_grad(params, rows[:, 0], rows[:, 1], rows[:, 2])

        # Unit-free start: a = b = r = 1 and alpha matching the mean repeat rate r / alpha.
        alpha0 = max(T.mean(), 1e-9) / max(x.mean(), 1e-3)
        start = np.log([1.0, alpha0, 1.0, 1.0])
        fitted = fit_log_params(ll_and_grad, counts / counts.sum(), start, self.l2_penalty)
        self.params_ = BetaGeoParams(*map(float, fitted))
        self.log_likelihood_ = float(self.log_likelihood(self.params_, x, t_x, T).sum())
        return self

    def probability_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> FloatArray:
        """P(still active at T | x, t_x, T) = 1 / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))."""
        r, alpha, a, b = self.params_
        x, t_x, T = as_float(frequency, recency, T)
        x1 = np.maximum(x, 1.0)
        log_odds_dead = (
            np.log(a) - np.log(b + x1 - 1.0) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        )
        return np.where(x > 0, expit(-log_odds_dead), 1.0)

    def expected_purchases(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """E[purchases in (T, T+t] | x, t_x, T] (FHL 2005, eq. 10); arguments broadcast.

        With x = t_x = T = 0 this is E[X(t)], the expected repeat purchases of a new customer in
        their first t units (eq. 9), used for aggregate tracking forecasts.

        Eq. 10 equals P(alive) * (a+b+x-1)/(a-1) * [1 - 2F1(r+x, a-1; a+b+x-1; -s)] with
        s = t/(alpha+T) (Euler transform). We evaluate the Pfaff transform of that 2F1,
        (1+s)^(1-a) 2F1(a+b-1-r, a-1; a+b+x-1; s/(1+s)), whose series has small numerator
        parameters, a large denominator one and an argument in [0, 1): it stays accurate for
        thousands of repeat purchases, where SciPy's 2F1 in the paper's form returns NaN.
        (The expression has a removable singularity at a = 1 exactly.)
        """
        t, x, t_x, T = as_float(t, frequency, recency, T)
        return self.probability_alive(x, t_x, T) * self._purchases_if_alive(t, x, T)

    def _purchases_if_alive(self, t: FloatArray, x: FloatArray, T: FloatArray, tail: FloatArray | None = None
                            ) -> FloatArray:
        _, _, a, b = self.params_
        if tail is None:
            tail = self.purchase_tail(t, x, T)
        return (a + b + x - 1.0) / (a - 1.0) * (1.0 - tail)

    def purchase_tail(self, t: FloatArray, x: FloatArray, T: FloatArray) -> FloatArray:
        """The hypergeometric term of the expected purchases (the Pfaff form above): their costly part, which
        depends on x and T but not on t_x."""
        r, alpha, a, b = self.params_
        s = t / (alpha + T)
        return (1.0 + s) ** (1.0 - a) * hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, s / (1.0 + s))

    def probability_no_purchase(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """P(no purchase in (T, T+t] | x, t_x, T): the BG/NBD churn probability over horizon t.

        Derivation: a customer dead at T never buys again. One alive at T has posterior
        lambda ~ Gamma(r+x, alpha+T) and, since BG/NBD dropout happens only right after a purchase,
        buys nothing in the next t with probability E[exp(-lambda t)] = ((alpha+T)/(alpha+T+t))^(r+x).
        Hence P0 = 1 - P(alive) * [1 - ((alpha+T)/(alpha+T+t))^(r+x)].
        """
        t, x, t_x, T = as_float(t, frequency, recency, T)
        return 1.0 - self.probability_alive(x, t_x, T) * self._buys_if_alive(t, x, T)

    def _buys_if_alive(self, t: FloatArray, x: FloatArray, T: FloatArray) -> FloatArray:
        r, alpha, _, _ = self.params_
        return -np.expm1(-(r + x) * np.log1p(t / (alpha + T)))

    def forecast(self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike,
                 tail: FloatArray | None = None) -> tuple[FloatArray, FloatArray, FloatArray]:
        """P(alive), expected purchases in (T, T+t] and P(no purchase in (T, T+t]) at once (each as its own
        method gives it), working out P(alive) once. ``tail``: :meth:`purchase_tail` of the same arguments,
        when the caller has it already."""
        t, x, t_x, T = as_float(t, frequency, recency, T)
        alive = self.probability_alive(x, t_x, T)
        return (alive, alive * self._purchases_if_alive(t, x, T, tail),
                1.0 - alive * self._buys_if_alive(t, x, T))
