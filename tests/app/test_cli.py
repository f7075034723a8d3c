"""The tiercast command line end to end: real files, a real SQLite MLflow store, real LightGBM models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from tiercast.cli import main

SCORE_COLUMNS = ["customer_id", "as_of", "predicted_value", "churn_probability", "segment", "lifecycle_stage",
                 "tier", "action", "source", "reasons"]


def write_config(path: Path, overrides: dict) -> Path:
    path.write_text(yaml.safe_dump(overrides))
    return path


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for command in ("demo", "train", "score", "backtest", "serve", "simulate", "features", "monitor", "cycle"):
        assert command in text


def test_bad_file_exits_2_and_writes_nothing(tmp_path, store, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,timestamp,amount\nA,2025-01-01,5\nB,not a date,3\n")
    out = tmp_path / "scores.csv"
    code = main(["score", "--transactions", str(bad), "--as-of", "2025-02-01", "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "timestamp" in err and "not a date" in err
    assert not out.exists()
    assert not list(tmp_path.glob(".*.tmp"))


_STATUS = Path("/proc/self/status")


@pytest.mark.skipif(not _STATUS.exists() or "THP_enabled" not in _STATUS.read_text(),
                    reason="the kernel does not report transparent huge pages per process (Linux 5.0 and later do)")
def test_batch_commands_run_off_transparent_huge_pages(tmp_path):
    code = ("import sys\n"
            "from tiercast.cli import main\n"
            f"main(['features', '--transactions', {str(tmp_path / 'none.csv')!r}, '--as-of', '2025-01-01',\n"
            f"      '--out', {str(tmp_path / 'features.csv')!r}])\n"
            "print([l for l in open('/proc/self/status') if l.startswith('THP_enabled')][0], end='')\n")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert shown.split() == ["THP_enabled:", "0"]


def test_bad_config_key_exits_2_naming_the_key(tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", {"training": {"tuning": {"trails": 3}}})
    assert main(["--config", str(config), "demo"]) == 2
    assert "training.tuning.trails" in capsys.readouterr().err


def test_score_without_models_stops_with_exit_3_and_writes_nothing(small_cdnow, tmp_path, store, capsys):
    out = tmp_path / "scores.csv"
    assert main(["score", "--transactions", str(small_cdnow), "--as-of", "1998-01-01", "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert "no 'champion' models" in err and "fallback.allow_in_batch: true" in err and "Nothing was written" in err
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_score_with_empty_store_uses_rules_for_everyone_when_allowed(small_cdnow, tmp_path, store, capsys):
    out = tmp_path / "scores.csv"
    config = write_config(tmp_path / "c.yaml", {"fallback": {"allow_in_batch": True}})
    assert main(["--config", str(config), "score", "--transactions", str(small_cdnow), "--as-of", "1998-01-01",
                 "--out", str(out)]) == 0
    assert "every customer was scored by the rule-based fallback" in capsys.readouterr().err
    scores = pd.read_csv(out, dtype={"customer_id": str})
    assert set(SCORE_COLUMNS) <= set(scores.columns)
    assert set(scores["source"]) == {"fallback"}
    assert scores["customer_id"].is_unique
    history = pd.read_csv(small_cdnow, dtype={"customer_id": str})
    assert len(scores) == history.loc[history["timestamp"] < "1998-01-01", "customer_id"].nunique()


def test_train_on_too_little_data_exits_2_naming_what_is_missing(small_cdnow, tmp_path, store, capsys):
    few = pd.read_csv(small_cdnow, dtype={"customer_id": str})
    few = few[few["customer_id"].astype(int) <= 150]
    path = tmp_path / "few.csv"
    few.to_csv(path, index=False)
    code = main(["train", "--transactions", str(path), "--cutoff", "1998-07-01", "--horizon-days", "181",
                 "--trials", "0"])
    assert code == 2
    err = capsys.readouterr().err
    buyers = few.loc[few["timestamp"] < "1997-10-03", "customer_id"].nunique()
    assert f"customers: found {buyers}, need at least 200" in err
    # Stopped before MLflow was touched: no experiment run, no registered model. (Both URIs named: MLflow's
    # registry URI is process-wide, and an earlier test may have pointed it at its own store.)
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    assert client.search_registered_models() == []
    assert all(not client.search_runs([e.experiment_id]) for e in client.search_experiments())


def test_train_registers_champion_and_gate_keeps_a_better_champion(small_cdnow, tmp_path, store, capsys):
    args = ["train", "--transactions", str(small_cdnow), "--cutoff", "1998-07-01", "--horizon-days", "181",
            "--trials", "0"]
    assert main(args) == 0
    client = MlflowClient(store)
    first = {name: client.get_model_version_by_alias(name, "champion").version
             for name in ("tiercast-value", "tiercast-churn", "tiercast-segments")}
    # A deliberately weak challenger (one boosting round) must not replace the champion.
    weak = write_config(tmp_path / "weak.yaml", {"training": {
        "value_model": {"max_rounds": 1}, "churn_model": {"max_rounds": 1}}})
    assert main(["--config", str(weak)] + args) == 0
    assert "kept the champion" in capsys.readouterr().out
    for name, version in first.items():
        assert client.get_model_version_by_alias(name, "champion").version == version
        assert client.get_model_version_by_alias(name, "challenger").version != version

    out = tmp_path / "scores.parquet"
    assert main(["score", "--transactions", str(small_cdnow), "--as-of", "1998-07-01", "--out", str(out)]) == 0
    scores = pd.read_parquet(out)
    assert set(SCORE_COLUMNS) <= set(scores.columns)
    assert set(scores["source"]) == {"model"}
    assert scores["churn_probability"].between(0, 1).all()
    assert (scores["predicted_value"] >= 0).all()

    # The report shows the champion's quality card, as logged with its value model.
    capsys.readouterr()
    assert main(["report", "--scores", str(out), "--out", str(tmp_path / "report")]) == 0
    card = json.loads(Path(client.download_artifacts(client.get_model_version_by_alias(
        "tiercast-value", "champion").run_id, "quality_card.json", str(tmp_path))).read_text())
    printed = capsys.readouterr().out
    assert f"Model quality: grade {card['grade']}" in printed and card["summary"][0] in printed
    page = (tmp_path / "report" / "index.html").read_text()
    assert f"Grade {card['grade']}" in page and "tiercast-value@champion" in page

    # The champion's artifacts unreadable (here its churn model's pickle gone; as root a permission error
    # cannot be made): a batch job says so and stops, or, when allowed, says loudly that it used the rules.
    churn = client.get_model_version_by_alias("tiercast-churn", "champion")
    removed = [p for p in tmp_path.rglob("model.pkl") if churn.source.split("/")[-1] in str(p)]
    assert removed
    for path in removed:
        path.unlink()
    capsys.readouterr()
    broken_out = tmp_path / "broken.csv"
    score_args = ["score", "--transactions", str(small_cdnow), "--as-of", "1998-07-01", "--out", str(broken_out)]
    assert main(score_args) == 3
    err = capsys.readouterr().err
    assert "models 'champion' could not be loaded" in err and "Nothing was written" in err
    assert not broken_out.exists()
    allow = write_config(tmp_path / "allow.yaml", {"fallback": {"allow_in_batch": True}})
    assert main(["--config", str(allow)] + score_args) == 0
    assert "every customer was scored by the rule-based fallback" in capsys.readouterr().err
    assert set(pd.read_csv(broken_out)["source"]) == {"fallback"}


def test_demo_registers_champions_and_says_where_to_look(small_cdnow, tmp_path, store, capsys):
    out = tmp_path / "demo_scores.csv"
    config = write_config(tmp_path / "demo.yaml", {"demo": {
        "transactions": str(small_cdnow), "trials": 1, "out": str(out)}})
    assert main(["--config", str(config), "demo"]) == 0
    printed = capsys.readouterr().out
    assert str(out.resolve()) in printed and "mlflow ui" in printed and "tiercast serve" in printed
    client = MlflowClient(store)
    for name in ("tiercast-value", "tiercast-churn", "tiercast-segments"):
        assert client.get_model_version_by_alias(name, "champion").version
    scores = pd.read_csv(out, dtype={"customer_id": str})
    assert set(SCORE_COLUMNS) <= set(scores.columns)
    assert scores["customer_id"].is_unique and set(scores["source"]) == {"model"}


def test_serve_takes_its_worker_count_from_the_flag_over_the_config(tmp_path, monkeypatch):
    # The server itself is started for real in tests/serving; here only what `tiercast serve` hands to it.
    import tiercast.serving.service

    handed = []
    monkeypatch.setattr(tiercast.serving.service, "run", lambda settings, host, port: handed.append((settings, host, port)))
    config = write_config(tmp_path / "config.yaml", {"service": {"workers": 3, "port": 3100}})
    assert main(["--config", str(config), "serve"]) == 0
    assert main(["--config", str(config), "serve", "--workers", "2", "--port", "3200"]) == 0
    (first, _, first_port), (second, _, second_port) = handed
    assert (first.service.workers, first_port) == (3, 3100)
    assert (second.service.workers, second_port) == (2, 3200)
    assert second.service.reload_interval_seconds == first.service.reload_interval_seconds  # the rest kept


def test_simulate_writes_a_retail_line_item_world(tmp_path, capsys):
    out = tmp_path / "retail"
    assert main(["simulate", "--preset", "retail", "--customers", "300", "--line-items", "--no-product-id",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "invoice lines" in printed and "ground truth at 2025-09-11, horizon 90 days" in printed
    lines = pd.read_csv(out / "transactions.csv", dtype={"customer_id": str, "order_id": str})
    assert list(lines.columns) == ["customer_id", "timestamp", "amount", "order_id", "quantity", "category"]
    assert lines["order_id"].str.startswith("C").any() and lines["order_id"].nunique() < len(lines) / 5
    truth = pd.read_csv(out / "ground_truth.csv", dtype={"customer_id": str})
    assert (truth["horizon_days"] == 90).all()


def test_simulate_refuses_no_product_id_without_line_items(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["simulate", "--no-product-id", "--out", str(tmp_path / "x")])
    assert exited.value.code == 2
    assert "--no-product-id needs --line-items" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
