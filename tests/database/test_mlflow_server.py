"""A shared MLflow server on PostgreSQL: a real ``mlflow server`` (its store in the session's PostgreSQL, its
artifacts in a folder it serves), a ``tiercast train`` and ``score`` against it over HTTP with the data in
PostgreSQL tables, and a real ``tiercast serve`` that loads the champion from it and picks up a promotion."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import mlflow
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from tiercast.cli import main
from tiercast.simulation.world import WorldConfig, simulate_world

from .conftest import PostgresServer, free_port, ingest

CUTOFF = "2025-01-01"
AS_OF = "2025-04-01"
START_TIMEOUT_S = 180
NAMES = ("tiercast-value", "tiercast-churn", "tiercast-segments")


@dataclass(frozen=True)
class Process:
    url: str
    process: subprocess.Popen
    log: Path

    def stop(self) -> int | None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                return None
        return self.process.returncode


def _start(args: list[str], folder: Path, env: dict[str, str], ready: str, port: int) -> Process:
    log = folder / "process.log"
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    started = Process(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{args[:3]} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(started.url + ready, timeout=5).status_code == 200:
                return started
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    started.stop()
    raise RuntimeError(f"{args[:3]} not ready after {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def mlflow_server(postgres: PostgresServer, tmp_path_factory) -> Iterator[Process]:
    """``mlflow server`` with its backend store in a database of its own on the session's PostgreSQL (driver
    psycopg 3: postgresql+psycopg://), the password from PGPASSWORD, and its artifacts served from a folder."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    with postgres.connect("postgres") as connection:
        connection.execute("CREATE DATABASE mlflow")
    port = free_port()
    env = {**os.environ, "PGPASSWORD": postgres.password}
    env.pop("MLFLOW_TRACKING_URI", None)
    server = _start([sys.executable, "-m", "mlflow", "server",
                     "--backend-store-uri", postgres.url("mlflow", password=False, driver="psycopg"),
                     "--artifacts-destination", str(folder / "artifacts"), "--serve-artifacts",
                     "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], folder, env, "/health", port)
    yield server
    server.stop()


def test_train_score_and_serve_against_a_shared_mlflow_server(mlflow_server, postgres, tmp_path, monkeypatch):
    world = simulate_world(WorldConfig(n_customers=800, seed=11))
    ingest(postgres, "shared_transactions", world.transactions)
    transactions = postgres.url() + "?table=shared_transactions"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"training": {"tuning": {"trials": 1},
                                                   "segments": {"k_max": 3, "sample_size": 1000}}}))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    monkeypatch.chdir(tmp_path)
    try:
        assert main(["--config", str(config), "train", "--transactions", transactions, "--cutoff", CUTOFF,
                     "--horizon-days", "90"]) == 0
        assert main(["--config", str(config), "score", "--transactions", transactions, "--as-of", AS_OF,
                     "--out", str(tmp_path / "scores.csv")]) == 0
        client = MlflowClient()
        champion = {name: client.get_model_version_by_alias(name, "champion") for name in NAMES}
        run = client.get_run(champion["tiercast-value"].run_id)
        quality = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path / "run")))
        quality = next(quality.rglob("data_quality.json"))
    finally:
        mlflow.set_tracking_uri(None)
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert (scores["source"] == "model").mean() > 0.9
    # the artifacts went to the server's folder, through the server
    assert list((Path(mlflow_server.log).parent / "artifacts").rglob("data_quality.json"))
    recorded = json.dumps([run.data.params, run.data.tags]) + quality.read_text()
    assert "shared_transactions" in recorded and postgres.password not in recorded

    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server.url, "BENTOML_DO_NOT_TRACK": "True"}
    service = _start([sys.executable, "-m", "tiercast.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                     tmp_path, env, "/readyz", port)
    try:
        body = {"as_of": AS_OF, "customers": [{"customer_id": "C1", "transactions": [
            {"timestamp": "2025-01-10T10:00:00Z", "amount": 40.0}, {"timestamp": "2025-03-01T10:00:00Z", "amount": 25.0}]}]}
        before = httpx.post(service.url + "/predict", json=body, timeout=60).json()
        label = ", ".join(f"{name} v{champion[name].version}" for name in NAMES)
        assert before["model_version"] == label
        assert before["predictions"][0]["source"] == "model"
        # a promotion on the shared server: the same models registered again and given the alias
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
            client = MlflowClient()
            for name in NAMES:
                new = mlflow.register_model(champion[name].source, name)
                client.set_registered_model_alias(name, "champion", new.version)
            mlflow.set_tracking_uri(None)
        reloaded = httpx.post(service.url + "/reload", timeout=120).json()
        assert reloaded["changed"] is True
        after = httpx.post(service.url + "/predict", json=body, timeout=60).json()
        assert after["model_version"] == reloaded["model_version"] != label
        assert after["predictions"] == before["predictions"]
    finally:
        assert service.stop() is not None, "the service did not stop within a minute of SIGTERM"
    assert postgres.password not in service.log.read_text() + mlflow_server.log.read_text()
