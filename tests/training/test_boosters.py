"""The value and churn models: the classic starting point, period levels, customer folds, calibration,
explanations, determinism, scikit-learn conventions, and a scaled-down version of the issue's target (beat
BG/NBD + Gamma-Gamma)."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit
from sklearn.exceptions import NotFittedError

from tiercast.features.builder import FeatureBuilder, FeatureColumns
from tiercast.simulation.world import WorldConfig, simulate_world
from tiercast.features.spec import FeatureSpec
from tiercast.training import metrics
from tiercast.training.boosters import ChurnModel, ValueModel, customer_folds
from tiercast.training.boosters.value import fit_stretch
from tiercast.training.boosters.cross_fitted import _binary_level, _log_level
from tiercast.training.classic.clv import ClassicCLV
from tiercast.training.classic.forecast import CLASSIC_COLUMNS, ClassicFeatures, add_classic_columns
from tiercast.training.config import LightGBMParams
from tiercast.training.labels import make_labels, training_examples

CUTOFF = pd.Timestamp("1998-01-01")
HORIZON = 181


@pytest.fixture(scope="module")
def folds_only(prepared):
    """The models as ``fit`` leaves them: predicting with their customer folds' boosters."""
    builder, examples, _, classic = prepared
    X = examples[builder.feature_names_ + CLASSIC_COLUMNS]
    value = ValueModel(LightGBMParams(), seed=7, classic=classic).fit(X, examples["value"].to_numpy(),
                                                                      examples["window_cutoff"])
    churn = ChurnModel(LightGBMParams(), seed=7, classic=classic).fit(X, examples["churned"].to_numpy(dtype=float),
                                                                      examples["window_cutoff"])
    return value, churn


@pytest.fixture(scope="module")
def fitted(prepared, folds_only):
    """The models as training ships them: fitted, then refitted on every customer."""
    builder, examples, _, _ = prepared
    X = examples[builder.feature_names_ + CLASSIC_COLUMNS]
    value, churn = (copy.copy(m) for m in folds_only)
    value.refit(X, examples["value"].to_numpy(), examples["window_cutoff"])
    churn.refit(X, examples["churned"].to_numpy(dtype=float), examples["window_cutoff"])
    return value, churn


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


def test_same_inputs_and_seed_give_the_same_models(prepared, folds_only):
    builder, examples, features, classic = prepared
    value, _ = folds_only
    X = examples[builder.feature_names_ + CLASSIC_COLUMNS]
    again = ValueModel(LightGBMParams(), seed=7, classic=classic).fit(X, examples["value"].to_numpy(),
                                                                      examples["window_cutoff"])
    assert np.array_equal(again.predict(features), value.predict(features))
    other = ValueModel(LightGBMParams(), seed=8, classic=classic).fit(X, examples["value"].to_numpy(),
                                                                      examples["window_cutoff"])
    assert not np.array_equal(other.predict(features), value.predict(features))


@pytest.mark.parametrize("workers", [2, 3])
def test_folds_trained_side_by_side_give_the_same_boosters(prepared, folds_only, workers):
    """The folds may train at once, each in a forked process: the same boosters, in fold order, the same
    out-of-fold predictions and the same predictions after, however many train side by side."""
    builder, examples, features, classic = prepared
    value, churn = folds_only
    X = examples[builder.feature_names_ + CLASSIC_COLUMNS]
    side_value = ValueModel(LightGBMParams(), seed=7, classic=classic, workers=workers).fit(
        X, examples["value"].to_numpy(), examples["window_cutoff"])
    side_churn = ChurnModel(LightGBMParams(), seed=7, classic=classic, workers=workers).fit(
        X, examples["churned"].to_numpy(dtype=float), examples["window_cutoff"])
    for side, alone in ((side_value.purchase_boosters_ + side_value.spend_boosters_,
                         value.purchase_boosters_ + value.spend_boosters_),
                        (side_churn.boosters_, churn.boosters_)):
        assert [b.model_to_string() for b in side] == [b.model_to_string() for b in alone]
    assert side_value.oof_prediction_.equals(value.oof_prediction_)
    assert side_churn.oof_prediction_.equals(churn.oof_prediction_)
    assert np.array_equal(side_value.predict(features), value.predict(features))
    assert np.array_equal(side_churn.predict_proba(features), churn.predict_proba(features))


