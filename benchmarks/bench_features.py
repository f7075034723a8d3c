"""Feature builder speed and memory against a DuckDB baseline on the same Parquet file.

    python benchmarks/bench_features.py [--customers 1000000] [--seed 0]

Simulates a world (tiercast.simulation.world; ~10 transactions per customer), writes its transactions to
Parquet, then in this process times
  (a) loading the Parquet file into pandas + FeatureBuilder.fit_transform, once with the string columns
      as Arrow-backed pandas strings (no Python object per row) and once as object columns (the
      canonical in-memory frame), and
  (b) one DuckDB SQL query of the core aggregates (orders, spend, first and last purchase, 90-day
      spend, distinct categories and channels per customer) over the same file, fetched into pandas
      (timed before and after (a), the faster kept: other work on the machine varies),
and prints both times, their ratio and the peak RSS of each step (the kernel's high-water mark, reset
before each step through /proc/self/clear_refs). Targets: ratio <= 3, peak < 4 GB.
"""

from __future__ import annotations

import argparse
import gc
import resource
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tiercast.features.builder import FeatureBuilder
from tiercast.features.spec import FeatureSpec
from tiercast.simulation.world import WorldConfig, simulate_world

CORE_SQL = """
SELECT customer_id,
       count(DISTINCT order_id)                                      AS orders,
       sum(amount)                                                   AS spend,
       min(timestamp) FILTER (WHERE amount > 0)                      AS first_purchase,
       max(timestamp) FILTER (WHERE amount > 0)                      AS last_purchase,
       sum(amount) FILTER (WHERE timestamp >= $as_of - INTERVAL 90 DAY) AS spend_90d,
       count(DISTINCT category)                                      AS n_categories,
       count(DISTINCT channel)                                       AS n_channels
FROM read_parquet($path)
WHERE timestamp < $as_of
GROUP BY customer_id
ORDER BY customer_id
"""


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux); False when unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    """Peak RSS since the last reset (VmHWM), or since the start when the reset is unsupported."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load(path: Path, strings: str) -> pd.DataFrame:
    """The Parquet file as a pandas frame with string columns as `strings` ("arrow" or "object")."""
    table = pq.read_table(path)
    if strings == "object":
        return table.to_pandas()
    arrow = pd.StringDtype("pyarrow")
    return table.to_pandas(types_mapper={pa.string(): arrow, pa.large_string(): arrow}.get)


def time_builder(path: Path, as_of: pd.Timestamp, strings: str) -> tuple[float, float, float, tuple[int, int]]:
    """(load seconds, load + fit_transform seconds, peak RSS MB, output shape)."""
    _reset_peak()
    t = time.perf_counter()
    transactions = load(path, strings)
    t_load = time.perf_counter() - t
    features = FeatureBuilder(FeatureSpec()).fit_transform(transactions, as_of)
    total = time.perf_counter() - t
    peak = _peak_mb()
    shape = features.shape
    del transactions, features
    gc.collect()
    return t_load, total, peak, shape


def time_duckdb(path: Path, as_of: pd.Timestamp) -> tuple[float, float, int]:
    """(seconds, peak RSS MB, customers) of the core-aggregate query, fetched into pandas."""
    _reset_peak()
    t = time.perf_counter()
    core = duckdb.sql(CORE_SQL, params={"path": str(path), "as_of": as_of.to_pydatetime()}).df()
    return time.perf_counter() - t, _peak_mb(), len(core)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    t = time.perf_counter()
    world = simulate_world(WorldConfig(n_customers=args.customers, seed=args.seed))
    as_of = world.config.default_cutoff
    n_rows = len(world.transactions)
    print(f"simulated {args.customers:,} customers, {n_rows:,} transactions in {time.perf_counter() - t:.1f} s; "
          f"as_of {as_of.date()}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "transactions.parquet"
        world.transactions.to_parquet(path, index=False)
        del world
        gc.collect()
        print(f"parquet: {path.stat().st_size / 2**20:.0f} MB")

        exact = _reset_peak()
        baseline = [time_duckdb(path, as_of)]
        runs = {strings: time_builder(path, as_of, strings) for strings in ("arrow", "object")}
        baseline.append(time_duckdb(path, as_of))  # before and after: the machine's load may change
        n_scored = runs["arrow"][3][0]
        assert all(rows == n_scored for _, _, rows in baseline), (baseline, n_scored)

    t_b = min(t for t, _, _ in baseline)
    peak_b = max(p for _, p, _ in baseline)
    note = "" if exact else " (process-wide: peak reset unsupported here)"
    print(f"(b) duckdb core aggregates: {t_b:.2f} s (best of {', '.join(f'{t:.2f}' for t, _, _ in baseline)}); "
          f"peak RSS {peak_b:,.0f} MB{note}")
    for strings, (t_load, t_a, peak_a, (rows, cols)) in runs.items():
        print(f"(a) {strings:>6} strings: load {t_load:.2f} s + fit_transform {t_a - t_load:.2f} s = {t_a:.2f} s "
              f"for {rows:,} customers x {cols} columns; peak RSS {peak_a:,.0f} MB{note}; "
              f"ratio (a)/(b) = {t_a / t_b:.2f} (target <= 3)")
    peak = max(peak_b, *(r[2] for r in runs.values()))
    print(f"peak RSS {peak / 1024:.2f} GB (target < 4)")


if __name__ == "__main__":
    main()
