"""tiercast cycle end to end: a run per as_of in its folder, monitoring the run before it, retraining only when
the monitor recommends it, idempotent, with the exit statuses an orchestrator acts on. The first run, which
trained the champion, is tests/app/conftest.py's; real files, store and models throughout."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from mlflow import MlflowClient
from PIL import Image

from tiercast.cli import main
from tiercast.training.config import RegistryConfig
from tiercast.training.registry import alias_set, configure_mlflow, point_alias

from ..quick_store import QUICK
from .conftest import CUTOFF, MonitoredWorld

FULL = "2025-01-01"
PARTIAL = "2024-10-01"


def cycle(world: MonitoredWorld, transactions: Path, as_of: str, runs: Path, config: Path | None = None) -> int:
    return main(["--config", str(config or world.config), "cycle", "--transactions", str(transactions),
                 "--as-of", as_of, "--dir", str(runs)])


def versions(world: MonitoredWorld) -> int:
    return len(MlflowClient(world.store).search_model_versions("name='tiercast-value'"))


def contents(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_the_first_run_trained_the_champion_and_wrote_its_files(monitored_world):
    first = monitored_world.runs / CUTOFF
    record = json.loads((first / "cycle.json").read_text())
    assert record["previous"] is None and record["monitor"] is None
    assert record["training"]["promoted"] is True and (first / "training.json").exists()
    assert (first / "scores.csv").exists() and (first / "report" / "index.html").exists()
    assert not (first / "migration.csv").exists() and not (first / "monitor.json").exists()


def test_a_stable_world_keeps_the_champion_and_the_run_compares_with_the_one_before(in_world, capsys):
    before = versions(in_world)
    assert cycle(in_world, in_world.stable, FULL, in_world.runs) == 0
    run = in_world.runs / FULL
    record = json.loads((run / "cycle.json").read_text())
    assert record["previous"] == CUTOFF and record["monitor"]["retrain_recommended"] is False
    assert record["training"] is None and "no retrain: the champion is kept" in record["decisions"]
    assert versions(in_world) == before and not (run / "training.json").exists()
    assert "no retrain" in capsys.readouterr().out
    then = pd.read_csv(in_world.scores, dtype={"customer_id": str})
    now = pd.read_csv(run / "scores.csv", dtype={"customer_id": str})
    migration = pd.read_csv(run / "migration.csv", index_col=0)
    assert migration.to_numpy().sum() == len(set(then["customer_id"]) | set(now["customer_id"]))
    assert migration.loc["VIP"].sum() == (then["tier"] == "VIP").sum()  # rows: the tiers before
    assert json.loads((run / "monitor.json").read_text())["scored_as_of"] == CUTOFF
    page = (run / "report" / "index.html").read_text()
    assert "History of the runs" in page and CUTOFF in page and FULL in page and "Tier migration" in page


def test_running_a_completed_as_of_again_changes_nothing(in_world, capsys):
    run = in_world.runs / FULL
    if not (run / "cycle.json").exists():
        assert cycle(in_world, in_world.stable, FULL, in_world.runs) == 0
    files, before = contents(run), versions(in_world)
    assert cycle(in_world, in_world.stable, FULL, in_world.runs) == 0
    assert contents(run) == files and versions(in_world) == before
    assert "already complete" in capsys.readouterr().out


def test_a_second_run_while_one_holds_the_directory_stops_with_4_and_does_nothing(in_world, capsys):
    run = in_world.runs / FULL
    if not (run / "cycle.json").exists():
        assert cycle(in_world, in_world.stable, FULL, in_world.runs) == 0
    files = contents(in_world.runs)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from tiercast.outputs import holding_lock\n"
         "with holding_lock(Path(sys.argv[1]) / '.cycle.lock', 'tiercast cycle'):\n"
         "    print('held', flush=True); time.sleep(60)", str(in_world.runs)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert cycle(in_world, in_world.stable, "2024-12-01", in_world.runs) == 4
        err = capsys.readouterr().err
        assert f"pid {holder.pid}" in err and "nothing was done" in err
        assert not (in_world.runs / "2024-12-01").exists()
    finally:
        holder.kill()  # killed, not let go: the system releases the lock
        holder.wait()
    assert cycle(in_world, in_world.stable, FULL, in_world.runs) == 0
    assert "already complete" in capsys.readouterr().out
    assert {k: v for k, v in contents(in_world.runs).items() if k != ".cycle.lock"} == \
        {k: v for k, v in files.items() if k != ".cycle.lock"}


def test_bad_input_exits_2_and_leaves_no_run(in_world, capsys):
    bad = in_world.folder / "bad.csv"
    bad.write_text("customer_id,timestamp,amount\nA,2024-01-01,5\nB,not a date,3\n")
    assert cycle(in_world, bad, "2024-08-01", in_world.runs) == 2
    assert "bad.csv" in capsys.readouterr().err
    assert cycle(in_world, in_world.stable, "2020-01-01", in_world.runs) == 2
    assert not (in_world.runs / "2024-08-01").exists() and not (in_world.runs / "2020-01-01").exists()


def test_a_shifted_world_retrains_once_however_often_the_run_is_repeated(in_world, tmp_path):
    # Its own champion alias, so the shared champion stays the one trained at CUTOFF; it starts as that one,
    # which the shifted world would have trained too (the worlds agree before CUTOFF).
    alias = "shifted-champion"
    config = tmp_path / "shifted.yaml"
    config.write_text(yaml.safe_dump({**QUICK, "training": {**QUICK["training"], "registry": {"champion_alias": alias}},
                                      "service": {"model_alias": alias}}))
    configure_mlflow()
    names = RegistryConfig()
    point_alias(names, alias, {kind: v.version for kind, v in alias_set(names, "champion").items()})
    runs = tmp_path / "runs"
    shutil.copytree(in_world.runs / CUTOFF, runs / CUTOFF)
    before = versions(in_world)

    assert cycle(in_world, in_world.shifted, PARTIAL, runs, config) == 0
    run = runs / PARTIAL
    record = json.loads((run / "cycle.json").read_text())
    assert record["monitor"]["retrain_recommended"] is True and record["training"] is not None
    assert any(d.startswith("retraining: ") for d in record["decisions"])
    assert versions(in_world) == before + 1
    assert str(alias_set(names, "champion")["value"].version) == "1"  # the shared champion is untouched
    files = contents(run)

    assert cycle(in_world, in_world.shifted, PARTIAL, runs, config) == 0  # done: nothing redone
    assert contents(run) == files and versions(in_world) == before + 1
    # An attempt that stopped before its marker reuses its verdict and its training, and scores the same.
    (run / "cycle.json").unlink()
    assert cycle(in_world, in_world.shifted, PARTIAL, runs, config) == 0
    again = json.loads((run / "cycle.json").read_text())
    assert versions(in_world) == before + 1
    assert any("not trained again" in d for d in again["decisions"])
    assert (run / "scores.csv").read_bytes() == files["scores.csv"][0]


def test_the_report_of_a_cycle_shows_its_history_in_a_real_browser(in_world, headless_browser, tmp_path):
    if not (in_world.runs / FULL / "cycle.json").exists():
        assert cycle(in_world, in_world.stable, FULL, in_world.runs) == 0
    out = tmp_path / "report"
    assert main(["--config", str(in_world.config), "report", "--scores", str(in_world.runs / FULL / "scores.csv"),
                 "--history", str(in_world.runs), "--out", str(out)]) == 0
    dom = headless_browser(out / "index.html")
    headings = re.findall(r"<h[23][^>]*>(.*?)</h[23]>", dom)
    assert {"History of the runs", "Realised against promised quality", "Drift per feature"} <= set(headings)
    shares, quality, drift = re.findall(r"<table.*?</table>", dom.split("History of the runs</h2>")[1], re.S)[:3]
    assert re.findall(r"<th>(\d{4}-\d\d-\d\d)</th>", shares) == [CUTOFF, FULL]  # one row per run
    assert CUTOFF in quality and "partial" not in quality  # measured over the full window
    assert "spend" in drift or "tenure" in drift
    for source in re.findall(r'<img src="([^"]+)"', dom):
        assert (out / source).read_bytes()[:4] == b"\x89PNG"
    # The picture as drawn: charts, not a blank page, with the history chart's tier colours in it.
    shot = Image.open(headless_browser(out / "index.html", tmp_path / "page.png")).convert("RGB")
    pixels = np.asarray(shot).reshape(-1, 3)
    assert (pixels.min(axis=1) < 200).mean() > 0.05
    assert (np.abs(pixels.astype(int) - [0x1f, 0x77, 0xb4]).sum(axis=1) < 12).sum() > 1000  # matplotlib's first colour


def test_a_history_that_is_not_a_folder_exits_2(tmp_path, capsys):
    assert main(["report", "--scores", str(tmp_path / "scores.csv"), "--history", str(tmp_path / "cycles"),
                 "--out", str(tmp_path / "report")]) == 2
    assert "cycles" in capsys.readouterr().err and not (tmp_path / "report").exists()
