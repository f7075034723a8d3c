"""Time the loader and the `tiercast features` command, each run a process of its own from the file on disk.

    python benchmarks/bench_loading.py DIR [--runs 3] [--python PYTHON] [--all-inputs]

DIR holds a simulated world (`tiercast simulate --customers 1000000 --format parquet --out DIR`: about 10M
transaction rows). Each run is a fresh process under `/usr/bin/time -v`, so a figure includes the imports and
the read of the file, as a user's command does:
  load      `load_transactions(DIR/transactions.parquet)` alone;
  features  `tiercast features --transactions DIR/transactions.parquet --as-of ... --out ...` (with
            `--all-inputs`, the customers and interactions files too).
Prints each run's wall time and peak RSS ("Maximum resident set size"), then the median. `--python` runs another
environment's interpreter (a checkout of an earlier commit installed in its own venv) for a before/after.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

LOAD = "import sys; from tiercast.features.loading import load_transactions; load_transactions(sys.argv[1])"
CLI = "import sys; from tiercast.cli import main; sys.exit(main(sys.argv[1:]))"


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one run of ``command``."""
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True, check=True)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", done.stderr)
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    if wall is None or peak is None:
        raise RuntimeError(f"no figures from /usr/bin/time: {done.stderr[-500:]}")
    hours, minutes, seconds = wall.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds), int(peak.group(1)) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("world", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--as-of", default="2025-01-01")
    parser.add_argument("--all-inputs", action="store_true")
    parser.add_argument("--only", choices=["load", "features"])
    args = parser.parse_args()
    transactions = args.world / "transactions.parquet"
    with tempfile.TemporaryDirectory() as out:
        features = [args.python, "-c", CLI, "features", "--transactions", str(transactions), "--as-of", args.as_of,
                    "--out", str(Path(out) / "features.parquet")]
        if args.all_inputs:
            features += ["--customers", str(args.world / "customers.parquet"),
                         "--interactions", str(args.world / "interactions.parquet")]
        commands = {"load": [args.python, "-c", LOAD, str(transactions)], "features": features}
        for name, command in commands.items():
            if args.only and name != args.only:
                continue
            runs = [timed(command) for _ in range(args.runs)]
            for wall, peak in runs:
                print(f"{name}: {wall:.1f} s, peak RSS {peak:,.0f} MB", flush=True)
            print(f"{name}: median {statistics.median(w for w, _ in runs):.1f} s, "
                  f"peak RSS {statistics.median(p for _, p in runs):,.0f} MB", flush=True)


if __name__ == "__main__":
    main()
