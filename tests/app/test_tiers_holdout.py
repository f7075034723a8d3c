"""Issue 5's "done when": on a holdout, customers' mean actual next-period value falls tier by tier in the
policy's order, for the model tiers and the rule-fallback tiers alike, on CDNOW and on a simulated world;
scored files carry the contract's columns; `tiercast score` with an empty MLflow store scores everyone by
the rules."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from tiercast.cli import main
from tiercast.config import load_config
from tiercast.features.loading import InputData, load_transactions
from tiercast.simulation.world import WorldConfig, simulate_world
from tiercast.serving.scorer import ModelBundle, score
from tiercast.training.config import TrainingConfig
from tiercast.training.labels import make_labels
from tiercast.training.pipeline import fit_models
from tiercast.training.policy import TierPolicy

CUTOFF = "1998-01-01"
HORIZON = 181
CONTRACT = ["customer_id", "as_of", "predicted_value", "churn_probability", "segment", "lifecycle_stage",
            "tier", "action", "source", "reasons"]
# Small models and one k for the segments: the ordering of tiers, not the last bit of accuracy, is tested.
QUICK = {"value_model": {"max_rounds": 40}, "churn_model": {"max_rounds": 40}, "tuning": {"trials": 0},
         "folds": 2, "segments": {"k_min": 3, "k_max": 3, "sample_size": 1000}}


def mean_actual_by_tier(scores: pd.DataFrame, column: str, policy: TierPolicy) -> pd.Series:
    """Mean actual value of the customers in each value tier, in the policy's order."""
    return scores.groupby(column)["actual_value"].mean().reindex(policy.tier_order)


def assert_falls_tier_by_tier(scores: pd.DataFrame, policy: TierPolicy) -> None:
    for column in ("tier", "value_tier"):
        means = mean_actual_by_tier(scores, column, policy)
        assert means.notna().all(), f"an empty {column}: {means.to_dict()}"
        assert means.is_monotonic_decreasing and means.is_unique, f"{column}: {means.round(2).to_dict()}"


@pytest.fixture(scope="module")
def cdnow_subset(tmp_path_factory, cdnow_first) -> Path:
    """The first 2,000 CDNOW customers as a contract CSV (ids keep their leading zeros)."""
    tx = cdnow_first(2000)
    path = tmp_path_factory.mktemp("cdnow") / "cdnow_2000.csv"
    tx.assign(timestamp=tx["timestamp"].dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    return path


@pytest.fixture
def empty_store(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)


def _with_actuals(scores: pd.DataFrame, transactions: pd.DataFrame) -> pd.DataFrame:
    labels = make_labels(transactions, pd.Timestamp(CUTOFF), HORIZON).rename(columns={"value": "actual_value"})
    return scores.join(labels, on="customer_id")


def test_rule_tiers_fall_on_a_cdnow_holdout_scored_with_an_empty_store(cdnow_subset, tmp_path, empty_store):
    out = tmp_path / "scores.csv"
    config = tmp_path / "config.yaml"
    config.write_text("fallback:\n  allow_in_batch: true\n")
    assert main(["--config", str(config), "score", "--transactions", str(cdnow_subset), "--as-of", CUTOFF,
                 "--out", str(out)]) == 0
    scores = pd.read_csv(out, dtype={"customer_id": str})
    assert set(CONTRACT) <= set(scores.columns) and set(scores["source"]) == {"fallback"}
    tx, _ = load_transactions(cdnow_subset)
    assert len(scores) == tx.loc[tx["timestamp"] < CUTOFF, "customer_id"].nunique()
    assert_falls_tier_by_tier(_with_actuals(scores, tx), load_config().policy)


def test_model_tiers_fall_on_a_cdnow_backtest(cdnow_subset, tmp_path, empty_store):
    config = tmp_path / "quick.yaml"
    config.write_text(yaml.safe_dump({"training": QUICK}))
    out = tmp_path / "backtest.parquet"
    assert main(["--config", str(config), "backtest", "--transactions", str(cdnow_subset), "--cutoff", CUTOFF,
                 "--horizon-days", str(HORIZON), "--out", str(out)]) == 0
    scores = pd.read_parquet(out)
    assert set(CONTRACT + ["actual_value", "churned"]) <= set(scores.columns)
    assert set(scores["source"]) == {"model"}
    assert_falls_tier_by_tier(scores, load_config().policy)


def test_model_and_rule_tiers_fall_on_a_simulated_world():
    world = simulate_world(WorldConfig(n_customers=2000, seed=7))
    cutoff = world.config.default_cutoff
    config = load_config()
    training = TrainingConfig.model_validate(QUICK)
    data = InputData(world.transactions, world.customers, world.interactions, [])
    trained = fit_models(data, cutoff, HORIZON, training, config.features, config.data.personal_data_columns)
    bundle = ModelBundle.from_trained(trained, config.policy, HORIZON, {"test": "0"})
    labels = make_labels(world.transactions, cutoff, HORIZON).rename(columns={"value": "actual_value"})
    for models in (bundle, None):
        scores = score(world.transactions, cutoff, config.policy, config.features, models, config.fallback,
                       world.customers, world.interactions, HORIZON).join(labels, on="customer_id")
        if models:  # customers first seen in the last days before the cutoff get the rules, with the reason
            ruled = scores[scores["source"] == "fallback"]
            assert ruled["fallback_reason"].str.startswith("too little history").all()
            assert len(ruled) < 0.05 * len(scores)
        else:
            assert set(scores["source"]) == {"fallback"}
        assert_falls_tier_by_tier(scores, config.policy)
