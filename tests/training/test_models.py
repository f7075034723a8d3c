"""The value and churn models: the classic starting point, period levels, customer folds, calibration,
explanations, determinism, and a scaled-down version of the issue's target (beat BG/NBD + Gamma-Gamma)."""

from __future__ import annotations

import pickle
from itertools import permutations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from tiercast.features.builder import FeatureBuilder, FeatureColumns
from tiercast.features.loading import load_transactions
from tiercast.features.spec import FeatureSpec
from tiercast.simulation.world import WorldConfig, simulate_world
from tiercast.training import metrics
from tiercast.training.baseline import ClassicCLV
from tiercast.training.config import LightGBMParams
from tiercast.training.labels import make_labels, training_examples
from tiercast.training.models import (
    CLASSIC_COLUMNS,
    RFM_INPUTS,
    ChurnModel,
    ClassicFeatures,
    SeasonalClock,
    SharedExplainer,
    ValueModel,
    _binary_level,
    _log_level,
    add_classic_columns,
    customer_folds,
    seasonal_clock,
    share_classic,
)

ROOT = Path(__file__).resolve().parents[2]
CUTOFF = pd.Timestamp("1998-01-01")
HORIZON = 181


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    """The first 4,000 CDNOW customers (real purchase patterns, seconds to train on)."""
    tx, _ = load_transactions(ROOT / "data" / "cdnow" / "CDNOW_master.txt.gz")
    return tx[tx["customer_id"].astype(int) <= 4000].reset_index(drop=True)


@pytest.fixture(scope="module")
def prepared(cdnow):
    """Stacked training examples with each window's classic columns, and the features at the cutoff."""
    builder = FeatureBuilder(FeatureSpec()).fit(cdnow, CUTOFF)
    examples = training_examples(cdnow, CUTOFF, HORIZON, builder, 4, 30).set_index("customer_id")
    examples = add_classic_columns(examples, examples["window_cutoff"], HORIZON)
    features = builder.transform(cdnow, CUTOFF)
    classic = ClassicFeatures(HORIZON).fit(features)
    return builder, examples, features, classic


@pytest.fixture(scope="module")
def fitted(prepared):
    builder, examples, _, classic = prepared
    X = examples[builder.feature_names_ + CLASSIC_COLUMNS]
    value = ValueModel(LightGBMParams(), seed=7).fit(X, examples["value"].to_numpy(), examples["window_cutoff"],
                                                     classic)
    churn = ChurnModel(LightGBMParams(), seed=7).fit(X, examples["churned"].to_numpy(dtype=float),
                                                     examples["window_cutoff"], classic)
    return value, churn


def test_classic_features_agree_with_the_baseline_fitted_on_transactions(cdnow, prepared):
    # Same BG/NBD model read from the builder's columns instead of the raw log: same ranking of customers.
    _, _, features, classic = prepared
    ours = classic.transform(features)
    reference = ClassicCLV().fit(cdnow, CUTOFF).predict(cdnow, CUTOFF, HORIZON).set_index("customer_id")
    reference = reference.loc[features.index]
    assert np.corrcoef(ours["bgnbd_expected_purchases"], reference["expected_purchases"])[0, 1] > 0.99
    assert np.corrcoef(ours["bgnbd_churn_probability"], reference["churn_probability"])[0, 1] > 0.99
    assert np.corrcoef(ours["bgnbd_expected_value"], reference["expected_value"])[0, 1] > 0.95
    assert ours["bgnbd_expected_value"].sum() == pytest.approx(reference["expected_value"].sum(), rel=0.05)


def test_each_window_gets_a_classic_model_fitted_on_its_own_customers(prepared):
    _, examples, _, _ = prepared
    first = examples["window_cutoff"] == examples["window_cutoff"].min()
    alone = ClassicFeatures(HORIZON).fit(examples[first]).transform(examples[first])
    assert np.allclose(alone.to_numpy(), examples.loc[first.to_numpy(), CLASSIC_COLUMNS].to_numpy())


