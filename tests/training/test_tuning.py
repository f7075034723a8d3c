"""Optuna tuning: seeded and reproducible, starts from the configured parameters, keeps the best trial's
model, and logs each trial as a nested MLflow run under the training run."""

from __future__ import annotations

import math

import mlflow
import pytest
from mlflow import MlflowClient

from tiercast.training.config import LightGBMParams, TuningConfig
from tiercast.training.tuning import SEARCH_SPACE, tune

START = LightGBMParams(learning_rate=0.05, num_leaves=31)


def fit(params: LightGBMParams) -> tuple[LightGBMParams, float]:
    """A smooth score with its best at learning_rate 0.1 and feature_fraction 0.7; the 'model' is the params."""
    return params, -(math.log10(params.learning_rate) + 1) ** 2 - (params.feature_fraction - 0.7) ** 2


def test_zero_trials_fit_the_starting_parameters_once():
    result = tune(fit, START, TuningConfig(trials=0), seed=1, name="value", metric="score")
    assert result.params == START and result.model == START and len(result.trials) == 1
    assert result.score == fit(START)[1]


def test_the_search_is_seeded_reproducible_and_starts_from_the_configuration():
    first = tune(fit, START, TuningConfig(trials=6), seed=3, name="value", metric="score")
    again = tune(fit, START, TuningConfig(trials=6), seed=3, name="value", metric="score")
    other = tune(fit, START, TuningConfig(trials=6), seed=4, name="value", metric="score")
    assert first.trials.equals(again.trials) and first.params == again.params
    assert not first.trials.iloc[1:].equals(other.trials.iloc[1:])
    start = first.trials.iloc[0]
    assert start["learning_rate"] == START.learning_rate and start["num_leaves"] == START.num_leaves
    for name, (low, high, _) in SEARCH_SPACE.items():
        assert first.trials[name].between(low, high).all(), name
    assert all(float(v).is_integer() for v in first.trials["num_leaves"])
    # The result is the best trial, with that trial's model.
    best = first.trials.loc[first.trials["score"].idxmax()]
    assert all(getattr(first.params, name) == best[name] for name in SEARCH_SPACE)
    assert first.model == first.params
    assert first.score == best["score"] >= first.trials["score"].iloc[0]


def test_each_trial_is_a_nested_run_under_the_training_run(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(uri)
    try:
        mlflow.set_experiment("tuning-test")
        with mlflow.start_run() as parent:
            result = tune(fit, START, TuningConfig(trials=3), seed=5, name="churn", metric="churn_auc")
        runs = MlflowClient(uri).search_runs([parent.info.experiment_id],
                                             filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    finally:
        mlflow.set_tracking_uri(None)
    assert sorted(r.info.run_name for r in runs) == ["churn-trial-0", "churn-trial-1", "churn-trial-2"]
    for run in runs:
        number = int(run.data.tags["trial"])
        row = result.trials.set_index("trial").loc[number]
        assert run.data.metrics["churn_auc"] == pytest.approx(row["churn_auc"])
        assert float(run.data.params["learning_rate"]) == pytest.approx(row["learning_rate"])
        assert run.data.tags["model"] == "churn"


def test_a_failed_score_never_wins():
    def nan_first(params: LightGBMParams) -> tuple[LightGBMParams, float]:
        return params, float("nan") if params == START else fit(params)[1]

    result = tune(nan_first, START, TuningConfig(trials=3), seed=2, name="value", metric="score")
    assert result.trials["score"].iloc[0] == float("-inf")
    assert result.params != START and math.isfinite(result.score)
