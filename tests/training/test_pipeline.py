"""The training job end to end on real CDNOW customers: evaluation against the baselines, no look-ahead,
MLflow logging (nested tuning trials, charts, tables, models with metadata) and the champion gate."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from tiercast.features.loading import InputData
from tiercast.features.spec import FeatureSpec
from tiercast.training.config import SegmentConfig, TrainingConfig, TuningConfig
from tiercast.training.customer_sample import CustomerSample
from tiercast.training.evaluation import BASELINES, MODEL
from tiercast.training.pipeline import fit_models, train_and_register
from tiercast.training.policy import TierPolicy
from tiercast.training.registry import load_version

CUTOFF = pd.Timestamp("1998-07-01")
HORIZON = 181
SEGMENTS = SegmentConfig(k_max=5, sample_size=2000)
UNTUNED = TrainingConfig(tuning=TuningConfig(trials=0), segments=SEGMENTS)
CONFIG = TrainingConfig(tuning=TuningConfig(trials=2), segments=SEGMENTS)


@pytest.fixture(scope="module")
def data(cdnow_loaded, cdnow_first) -> InputData:
    """The first 3,000 CDNOW customers."""
    return InputData(cdnow_first(3000), None, None, [cdnow_loaded[1]])


@pytest.fixture(scope="module")
def trained(data):
    return fit_models(data, CUTOFF, HORIZON, UNTUNED, FeatureSpec(), [])


@pytest.fixture(scope="module")
def two_runs(data, tmp_path_factory):
    """Two identical trainings into a fresh store: (client, first result, second result)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(tmp_path_factory.mktemp("work"))
        results = [train_and_register(data, CUTOFF, HORIZON, CONFIG, FeatureSpec(), TierPolicy(),
                                      [], {"training": CONFIG.model_dump(mode="json")}) for _ in range(2)]
        yield MlflowClient(uri), *results
    mlflow.set_tracking_uri(None)


def test_validation_compares_the_models_with_every_baseline(trained):
    table = trained.comparison
    assert list(table.index) == [MODEL, *BASELINES]
    assert trained.metrics == table.loc[MODEL].to_dict()
    # Out-of-fold on the latest window, the models rank value and churn better than BG/NBD + Gamma-Gamma.
    assert table.loc[MODEL, "value_gini"] > table.loc["bgnbd_gamma_gamma", "value_gini"]
    assert table.loc[MODEL, "churn_auc"] > table.loc["bgnbd_gamma_gamma", "churn_auc"]
    assert np.isnan(table.loc["past_spend", "churn_auc"])  # a value-only baseline
    window = trained.validation["window_cutoff"].iloc[0]
    assert window == CUTOFF - pd.Timedelta(days=HORIZON)
    assert set(trained.tuning) == {"value", "churn"} and all(len(t) == 1 for t in trained.tuning.values())


def test_nothing_at_or_after_the_cutoff_changes_the_models(data, trained):
    tx = data.transactions
    future = tx.sample(500, random_state=0).assign(timestamp=CUTOFF + pd.Timedelta(days=3), amount=1e4)
    changed = InputData(pd.concat([tx, future], ignore_index=True), None, None, [])
    again = fit_models(changed, CUTOFF, HORIZON, UNTUNED, FeatureSpec(), [])
    X = trained.features_at_cutoff[trained.builder.feature_names_]
    assert np.array_equal(again.value.predict(X), trained.value.predict(X))
    assert np.array_equal(again.churn.predict_proba(X), trained.churn.predict_proba(X))
    assert again.comparison.equals(trained.comparison)


def test_above_the_customer_cap_the_models_learn_from_a_seeded_sample(data, trained):
    capped = UNTUNED.model_copy(update={"max_customers": 1500})
    sampled = fit_models(data, CUTOFF, HORIZON, capped, FeatureSpec(), [])
    n = trained.sample.customers
    assert trained.sample == CustomerSample(n, n) and sampled.sample == CustomerSample(n, 1500)
    assert len(sampled.features_at_cutoff) == 1500 and len(trained.features_at_cutoff) == n
    assert set(sampled.validation.index) <= set(sampled.features_at_cutoff.index)