def test_shapley_values_split_the_classic_score_exactly_over_the_rfm_inputs(prepared):
    _, _, features, classic = prepared
    rows = features.iloc[::97]

    def link(columns) -> np.ndarray:
        return np.log(np.asarray(columns["bgnbd_expected_value"]))

    phi = classic.shapley(rows[RFM_INPUTS].to_numpy(), link)
    reference = pd.DataFrame([classic.reference_], columns=RFM_INPUTS)
    expected = link(classic.transform(rows)) - link(classic.transform(reference))[0]
    assert phi.shape == (len(rows), len(RFM_INPUTS))
    assert np.allclose(phi.sum(axis=1), expected)
    # An input at the reference value gets no credit, whatever the others are.
    at_median = rows.assign(recency_days=classic.reference_[1])
    assert np.allclose(classic.shapley(at_median[RFM_INPUTS].to_numpy(), link)[:, 1], 0.0)


@pytest.mark.parametrize("seasonal", [False, True])
def test_each_coalition_is_exactly_the_forecast_of_its_mixed_rows(prepared, seasonal):
    # The coalitions share one costly term between those that mix purchase days and tenure alike; every one
    # must still be, to the bit, the forecast of its own rows (the last one: the customers' own forecast).
    _, _, features, classic = prepared
    if seasonal:  # operational time: tenure and recency run on a seasonal clock
        index = np.linspace(0.6, 1.4, 12) / np.linspace(0.6, 1.4, 12).mean()
        classic = ClassicFeatures(HORIZON, SeasonalClock(CUTOFF, index)).fit(features)
    rows = features[RFM_INPUTS].to_numpy()[::37]
    coalitions = classic.coalitions(rows)
    for k in range(16):
        mixed = np.where([(k >> i) & 1 for i in range(4)], rows, classic.reference_)
        assert np.array_equal(coalitions[k], classic.forecast(mixed)), k
    assert np.array_equal(coalitions[-1], classic.forecast(rows))


def test_shapley_values_average_each_inputs_marginal_effect_over_every_order(prepared):
    # The definition itself: the mean, over the 24 orders of adding the inputs one by one (from the
    # reference customer's values to this customer's), of what adding each input changes.
    _, _, features, classic = prepared
    rows = features[RFM_INPUTS].to_numpy()[::211]

    def link(columns) -> np.ndarray:
        return np.asarray(columns["bgnbd_churn_probability"])

    def outcome(taken: set[int]) -> np.ndarray:
        mixed = np.where([i in taken for i in range(4)], rows, classic.reference_)
        return link(classic.transform(pd.DataFrame(mixed, columns=RFM_INPUTS)))

    expected = np.zeros(rows.shape)
    for order in permutations(range(4)):
        taken: set[int] = set()
        for i in order:
            before = outcome(taken)
            taken.add(i)
            expected[:, i] += (outcome(taken) - before) / 24
    assert np.allclose(classic.shapley(rows, link), expected, atol=1e-12)


def test_operational_time_counts_each_day_at_its_months_index():
    index = np.ones(12)
    index[0], index[11] = 0.5, 2.0  # January half as busy, December twice
    clock = SeasonalClock(pd.Timestamp("2025-01-01"), index)
    assert np.allclose(clock.before(np.array([0.0, 15.5, 31.0, 61.0])), [0.0, 31.0, 62.0, 92.0])
    assert clock.after(31) == pytest.approx(15.5) and clock.after(45) == pytest.approx(15.5 + 14)
    calendar = SeasonalClock(pd.Timestamp("2025-01-01"))
    assert np.array_equal(calendar.before(np.array([3.5, 400.0])), [3.5, 400.0]) and calendar.after(10) == 10


def test_the_seasonal_clock_fixes_the_classic_forecast_right_after_a_peak():
    world = simulate_world(WorldConfig(n_customers=6000, seed=2))
    cutoff = pd.Timestamp("2025-01-02")  # two years of history, the December peak just behind
    clock = seasonal_clock(world.transactions, cutoff)
    truth = np.asarray(world.config.seasonality) / np.mean(world.config.seasonality)
    assert np.abs(clock.index - truth).max() < 0.1
    features = FeatureBuilder(FeatureSpec()).fit(world.transactions, cutoff).transform(world.transactions, cutoff)
    actual = make_labels(world.transactions, cutoff, HORIZON).loc[features.index, "value"].sum()

    def total_ratio(clock: SeasonalClock | None) -> float:
        return ClassicFeatures(HORIZON, clock).fit(features).transform(features)["bgnbd_expected_value"].sum() / actual

    assert total_ratio(None) > 1.15  # calendar time reads the peak as everyone's new normal
    assert total_ratio(clock) == pytest.approx(1.0, abs=0.07)


