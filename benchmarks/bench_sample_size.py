"""What training on a sample of the customers (``training.max_customers`` or ``training.max_rows``) costs in
prediction quality.

    python benchmarks/bench_sample_size.py [--customers 300000] [--caps 25000 50000 100000 200000 0]
                                           [--seeds 42 1 2] [--seeded-up-to 100000] [--trials 2]
                                           [--profiles] [--line-items --cap-on rows] [--work DIR] [--json FILE]
    python benchmarks/bench_sample_size.py --table FILE  # the table of the runs a --json FILE kept

A learning curve on one simulated world (``tiercast simulate --customers N --format parquet``; its transactions
only, as the batch benchmarks read them, or with ``--profiles`` its customer profiles and interactions too; with
``--line-items``, the online retailer's world, ``--preset retail --line-items``, as invoice lines). For every cap
(0: every customer) and seed, as subprocesses:

* ``tiercast train`` at the world's cutoff and horizon with the cap as ``training.max_customers`` (or, with
  ``--cap-on rows``, as ``training.max_rows``, the customers then uncapped) and ``training.seed`` = seed (the
  sample's draw and the training's own randomness both follow it), into its own throwaway SQLite MLflow store;
  wall time and peak PSS over the process tree, as ``bench_batch.py`` measures them, and the customers the
  training kept (its MLflow run's ``training_customers``);
* ``tiercast score`` of every customer at the cutoff with that store's champion.

Every cap is then measured on the same held-out evaluation, the backtest's: every customer with history before
the cutoff, what they did in the horizon after it (``training.labels.make_labels``), with the backtest's metrics
(``training.evaluation.scores``). The first seed runs at every cap; the others at the caps up to
``--seeded-up-to`` and at "every customer", so that the noise of the draw and of the training shows beside the
differences between caps; the world's ground truth (the simulator's expected value and churn probability of each
customer, knowing who is still alive) is measured the same way, as the ceiling. Prints a table and the mean and
range per cap; a JSON line per run (``--json FILE`` keeps them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from tiercast.config import load_config
from tiercast.jobs import InputFiles
from tiercast.simulation.presets import preset_config
from tiercast.simulation.world import WorldConfig
from tiercast.training.evaluation import scores
from tiercast.training.labels import make_labels

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_batch import tiercast, timed  # noqa: E402

# The metrics the table shows (the JSON lines hold every one of training.evaluation.COMPARISON_COLUMNS).
PREDICTIONS = ["customer_id", "predicted_value", "churn_probability"]
SHOWN = ["value_gini", "value_spearman", "value_top20_capture", "value_decile_error", "value_total_ratio",
         "churn_auc", "churn_brier"]


def world(customers: int, work: Path, env: dict[str, str], lines: bool = False) -> Path:
    """The simulated world's folder (written once per work folder); with ``lines``, the retailer's invoice lines."""
    folder = work / f"{'lines_' * lines}world_{customers}"
    if not (folder / "transactions.parquet").exists():
        kind = ["--preset", "retail", "--line-items"] if lines else []
        subprocess.run(tiercast("simulate", *kind, "--customers", str(customers), "--format", "parquet", "--out",
                                str(folder)), env=env, check=True, stdout=subprocess.DEVNULL)
    return folder


def training_customers(store: Path) -> int:
    """The customers the training in ``store`` kept, as its MLflow run records them."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store}")
    runs = [run for experiment in client.search_experiments() for run in client.search_runs([experiment.experiment_id])]
    return int(next(run.data.params["training_customers"] for run in runs
                    if "training_customers" in run.data.params))


def run(cap: int, seed: int, trials: int, inputs: list[str], cutoff: str, horizon: int, folder: Path,
        env: dict[str, str], cap_on: str = "customers") -> dict[str, float | str]:
    """Train on ``inputs`` (the commands' input arguments) with ``cap`` (on ``cap_on``: customers or rows) and
    ``seed`` into a store of its own in ``folder`` and score every customer at ``cutoff``: the training's seconds,
    peak and customers, and the scores file."""
    subprocess.run(["rm", "-rf", str(folder)], check=True)
    folder.mkdir(parents=True)
    config = folder / "config.yaml"
    caps = {"max_customers": None, "max_rows": None, f"max_{cap_on}": cap or None}  # the other cap off
    config.write_text(json.dumps({"training": {**caps, "seed": seed, "horizon_days": horizon,
                                               "tuning": {"trials": trials}}}))
    env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}
    train_s, train_gb = timed(tiercast("--config", str(config), "train", *inputs, "--cutoff", cutoff,
                                       "--horizon-days", str(horizon)), env, sampled=True)
    out = folder / "scores.parquet"
    score_s, _ = timed(tiercast("--config", str(config), "score", *inputs, "--as-of", cutoff, "--out", str(out)),
                       env)
    return {"train_seconds": train_s, "train_peak_gb": train_gb, "score_seconds": score_s, "scores": str(out),
            "training_customers": training_customers(folder / "mlflow.db")}


def quality(predictions: pd.DataFrame, labels: pd.DataFrame, source: str) -> dict[str, float]:
    """The backtest's metrics of ``predictions`` (customer_id, predicted_value, churn_probability) against what
    their customers did in the horizon."""
    scored = predictions.set_index("customer_id").join(labels, how="inner")
    if len(scored) != len(labels):
        raise RuntimeError(f"{source}: {len(scored):,} of the {len(labels):,} customers with history "
                           "before the cutoff were predicted")
    return scores(scored["value"].to_numpy(), scored["churned"].to_numpy(), scored["predicted_value"].to_numpy(),
                  scored["churn_probability"].to_numpy())


