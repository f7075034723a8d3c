"""tiercast monitor end to end on simulated worlds: one champion trained on the history both worlds share,
then monitored on a stable world and on one whose spending and rhythm change after the training cutoff.
Real CSV files, a real SQLite MLflow store, real LightGBM models."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from tiercast.analysis.monitor import MonitorConfig, drift_summary
from tiercast.cli import main
from tiercast.features.loading import load_transactions, read_scores
from tiercast.simulation.shift import shift_world
from tiercast.simulation.world import WorldConfig, simulate_world
from tiercast.training import metrics
from tiercast.training.labels import make_labels

CUTOFF = "2024-07-01"
FULL = "2025-01-01"  # the 180-day outcome window has passed
PARTIAL = "2024-10-01"  # 92 of its 180 days have
QUICK = {"training": {"tuning": {"trials": 0}, "segments": {"k_max": 4, "sample_size": 2000}}}


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    """(folder, config): a stable and a shifted world's transactions, a champion trained at CUTOFF on the
    history they share, and its scored file at CUTOFF, in a store of their own."""
    folder = tmp_path_factory.mktemp("monitor")
    world = simulate_world(WorldConfig(n_customers=2500, seed=3))
    world.transactions.to_csv(folder / "stable.csv", index=False)
    shifted = shift_world(world, CUTOFF, spend_multiplier=0.5, order_keep_share=0.6, seed=1)
    shifted.transactions.to_csv(folder / "shifted.csv", index=False)
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(QUICK))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        patch.chdir(folder)
        common = ["--config", str(config)]
        assert main([*common, "train", "--transactions", "stable.csv", "--cutoff", CUTOFF,
                     "--horizon-days", "180"]) == 0
        assert main([*common, "score", "--transactions", "stable.csv", "--as-of", CUTOFF, "--out", "scores.csv"]) == 0
        yield folder, config
    mlflow.set_tracking_uri(None)


def monitor(champion, world: str, as_of: str, out: str) -> dict:
    folder, config = champion
    assert main(["--config", str(config), "monitor", "--scores", str(folder / "scores.csv"), "--transactions",
                 str(folder / f"{world}.csv"), "--as-of", as_of, "--out", str(folder / out)]) == 0
    return json.loads((folder / out / "monitor.json").read_text())


def test_a_stable_world_gives_no_retrain_recommendation(champion):
    found = monitor(champion, "stable", FULL, "stable")
    assert found["retrain_recommended"] is False and found["reasons"] == []
    assert found["realized"]["horizon_complete"] is True and found["realized"]["n"] > 1000
    assert found["drift"]["available"] and len(found["drift"]["features"]) > 40
    assert len(found["drift"]["drifted"]) < MonitorConfig().drifted_features_for_retrain
    assert "No retrain needed" in found["verdict"]


def test_a_world_that_spends_less_and_buys_less_often_after_training_gives_one(champion):
    found = monitor(champion, "shifted", FULL, "shifted")
    assert found["retrain_recommended"] is True
    moved = found["drift"]["drifted"]
    assert {"spend_180d", "trend_spend_365d"} <= set(moved)
    said = " ".join(found["reasons"])
    assert "spend_180d" in said and "predicted value was" in said  # drift and the total it overstated
    assert found["realized"]["total_ratio"] > 2  # trained on customers who spent twice as much
    assert found["drift"]["prediction"]["psi_now"] > found["drift"]["prediction"]["psi_then"]


def test_realised_metrics_are_those_of_the_scored_file_and_the_outcomes(champion):
    folder, _ = champion
    for as_of, days in ((FULL, 180), (PARTIAL, 92)):
        found = monitor(champion, "stable", as_of, f"direct-{as_of}")["realized"]
        scores = read_scores(folder / "scores.csv").set_index("customer_id")
        tx, _ = load_transactions(folder / "stable.csv")
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


def test_the_monitoring_run_is_in_mlflow_with_its_json_and_chart(champion):
    folder, _ = champion
    found = monitor(champion, "shifted", FULL, "logged")
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    run = client.get_run(found["mlflow_run_id"])
    assert run.data.metrics["realized_norm_gini"] == pytest.approx(found["realized"]["norm_gini"])
    assert run.data.metrics["retrain_recommended"] == 1.0
    assert run.data.metrics["psi_spend_180d"] == pytest.approx(found["drift"]["features"]["spend_180d"]["psi"])
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"monitor.json", "drift.png"}
    assert client.get_experiment(run.info.experiment_id).name == "tiercast-monitoring"
    assert (folder / "logged" / "drift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input_exits_2_and_writes_nothing(champion, capsys):
    folder, config = champion
    args = ["--config", str(config), "monitor", "--transactions", str(folder / "stable.csv")]
    assert main([*args, "--scores", str(folder / "scores.csv"), "--as-of", CUTOFF, "--out", str(folder / "no")]) == 2
    assert "must come after the scored file's as_of, 2024-07-01" in capsys.readouterr().err
    read_scores(folder / "scores.csv").drop(columns="tier").to_csv(folder / "no-tier.csv", index=False)
    assert main([*args, "--scores", str(folder / "no-tier.csv"), "--as-of", FULL, "--out", str(folder / "no")]) == 2
    err = capsys.readouterr().err
    assert "no-tier.csv" in err and "tier" in err
    assert not (folder / "no").exists()


def test_without_a_champion_monitor_exits_3(tmp_path, store, champion, capsys):
    folder, _ = champion
    assert main(["monitor", "--scores", str(folder / "scores.csv"), "--transactions", str(folder / "stable.csv"),
                 "--as-of", FULL, "--out", str(tmp_path / "m")]) == 3
    assert "no 'champion' models" in capsys.readouterr().err
    assert not (tmp_path / "m" / "monitor.json").exists()


def test_models_without_a_training_reference_get_a_message_not_a_crash(champion):
    summary = drift_summary(None, pd.DataFrame(), pd.Series([1.0]), pd.Series([2.0]), pd.Series(["VIP"]),
                            pd.Series(["growth"]), MonitorConfig(), "tiercast-value v1")
    assert not summary["available"] and "retrain to get one" in summary["message"]
    # The champion's logged metadata loses its reference, as models trained before it was stored have none.
    folder, _ = champion
    for path in folder.glob("mlruns/*/models/*/artifacts/MLmodel"):
        spec = yaml.safe_load(path.read_text())
        spec.get("metadata", {}).pop("monitoring_reference", None)
        path.write_text(yaml.safe_dump(spec))
    found = monitor(champion, "shifted", FULL, "old-models")
    assert found["drift"]["available"] is False and found["drift"]["features"] == {}
    assert "trained before tiercast stored a training reference" in found["verdict"]
    assert found["drift"]["tier_shares"]["psi_now_vs_then"] > 0  # still compared from the scored files
    assert found["retrain_recommended"] is True  # the overstated total is measured all the same
    assert np.isfinite(found["realized"]["norm_gini"])