def test_no_seasonal_clock_without_two_years_or_without_a_season(cdnow):
    assert seasonal_clock(cdnow, CUTOFF).index is None  # one year of CDNOW history
    flat = simulate_world(WorldConfig(n_customers=6000, seed=2, seasonality=(1.0,) * 12))
    assert np.abs(seasonal_clock(flat.transactions, pd.Timestamp("2025-01-02")).index - 1).max() < 0.05


def test_period_levels_make_the_starting_score_match_the_window_total():
    rng = np.random.default_rng(0)
    offset = rng.normal(size=500)
    y = (rng.random(500) < 0.3).astype(float)
    b = _binary_level(offset, y)
    assert expit(offset + b).mean() == pytest.approx(y.mean(), abs=1e-8)
    spend = rng.gamma(2.0, 10.0, size=500)
    c = _log_level(offset, spend)
    assert np.exp(offset + c).sum() == pytest.approx(spend.sum())


def test_customer_folds_are_balanced_stable_and_seeded():
    ids = pd.Index([f"{i:05d}" for i in range(4000)])
    folds = customer_folds(ids, 4, seed=1)
    assert np.array_equal(folds, customer_folds(ids, 4, seed=1))
    assert np.array_equal(folds[::-1], customer_folds(ids[::-1], 4, seed=1))  # a customer's fold is their own
    assert np.bincount(folds, minlength=4).min() > 900
    assert (folds != customer_folds(ids, 4, seed=2)).mean() > 0.5


def test_out_of_fold_predictions_cover_the_latest_window_and_are_honest(prepared, fitted):
    _, examples, _, _ = prepared
    value, churn = fitted
    latest = examples[examples["window_cutoff"] == examples["window_cutoff"].max()]
    assert value.oof_prediction_.index.equals(latest.index) and churn.oof_prediction_.index.equals(latest.index)
    assert (value.oof_prediction_ >= 0).all() and churn.oof_prediction_.between(0, 1).all()
    # Each customer predicted by boosters that never saw them does worse than the ensemble that did,
    # but still ranks value and churn far better than chance.
    oof_gini = metrics.normalized_gini(latest["value"], value.oof_prediction_)
    in_sample = metrics.normalized_gini(latest["value"], value.predict(latest))
    assert 0.4 < oof_gini <= in_sample
    assert metrics.roc_auc(latest["churned"].astype(int), churn.oof_prediction_) > 0.65
    assert len(value.best_iterations_) == 8 and len(churn.best_iterations_) == 4


def test_churn_probabilities_are_calibrated_on_the_latest_window(prepared, fitted):
    _, examples, _, _ = prepared
    _, churn = fitted
    latest = examples[examples["window_cutoff"] == examples["window_cutoff"].max()]
    slope, _ = churn.calibration_
    assert 0.5 < slope < 2.0  # boosting starts from a calibrated model: a mild correction at most
    # Reliability on the window: predicted and observed churn agree within a few points overall.
    assert churn.oof_prediction_.mean() == pytest.approx(latest["churned"].mean(), abs=0.08)


def test_new_rows_take_their_classic_columns_from_the_training_cutoff(prepared, fitted):
    builder, _, features, classic = prepared
    value, churn = fitted
    X = features[builder.feature_names_]
    with_columns = X.join(classic.transform(X))
    assert np.allclose(value.predict(X), value.predict(with_columns))
    assert np.allclose(churn.predict_proba(X), churn.predict_proba(with_columns))


def test_contributions_explain_the_churn_log_odds_up_to_one_constant(prepared, fitted):
    builder, _, features, _ = prepared
    _, churn = fitted
    X = features[builder.feature_names_].iloc[::11]
    contributions = churn.contributions(X)
    assert list(contributions.columns) == churn.feature_names_
    residual = logit(churn.predict_proba(X)) - contributions.sum(axis=1).to_numpy()
    assert np.ptp(residual) < 1e-6


