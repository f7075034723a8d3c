"""Real prediction servers for the HTTP tests, each started once per session as a subprocess.

- ``fallback_server``: an empty MLflow store, a bearer token and small request limits.
- ``model_server``: a store with small champion models (at most 150 trees each, no tuning) trained here
  on the first 3,000 CDNOW customers (cutoff 1998-07-01, horizon 181 days), default limits, no token;
  ``following_server`` and ``two_worker_server`` serve the same store.
- ``breakable_server`` (per test): a model server on its own copy of that store, which the test may break;
  ``broken_store_server`` (per test): a server whose store is not a database from the start.

Servers are started through ``tiercast.serving.service.run`` (what ``tiercast serve`` calls) on a free port with
``MLFLOW_TRACKING_URI`` pointing to a temporary SQLite store, and stopped with SIGTERM, which must end
them cleanly.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tiercast.serving.config import ServiceConfig, ServingSettings

ROOT = Path(__file__).resolve().parents[2]
CDNOW = ROOT / "data" / "cdnow" / "CDNOW_master.txt.gz"
CUTOFF = pd.Timestamp("1998-07-01")
HORIZON_DAYS = 181
N_CUSTOMERS = 3000
TOKEN = "test-token-0123456789"
START_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 60.0

_LAUNCH = """
import sys
from tiercast.serving.config import ServingSettings
from tiercast.serving.service import run
run(ServingSettings.model_validate_json(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
"""

_TRAIN = """
import sys
import pandas as pd
from tiercast.features.loading import InputData, load_transactions
from tiercast.features.spec import FeatureSpec
from tiercast.training.policy import TierPolicy
from tiercast.training.config import LightGBMParams, TrainingConfig, TuningConfig
from tiercast.training.pipeline import train_and_register

tx, report = load_transactions(sys.argv[1])
keep = sorted(tx["customer_id"].unique())[: int(sys.argv[2])]
tx = tx[tx["customer_id"].isin(keep)].reset_index(drop=True)
small = LightGBMParams(learning_rate=0.1, max_rounds=150)  # small, quick champions
config = TrainingConfig(tuning=TuningConfig(trials=0), value_model=small, churn_model=small)
result = train_and_register(InputData(tx, None, None, [report]), pd.Timestamp(sys.argv[3]), int(sys.argv[4]),
                            config, FeatureSpec(), TierPolicy(), [], {})
assert result.promoted, result.decision
"""


def _env(tracking_uri: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (ServiceConfig().token_env_var,)}
    env.update(MLFLOW_TRACKING_URI=tracking_uri, BENTOML_DO_NOT_TRACK="True",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])), **extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path
    tracking_uri: str
    settings: ServingSettings
    token: str | None = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def post(self, path: str, body: object, **kwargs: object) -> httpx.Response:
        headers = {**self.headers(), **kwargs.pop("headers", {})}  # type: ignore[dict-item]
        return httpx.post(self.url + path, json=body, headers=headers, timeout=120, **kwargs)  # type: ignore[arg-type]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _start(folder: Path, settings: ServingSettings, tracking_uri: str, token: str | None) -> Server:
    port = free_port()
    log_path = folder / "server.log"
    extra = {settings.service.token_env_var: token} if token else {}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", _LAUNCH, settings.model_dump_json(), "127.0.0.1", str(port)],
            cwd=folder, env=_env(tracking_uri, **extra), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", process, log_path, tracking_uri, settings, token)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()[-3000:]}")
        try:
            if httpx.get(server.url + "/readyz", timeout=5).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    _stop(server)
    raise RuntimeError(f"server not ready after {START_TIMEOUT_S:.0f} s:\n{server.log()[-3000:]}")


def _stop(server: Server) -> int | None:
    """SIGTERM to the server process; returns its exit code (None if it had to be killed)."""
    if server.process.poll() is not None:
        return server.process.returncode
    server.process.send_signal(signal.SIGTERM)
    try:
        return server.process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
        return None


def _serve(folder: Path, settings: ServingSettings, tracking_uri: str, token: str | None = None
           ) -> Iterator[Server]:
    server = _start(folder, settings, tracking_uri, token)
    yield server
    code = _stop(server)
    assert code is not None, "the server did not stop within the timeout after SIGTERM"


@pytest.fixture(scope="session")
def fallback_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("fallback-server")
    settings = ServingSettings(
        service=ServiceConfig(max_customers_per_request=20, max_transactions_per_customer=50,
                              max_request_bytes=64 * 1024),
        personal_data_columns=["name", "email", "phone", "address"])
    yield from _serve(folder, settings, f"sqlite:///{folder / 'mlflow.db'}", TOKEN)


@dataclass
class TrainedStore:
    tracking_uri: str
    transactions: pd.DataFrame


@pytest.fixture(scope="session")
def cdnow(cdnow_transactions: pd.DataFrame) -> pd.DataFrame:
    return cdnow_transactions


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory, cdnow: pd.DataFrame) -> TrainedStore:
    """Champion models trained in a subprocess, so MLflow's process-wide state here stays untouched."""
    folder = tmp_path_factory.mktemp("trained-store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    done = subprocess.run([sys.executable, "-c", _TRAIN, str(CDNOW), str(N_CUSTOMERS), str(CUTOFF.date()),
                           str(HORIZON_DAYS)], cwd=folder, env=_env(uri), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    keep = sorted(cdnow["customer_id"].unique())[:N_CUSTOMERS]
    return TrainedStore(uri, cdnow[cdnow["customer_id"].isin(keep)].reset_index(drop=True))


@pytest.fixture(scope="session")
def model_server(tmp_path_factory: pytest.TempPathFactory, trained_store: TrainedStore) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("model-server")
    # The reload test moves the alias and reloads by hand: no alias following behind its back.
    settings = ServingSettings(service=ServiceConfig(reload_interval_seconds=None))
    yield from _serve(folder, settings, trained_store.tracking_uri)


@pytest.fixture(scope="session")
def following_server(tmp_path_factory: pytest.TempPathFactory, trained_store: TrainedStore) -> Iterator[Server]:
    """A server that checks its alias every second."""
    folder = tmp_path_factory.mktemp("following-server")
    settings = ServingSettings(service=ServiceConfig(reload_interval_seconds=1.0))
    yield from _serve(folder, settings, trained_store.tracking_uri)


@pytest.fixture(scope="session")
def two_worker_server(tmp_path_factory: pytest.TempPathFactory, trained_store: TrainedStore) -> Iterator[Server]:
    """Two worker processes, reloaded by hand only."""
    folder = tmp_path_factory.mktemp("two-worker-server")
    settings = ServingSettings(service=ServiceConfig(workers=2, reload_interval_seconds=None))
    yield from _serve(folder, settings, trained_store.tracking_uri)


@pytest.fixture
def breakable_server(tmp_path: Path, trained_store: TrainedStore) -> Iterator[Server]:
    """The champion models served from a copy of the trained store (database and artifacts), reloaded by hand
    only: the test may corrupt or move the copy."""
    copy = tmp_path / "store"
    shutil.copytree(Path(trained_store.tracking_uri.removeprefix("sqlite:///")).parent, copy)
    settings = ServingSettings(service=ServiceConfig(reload_interval_seconds=None))
    yield from _serve(copy, settings, f"sqlite:///{copy / 'mlflow.db'}")


@pytest.fixture
def broken_store_server(tmp_path: Path) -> Iterator[Server]:
    """A server whose MLflow store file is not a database: it starts, and answers with the rule fallback."""
    (tmp_path / "mlflow.db").write_bytes(b"this is not an SQLite database\n" * 200)
    settings = ServingSettings(service=ServiceConfig(reload_interval_seconds=None))
    yield from _serve(tmp_path, settings, f"sqlite:///{tmp_path / 'mlflow.db'}")


def _customers(transactions: pd.DataFrame) -> list[dict[str, object]]:
    out = []
    for customer_id, rows in transactions.groupby("customer_id", sort=True):
        lines = [{"timestamp": ts.isoformat(), "amount": float(amount), "quantity": float(q)}
                 for ts, amount, q in zip(rows["timestamp"], rows["amount"], rows["quantity"])]
        out.append({"customer_id": str(customer_id), "transactions": lines})
    return out


@pytest.fixture(scope="session")
def customers_json():
    """Turns a canonical CDNOW transactions frame into the /predict ``customers`` list (id order)."""
    return _customers


@pytest.fixture(scope="session")
def chinese_server(tmp_path_factory: pytest.TempPathFactory, trained_store: TrainedStore) -> Iterator[Server]:
    """The champion models served with configs/zh.yaml's policy and language (as ``tiercast serve`` hands them)."""
    from tiercast.config import load_config

    config = load_config(ROOT / "configs" / "zh.yaml")
    folder = tmp_path_factory.mktemp("chinese-server")
    settings = ServingSettings(service=ServiceConfig(reload_interval_seconds=None), policy=config.policy,
                               features=config.features, fallback=config.fallback, language=config.language)
    yield from _serve(folder, settings, trained_store.tracking_uri)
