"""``tiercast features`` and ``tiercast score`` with ``--engine spark`` beside ``--engine local``: the commands
themselves, end to end, as subprocesses reading the files on disk.

    python benchmarks/bench_spark_engine.py [--customers 100000] [--runs 3] [--dir DIR] [--master 'local[2]']

Simulates a Parquet world (~10 transactions per customer: 100,000 customers make about a million rows, with
customers and interactions files) unless ``DIR`` holds one, trains champion models on a small world of the
same kind (3,000 customers) into a store in ``DIR``, then runs each command on each engine ``--runs`` times
and prints every wall time, the median, and the largest process's peak RSS (``/usr/bin/time -v``: for Spark
that is the driver or the JVM, whichever is larger, not their sum). Checks once that both engines wrote the
same rows.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

TIERCAST = [sys.executable, "-m", "tiercast.cli"]
AS_OF = "2025-01-01"


def _run(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one command run under /usr/bin/time -v."""
    done = subprocess.run(["/usr/bin/time", "-v", *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{done.stderr[-3000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time .*: (?:(\d+):)?(\d+):([\d.]+)", done.stderr)
    hours, minutes, seconds = (float(x) if x else 0.0 for x in wall.groups())
    rss = float(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) / 1024
    return hours * 3600 + minutes * 60 + seconds, rss


def _world(folder: Path, customers: int, seed: int) -> dict[str, Path]:
    if not (folder / "transactions.parquet").exists():
        subprocess.run([*TIERCAST, "simulate", "--customers", str(customers), "--seed", str(seed), "--format",
                        "parquet", "--out", str(folder)], check=True, capture_output=True)
    return {kind: folder / f"{kind}.parquet" for kind in ("transactions", "customers", "interactions")}


def _inputs(files: dict[str, Path]) -> list[str]:
    return [arg for kind, path in files.items() for arg in (f"--{kind}", str(path))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="folder for the worlds and the store (default: a temporary one)")
    parser.add_argument("--master", default="local[2]", help="Spark master (config engine.master)")
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="tiercast-bench-spark-"))
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}
    config = folder / "engine.yaml"
    config.write_text(f"engine:\n  master: '{args.master}'\n")
    big = _world(folder / "world", args.customers, 0)
    rows = pq_rows(big["transactions"])
    small = _world(folder / "train_world", 3_000, 1)
    if not (folder / "mlflow.db").exists():
        subprocess.run([*TIERCAST, "train", *_inputs(small), "--cutoff", AS_OF, "--horizon-days", "90", "--trials",
                        "0"], env=env, check=True, capture_output=True, cwd=folder)
    print(f"{rows:,} transaction rows, {args.customers:,} customers; {os.cpu_count()} cores (shared machine: "
          f"other work ran beside it); Spark master {args.master}")
    outputs = {}
    for command in ("features", "score"):
        for engine in ("local", "spark"):
            out = folder / (f"{command}_{engine}.parquet" if engine == "local" else f"{command}_{engine}")
            times, peaks = [], []
            for _ in range(args.runs):
                for stale in (out, Path(f"{out}.quality.json")):
                    shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
                wall, rss = _run([*TIERCAST, "--config", str(config), command, "--engine", engine, *_inputs(big),
                                  "--as-of", AS_OF, "--out", str(out)], env)
                times.append(wall)
                peaks.append(rss)
            outputs[command, engine] = out
            print(f"{command:<9} {engine:<6} median {statistics.median(times):6.1f} s  runs "
                  f"{', '.join(f'{t:.1f}' for t in times)}  peak RSS {max(peaks):,.0f} MB")
    for command in ("features", "score"):
        local = pd.read_parquet(outputs[command, "local"])
        on_spark = pd.read_parquet(outputs[command, "spark"])
        for column in local.columns[local.dtypes == "category"]:
            local[column] = local[column].astype(object).where(local[column].notna(), None)
        pd.testing.assert_frame_equal(local, on_spark)
        print(f"{command}: both engines wrote the same {len(local):,} rows")


def pq_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


if __name__ == "__main__":
    main()