def table(records: list[dict[str, object]]) -> str:
    """Every run, then per cap the mean and, over its seeds, the range of each metric."""
    frame = pd.DataFrame(records)
    frame["cap"] = [("all" if r["cap"] == 0 else f"{r['cap']:,}" + (" rows" if r.get("cap_on") == "rows" else ""))
                    + (" +profiles" if r.get("profiles") else "") + (" lines" if r.get("line_items") else "")
                    for r in records]
    runs = frame[["cap", "seed", "training_customers", "train_seconds", "train_peak_gb", *SHOWN]]
    per_cap = frame.groupby("cap", sort=False).agg(
        seeds=("seed", "size"), **{m: (m, lambda v: f"{v.mean():.4f} [{v.min():.4f}, {v.max():.4f}]")
                                   for m in SHOWN})
    return "\n".join([runs.to_string(index=False, float_format=lambda v: f"{v:.4f}"), "",
                      "per cap: mean [min, max] over its seeds", per_cap.to_string()])


def kept_runs(path: Path | None) -> list[dict[str, object]]:
    """The runs a ``--json`` file holds (none without one)."""
    if path is None or not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=300_000, help="customers of the simulated world")
    parser.add_argument("--caps", type=int, nargs="+", default=[25_000, 50_000, 100_000, 200_000, 0],
                        help="training.max_customers values; 0 trains on every customer")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2], help="training.seed values")
    parser.add_argument("--seeded-up-to", type=int, default=100_000,
                        help="the seeds after the first run at caps up to this one and at every customer")
    parser.add_argument("--trials", type=int, default=2, help="tuning trials per model")
    parser.add_argument("--profiles", action="store_true",
                        help="train and score with the world's customer profiles and interactions too")
    parser.add_argument("--line-items", action="store_true",
                        help="the online retailer's world as invoice lines (--preset retail --line-items)")
    parser.add_argument("--cap-on", choices=["customers", "rows"], default="customers",
                        help="what the caps bound: training.max_customers (default) or training.max_rows")
    parser.add_argument("--work", type=Path, help="folder for the world and the stores (kept; default: temporary)")
    parser.add_argument("--json", type=Path, help="append each run as a JSON line to this file; the runs it holds "
                        "already (same world, cap, seed and trials) are not run again")
    parser.add_argument("--table", type=Path, help="print the table of the runs in this --json file and stop")
    args = parser.parse_args()
    if args.table:
        print(table(kept_runs(args.table)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        folder = world(args.customers, work, env, args.line_items)
        transactions = folder / "transactions.parquet"
        inputs = ["--transactions", str(transactions)]
        if args.profiles:
            inputs += ["--customers", str(folder / "customers.parquet"), "--interactions",
                       str(folder / "interactions.parquet")]
        settings = preset_config("retail") if args.line_items else WorldConfig()
        cutoff, horizon = str(settings.default_cutoff.date()), settings.default_horizon_days
        # as the backtest labels them: from the loaded (checked and cleaned) transactions
        labels = make_labels(InputFiles(transactions).load(load_config()).transactions, pd.Timestamp(cutoff),
                             horizon)
        print(f"{args.customers:,}-customer world: {len(labels):,} customers with history before {cutoff}, "
              f"{horizon}-day horizon", flush=True)
        # the simulator's own expectations (it knows who is still alive): a ceiling no model reaches
        truth = pd.read_parquet(folder / "ground_truth.parquet").rename(columns={"expected_value": "predicted_value"})
        ceiling = quality(truth[PREDICTIONS], labels, "ground_truth.parquet")
        print("ground truth: " + "; ".join(f"{m} {ceiling[m]:.4f}" for m in SHOWN), flush=True)
        done = {(r["world_customers"], r.get("profiles", False), r.get("line_items", False),
                 r.get("cap_on", "customers"), r["cap"], r["seed"], r["trials"]): r for r in kept_runs(args.json)}
        records: list[dict[str, object]] = []
        for i, seed in enumerate(args.seeds):
            for cap in args.caps:
                if i and cap and cap > args.seeded_up_to:
                    continue
                key = (args.customers, args.profiles, args.line_items, args.cap_on, cap, seed, args.trials)
                if key in done:  # an interrupted benchmark goes on
                    records.append(done[key])
                    continue
                measured = run(cap, seed, args.trials, inputs, cutoff, horizon,
                               work / f"{'profiles_' * args.profiles}{'lines_' * args.line_items}"
                                      f"{'rows' * (args.cap_on == 'rows')}cap{cap}_seed{seed}", env, args.cap_on)
                record = {"world_customers": args.customers, "profiles": args.profiles,
                          "line_items": args.line_items, "cap_on": args.cap_on,
                          "customers_before_cutoff": len(labels), "cap": cap, "seed": seed, "trials": args.trials,
                          **{k: v for k, v in measured.items() if k != "scores"},
                          **quality(pd.read_parquet(measured["scores"], columns=PREDICTIONS), labels,
                                    str(measured["scores"]))}
                records.append(record)
                print(json.dumps(record), flush=True)
                if args.json:
                    with args.json.open("a") as f:
                        f.write(json.dumps(record) + "\n")
        print()
        print(table(records))
        print("ground truth (the ceiling): " + "; ".join(f"{m} {ceiling[m]:.4f}" for m in SHOWN))


if __name__ == "__main__":
    main()
