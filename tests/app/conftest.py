"""Data the command-line tests share: the first CDNOW customers as a CSV file, and a simulated world with a
champion trained on it, shared by the monitor and cycle tests (one training)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from tiercast.simulation.shift import shift_world
from tiercast.simulation.world import WorldConfig, simulate_world

from ..quick_store import run_with_quick_store

CDNOW = Path(__file__).resolve().parents[2] / "data" / "cdnow" / "CDNOW_master.txt.gz"
CUTOFF = "2024-07-01"  # the champion is trained here, and both worlds agree before it


@pytest.fixture(scope="session")
def small_cdnow(tmp_path_factory) -> Path:
    """The first 4,000 CDNOW customers: real purchase patterns, quick to train on."""
    tx = pd.read_csv(CDNOW, sep=r"\s+", dtype=str)
    tx.columns = ["customer_id", "date", "quantity", "amount"]
    tx = tx[tx["customer_id"].astype(int) <= 4000]
    out = tmp_path_factory.mktemp("data") / "cdnow_small.csv"
    pd.DataFrame({"customer_id": tx["customer_id"], "timestamp": pd.to_datetime(tx["date"]).dt.date.astype(str),
                  "amount": tx["amount"], "quantity": tx["quantity"]}).to_csv(out, index=False)
    return out


@dataclass(frozen=True)
class MonitoredWorld:
    folder: Path  # the working directory, holding the MLflow store
    stable: Path  # transactions of a world that goes on as before
    shifted: Path  # the same world, spending half per order and buying 40% less often from CUTOFF
    config: Path
    runs: Path  # a cycle directory whose first run, at CUTOFF, trained the champion and scored
    store: str

    @property
    def scores(self) -> Path:
        return self.runs / CUTOFF / "scores.csv"


@pytest.fixture(scope="session")
def monitored_world(tmp_path_factory) -> MonitoredWorld:
    folder = tmp_path_factory.mktemp("monitored")
    world = simulate_world(WorldConfig(n_customers=2000, seed=3))
    world.transactions.to_csv(folder / "stable.csv", index=False)
    shifted = shift_world(world, CUTOFF, spend_multiplier=0.5, order_keep_share=0.6, seed=1)
    shifted.transactions.to_csv(folder / "shifted.csv", index=False)
    config, store = run_with_quick_store(folder, "cycle", "--transactions", str(folder / "stable.csv"), "--as-of",
                                         CUTOFF, "--dir", str(folder / "runs"))
    return MonitoredWorld(folder, folder / "stable.csv", folder / "shifted.csv", config, folder / "runs", store)


@pytest.fixture
def in_world(monitored_world, monkeypatch) -> MonitoredWorld:
    """The monitored world's store and folder for one test. The registry too: a run of an earlier test leaves
    MLflow's registry URI set (in the process and its environment), which would win over the tracking URI."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", monitored_world.store)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", monitored_world.store)
    mlflow.set_registry_uri(monitored_world.store)
    monkeypatch.chdir(monitored_world.folder)
    yield monitored_world
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
