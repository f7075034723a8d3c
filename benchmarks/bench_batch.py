"""The batch commands end to end, from the file on disk, against one DuckDB query over the same file.

    python benchmarks/bench_batch.py [--rows 1000000 10000000 26000000] [--runs 3] [--engines local spark]
                                     [--commands features score train backtest] [--work DIR] [--config FILE]
                                     [--line-items]

For each size, writes a simulated transactions file (Parquet; worlds of at most 1M customers are simulated
one after another with their own seeds and id prefixes and appended, so generating 26M rows stays within
memory; with ``--line-items``, the online retailer's worlds of the ``retail`` preset as invoice lines, about
160 rows a customer, 50,000 customers at a time), trains a small champion once (a 20,000-customer world of the
same kind, 2 trials) into a throwaway MLflow store, then times, in rounds:

* the reference: one DuckDB query of the core aggregates per customer (orders, spend, first and last
  purchase, 90-day spend), from the Parquet file to a Parquet file, run as its own Python process;
* ``tiercast features`` and ``tiercast score`` on each engine (``--engine spark`` runs ``local[2]``),
  each a subprocess writing Parquet; with ``--commands``, also ``tiercast train`` (registering into the
  throwaway store) and ``tiercast backtest`` at the world's cutoff and horizon (set the tuning trials with
  ``--config``: training.tuning.trials).

Each round runs the reference and then every command, so each command's ratio is to the reference of its own
round. Peak memory is the highest sum of the proportional set size (PSS) over the command's process tree (the
Spark engine's JVM included), sampled every 0.2 s in one more round after the timed ones: reading a process's
memory map slows it (about 1 s of `score`'s 13 s at 9.9M rows), so no timed run is sampled. That round also
samples the most bytes the command's temporary files held: each sampled command gets a temporary folder of its
own (``TMPDIR``), where the local engine spills the log unless the config names a spill folder (Spark keeps its
own files in its local folder, not counted). Prints min-median-max of seconds and ratio and the peaks per command
and size, and a JSON line per measurement (``--json FILE`` keeps them; the sampled round's with
``"sampled": true``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from tiercast.simulation.line_items import line_items
from tiercast.simulation.presets import preset_config
from tiercast.simulation.world import WorldConfig, simulate_world

CHUNK_CUSTOMERS = 1_000_000
ROWS_PER_CUSTOMER = 10  # about what the default world draws; sizes are approximate
LINE_ITEM_CHUNK_CUSTOMERS = 50_000
LINE_ITEMS_PER_CUSTOMER = 160  # about what the retail preset's invoice lines hold
TRAIN_CUSTOMERS = 20_000

REFERENCE = """
import sys, duckdb
duckdb.sql('''
COPY (
  SELECT customer_id,
         count(DISTINCT order_id)                                       AS orders,
         sum(amount)                                                    AS spend,
         min(timestamp) FILTER (WHERE amount > 0)                       AS first_purchase,
         max(timestamp) FILTER (WHERE amount > 0)                       AS last_purchase,
         sum(amount) FILTER (WHERE timestamp >= TIMESTAMP '{as_of}' - INTERVAL 90 DAY) AS spend_90d
  FROM read_parquet('{path}')
  WHERE timestamp < TIMESTAMP '{as_of}'
  GROUP BY customer_id
) TO '{out}' (FORMAT parquet)
''')
"""


def write_world(rows: int, path: Path, seed: int = 0, lines: bool = False) -> tuple[str, int]:
    """A transactions file of about ``rows`` rows at ``path`` (with ``lines``, invoice lines of the retail
    preset); returns (the worlds' cutoff, rows written)."""
    customers = max(1, rows // (LINE_ITEMS_PER_CUSTOMER if lines else ROWS_PER_CUSTOMER))
    writer = None
    written, chunk, cutoff = 0, 0, ""
    try:
        while customers > 0:
            n = min(customers, LINE_ITEM_CHUNK_CUSTOMERS if lines else CHUNK_CUSTOMERS)
            if lines:
                world = simulate_world(preset_config("retail", n_customers=n, seed=seed + chunk))
                frame = line_items(world)
            else:
                world = simulate_world(WorldConfig(n_customers=n, seed=seed + chunk))
                frame = world.transactions
            frame["customer_id"] = f"w{chunk}-" + frame["customer_id"].astype(str)
            if "order_id" in frame:
                frame["order_id"] = f"w{chunk}-" + frame["order_id"].astype(str)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, coerce_timestamps="us")
            writer.write_table(table.cast(writer.schema))
            written += len(frame)
            cutoff = str(world.config.default_cutoff.date())
            customers -= n
            chunk += 1
    finally:
        if writer is not None:
            writer.close()
    return cutoff, written


class TreePeak:
    """The highest PSS sum over a process and its descendants, and the most bytes the files under ``folder`` held,
    sampled in a thread."""

    def __init__(self, pid: int, every: float = 0.2, folder: Path | None = None) -> None:
        self.root = psutil.Process(pid)
        self.every = every
        self.folder = folder
        self.peak = 0
        self.disk_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> int:
        total = 0
        try:
            processes = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return 0
        for process in processes:
            try:
                total += process.memory_full_info().pss
            except psutil.Error:
                pass
        return total

    def _disk(self) -> int:
        total = 0
        for root, _, files in os.walk(self.folder) if self.folder is not None else ():
            for name in files:
                with contextlib.suppress(OSError):  # removed meanwhile
                    total += os.path.getsize(os.path.join(root, name))
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self.disk_peak = max(self.disk_peak, self._disk())
            self._stop.wait(self.every)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def timed(argv: list[str], env: dict[str, str], sampled: bool = False) -> tuple[float, float | None, float | None]:
    """(seconds, peak GB of memory and of the temporary folder when ``sampled``, else None) of one command; raises
    when it fails. A sampled command gets a temporary folder of its own (``TMPDIR``): where it spills the log,
    unless the config names a spill folder."""
    with tempfile.TemporaryDirectory(prefix="bench-tmp-") as tmp:
        env = {**env, "TMPDIR": tmp} if sampled else env
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peak = TreePeak(process.pid, folder=Path(tmp)) if sampled else None
        _, stderr = process.communicate()
        seconds = time.perf_counter() - started
        if peak is not None:
            peak.stop()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {process.returncode}:\n{stderr[-3000:]}")
    if peak is None:
        return seconds, None, None
    return seconds, peak.peak / 2**30, peak.disk_peak / 2**30


def tiercast(*args: str) -> list[str]:
    return [sys.executable, "-m", "tiercast.cli", *args]


def train_champion(work: Path, env: dict[str, str]) -> None:
    """A small champion in the throwaway store, so that ``score`` has models to load."""
    folder = work / "train"
    if (work / "mlflow.db").exists():
        return
    subprocess.run(tiercast("simulate", "--customers", str(TRAIN_CUSTOMERS), "--format", "parquet",
                            "--out", str(folder)), env=env, check=True, stdout=subprocess.DEVNULL)
    cutoff = str(WorldConfig().default_cutoff.date())
    subprocess.run(tiercast("train", "--transactions", str(folder / "transactions.parquet"), "--cutoff", cutoff,
                            "--horizon-days", "180", "--trials", "2"), env=env, check=True,
                   stdout=subprocess.DEVNULL)


def _when(command: str, cutoff: str) -> list[str]:
    """The command's point in time: the as-of of features and score, the cutoff and the world's horizon of
    train and backtest."""
    if command in ("features", "score"):
        return ["--as-of", cutoff]
    return ["--cutoff", cutoff, "--horizon-days", str(WorldConfig().default_horizon_days)]


def summary(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000, 26_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engines", nargs="+", default=["local", "spark"], choices=["local", "spark"])
    parser.add_argument("--commands", nargs="+", default=["features", "score"],
                        choices=["features", "score", "train", "backtest"])
    parser.add_argument("--work", type=Path, help="folder for the worlds and outputs (kept; default: a temporary one)")
    parser.add_argument("--json", type=Path, help="append each measurement as a JSON line to this file")
    parser.add_argument("--config", type=Path, help="a tiercast config for the commands (e.g. engine settings)")
    parser.add_argument("--line-items", action="store_true",
                        help="logs of invoice lines (the retail preset, about 160 rows a customer) instead of orders")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
        if "score" in args.commands:
            train_champion(work, env)
        results: dict[tuple[int, str], list[tuple[float, float, float]]] = {}
        for rows in args.rows:
            stem = f"{'lines' if args.line_items else 'transactions'}_{rows}"
            path, meta = work / f"{stem}.parquet", work / f"{stem}.json"
            if not meta.exists():
                started = time.perf_counter()
                cutoff, written = write_world(rows, path, lines=args.line_items)
                meta.write_text(json.dumps({"cutoff": cutoff, "rows": written}))
                print(f"wrote {written:,} rows to {path} in {time.perf_counter() - started:.0f} s", flush=True)
            info = json.loads(meta.read_text())
            cutoff, written = info["cutoff"], info["rows"]
            peaks: dict[str, float] = {}
            disks: dict[str, float] = {}
            for run in [*range(args.runs), "sampled"]:
                sampled = run == "sampled"
                out = work / "out"
                reference = REFERENCE.format(path=path, as_of=cutoff, out=work / "reference.parquet")
                ref_s, ref_gb, ref_disk = timed([sys.executable, "-c", reference], env, sampled)
                if sampled:
                    peaks["duckdb reference"] = ref_gb
                    disks["duckdb reference"] = ref_disk
                else:
                    results.setdefault((rows, "duckdb reference"), []).append((ref_s, 1.0))
                for command in args.commands:
                    for engine in args.engines:
                        target = out / f"{command}_{engine}.parquet"
                        subprocess.run(["rm", "-rf", str(target)], check=True)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        config = ["--config", str(args.config)] if args.config else []
                        argv = tiercast(*config, command, "--transactions", str(path), *_when(command, cutoff),
                                        *(["--out", str(target)] if command != "train" else []), "--engine", engine)
                        seconds, gb, disk = timed(argv, env, sampled)
                        name = f"{command} --engine {engine}"
                        if sampled:
                            peaks[name] = gb
                            disks[name] = disk
                        else:
                            results.setdefault((rows, name), []).append((seconds, seconds / ref_s))
                        record = {"rows": written, "line_items": args.line_items, "command": command,
                                  "engine": engine, "run": run, "config": str(args.config or ""),
                                  "seconds": seconds, "reference_seconds": ref_s, "peak_gb": gb,
                                  "peak_temporary_gb": disk, "sampled": sampled}
                        print(json.dumps(record), flush=True)
                        if args.json:
                            with args.json.open("a") as f:
                                f.write(json.dumps(record) + "\n")
            print(f"\n{written:,} rows ({args.runs} runs; min / median / max)")
            for (size, name), values in results.items():
                if size != rows:
                    continue
                seconds, ratios = zip(*values, strict=True)
                print(f"  {name:<28} {summary(list(seconds))} s   x{summary(list(ratios))} of DuckDB   "
                      f"peak {peaks[name]:.2f} GB, temporary files {disks[name]:.2f} GB (sampled round)", flush=True)


if __name__ == "__main__":
    main()
