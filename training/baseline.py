"""Classic probabilistic CLV baseline: BG/NBD purchases x Gamma-Gamma spend.

The baseline every learned model has to beat, and a cheap feature source for them. Both models are
fitted by maximum likelihood on a recency/frequency/monetary summary, with the log-likelihoods in
closed form (``gammaln``/``betaln``) and optimised over the log of the parameters with L-BFGS-B.

References: Fader, Hardie & Lee (2005), "Counting your customers the easy way: an alternative to the
Pareto/NBD model", Marketing Science 24(2) (BG/NBD); Fader, Hardie & Lee (2005), "RFM and CLV: using
iso-value curves for customer base analysis", JMR 42(4), and Fader & Hardie (2013), "The Gamma-Gamma
model of monetary value" (Gamma-Gamma).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Self

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

FloatArray = NDArray[np.float64]


def rfm_summary(
    transactions: pd.DataFrame, cutoff: pd.Timestamp | str, time_unit_days: float = 1.0
) -> pd.DataFrame:
    """Per-customer recency/frequency/monetary summary from the rows with ``timestamp < cutoff``.

    Transactions are first netted per customer and calendar day (UTC), the "customer-day purchase"
    convention of BTYD models. A customer's *birth* is their first transaction day of any amount (so
    every customer with history before the cutoff has a row). A *repeat purchase* is a later day with
    positive net amount; days netting to zero or below (refunds, free items) do not count, matching
    the churn definition "no order with amount > 0".

    All times live on the day grid, as in lifetimes and Fader-Hardie-Lee: ``T`` runs from the birth
    day to the *last observed day* (the day holding the last instant before the cutoff), so a purchase
    on that day has recency == T. With cutoff 1997-10-01 this gives T = 38.86 weeks for a 1997-01-01
    birth, the published CDNOW summary.

    Columns, indexed by ``customer_id`` (sorted):
    ``frequency`` number of repeat purchase days; ``recency`` birth to last repeat purchase day (0 when
    frequency is 0); ``T`` birth to last observed day; ``monetary_value`` mean net amount of the
    repeat purchase days (0 when frequency is 0). Durations are in units of ``time_unit_days`` days.
    """
    cutoff = pd.Timestamp(cutoff)
    past = transactions.loc[transactions["timestamp"] < cutoff, ["customer_id", "timestamp", "amount"]]
    days = (
        past.assign(day=past["timestamp"].dt.floor("D"))
        .groupby(["customer_id", "day"], sort=True)["amount"]
        .sum()
        .reset_index()
    )
    birth = days.groupby("customer_id", sort=True)["day"].min()
    is_repeat = (days["day"] > days["customer_id"].map(birth)) & (days["amount"] > 0)
    repeats = days.loc[is_repeat].groupby("customer_id")
    unit = pd.Timedelta(days=time_unit_days)
    last_observed_day = (cutoff - pd.Timedelta(1, "ns")).floor("D")
    last = repeats["day"].max().reindex(birth.index).fillna(birth)
    summary = pd.DataFrame(
        {
            "frequency": repeats.size().reindex(birth.index, fill_value=0).astype(np.float64),
            "recency": (last - birth) / unit,
            "T": (last_observed_day - birth) / unit,
            "monetary_value": repeats["amount"].mean().reindex(birth.index, fill_value=0.0),
        }
    )
    summary.index.name = "customer_id"
    return summary


def _as_float(*arrays: ArrayLike) -> tuple[FloatArray, ...]:
    return tuple(np.asarray(a, dtype=np.float64) for a in arrays)


LogLikGrad = Callable[[FloatArray], tuple[FloatArray, FloatArray]]


def _fit_log_params(
    ll_and_grad: LogLikGrad, weights: FloatArray, x0: FloatArray, l2_penalty: float
) -> FloatArray:
    """Maximise the weighted mean log-likelihood - ``l2_penalty * ||log params||^2`` over log params.

    ``ll_and_grad(params)`` returns per-row log-likelihoods (n,) and their gradient (n, k) with
    respect to the parameters; L-BFGS-B gets the exact gradient by the chain rule d/dlog(theta) =
    theta d/dtheta.
    """

    def objective(log_params: FloatArray) -> tuple[float, FloatArray]:
        params = np.exp(log_params)
        ll, grad = ll_and_grad(params)
        value = -float(weights @ ll) + l2_penalty * float(log_params @ log_params)
        return value, -(weights @ grad) * params + 2.0 * l2_penalty * log_params

    result = minimize(objective, x0, jac=True, method="L-BFGS-B", bounds=[(-20.0, 20.0)] * len(x0),
                      options={"maxiter": 5000, "ftol": 1e-13, "gtol": 1e-9})
    if not np.isfinite(result.fun):
        raise RuntimeError(f"maximum-likelihood fit failed: {result.message}")
    return np.exp(result.x)


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


class BetaGeoParams(NamedTuple):
    """BG/NBD parameters: purchase rate lambda ~ Gamma(r, alpha), dropout p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


