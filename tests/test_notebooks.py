"""The analysts' notebooks run top to bottom against a store left by a demo-like training."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tiercast.cli import main

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def store(tmp_path_factory, cdnow_first) -> tuple[str, Path]:
    """A store after `tiercast train` on the first 3,000 CDNOW customers with 2 tuning trials."""
    folder = tmp_path_factory.mktemp("notebooks")
    tx = cdnow_first(3000)
    data = folder / "cdnow_3000.csv"
    tx.assign(timestamp=tx["timestamp"].dt.strftime("%Y-%m-%d")).to_csv(data, index=False)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(folder)
        assert main(["train", "--transactions", str(data), "--cutoff", "1998-07-01", "--horizon-days", "181",
                     "--trials", "2"]) == 0
        # A monitoring run for monitoring.ipynb: a scoring of April measured at July's end of the data (by
        # the champion trained at July: the notebook reads runs, it does not judge them).
        assert main(["score", "--transactions", str(data), "--as-of", "1998-04-01", "--out", "april.csv"]) == 0
        assert main(["monitor", "--scores", "april.csv", "--transactions", str(data), "--as-of", "1998-07-01",
                     "--out", "monitor"]) == 0
    return uri, folder


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"compare_runs.ipynb", "champion.ipynb", "monitoring.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, store, monkeypatch):
    uri, folder = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    tables = [o for o in outputs if "text/html" in o.get("data", {})]
    assert len(images) >= 2 and len(tables) >= 1
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    assert uri in text  # the notebook read the store it was pointed at
    if path.name == "champion.ipynb":
        assert "decile error" in text and "tiercast-value v1" in "".join(
            o.get("data", {}).get("text/markdown", "") for o in outputs)
    elif path.name == "monitoring.ipynb":
        assert "1998-07-01: The scoring was checked on 3,000 customers over the 91 of 181 days" in text
    else:
        assert "train-1998-07-01-h181" in text  # the run table lists the training run
