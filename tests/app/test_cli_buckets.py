"""The local engine's buckets through the command line: ``features``, ``score`` and ``backtest`` run in many
buckets on two worker processes write exactly what they write in one bucket in this process."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tiercast.cli import main
from tiercast.features.builder import FeatureBuilder

AS_OF = "2025-01-02"
ONE_BUCKET = {"engine": {"bucket_customers": 10**9, "workers": 1}}
MANY_BUCKETS = {"engine": {"bucket_customers": 150, "workers": 2}}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("world") / "w"
    assert main(["simulate", "--customers", "1200", "--format", "parquet", "--out", str(folder)]) == 0
    return folder


def _inputs(world: Path) -> list[str]:
    return ["--transactions", str(world / "transactions.parquet"), "--customers", str(world / "customers.parquet"),
            "--interactions", str(world / "interactions.parquet")]


def _run(tmp_path: Path, engine: dict, args: list[str], name: str, extra: dict | None = None) -> Path:
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump({**engine, **(extra or {})}))
    out = tmp_path / f"{name}.parquet"
    assert main(["--config", str(config), *args, "--out", str(out)]) == 0
    return out


def test_features_in_buckets_are_the_features_at_once(world, tmp_path, caplog) -> None:
    args = ["features", *_inputs(world), "--as-of", AS_OF]
    at_once = _run(tmp_path, ONE_BUCKET, args, "once")
    with caplog.at_level("INFO", logger="tiercast"):
        bucketed = _run(tmp_path, MANY_BUCKETS, args, "buckets")
    assert "building features: 8/8 buckets done" in caplog.text
    pd.testing.assert_frame_equal(pd.read_parquet(bucketed), pd.read_parquet(at_once))
    reports = [json.loads(Path(f"{p}.quality.json").read_text()) for p in (at_once, bucketed)]
    assert reports[0] == reports[1] and reports[0]["customers_scored"] > 900


def test_scores_in_buckets_are_the_scores_at_once(world, tmp_path, store) -> None:
    args = ["score", *_inputs(world), "--as-of", AS_OF]
    rules = {"fallback": {"allow_in_batch": True}}  # an empty store: the rules score everyone
    at_once = pd.read_parquet(_run(tmp_path, ONE_BUCKET, args, "once", rules))
    bucketed = pd.read_parquet(_run(tmp_path, MANY_BUCKETS, args, "buckets", rules))
    pd.testing.assert_frame_equal(bucketed, at_once)
    assert at_once["customer_id"].is_monotonic_increasing and len(at_once) > 900


def test_backtest_in_buckets_trains_and_scores_as_at_once(world, tmp_path, store) -> None:
    """The training examples, the models trained on them and the scores: all equal."""
    args = ["backtest", *_inputs(world), "--cutoff", "2024-09-01", "--horizon-days", "120"]
    quick = {"training": {"tuning": {"trials": 0}}}
    at_once = pd.read_parquet(_run(tmp_path, ONE_BUCKET, args, "once", quick))
    bucketed = pd.read_parquet(_run(tmp_path, MANY_BUCKETS, args, "buckets", quick))
    pd.testing.assert_frame_equal(bucketed, at_once)
    assert (at_once["source"] == "model").mean() > 0.8 and at_once["actual_value"].notna().all()


def test_a_worker_killed_by_the_system_stops_the_command_plainly(world, tmp_path, monkeypatch, capsys) -> None:
    """A bucket worker killed as the out-of-memory killer would: exit 1, one line saying what to lower, nothing
    written (not a wait forever)."""
    parent, transform = os.getpid(), FeatureBuilder.transform

    def killed_in_a_worker(self, *args, **kwargs):
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return transform(self, *args, **kwargs)

    monkeypatch.setattr(FeatureBuilder, "transform", killed_in_a_worker)
    config = tmp_path / "buckets.yaml"
    config.write_text(yaml.safe_dump(MANY_BUCKETS))
    out = tmp_path / "out" / "features.parquet"
    code = main(["--config", str(config), "features", *_inputs(world), "--as-of", AS_OF, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "worker process was killed" in err and "engine.workers" in err
    assert not list(tmp_path.glob("out/*"))
