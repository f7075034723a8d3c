"""Time the synthetic world at scale: rows generated, seconds, rows/s and peak RSS.

Run from the repository root: ``python benchmarks/bench_simulate.py --customers 1000000``.
With ``--out DIR`` it also times writing the four files (ground truth at the default cutoff).
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from tiercast.simulation.files import write_world
from tiercast.simulation.truth import ground_truth
from tiercast.simulation.world import WorldConfig, simulate_world


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the files here and time it")
    parser.add_argument("--format", choices=["csv", "parquet"], default="parquet")
    args = parser.parse_args(argv)

    config = WorldConfig(n_customers=args.customers, seed=args.seed)
    began = time.perf_counter()
    world = simulate_world(config)
    seconds = time.perf_counter() - began
    n_tx, n_interactions = len(world.transactions), len(world.interactions)
    print(f"customers:        {args.customers:,}")
    print(f"transactions:     {n_tx:,} rows ({(world.transactions['amount'] < 0).sum():,} refunds)")
    print(f"interactions:     {n_interactions:,} rows")
    print(f"simulate:         {seconds:.1f} s, {n_tx / seconds:,.0f} transaction rows/s, "
          f"{(n_tx + n_interactions) / seconds:,.0f} rows/s in all")
    print(f"peak RSS:         {peak_rss_mb():,.0f} MB")

    cutoff, horizon = config.default_cutoff, config.default_horizon_days
    began = time.perf_counter()
    truth = ground_truth(world, cutoff, horizon)
    print(f"ground truth:     {time.perf_counter() - began:.1f} s for {len(truth):,} scored customers "
          f"at {cutoff.date()} (+{horizon} days)")
    if args.out is not None:
        began = time.perf_counter()
        paths = write_world(world, args.out, cutoff, horizon, file_format=args.format)
        size = sum(path.stat().st_size for path in paths.values()) / 2**20
        label = f"write {args.format}:"
        print(f"{label:<18}{time.perf_counter() - began:.1f} s, {size:,.0f} MB in {args.out}")
    print(f"peak RSS:         {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
