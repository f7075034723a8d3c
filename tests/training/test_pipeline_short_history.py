"""Training on a history too short for the requested horizon, on real CDNOW customers: the models learn the
label windows the history holds, their predictions are extended to the horizon by the classic model's
ratio, it is said plainly, both horizons are logged, and the champion gate compares like with like."""

from __future__ import annotations

import logging

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from tiercast.features.loading import InputData
from tiercast.features.spec import FeatureSpec
from tiercast.training.classic.forecast import ClassicFeatures
from tiercast.training.classic.seasonality import seasonal_clock
from tiercast.training.config import LightGBMParams, SegmentConfig, TrainingConfig, TuningConfig
from tiercast.training.pipeline import fit_models, train_and_register
from tiercast.training.policy import TierPolicy
from tiercast.training.registry import load_version
from tiercast.training.sufficiency import InsufficientData, LabelWindows

# CDNOW starts on 1997-01-01: before 1997-09-01, 4 windows 30 days apart hold label windows of 123 days.
CUTOFF = pd.Timestamp("1997-09-01")
HORIZON = 181
LABEL_DAYS = 123
QUICK = LightGBMParams(learning_rate=0.1, max_rounds=80)
CONFIG = TrainingConfig(value_model=QUICK, churn_model=QUICK, tuning=TuningConfig(trials=0), folds=2,
                        segments=SegmentConfig(k_min=3, k_max=3, sample_size=500))


@pytest.fixture(scope="module")
def data(cdnow_first) -> InputData:
    return InputData(cdnow_first(1500), None, None, [])


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def trained_and_logged(data):
    """The models fitted at the short-history cutoff, and what the training logged."""
    handler = _Messages()
    logger = logging.getLogger("tiercast.training.pipeline")
    logger.addHandler(handler)
    try:
        return fit_models(data, CUTOFF, HORIZON, CONFIG, FeatureSpec(), []), handler.messages
    finally:
        logger.removeHandler(handler)


@pytest.fixture(scope="module")
def trained(trained_and_logged):
    return trained_and_logged[0]


def test_short_history_trains_on_the_windows_it_holds_and_says_so(trained_and_logged):
    trained, messages = trained_and_logged
    assert trained.windows == LabelWindows(LABEL_DAYS, 4, 30) and trained.horizon_days == HORIZON
    assert trained.extension.label_days == LABEL_DAYS and trained.extension.horizon_days == HORIZON
    assert trained.validation["window_cutoff"].iloc[0] == CUTOFF - pd.Timedelta(days=LABEL_DAYS)
    assert trained.value.classic_.horizon_days == LABEL_DAYS  # the classic start matches the labels
    assert ("history before 1997-09-01 holds label windows of at most 123 days: models trained on 4 windows "
            "of 123 days, extended to 181 days with BG/NBD x Gamma-Gamma") in messages


def test_extended_predictions_are_the_models_times_the_classic_ratio(data, trained):
    features = trained.features_at_cutoff
    X = features[trained.builder.feature_names_]
    value, churn = trained.value.predict(X), trained.churn.predict_proba(X)
    # The classic model refitted independently at the cutoff, over each horizon.
    clock = seasonal_clock(data.transactions, CUTOFF, HORIZON)
    short = ClassicFeatures(LABEL_DAYS, clock).fit(features).transform(features)
    long = ClassicFeatures(HORIZON, clock).fit(features).transform(features)
    expected_value = value * long["bgnbd_expected_value"] / short["bgnbd_expected_value"]
    expected_churn = np.clip(churn * long["bgnbd_churn_probability"] / short["bgnbd_churn_probability"], 0, 1)
    extended_value, extended_churn = trained.extension.extend(features, value, churn)
    np.testing.assert_allclose(extended_value, expected_value, rtol=1e-9)
    np.testing.assert_allclose(extended_churn, expected_churn, rtol=1e-9)
    np.testing.assert_allclose(trained.predicted_value(features), expected_value, rtol=1e-9)
    # Longer is more value and less chance of no purchase, for every customer.
    assert (extended_value > value).all() and (extended_churn <= churn).all()
    assert (extended_value / value).max() < HORIZON / LABEL_DAYS + 1e-9


def test_nothing_at_or_after_the_cutoff_changes_the_extended_models(data, trained):
    tx = data.transactions
    future = tx.sample(300, random_state=1).assign(timestamp=CUTOFF + pd.Timedelta(days=2), amount=5e3)
    again = fit_models(InputData(pd.concat([tx, future], ignore_index=True), None, None, []), CUTOFF, HORIZON,
                       CONFIG, FeatureSpec(), [])
    assert again.windows == trained.windows
    assert np.array_equal(again.predicted_value(trained.features_at_cutoff),
                          trained.predicted_value(trained.features_at_cutoff))


def test_switched_off_it_refuses_and_says_what_would_work(data):
    refuse = CONFIG.model_copy(update={"extend_short_history": False})
    with pytest.raises(InsufficientData) as caught:
        fit_models(data, CUTOFF, HORIZON, refuse, FeatureSpec(), [])
    message = str(caught.value)
    assert "label windows of at most 123 days" in message
    assert "181-day windows: cutoffs from 1997-10-29 to 1998-07-01 (the end of the data)" in message


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    """Into a fresh store: two identical short-history trainings, then one at a cutoff with history enough
    for 181-day windows. (client, results)"""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(tmp_path_factory.mktemp("work"))
        results = [train_and_register(data, cutoff, HORIZON, CONFIG, FeatureSpec(), TierPolicy(), [], {})
                   for cutoff in (CUTOFF, CUTOFF, pd.Timestamp("1998-06-01"))]
        yield MlflowClient(uri), results
    mlflow.set_tracking_uri(None)


def test_both_horizons_are_logged_with_the_models(runs):
    client, (first, _, full) = runs
    params = client.get_run(first.run_id).data.params
    assert params["horizon_days"] == "181" and params["label_horizon_days"] == "123"
    assert params["n_windows"] == "4" and params["validation_window"] == "1997-05-01"
    assert first.quality_card["window"] == "1997-05-01 to 1997-09-01"  # the label window it was judged on
    assert client.get_run(full.run_id).data.params["label_horizon_days"] == "181"
    _, meta, _ = load_version("tiercast-value", "champion")
    assert meta["horizon_days"] == 181 and meta["label_horizon_days"] == 181


def test_the_gate_compares_only_models_of_the_same_label_windows(runs):
    _, (first, second, full) = runs
    assert first.promoted and "no champion yet" in first.decision
    # Same label windows and horizon: scored on the same window, as good, promoted.
    assert second.promoted and "at least as good" in second.decision, second.decision
    assert second.metrics == first.metrics
    # A champion of 123-day label windows and a challenger of 181-day ones predict alike but were not
    # judged alike: not comparable.
    assert full.promoted
    assert full.decision == ("the champion was trained on 123-day label windows, the challenger on 181-day ones "
                             "(both for 181 days): not comparable, promoted")
