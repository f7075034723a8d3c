"""The local engine's buckets: ``tiercast features`` and ``tiercast score`` end to end, before and after.

    python benchmarks/bench_engine.py WORLD [--runs 3] [--as-of 2025-01-02] [--commands features score]
                                            [--bucket-customers 25000] [--workers N]

WORLD is a folder written by ``tiercast simulate --format parquet`` (transactions, customers, interactions).
Each command runs as a subprocess from the files on disk, once per run and engine setting:
  before: one bucket in one process (``engine: {bucket_customers: <huge>, workers: 1}``), as before buckets;
  after:  buckets of ``--bucket-customers`` on ``--workers`` processes (default: every core).
``score`` needs champion models in the MLflow store that ``MLFLOW_TRACKING_URI`` names (train some first).
Printed per run: wall time; the peak memory of the whole process tree (the sum of its processes' PSS,
sampled every 0.1 s: forked workers share the parent's pages, PSS counts each shared page once); and the
peak beyond the loaded inputs (after the last "rows read" log line: the peak less the least before it,
the loaded inputs with the loader's temporaries freed).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

TIERCAST = [sys.executable, "-m", "tiercast.cli"]


def _tree(pid: int) -> list[int]:
    found = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
            for child in children:
                found += _tree(int(child))
    except OSError:
        pass
    return found


def _tree_pss_mb(pid: int) -> float:
    total = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def run(command: list[str]) -> dict[str, float]:
    """Wall seconds, peak tree PSS and the peak beyond the loaded inputs (MB) of one command."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    loaded_at: list[float] = []
    errors: list[str] = []

    def read_log() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            errors.append(line)
            if "rows read" in line:
                loaded_at.append(time.perf_counter())

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    samples: list[tuple[float, float]] = []
    while proc.poll() is None:
        samples.append((time.perf_counter(), _tree_pss_mb(proc.pid)))
        time.sleep(0.1)
    reader.join()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}:\n{''.join(errors[-20:])}")
    # The inputs loaded: the least the tree holds once the loader has said its last word (its temporaries
    # freed, the work not yet grown).
    loaded = max(loaded_at) if loaded_at else started
    after = [m for t, m in samples if t > loaded]
    peak = after.index(max(after)) if after else 0
    return {"wall_s": wall, "peak_mb": max(m for _, m in samples),
            "beyond_loaded_mb": (after[peak] - min(after[:peak + 1])) if after else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("world", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--as-of", default="2025-01-02")
    parser.add_argument("--commands", nargs="+", default=["features", "score"])
    parser.add_argument("--bucket-customers", type=int, default=25_000)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    settings = {"before": {"bucket_customers": 10**12, "workers": 1},
                "after": {"bucket_customers": args.bucket_customers, "workers": args.workers}}
    inputs = [f"--{kind}" for kind in ("transactions", "customers", "interactions")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, engine in settings.items():
            (folder / f"{name}.yaml").write_text(yaml.safe_dump({"engine": engine}))
        for command in args.commands:
            for run_number in range(args.runs):
                for name in settings:  # before and after alternate, so both see the same load on the machine
                    out = folder / f"{command}-{name}-{run_number}.parquet"
                    files = [x for flag in inputs for x in (flag, str(args.world / f"{flag[2:]}.parquet"))]
                    figures = run([*TIERCAST, "--config", str(folder / f"{name}.yaml"), command, *files,
                                   "--as-of", args.as_of, "--out", str(out)])
                    print(f"{command:9s} {name:6s} run {run_number + 1}: {figures['wall_s']:6.1f} s, peak "
                          f"{figures['peak_mb']:6.0f} MB, beyond the loaded inputs "
                          f"{figures['beyond_loaded_mb']:6.0f} MB", flush=True)


if __name__ == "__main__":
    main()
