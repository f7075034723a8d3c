"""tiercast monitor end to end on simulated worlds: one champion trained on the history both worlds share
(tests/app/conftest.py), then monitored on a stable world and on one whose spending and rhythm change after
the training cutoff. Real CSV files, a real SQLite MLflow store, real LightGBM models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from tiercast.analysis.monitor import MonitorConfig, drift_summary
from tiercast.cli import main
from tiercast.features.builder import FeatureBuilder
from tiercast.features.loading import load_transactions, read_scores
from tiercast.training import metrics
from tiercast.training.labels import make_labels

from .conftest import CUTOFF, MonitoredWorld

FULL = "2025-01-01"  # the 180-day outcome window from CUTOFF has passed
PARTIAL = "2024-10-01"  # 92 of its 180 days have


def monitor(world: MonitoredWorld, transactions: Path, as_of: str, out: str) -> dict:
    assert main(["--config", str(world.config), "monitor", "--scores", str(world.scores), "--transactions",
                 str(transactions), "--as-of", as_of, "--out", str(world.folder / out)]) == 0
    return json.loads((world.folder / out / "monitor.json").read_text())


def test_a_stable_world_gives_no_retrain_recommendation(in_world):
    found = monitor(in_world, in_world.stable, FULL, "stable")
    assert found["retrain_recommended"] is False and found["reasons"] == []
    assert found["realized"]["horizon_complete"] is True and found["realized"]["n"] > 1000
    assert found["drift"]["available"] and len(found["drift"]["features"]) > 40
    assert len(found["drift"]["drifted"]) < MonitorConfig().drifted_features_for_retrain
    assert "No retrain needed" in found["verdict"]


def test_a_world_that_spends_less_and_buys_less_often_after_training_gives_one(in_world):
    found = monitor(in_world, in_world.shifted, FULL, "shifted")
    assert found["retrain_recommended"] is True
    moved = found["drift"]["drifted"]
    assert {"spend_180d", "trend_spend_365d"} <= set(moved)
    said = " ".join(found["reasons"])
    assert "spend_180d" in said and "predicted value was" in said  # drift and the total it overstated
    assert found["realized"]["total_ratio"] > 2  # trained on customers who spent twice as much
    assert found["drift"]["prediction"]["psi_now"] > found["drift"]["prediction"]["psi_then"]


def test_realised_metrics_are_those_of_the_scored_file_and_the_outcomes(in_world):
    for as_of, days in ((FULL, 180), (PARTIAL, 92)):
        found = monitor(in_world, in_world.stable, as_of, f"direct-{as_of}")["realized"]
        scores = read_scores(in_world.scores).set_index("customer_id")
        tx, _ = load_transactions(in_world.stable)
        outcomes = make_labels(tx, pd.Timestamp(CUTOFF), days).loc[scores.index]
        value, predicted = outcomes["value"].to_numpy(), scores["predicted_value"].to_numpy()
        assert found["n"] == len(scores) and found["elapsed_days"] == days
        assert found["norm_gini"] == pytest.approx(metrics.normalized_gini(value, predicted), abs=1e-12)
        assert found["top20_capture"] == pytest.approx(metrics.top_share_captured(value, predicted, 0.2), abs=1e-12)
        assert found["churn_auc"] == pytest.approx(
            metrics.roc_auc(outcomes["churned"].to_numpy(dtype=int), scores["churn_probability"].to_numpy()), abs=1e-12)
        assert found["total_ratio"] == pytest.approx(metrics.total_ratio(value, predicted * days / 180), abs=1e-12)
        assert found["horizon_complete"] is (days == 180)
        assert found["comparison"].startswith("partial") is (days < 180)


def test_the_monitoring_run_is_in_mlflow_with_its_json_and_chart(in_world):
    folder = in_world.folder
    found = monitor(in_world, in_world.shifted, FULL, "logged")
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    run = client.get_run(found["mlflow_run_id"])
    assert run.data.metrics["realized_norm_gini"] == pytest.approx(found["realized"]["norm_gini"])
    assert run.data.metrics["retrain_recommended"] == 1.0
    assert run.data.metrics["psi_spend_180d"] == pytest.approx(found["drift"]["features"]["spend_180d"]["psi"])
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"monitor.json", "drift.png"}
    assert client.get_experiment(run.info.experiment_id).name == "tiercast-monitoring"
    assert (folder / "logged" / "drift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input_exits_2_and_writes_nothing(in_world, capsys):
    folder = in_world.folder
    args = ["--config", str(in_world.config), "monitor", "--transactions", str(in_world.stable)]
    assert main([*args, "--scores", str(in_world.scores), "--as-of", CUTOFF, "--out", str(folder / "no")]) == 2
    assert "must come after the scored file's as_of, 2024-07-01" in capsys.readouterr().err
    read_scores(in_world.scores).drop(columns="tier").to_csv(folder / "no-tier.csv", index=False)
    assert main([*args, "--scores", str(folder / "no-tier.csv"), "--as-of", FULL, "--out", str(folder / "no")]) == 2
    err = capsys.readouterr().err
    assert "no-tier.csv" in err and "tier" in err
    assert not (folder / "no").exists()


def test_without_champion_models_monitor_exits_3(in_world, tmp_path, capsys):
    config = tmp_path / "elsewhere.yaml"
    config.write_text(yaml.safe_dump({"service": {"model_alias": "nobody"}}))  # an alias no model has
    assert main(["--config", str(config), "monitor", "--scores", str(in_world.scores), "--transactions",
                 str(in_world.stable), "--as-of", FULL, "--out", str(tmp_path / "m")]) == 3
    assert "no 'nobody' models" in capsys.readouterr().err
    assert not (tmp_path / "m" / "monitor.json").exists()


def test_models_without_a_training_reference_get_a_message_not_a_crash(in_world):
    summary = drift_summary(None, pd.DataFrame(), pd.Series([1.0]), pd.Series([2.0]), pd.Series(["VIP"]),
                            pd.Series(["growth"]), MonitorConfig(), "tiercast-value v1")
    assert not summary["available"] and "retrain to get one" in summary["message"]
    # The champion's logged metadata loses its reference, as models trained before it was stored have none.
    logged = {path: path.read_text() for path in in_world.folder.glob("mlruns/*/models/*/artifacts/MLmodel")}
    assert logged
    try:
        for path, text in logged.items():
            spec = yaml.safe_load(text)
            spec.get("metadata", {}).pop("monitoring_reference", None)
            path.write_text(yaml.safe_dump(spec))
        found = monitor(in_world, in_world.shifted, FULL, "old-models")
    finally:
        for path, text in logged.items():
            path.write_text(text)
    assert found["drift"]["available"] is False and found["drift"]["features"] == {}
    assert "trained before tiercast stored a training reference" in found["verdict"]
    assert found["drift"]["tier_shares"]["psi_now_vs_then"] > 0  # still compared from the scored files
    assert found["retrain_recommended"] is True  # the overstated total is measured all the same
    assert np.isfinite(found["realized"]["norm_gini"])


def test_nothing_at_or_after_as_of_changes_the_finding_and_the_same_inputs_give_the_same_one(in_world):
    first = monitor(in_world, in_world.stable, PARTIAL, "once")
    tx = pd.read_csv(in_world.stable, dtype={"customer_id": str})
    later = tx.sample(300, random_state=0).assign(timestamp=PARTIAL, amount=1e5)
    (in_world.folder / "later.csv").write_text(pd.concat([tx, later]).to_csv(index=False))
    again = monitor(in_world, in_world.folder / "later.csv", PARTIAL, "later")
    same = monitor(in_world, in_world.stable, PARTIAL, "twice")
    for found in (again, same):
        assert found.pop("mlflow_run_id") != first["mlflow_run_id"]
    first.pop("mlflow_run_id")
    assert again == first and same == first


def test_the_champion_carries_its_training_reference(in_world):
    from tiercast.training.registry import configure_mlflow, metadata_by_alias

    configure_mlflow()
    metadata = metadata_by_alias("tiercast-value", "champion")
    reference = metadata["monitoring_reference"]
    names = FeatureBuilder.from_dict(metadata["feature_builder"]).feature_names_
    assert sorted(reference["features"]) == sorted(names)  # every feature the models were trained on
    assert reference["customers"] > 1000 and len(reference["features"]) > 40
    assert sum(reference["tier_shares"].values()) == pytest.approx(1.0)
    for entry in [*reference["features"].values(), reference["predicted_value"]]:
        assert sum(entry["shares"]) == pytest.approx(1.0)
        assert entry["kind"] == "categorical" or len(entry["shares"]) == len(entry["edges"]) + 2
