"""The registry under faults: a real ``tiercast train`` killed with SIGKILL at the moment of promotion, and what
the scorers, the store and the next ``train`` make of what it left."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from tiercast.serving.scorer import ModelBundle, ModelsUnavailable
from tiercast.training.config import RegistryConfig
from tiercast.training.registry import SET_TAGS, alias_set, configure_mlflow

NAMES = RegistryConfig()
MODELS = {"value": NAMES.value_model, "churn": NAMES.churn_model, "segments": NAMES.segment_model}
CUTOFF = "1998-01-01"

# Runs tiercast's command line with MLflow's alias write wrapped: right after the champion alias of the
# model named in KILL_AFTER moves, the process kills itself with SIGKILL (no cleanup, no atexit, as the
# kernel's OOM killer or `kill -9` would).
KILLING_TRAIN = textwrap.dedent("""
    import os, signal, sys
    from mlflow import MlflowClient
    from tiercast.cli import main

    write = MlflowClient.set_registered_model_alias

    def write_then_die(self, name, alias, version):
        write(self, name, alias, version)
        if alias == "champion" and name == os.environ["KILL_AFTER"]:
            os.kill(os.getpid(), signal.SIGKILL)

    MlflowClient.set_registered_model_alias = write_then_die
    sys.exit(main(sys.argv[1:]))
""")


@pytest.fixture(scope="module")
def small_history(cdnow_first, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("registry") / "tx.csv"
    cdnow_first(600).to_csv(path, index=False)
    return path


def _train(history: Path, store: str, kill_after: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    args = ["train", "--transactions", str(history), "--cutoff", CUTOFF, "--horizon-days", "90", "--trials", "0"]
    if kill_after is None:
        command = [sys.executable, "-m", "tiercast.cli", *args]
    else:
        command = [sys.executable, "-c", KILLING_TRAIN, *args]
        env["KILL_AFTER"] = kill_after
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def _aliases(client: MlflowClient, alias: str = "champion") -> dict[str, str]:
    return {kind: str(client.get_model_version_by_alias(name, alias).version) for kind, name in MODELS.items()}


@pytest.fixture(scope="module")
def trained_once(small_history, tmp_path_factory) -> Path:
    """The SQLite file of a store after one ``tiercast train`` (version 1 of every model), which each test
    starting from there copies: the copies share the first run's artifacts, which they only read."""
    db = tmp_path_factory.mktemp("trained_once") / "mlflow.db"
    first = _train(small_history, f"sqlite:///{db}")
    assert first.returncode == 0, first.stderr
    return db


@pytest.fixture
def store(trained_once, tmp_path, monkeypatch) -> str:
    """A store of its own for the test, after one training."""
    shutil.copy(trained_once, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    configure_mlflow()
    return uri


@pytest.mark.parametrize("kill_after", ["value", "churn"])
def test_a_train_killed_while_promoting_leaves_one_whole_champion_and_the_next_train_repairs_it(
        small_history, store, kill_after):
    client = MlflowClient(store)
    assert _aliases(client) == {"value": "1", "churn": "1", "segments": "1"}

    killed = _train(small_history, store, kill_after=MODELS[kill_after])
    assert killed.returncode == -signal.SIGKILL
    # The kill left the aliases half-moved, as in the field: value (and maybe churn) on v2, the rest on v1.
    moved = {"value": "2", "churn": "2" if kill_after == "churn" else "1", "segments": "1"}
    assert _aliases(client) == moved
    # Every scorer still gets one training run's complete set: the one the value alias names.
    found = alias_set(NAMES, "champion")
    assert {kind: str(v.version) for kind, v in found.items()} == {"value": "2", "churn": "2", "segments": "2"}
    assert len({v.run_id for v in found.values()}) == 1
    bundle = ModelBundle.load(NAMES)
    assert {name: str(v) for name, v in bundle.versions.items()} == {name: "2" for name in MODELS.values()}
    # The killed training run is left RUNNING: nothing could mark it.
    killed_run = found["value"].run_id
    assert client.get_run(killed_run).info.status == "RUNNING"

    after = _train(small_history, store)
    assert after.returncode == 0, after.stderr
    assert client.get_run(killed_run).info.status == "FAILED"
    assert f"marked 1 run(s) left running by a training process that no longer exists as failed: {killed_run}" \
        in after.stderr
    lagging = [kind for kind, version in moved.items() if version == "1"]
    assert "repaired the 'champion' aliases of an interrupted promotion" in after.stderr
    for kind in lagging:
        assert f"{MODELS[kind]}@champion v1 -> v2" in after.stderr
    # The repaired champion (v2) met an equal challenger (v3: same data, same seed) and kept its title or
    # lost it, but whole either way.
    final = _aliases(client)
    assert len(set(final.values())) == 1 and final["value"] in ("2", "3")
    assert {v.run_id for v in alias_set(NAMES, "champion").values()} == {
        client.get_model_version(NAMES.value_model, final["value"]).run_id}


def test_untagged_aliases_of_different_runs_mean_no_models_with_the_reason(small_history, store):
    # Versions registered before sets were tagged: the scorer checks the three aliases share one run.
    assert _train(small_history, store).returncode == 0
    client = MlflowClient(store)
    assert _aliases(client) == {"value": "2", "churn": "2", "segments": "2"}
    for version in ("1", "2"):
        for tag in SET_TAGS.values():
            client.delete_model_version_tag(NAMES.value_model, version, tag)
    assert alias_set(NAMES, "champion") is not None  # one run's three aliases: still whole
    client.set_registered_model_alias(NAMES.churn_model, "champion", "1")
    with pytest.raises(ModelsUnavailable, match="the 'champion' aliases point at models of different training runs"):
        ModelBundle.load(NAMES)