def test_value_contributions_name_rfm_inputs_as_main_drivers(prepared, fitted):
    builder, _, features, _ = prepared
    value, _ = fitted
    contributions = value.contributions(features[builder.feature_names_].iloc[::11])
    assert np.isfinite(contributions.to_numpy()).all()
    strongest = contributions.abs().mean().sort_values(ascending=False).index[:3]
    assert set(strongest) & {"recency_days", "purchase_days", "monetary_total", "tenure_days"}


def test_same_inputs_and_seed_give_the_same_models(prepared, fitted):
    builder, examples, features, classic = prepared
    value, _ = fitted
    X = examples[builder.feature_names_ + CLASSIC_COLUMNS]
    again = ValueModel(LightGBMParams(), seed=7).fit(X, examples["value"].to_numpy(), examples["window_cutoff"],
                                                     classic)
    assert np.array_equal(again.predict(features), value.predict(features))
    other = ValueModel(LightGBMParams(), seed=8).fit(X, examples["value"].to_numpy(), examples["window_cutoff"],
                                                     classic)
    assert not np.array_equal(other.predict(features), value.predict(features))


def test_too_few_customers_for_the_folds_is_a_clear_error(prepared):
    builder, examples, _, classic = prepared
    tiny = examples[examples.index.isin(examples.index.unique()[:3])]
    with pytest.raises(ValueError, match="too few customers"):
        ChurnModel(LightGBMParams(), folds=4).fit(tiny[builder.feature_names_ + CLASSIC_COLUMNS],
                                                  tiny["churned"].to_numpy(dtype=float), tiny["window_cutoff"],
                                                  classic)


def test_beats_bgnbd_gamma_gamma_on_gini_and_churn_auc_at_the_cutoff(cdnow, prepared, fitted):
    """The issue's target, scaled down: trained on data before the cutoff only, judged on what happened."""
    builder, _, features, _ = prepared
    value, churn = fitted
    labels = make_labels(cdnow, CUTOFF, HORIZON).loc[features.index]
    classic = ClassicCLV().fit(cdnow, CUTOFF).predict(cdnow, CUTOFF, HORIZON).set_index("customer_id")
    classic = classic.loc[features.index]
    X = features[builder.feature_names_]
    ours = metrics.value_report(labels["value"], value.predict(X))
    theirs = metrics.value_report(labels["value"], classic["expected_value"])
    assert ours["gini"] > theirs["gini"] + 0.01
    assert abs(ours["total_ratio"] - 1) < 0.1
    churned = labels["churned"].astype(int)
    assert metrics.roc_auc(churned, churn.predict_proba(X)) > metrics.roc_auc(churned, classic["churn_probability"])


def test_explain_predicts_as_predict_does(prepared, fitted):
    builder, _, features, _ = prepared
    value, churn = fitted
    X = features[builder.feature_names_]
    assert np.allclose(value.explain(X)[0], value.predict(X), rtol=1e-9, atol=0)
    assert np.allclose(churn.explain(X)[0], churn.predict_proba(X), rtol=1e-9, atol=0)
    # One customer alone gets exactly the numbers they get in a batch (no summation that depends on it).
    for model in (value, churn):
        batch = model.explain(X)
        for i in (0, 5, 777):
            alone = model.explain(X.iloc[[i]])
            assert np.array_equal(alone[0], batch[0][[i]]) and np.array_equal(alone[1][0], batch[1][i])


def test_models_pickled_apart_share_one_prepared_input(prepared, fitted):
    # As in the registry: each model pickled on its own, so each has its own copy of the classic model.
    builder, _, features, _ = prepared
    value, churn = (pickle.loads(pickle.dumps(m)) for m in fitted)
    X = features[builder.feature_names_].iloc[::7]
    assert value.classic_ is not churn.classic_
    inputs = value.prepare(X)
    with pytest.raises(ValueError, match="another classic model"):
        churn.explain(inputs)
    assert share_classic(value, churn)
    for model in (value, churn):
        shared, alone = model.explain(inputs), model.explain(X)
        assert np.allclose(shared[0], alone[0], rtol=1e-12) and np.allclose(shared[1], alone[1], atol=1e-12)
    other = pickle.loads(pickle.dumps(churn))
    other.classic_.mean_spend_ += 1.0  # a different classic model is never shared
    assert not share_classic(value, other)
    assert other.classic_ is not value.classic_