def test_refitted_models_predict_with_one_booster_a_part_for_the_folds_median_rounds(prepared, folds_only, fitted):
    """``refit`` adds one booster per part, trained on every customer's earlier windows for the median of its
    folds' rounds; predictions and explanations then walk it alone, and what ``fit`` learnt stays as it was."""
    builder, examples, features, _ = prepared
    X = features[builder.feature_names_]
    for (fitted_model, refit_model), parts in zip(zip(folds_only, fitted), (
            [("purchase_boosters_", "purchase_booster_"), ("spend_boosters_", "spend_booster_")],
            [("boosters_", "booster_")]), strict=True):
        assert refit_model.oof_prediction_.equals(fitted_model.oof_prediction_)
        for folds, refit in parts:
            assert getattr(fitted_model, refit) is None  # fit alone predicts with the folds
            booster = getattr(refit_model, refit)
            median_rounds = np.median([b.best_iteration for b in getattr(refit_model, folds)])
            assert booster.current_iteration() == max(1, round(median_rounds))
        trees = sum(getattr(refit_model, refit).num_trees() for _, refit in parts)
        assert len(refit_model.path_attribution.nodes_.root) == trees
    value, churn = fitted
    inputs = churn._inputs(X)
    alone = churn._calibrate(churn.booster_.predict(inputs, raw_score=True) + churn._offset(churn._classic(inputs)))
    assert np.allclose(churn.predict_proba(X), alone, rtol=1e-12, atol=0)
    assert not np.allclose(churn.predict_proba(X), folds_only[1].predict_proba(X))
    # A model saved before refitting existed (no refitted boosters in its state) predicts with its folds.
    old = pickle.loads(pickle.dumps(value))
    del old.purchase_booster_, old.spend_booster_
    assert np.array_equal(old.predict(X), folds_only[0].predict(X))
    assert np.array_equal(old.explain(X)[1], folds_only[0].explain(X)[1])
    # The same inputs and seed give the same refitted boosters, whichever process trains them.
    examples_X = examples[builder.feature_names_ + CLASSIC_COLUMNS]
    again = pickle.loads(pickle.dumps(folds_only[0]))
    again.workers = 2
    again.refit(examples_X, examples["value"].to_numpy(), examples["window_cutoff"])
    assert again.spend_booster_.model_to_string() == value.spend_booster_.model_to_string()
    assert np.array_equal(again.predict(X), value.predict(X))


def test_too_few_customers_for_the_folds_is_a_clear_error(prepared):
    builder, examples, _, classic = prepared
    tiny = examples[examples.index.isin(examples.index.unique()[:3])]
    with pytest.raises(ValueError, match="too few customers"):
        ChurnModel(LightGBMParams(), folds=4, classic=classic).fit(tiny[builder.feature_names_ + CLASSIC_COLUMNS],
                                                                   tiny["churned"].to_numpy(dtype=float),
                                                                   tiny["window_cutoff"])


def test_beats_bgnbd_gamma_gamma_on_gini_and_churn_auc_at_the_cutoff(cdnow_4000, prepared, fitted):
    """The issue's target, scaled down: trained on data before the cutoff only, judged on what happened."""
    builder, _, features, _ = prepared
    value, churn = fitted
    labels = make_labels(cdnow_4000, CUTOFF, HORIZON).loc[features.index]
    classic = ClassicCLV().fit(cdnow_4000, CUTOFF).predict(cdnow_4000, CUTOFF, HORIZON).set_index("customer_id")
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


def test_models_pickled_apart_explain_exactly_as_before(prepared, fitted):
    # As in the registry: each model pickled on its own, each with its own copy of the classic model.
    builder, _, features, _ = prepared
    value, churn = (pickle.loads(pickle.dumps(m)) for m in fitted)
    X = features[builder.feature_names_].iloc[::7]
    assert value.classic_ is not churn.classic_
    for model, original in zip((value, churn), fitted, strict=True):
        restored, alone = model.explain(X), original.explain(X)
        assert np.array_equal(restored[0], alone[0]) and np.array_equal(restored[1], alone[1])


def test_models_follow_scikit_learn_conventions(prepared, fitted):
    builder, examples, features, classic = prepared
    value, churn = fitted
    X = features[builder.feature_names_]
    # predict predicts (the churn label), predict_proba gives the probability it is decided on.
    probability = churn.predict_proba(X)
    assert np.array_equal(churn.predict(X), (probability >= 0.5).astype(int))
    assert set(np.unique(churn.predict(X))) <= {0, 1}
    # The classic sub-model is a constructor parameter, kept as fitted state.
    assert value.get_params()["classic"] is classic and value.classic_ is classic
    for unfitted in (ValueModel(classic=classic), ChurnModel(classic=classic)):
        with pytest.raises(NotFittedError):
            unfitted.predict(X)
        with pytest.raises(NotFittedError):
            unfitted.explain(X)
    rows = examples[builder.feature_names_ + CLASSIC_COLUMNS]
    with pytest.raises(ValueError, match="needs classic"):
        ValueModel().fit(rows, examples["value"].to_numpy(), examples["window_cutoff"])
    with pytest.raises(NotFittedError):
        ChurnModel(classic=ClassicFeatures(HORIZON)).fit(rows, examples["churned"].to_numpy(dtype=float),
                                                         examples["window_cutoff"])


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
    churn = ChurnModel(quick, seed=1, folds=2, classic=ClassicFeatures(HORIZON).fit(features)).fit(
        examples[builder.feature_names_ + CLASSIC_COLUMNS], examples["churned"].to_numpy(dtype=float),
        examples["window_cutoff"])
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


def test_the_stretch_recovers_how_much_heavier_heavy_buyers_are_and_keeps_the_total():
    rng = np.random.default_rng(0)
    predicted = rng.lognormal(3.0, 1.2, 20_000)
    actual = rng.poisson(0.05 * predicted**1.4) * 10.0  # heavy buyers bring more than the prediction says
    power, scale = fit_stretch(actual, predicted)
    assert power == pytest.approx(1.4, abs=0.05)
    assert (scale * predicted**power).sum() == pytest.approx(predicted.sum())
    assert fit_stretch(np.maximum(actual, 1) * 0, predicted) == (1.0, 1.0)  # nothing bought: no stretch
    even = rng.poisson(predicted / 10) * 10.0
    assert fit_stretch(even, predicted)[0] == pytest.approx(1.0, abs=0.05)  # calibrated: left alone