def test_a_run_logs_params_metrics_charts_tables_and_nested_trials(data, two_runs):
    client, first, _ = two_runs
    run = client.get_run(first.run_id)
    params, logged = run.data.params, run.data.metrics
    assert params["cutoff"] == "1998-07-01" and params["horizon_days"] == "181" and params["trials"] == "2"
    assert {"bgnbd_r", "value_learning_rate", "churn_num_leaves", "segments_k"} <= set(params)
    assert params["customers_sampled"] == "False"
    before = data.transactions.loc[data.transactions["timestamp"] < CUTOFF, "customer_id"].nunique()
    assert params["training_customers"] == params["customers_before_cutoff"] == str(before)
    for name in ("value_gini", "value_top20_capture", "value_decile_error", "churn_auc", "churn_brier",
                 "baseline_bgnbd_gamma_gamma_value_gini", "baseline_recency_rule_churn_auc",
                 "gate_challenger_value_gini"):
        assert np.isfinite(logged[name]), name
    artifacts = {a.path for a in client.list_artifacts(first.run_id)}
    assert {"gain_chart.png", "calibration_chart.png", "decile_table.csv", "comparison.csv", "comparison.md",
            "feature_importance.csv", "segment_profiles.csv", "rfm_segments.csv", "tuning_value.csv",
            "tuning_churn.csv", "champion_decision.json", "quality_card.json", "data_quality.json",
            "config.json"} <= artifacts
    png = Path(client.download_artifacts(first.run_id, "gain_chart.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    trials = client.search_runs([run.info.experiment_id],
                                filter_string=f"tags.mlflow.parentRunId = '{first.run_id}'")
    assert sorted(t.data.tags["model"] for t in trials) == ["churn", "churn", "value", "value"]
    assert all("value_gini" in t.data.metrics or "churn_auc" in t.data.metrics for t in trials)


def test_registered_models_carry_their_feature_spec_and_predict_as_trained(data, two_runs):
    client, first, _ = two_runs
    value, meta, version = load_version("tiercast-value", "challenger")
    assert {"feature_builder", "tier_thresholds", "horizon_days"} <= set(meta) and meta["horizon_days"] == HORIZON
    card = meta["quality_card"]  # the plain-words quality card travels with the models
    assert card["value_top_capture"] == pytest.approx(first.metrics["value_top20_capture"])
    assert card["grade"] in "ABCD" and card["window"] == "1998-01-01 to 1998-07-01" and card["summary"]
    churn, _, _ = load_version("tiercast-churn", "champion")
    segments, _, _ = load_version("tiercast-segments", "champion")
    from tiercast.features.builder import FeatureBuilder

    builder = FeatureBuilder.from_dict(meta["feature_builder"])
    X = builder.transform(data.transactions, CUTOFF)[builder.feature_names_]
    assert (value.predict(X) >= 0).all() and np.all((churn.predict_proba(X) >= 0) & (churn.predict_proba(X) <= 1))
    assert set(segments.predict(X)) <= set(segments.names_)
    assert len(meta["tier_thresholds"]) == len(TierPolicy().value_tiers) - 1


def test_an_identical_retrain_is_as_good_promoted_and_keeps_segment_names(two_runs):
    client, first, second = two_runs
    assert first.promoted and "no champion yet" in first.decision
    assert second.promoted and "at least as good" in second.decision, second.decision
    assert second.metrics == first.metrics  # same inputs and seed, same numbers
    for name in ("tiercast-value", "tiercast-churn", "tiercast-segments"):
        assert client.get_model_version_by_alias(name, "champion").version == second.versions[name.split("-")[1]]
    logged = client.get_run(second.run_id).data
    assert logged.metrics["gate_champion_value_gini"] == logged.metrics["gate_challenger_value_gini"]
    assert logged.tags["promoted"] == "True"
    first_names = load_version("tiercast-segments", "challenger")[0].names_
    profiles = client.download_artifacts(first.run_id, "segment_profiles.csv")
    assert list(pd.read_csv(profiles)["segment"]) == first_names