def test_shared_explainer_gives_each_model_exactly_its_own_explain(prepared, fitted):
    builder, _, features, _ = prepared
    value, churn = (pickle.loads(pickle.dumps(m)) for m in fitted)
    assert share_classic(value, churn)
    X = features[builder.feature_names_].iloc[::5]
    inputs = value.prepare(X)
    together = SharedExplainer([value, churn]).explain(inputs)
    for model, (prediction, contributions) in zip((value, churn), together, strict=True):
        alone = model.explain(inputs)
        assert np.array_equal(prediction, alone[0]) and np.array_equal(contributions, alone[1])
    other = pickle.loads(pickle.dumps(churn))  # its own classic model: not the inputs it reads
    with pytest.raises(ValueError, match="another classic model"):
        SharedExplainer([value, other]).explain(inputs)


def test_pickled_model_leaves_its_explanation_tables_behind_and_rebuilds_them(prepared, fitted):
    builder, _, features, _ = prepared
    value, _ = fitted
    X = features[builder.feature_names_].iloc[::13]
    before = value.contributions(X)
    assert "path_attribution" in value.__dict__
    restored = pickle.loads(pickle.dumps(value))
    assert "path_attribution" not in restored.__dict__
    assert np.allclose(restored.contributions(X).to_numpy(), before.to_numpy())


def test_categorical_profile_columns_are_read_as_lightgbm_reads_a_data_frame():
    # The models predict from a float matrix; profile columns (pandas categoricals) must get the codes
    # LightGBM gave them in training, and a level never seen there must count as missing, as it does.
    world = simulate_world(WorldConfig(n_customers=1500, seed=4))
    cutoff = world.config.default_cutoff
    builder = FeatureBuilder(FeatureSpec(), ["name", "email", "phone"]).fit(
        world.transactions, cutoff, world.customers, world.interactions)
    examples = training_examples(world.transactions, cutoff, HORIZON, builder, 3, 30, world.customers,
                                 world.interactions).set_index("customer_id")
    examples = add_classic_columns(examples, examples["window_cutoff"], HORIZON)
    features = builder.transform(world.transactions, cutoff, world.customers, world.interactions)
    categorical = [c for c in builder.feature_names_ if isinstance(features[c].dtype, pd.CategoricalDtype)]
    assert categorical, "the simulated profiles should give categorical features"
    quick = LightGBMParams(max_rounds=30, early_stopping_rounds=5)
    churn = ChurnModel(quick, seed=1, folds=2).fit(
        examples[builder.feature_names_ + CLASSIC_COLUMNS], examples["churned"].to_numpy(dtype=float),
        examples["window_cutoff"], ClassicFeatures(HORIZON).fit(features))
    X = features[builder.feature_names_].copy()
    column = categorical[0]
    X[column] = X[column].cat.add_categories(["never seen"])
    X.iloc[:20, X.columns.get_loc(column)] = "never seen"
    frame = X.join(churn.classic_.transform(X))[churn.feature_names_]
    lightgbm_reads = np.mean([b.predict(frame, raw_score=True, num_iteration=b.best_iteration)
                              for b in churn.boosters_], axis=0)
    assert np.allclose(churn._raw(churn.boosters_, churn._inputs(X)), lightgbm_reads, atol=1e-12)
    # The scorer hands the models the builder's arrays instead of its frame: the same inputs, to the bit.
    table = builder.transform_columns(world.transactions, cutoff, world.customers, world.interactions)
    table = FeatureColumns(table.ids, {**table.columns, column: X[column].array})
    assert np.array_equal(churn._inputs(table), churn._inputs(X), equal_nan=True)
    for got, expected in zip(churn.explain(table), churn.explain(X), strict=True):
        assert np.array_equal(got, expected, equal_nan=True)
    # explain walks the trees itself (tiercast.training.attribution): it must take LightGBM's paths here too.
    assert np.allclose(churn.explain(X)[0], churn.predict_proba(X), rtol=1e-9, atol=0)
