"""The classic models (BG/NBD, Gamma-Gamma, the RFM summary, the ClassicCLV baseline): published CDNOW fits,
exact math, simulation checks."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats
from scipy.special import hyp2f1
from threadpoolctl import threadpool_limits

from tiercast.training.classic.bgnbd import BetaGeoFitter, BetaGeoParams, _bgnbd_ll_grad
from tiercast.training.classic.clv import ClassicCLV
from tiercast.training.classic.gamma_gamma import GammaGammaFitter, GammaGammaParams, _gamma_gamma_ll_grad
from tiercast.training.classic.rfm import rfm_summary
from tiercast.training.metrics import churn_report, value_report

CDNOW = Path(__file__).resolve().parents[2] / "data" / "cdnow"
CALIBRATION_CUTOFF = pd.Timestamp("1997-10-01")
HOLDOUT_END = pd.Timestamp("1998-07-01")
FHL_PARAMS = BetaGeoParams(r=0.243, alpha=4.414, a=0.793, b=2.426)


def _canonical(customer_id: pd.Series, date: pd.Series, dollars: pd.Series) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": customer_id.astype(object),
            "timestamp": pd.to_datetime(date, format="%Y%m%d"),
            "amount": dollars.astype(np.float64),
        }
    )


@pytest.fixture(scope="module")
def cdnow_sample() -> pd.DataFrame:
    raw = pd.read_csv(CDNOW / "CDNOW_sample.txt.gz", sep=r"\s+", header=None, dtype=str,
                      names=["master_id", "sample_id", "date", "cds", "dollars"])
    return _canonical(raw["sample_id"], raw["date"], raw["dollars"])


@pytest.fixture(scope="module")
def cdnow_master() -> pd.DataFrame:
    raw = pd.read_csv(CDNOW / "CDNOW_master.txt.gz", sep=r"\s+", dtype=str)
    return _canonical(raw["customer_id"], raw["date"], raw["dollar_value"])


@pytest.fixture(scope="module")
def sample_summary(cdnow_sample: pd.DataFrame) -> pd.DataFrame:
    return rfm_summary(cdnow_sample, CALIBRATION_CUTOFF, time_unit_days=7.0)


def _purchase_days(transactions: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """Positive-net customer-days in [start, end), counted per customer."""
    window = transactions[(transactions["timestamp"] >= start) & (transactions["timestamp"] < end)]
    daily = window.groupby(["customer_id", window["timestamp"].dt.floor("D")])["amount"].sum()
    return (daily > 0).groupby(level="customer_id").sum()


# --- rfm_summary ---------------------------------------------------------------------------------

def test_rfm_summary_nets_customer_days_and_ignores_rows_at_or_after_cutoff() -> None:
    day = pd.Timestamp("2024-03-01")
    rows = [
        ("A", day, 10.0), ("A", day + pd.Timedelta(hours=5), 5.0),   # one purchase day, net 15
        ("A", day + pd.Timedelta(days=2), -20.0),                    # refund day: not a purchase
        ("A", day + pd.Timedelta(days=4), 8.0), ("A", day + pd.Timedelta(days=4, hours=1), -8.0),
        ("A", day + pd.Timedelta(days=6, hours=23), 30.0),           # the only repeat purchase day
        ("A", day + pd.Timedelta(days=9), 100.0),                    # at the cutoff: excluded
        ("B", day + pd.Timedelta(days=1), -5.0),                     # refund only: scored, no repeats
        ("C", day + pd.Timedelta(days=11), 50.0),                    # after the cutoff: absent
    ]
    tx = pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"])
    summary = rfm_summary(tx, day + pd.Timedelta(days=9))
    assert list(summary.index) == ["A", "B"]
    assert summary.loc["A"].to_dict() == {"frequency": 1.0, "recency": 6.0, "T": 8.0, "monetary_value": 30.0}
    assert summary.loc["B"].to_dict() == {"frequency": 0.0, "recency": 0.0, "T": 7.0, "monetary_value": 0.0}
    weekly = rfm_summary(tx, day + pd.Timedelta(days=9), time_unit_days=7.0)
    np.testing.assert_allclose(weekly.loc["A", ["recency", "T"]], [6 / 7, 8 / 7])
    # A cutoff inside a day observes that day: day 9's purchase counts, with recency == T.
    later = rfm_summary(tx, day + pd.Timedelta(days=9, hours=13))
    assert later.loc["A", "frequency"] == 2 and later.loc["A", "recency"] == later.loc["A", "T"] == 9.0


def test_rfm_summary_reproduces_published_cdnow_calibration_summary(sample_summary: pd.DataFrame) -> None:
    # FHL (2005): 2,357 customers, 946 of whom repeat in the 39-week calibration period; their worked
    # example customer (ID 0001) has x = 2, t_x = 30.43, T = 38.86 weeks.
    assert len(sample_summary) == 2357
    assert (sample_summary["frequency"] > 0).sum() == 946
    first = sample_summary.loc["0001"]
    assert first["frequency"] == 2
    assert first["recency"] == pytest.approx(30.43, abs=0.005)
    assert first["T"] == pytest.approx(38.86, abs=0.005)


# --- BG/NBD ----------------------------------------------------------------------------------------

def test_bgnbd_reproduces_fader_hardie_lee_2005_fit(sample_summary: pd.DataFrame) -> None:
    s = sample_summary
    fitter = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
    np.testing.assert_allclose(fitter.params_, FHL_PARAMS, rtol=2e-3)
    assert fitter.log_likelihood_ == pytest.approx(-9582.4, abs=0.5)  # the paper's LL


def test_forecast_gives_what_each_method_gives(sample_summary: pd.DataFrame) -> None:
    s = sample_summary
    fitter = BetaGeoFitter()
    fitter.params_ = FHL_PARAMS
    alive, purchases, none = fitter.forecast(39, s["frequency"], s["recency"], s["T"])
    assert np.array_equal(alive, fitter.probability_alive(s["frequency"], s["recency"], s["T"]))
    assert np.array_equal(purchases, fitter.expected_purchases(39, s["frequency"], s["recency"], s["T"]))
    assert np.array_equal(none, fitter.probability_no_purchase(39, s["frequency"], s["recency"], s["T"]))


def test_bgnbd_conditional_expectation_matches_paper_worked_example() -> None:
    fitter = BetaGeoFitter()
    fitter.params_ = FHL_PARAMS
    # FHL (2005), section 4: the customer with x=2, t_x=30.43, T=38.86 expects 1.226 purchases in 39 weeks.
    assert fitter.expected_purchases(39, 2, 30.43, 38.86) == pytest.approx(1.226, abs=5e-4)


def _expected_purchases_by_quadrature(
    params: BetaGeoParams, t: float, x: float, t_x: float, T: float
) -> float:
    """Eq. 10 from first principles: P(alive) x E over p ~ Beta(a, b+x) of (1 - E[e^(-lambda p t)]) / p."""
    r, alpha, a, b = params

    def integrand(p: float) -> float:
        no_buy = np.exp(-(r + x) * np.log1p(p * t / (alpha + T)))
        return stats.beta.pdf(p, a, b + x) * (1.0 - no_buy) / p

    given_alive = integrate.quad(integrand, 0, 1, limit=500, epsrel=1e-11, points=[a / (a + b + x)])[0]
    dead_odds = a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x) if x > 0 else 0.0
    return given_alive / (1.0 + dead_odds)


@pytest.mark.parametrize(
    ("params", "t", "x", "t_x", "T"),
    [
        (FHL_PARAMS, 39.0, 0.0, 0.0, 38.86),
        (FHL_PARAMS, 39.0, 7.0, 20.0, 35.0),
        (FHL_PARAMS, 39.0, 2000.0, 300.0, 300.0),                      # paper form of 2F1 gives NaN here
        (BetaGeoParams(0.27, 38.1, 0.60, 2.23), 181.0, 20000.0, 3000.0, 3100.0),
        (BetaGeoParams(2.0, 1.0, 3.0, 5.0), 1000.0, 50.0, 0.5, 1.0),  # a > 1
        (BetaGeoParams(0.5, 30.0, 0.3, 0.2), 181.0, 1.0, 0.2, 0.5),     # b + x - 1 < 1
    ],
)
def test_expected_purchases_matches_numerical_integral(params, t, x, t_x, T) -> None:
    fitter = BetaGeoFitter()
    fitter.params_ = params
    got = fitter.expected_purchases(t, x, t_x, T)
    assert np.isfinite(got)
    assert got == pytest.approx(_expected_purchases_by_quadrature(params, t, x, t_x, T), rel=1e-7)


def test_log_likelihood_is_finite_for_heavy_buyers() -> None:
    x, t_x, T = [0, 1, 500, 50_000], [0, 1, 400, 49_000], [10, 10, 500, 50_000]
    ll = BetaGeoFitter.log_likelihood(FHL_PARAMS, x, t_x, T)
    assert np.isfinite(ll).all()


def _simulate_bgnbd(params: BetaGeoParams, n: int, horizon: float, seed: int) -> dict[str, np.ndarray]:
    """Draw customers from the BG/NBD story; observe (0, T] and count purchases in (T, T + horizon]."""
    rng = np.random.default_rng(seed)
    r, alpha, a, b = params
    rate = rng.gamma(r, 1.0 / alpha, n)
    dropout = rng.beta(a, b, n)
    T = rng.uniform(5.0, 30.0, n)
    max_purchases = 300
    times = np.cumsum(rng.exponential(1.0, (n, max_purchases)), axis=1) / rate[:, None]
    last = rng.geometric(dropout)  # dies right after this repeat purchase
    assert ((last <= max_purchases) | (times[:, -1] > T + horizon)).all()  # no truncation
    made = np.arange(1, max_purchases + 1) <= last[:, None]
    calibration = made & (times <= T[:, None])
    holdout = made & (times > T[:, None]) & (times <= (T + horizon)[:, None])
    x = calibration.sum(axis=1)
    return {
        "x": x.astype(float), "t_x": np.where(calibration, times, 0.0).max(axis=1), "T": T,
        "future": holdout.sum(axis=1).astype(float), "alive": (last > x).astype(float),
    }


def _z(residual: np.ndarray) -> float:
    """Sum of residuals over its estimated standard error: ~N(0, 1) when predictions are unbiased."""
    return float(residual.sum() / np.sqrt((residual**2).sum()))


@pytest.fixture(scope="module")
def simulated() -> tuple[BetaGeoParams, float, dict[str, np.ndarray]]:
    params, horizon = BetaGeoParams(r=0.8, alpha=8.0, a=0.7, b=2.5), 20.0
    return params, horizon, _simulate_bgnbd(params, 20_000, horizon, seed=7)


def test_conditional_predictions_are_unbiased_on_simulated_customers(simulated) -> None:
    params, horizon, d = simulated
    fitter = BetaGeoFitter()
    fitter.params_ = params
    expected = fitter.expected_purchases(horizon, d["x"], d["t_x"], d["T"])
    p_alive = fitter.probability_alive(d["x"], d["t_x"], d["T"])
    p_none = fitter.probability_no_purchase(horizon, d["x"], d["t_x"], d["T"])
    assert (p_alive[d["x"] == 0] == 1).all() and (d["alive"][d["x"] == 0] == 1).all()
    for group in (d["x"] == 0, d["x"] == 1, d["x"] >= 2, (d["x"] > 0) & (d["t_x"] < d["T"] / 2)):
        assert abs(_z(d["future"][group] - expected[group])) < 4
        assert abs(_z((d["future"][group] == 0) - p_none[group])) < 4
        if d["x"][group].min() > 0:
            assert abs(_z(d["alive"][group] - p_alive[group])) < 4


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: BLAS runs one thread whatever is asked")
def test_bgnbd_fit_is_the_same_whatever_threads_blas_may_use() -> None:
    # enough customers for BLAS to split a product between threads (20,000 are not)
    d = _simulate_bgnbd(BetaGeoParams(r=0.8, alpha=8.0, a=0.7, b=2.5), 50_000, 20.0, seed=7)
    fits = []
    for threads in (1, 2):
        with threadpool_limits(threads, user_api="blas"):
            fits.append(BetaGeoFitter().fit(d["x"], d["t_x"], d["T"]).params_)
    assert fits[0] == fits[1]  # exactly: sums split by thread count would move the optimiser elsewhere


def test_bgnbd_fit_recovers_simulated_parameters(simulated) -> None:
    params, _, d = simulated
    fitter = BetaGeoFitter().fit(d["x"], d["t_x"], d["T"])
    assert fitter.log_likelihood_ >= BetaGeoFitter.log_likelihood(params, d["x"], d["t_x"], d["T"]).sum()
    np.testing.assert_allclose(fitter.params_[:2], params[:2], rtol=0.05)  # purchase rate: sharp
    np.testing.assert_allclose(fitter.params_[2:], params[2:], rtol=0.2)   # dropout: weakly identified


@pytest.mark.parametrize(
    ("ll_and_grad", "params", "data"),
    [
        (_bgnbd_ll_grad, FHL_PARAMS, ([0.0, 1, 4, 900], [0.0, 0.5, 30, 899], [38.86, 20, 31, 1000])),
        (_gamma_gamma_ll_grad, GammaGammaParams(6.25, 3.74, 15.45), ([1.0, 3, 700], [12.0, 40.5, 25.0])),
    ],
)
def test_log_likelihood_gradients_match_finite_differences(ll_and_grad, params, data) -> None:
    columns = [np.asarray(c, dtype=float) for c in data]
    theta = np.asarray(params, dtype=float)
    _, grad = ll_and_grad(theta, *columns)
    numeric = np.column_stack([
        (ll_and_grad(theta + step, *columns)[0] - ll_and_grad(theta - step, *columns)[0]) / (2 * step.sum())
        for step in np.diag(theta * 1e-6)
    ])
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6)


def test_l2_penalty_shrinks_log_parameters(sample_summary: pd.DataFrame) -> None:
    s = sample_summary
    plain = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
    shrunk = BetaGeoFitter(l2_penalty=0.1).fit(s["frequency"], s["recency"], s["T"])
    assert np.linalg.norm(np.log(shrunk.params_)) < np.linalg.norm(np.log(plain.params_))
    assert shrunk.log_likelihood_ < plain.log_likelihood_


def test_holdout_forecasts_on_cdnow(cdnow_sample: pd.DataFrame, sample_summary: pd.DataFrame) -> None:
    s = sample_summary
    fitter = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
    holdout = _purchase_days(cdnow_sample, CALIBRATION_CUTOFF, HOLDOUT_END).sum()
    # Conditional expectations (weeks 40-78) under-forecast CDNOW's holdout: 1,653 vs 1,882 actual.
    conditional = fitter.expected_purchases(39.0, s["frequency"], s["recency"], s["T"]).sum()
    assert 0.85 < conditional / holdout < 1.0
    # The paper's cumulative tracking forecast (E[X(age)] per customer, eq. 9) over all 78 weeks
    # is within 5% of the actual repeat purchases.
    age = s["T"].to_numpy() + (HOLDOUT_END - CALIBRATION_CUTOFF) / pd.Timedelta(weeks=1)
    tracking = fitter.expected_purchases(age, 0.0, 0.0, 0.0).sum()
    actual = s["frequency"].sum() + holdout
    assert tracking == pytest.approx(actual, rel=0.05)


# --- Gamma-Gamma -----------------------------------------------------------------------------------

def test_gamma_gamma_reproduces_lifetimes_cdnow_fit(sample_summary: pd.DataFrame) -> None:
    # lifetimes docs: on CDNOW's 946 repeat buyers (39-week calibration summary), p=6.25, q=3.74, v=15.45.
    repeat = sample_summary[sample_summary["frequency"] > 0]
    assert len(repeat) == 946
    fitter = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
    np.testing.assert_allclose(fitter.params_, [6.25, 3.74, 15.45], rtol=3e-3)


def test_gamma_gamma_conditional_spend_is_posterior_mean_on_simulated_customers() -> None:
    rng = np.random.default_rng(11)
    params = GammaGammaParams(p=6.0, q=4.0, v=15.0)
    n = 60_000
    nu = rng.gamma(params.q, 1.0 / params.v, n)
    x = rng.integers(0, 8, n).astype(float)
    mean_spend = np.where(x > 0, rng.gamma(params.p * np.maximum(x, 1), 1.0 / (nu * np.maximum(x, 1))), 0.0)
    fitter = GammaGammaFitter()
    fitter.params_ = params
    residual = params.p / nu - fitter.conditional_expected_spend(x, mean_spend)
    high = mean_spend > np.median(mean_spend[x > 0])
    for group in (x == 0, x == 1, x >= 4, high, (x > 0) & ~high):
        assert abs(_z(residual[group])) < 4
    buyers = x > 0
    refit = GammaGammaFitter().fit(x[buyers], mean_spend[buyers]).params_
    np.testing.assert_allclose(refit, params, rtol=0.1)


def test_gamma_gamma_rejects_non_repeat_buyers() -> None:
    with pytest.raises(ValueError, match="repeat buyers"):
        GammaGammaFitter().fit([1, 0], [10.0, 0.0])


# --- ClassicCLV ------------------------------------------------------------------------------------

def test_classic_clv_scores_everyone_and_ignores_the_future(cdnow_sample: pd.DataFrame) -> None:
    model = ClassicCLV(time_unit_days=7.0).fit(cdnow_sample, CALIBRATION_CUTOFF)
    np.testing.assert_allclose(model.bgnbd_.params_, FHL_PARAMS, rtol=2e-3)
    pred = model.predict(cdnow_sample, CALIBRATION_CUTOFF, horizon_days=273)
    assert list(pred.columns) == [
        "customer_id", "expected_purchases", "probability_alive", "expected_value", "churn_probability"
    ]
    assert len(pred) == 2357 and pred["customer_id"].is_unique
    assert pred[["probability_alive", "churn_probability"]].stack().between(0, 1).all()
    assert (pred["expected_value"] > 0).all()

    past = cdnow_sample[cdnow_sample["timestamp"] < CALIBRATION_CUTOFF]
    again = ClassicCLV(time_unit_days=7.0).fit(past, CALIBRATION_CUTOFF)
    assert again.bgnbd_.params_ == model.bgnbd_.params_
    pd.testing.assert_frame_equal(again.predict(past, CALIBRATION_CUTOFF, 273), pred)
    with pytest.raises(ValueError, match="before the fit cutoff"):
        model.predict(cdnow_sample, CALIBRATION_CUTOFF - pd.Timedelta(days=1), 273)


def test_classic_clv_on_cdnow_master_matches_lifetimes_reference(cdnow_master: pd.DataFrame) -> None:
    cutoff, horizon = pd.Timestamp("1998-01-01"), 181
    pred = ClassicCLV().fit(cdnow_master, cutoff).predict(cdnow_master, cutoff, horizon)
    end = cutoff + pd.Timedelta(days=horizon)
    window = cdnow_master[(cdnow_master["timestamp"] >= cutoff) & (cdnow_master["timestamp"] < end)]
    value = window.groupby("customer_id")["amount"].sum().reindex(pred["customer_id"], fill_value=0.0)
    churned = ~pred["customer_id"].isin(window.loc[window["amount"] > 0, "customer_id"])
    values = value_report(value.to_numpy(), pred["expected_value"].to_numpy())
    # Reference (lifetimes fit, same split): Gini 0.726, Spearman 0.435, top-20% 0.725,
    # decile error 0.218, total ratio 0.96, churn AUC 0.799.
    assert values["gini"] == pytest.approx(0.726, abs=0.01)
    assert values["spearman"] == pytest.approx(0.435, abs=0.01)
    assert values["top20_capture"] == pytest.approx(0.725, abs=0.01)
    assert values["decile_error"] == pytest.approx(0.218, abs=0.02)
    assert values["total_ratio"] == pytest.approx(0.96, abs=0.02)
    churn = churn_report(churned.to_numpy(), pred["churn_probability"].to_numpy())
    assert churn["auc"] == pytest.approx(0.799, abs=0.02)


def test_paper_form_of_expected_purchases_agrees_where_scipy_can_evaluate_it() -> None:
    """For ordinary customers the Pfaff-transformed evaluation equals FHL eq. 10 as printed."""
    r, alpha, a, b = FHL_PARAMS
    x, t_x, T, t = np.array([0.0, 1, 3, 10]), np.array([0.0, 2, 20, 30]), np.full(4, 38.86), 39.0
    z = t / (alpha + T + t)
    printed = ((a + b + x - 1) / (a - 1)) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x)
                                             * hyp2f1(r + x, b + x, a + b + x - 1, z))
    printed /= 1 + (x > 0) * a / (b + np.maximum(x, 1) - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x)
    fitter = BetaGeoFitter()
    fitter.params_ = FHL_PARAMS
    np.testing.assert_allclose(fitter.expected_purchases(t, x, t_x, T), printed, rtol=1e-10)