class GammaGammaParams(NamedTuple):
    """Gamma-Gamma parameters: spend ~ Gamma(p, nu) per purchase, nu ~ Gamma(q, v) per customer."""

    p: float
    q: float
    v: float


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
        x, t_x, T = _as_float(frequency, recency, T)
        return _bgnbd_ll_grad(np.asarray(params, dtype=np.float64), x, t_x, T)[0]

    def fit(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> Self:
        """Maximum-likelihood fit; identical (frequency, recency, T) rows are evaluated once."""
        x, t_x, T = _as_float(frequency, recency, T)
        if x.size == 0:
            raise ValueError("BetaGeoFitter.fit needs at least one customer")
        rows, counts = np.unique(np.column_stack([x, t_x, T]), axis=0, return_counts=True)

        def ll_and_grad(params: FloatArray) -> tuple[FloatArray, FloatArray]:
            return _bgnbd_ll_grad(params, rows[:, 0], rows[:, 1], rows[:, 2])

        # Unit-free start: a = b = r = 1 and alpha matching the mean repeat rate r / alpha.
        alpha0 = max(T.mean(), 1e-9) / max(x.mean(), 1e-3)
        start = np.log([1.0, alpha0, 1.0, 1.0])
        fitted = _fit_log_params(ll_and_grad, counts / counts.sum(), start, self.l2_penalty)
        self.params_ = BetaGeoParams(*map(float, fitted))
        self.log_likelihood_ = float(self.log_likelihood(self.params_, x, t_x, T).sum())
        return self

    def probability_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> FloatArray:
        """P(still active at T | x, t_x, T) = 1 / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))."""
        r, alpha, a, b = self.params_
        x, t_x, T = _as_float(frequency, recency, T)
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
        t, x, t_x, T = _as_float(t, frequency, recency, T)
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
        t, x, t_x, T = _as_float(t, frequency, recency, T)
        return 1.0 - self.probability_alive(x, t_x, T) * self._buys_if_alive(t, x, T)

    def _buys_if_alive(self, t: FloatArray, x: FloatArray, T: FloatArray) -> FloatArray:
        r, alpha, _, _ = self.params_
        return -np.expm1(-(r + x) * np.log1p(t / (alpha + T)))

    def forecast(self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike,
                 tail: FloatArray | None = None) -> tuple[FloatArray, FloatArray, FloatArray]:
        """P(alive), expected purchases in (T, T+t] and P(no purchase in (T, T+t]) at once (each as its own
        method gives it), working out P(alive) once. ``tail``: :meth:`purchase_tail` of the same arguments,
        when the caller has it already."""
        t, x, t_x, T = _as_float(t, frequency, recency, T)
        alive = self.probability_alive(x, t_x, T)
        return (alive, alive * self._purchases_if_alive(t, x, T, tail),
                1.0 - alive * self._buys_if_alive(t, x, T))


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
        x, m = _as_float(frequency, monetary_value)
        return _gamma_gamma_ll_grad(np.asarray(params, dtype=np.float64), x, m)[0]

    def fit(self, frequency: ArrayLike, monetary_value: ArrayLike) -> Self:
        """Maximum-likelihood fit; identical (frequency, monetary_value) rows are evaluated once."""
        x, m = _as_float(frequency, monetary_value)
        if x.size == 0 or np.any(x <= 0) or np.any(m <= 0):
            raise ValueError("GammaGammaFitter.fit needs repeat buyers: frequency > 0 and monetary_value > 0")
        rows, counts = np.unique(np.column_stack([x, m]), axis=0, return_counts=True)

        def ll_and_grad(params: FloatArray) -> tuple[FloatArray, FloatArray]:
            return _gamma_gamma_ll_grad(params, rows[:, 0], rows[:, 1])

        # Start with p = 1, q = 2 and v matching the mean spend p v / (q - 1).
        start = np.log([1.0, 2.0, float(m.mean())])
        fitted = _fit_log_params(ll_and_grad, counts / counts.sum(), start, self.l2_penalty)
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
        x, m = _as_float(frequency, monetary_value)
        return p * (v + x * np.where(x > 0, m, 0.0)) / (p * x + q - 1.0)


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
        summary = rfm_summary(transactions, cutoff, self.time_unit_days)
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
        cutoff = pd.Timestamp(cutoff)
        if cutoff < self.cutoff_:
            raise ValueError(f"prediction cutoff {cutoff} is before the fit cutoff {self.cutoff_}")
        s = rfm_summary(transactions, cutoff, self.time_unit_days)
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
