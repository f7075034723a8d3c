"""A champion trained quickly into a throwaway SQLite MLflow store, for the command-line tests that need one
to exist (not to be good): the monitor and cycle tests' world, and the database tests' world."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import yaml

from tiercast.cli import main

# No tuning and few segments: about the cheapest training the pipeline runs.
QUICK = {"training": {"tuning": {"trials": 0}, "segments": {"k_max": 4, "sample_size": 2000}}}


def run_with_quick_store(folder: Path, *argv: str) -> tuple[Path, str]:
    """``tiercast --config CONFIG *argv`` run in ``folder`` with :data:`QUICK` as ``folder/config.yaml`` and
    ``folder/mlflow.db`` as the store; returns the config file and the store's URI."""
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(QUICK))
    store = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", store)
        patch.chdir(folder)
        assert main(["--config", str(config), *argv]) == 0
    mlflow.set_tracking_uri(None)
    return config, store
