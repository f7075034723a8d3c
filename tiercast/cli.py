"""The ``tiercast`` command line: parses the arguments, loads the config, runs the command's job
(:mod:`tiercast.jobs`) and prints its summary.

Bad input files and bad configuration stop a command with exit status 2 and one message naming the file,
the column or key and sample rows; so do dates outside the supported range and output paths the command
cannot write (checked before the work starts). ``score`` without usable champion models stops with exit
status 3 unless the config allows the rule fallback in batch.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from datetime import date
from pathlib import Path

import pandas as pd

from tiercast import jobs
from tiercast.config import AppConfig, ConfigError, load_config
from tiercast.database_output import database_target
from tiercast.features.buckets import reuse_freed_memory, without_huge_pages
from tiercast.features.database import is_database_url
from tiercast.features.schema import EARLIEST, LATEST, DataError
from tiercast.features.spill import SpillFolderFull
from tiercast.outputs import FolderBusy, InfiniteOutput, OutputError
from tiercast.serving.i18n import Messages, card_text, data_error_text, messages
from tiercast.training.sufficiency import InsufficientData

EXIT_BAD_INPUT = 2
EXIT_NO_MODELS = 3
EXIT_BUSY = 4  # another run holds the folder (tiercast cycle)


def _date(text: str) -> pd.Timestamp:
    """Every date option (--as-of, --cutoff, --start): a YYYY-MM-DD date within the dates the data may hold
    (docs/contract.md), so that no later step meets a date pandas cannot represent."""
    try:
        day = date.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date in YYYY-MM-DD form") from err
    if not EARLIEST.date() <= day <= LATEST.date():
        raise argparse.ArgumentTypeError(f"{day.isoformat()} is outside the supported dates, {EARLIEST.date()} "
                                         f"to {LATEST.date()}")
    return pd.Timestamp(day)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def _add_input_args(parser: argparse.ArgumentParser) -> None:
    # Kept as given (not as Path, which would fold s3://bucket into s3:/bucket): the Spark engine reads URIs.
    parser.add_argument("--transactions", required=True,
                        help="transactions file (.csv, .parquet, CDNOW .txt) or a database URL with ?table=NAME or "
                        "?query=SELECT...; with --engine spark also a Parquet dataset folder, a glob or any URI "
                        "Spark reads")
    parser.add_argument("--customers", help="optional customer profiles file")
    parser.add_argument("--interactions", help="optional interactions file (surveys, tickets)")
    parser.add_argument("--engine", choices=["local", "spark"],
                        help="where the work runs: local (this process) or spark (config engine: master and "
                        "options); default: config engine.name, local")


def _spark(args: argparse.Namespace, config: AppConfig) -> bool:
    """Whether the command runs on Spark: --engine, else the config's engine.name."""
    return (args.engine or config.engine.name) == "spark"


def _inputs(args: argparse.Namespace, spark: bool = False) -> jobs.InputFiles:
    """The input files; as Paths (or database tables and queries) for the local engine, as given (URIs) for
    Spark."""
    given = (args.transactions, args.customers, args.interactions)
    if spark and any(is_database_url(value) for value in given):
        raise jobs.OptionError("--engine spark reads files and Parquet datasets: read a database URL with "
                               "--engine local")
    from tiercast.features.loading import input_path

    return jobs.InputFiles(*(value if spark or value is None else input_path(value) for value in given))


def _out(args: argparse.Namespace, config: AppConfig, spark: bool = False) -> object:
    """--out as a Path, or a database table (config ``output`` says what it may replace)."""
    if spark and is_database_url(args.out):
        raise jobs.OptionError("--engine spark writes Parquet datasets: write to a database with --engine local")
    return database_target(args.out, config.output) if is_database_url(args.out) else Path(args.out)


def _files(inputs: jobs.InputFiles, out: object = None) -> bool:
    """Whether the transactions and --out (if the command has one) are files, which a large log may be spilled
    from (a database table is read and written whole)."""
    return isinstance(inputs.transactions, Path) and (out is None or isinstance(out, Path))


def _amount(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from err
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite amount >= 0, got {text}")
    return value


def _rate(text: str) -> float:
    value = _amount(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a rate in (0, 1], got {text}")
    return value


def _control_share(text: str) -> float:
    value = _amount(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a share in [0, 1), got {text}")
    return value


def _confidence(text: str) -> float:
    value = _amount(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a level strictly between 0 and 1 (e.g. 0.95), got {text}")
    return value


# ------------------------------------------------------------------------------- commands: job, then summary
def _print_training(training: jobs.Training, m: Messages) -> None:
    result = training.result
    print(m.text("cli.mlflow_run", run_id=result.run_id, store=training.store))
    print(m.text("cli.validation", window=result.validation_window))
    for name in ("value_gini", "value_spearman", "value_top20_capture", "value_total_ratio", "churn_auc"):
        if name in result.metrics:
            print(f"  {m[f'metric.{name}']:<22} {result.metrics[name]:.3f}     "
                  f"({result.baseline.get(name, float('nan')):.3f})")
    print(m.text("cli.registered", versions=result.versions))
    print("  " + m.text("decision.promoted" if result.promoted else "decision.kept", detail=result.decision))
    print(card_text(result.quality_card, m))


def _print_scores(scoring: jobs.Scoring, m: Messages) -> None:
    scores = scoring.scores
    tiers = scores.groupby("tier").agg(customers=("customer_id", "size"), predicted_value=("predicted_value", "sum"))
    _print_score_summary(len(scores), scoring.out, scoring.fallback_reason, scores["source"].value_counts().to_dict(),
                         tiers, m)


def _headers(table: pd.DataFrame, m: Messages, rows: str, columns: str) -> pd.DataFrame:
    """``table`` with its row and column names, and the names of its axes, in ``m``'s language: names are
    looked up as ``rows.NAME`` and ``columns.NAME`` (``cli.column.NAME`` for the axes)."""
    def said(kind: str, name: object) -> object:
        return m.table.get(f"{kind}.{name}", name)
    shown = table.rename(index=lambda n: said(rows, n), columns=lambda n: said(columns, n))
    return shown.rename_axis(index=said("cli.column", table.index.name), columns=said("cli.column", table.columns.name))


def _print_score_summary(customers: int, out: object, fallback_reason: str, sources: dict, tiers: pd.DataFrame,
                         m: Messages) -> None:
    """What a scoring did: customers, where they went, by which source, and each tier's customers and value."""
    print(m.text("cli.scored", customers=f"{customers:,}", out=out))
    if fallback_reason:
        print(m.text("cli.all_fallback", reason=m.text("fallback.models_unavailable", detail=fallback_reason)),
              file=sys.stderr)
    print(m.text("cli.sources", sources={m.source(k): v for k, v in sources.items()}))
    ranked = tiers.sort_values("predicted_value", ascending=False)
    print(_headers(ranked, m, "tier", "cli.column").to_string(float_format=lambda v: f"{v:,.0f}"))


def cmd_train(args: argparse.Namespace, config: AppConfig) -> int:
    if _spark(args, config):
        from tiercast import spark_jobs

        training = spark_jobs.train(config, _inputs(args, spark=True), args.cutoff, args.horizon_days, args.trials)
    else:
        from tiercast import spilled_training

        inputs = _inputs(args)
        training = ((spilled_training.train(config, inputs, args.cutoff, args.horizon_days, args.trials)
                     if _files(inputs) else None)
                    or jobs.train(config, inputs, args.cutoff, args.horizon_days, args.trials))
    _print_training(training, messages(config.language))
    return 0


def cmd_score(args: argparse.Namespace, config: AppConfig) -> int:
    if _spark(args, config):
        from tiercast import spark_jobs

        done = spark_jobs.score(config, _inputs(args, spark=True), args.as_of, args.out)
        _print_score_summary(done.customers, done.out, done.fallback_reason, done.sources, done.tiers,
                             messages(config.language))
    else:
        from tiercast import spilled_jobs

        inputs, out = _inputs(args), _out(args, config)
        files = _files(inputs, out)
        # a log that spills is spilled in a child process, forked before the champion's thread starts
        spilling = spilled_jobs.spill_aside(config, inputs, out) if files else None
        champion = jobs.ChampionLoading(config)  # while the log is read, spilled or whole: loaded once
        summary = spilled_jobs.score(config, inputs, args.as_of, out, champion, spilling) if files else None
        if summary is None:
            _print_scores(jobs.score(config, inputs, args.as_of, out, champion), messages(config.language))
        else:  # scored a bucket at a time: the summary, not the scores, is at hand
            _print_score_summary(summary.customers, summary.out, summary.fallback_reason, summary.sources,
                                 summary.tiers, messages(config.language))
    return 0


def cmd_backtest(args: argparse.Namespace, config: AppConfig) -> int:
    if _spark(args, config):
        from tiercast import spark_jobs

        backtest = spark_jobs.backtest(config, _inputs(args, spark=True), args.cutoff, args.horizon_days,
                                       _out(args, config, spark=True))
    else:
        from tiercast import spilled_training

        inputs, out = _inputs(args), _out(args, config)
        backtest = ((spilled_training.backtest(config, inputs, args.cutoff, args.horizon_days, out)
                     if _files(inputs, out) else None)
                    or jobs.backtest(config, inputs, args.cutoff, args.horizon_days, out))
    m = messages(config.language)
    print(m.text("cli.backtest", cutoff=args.cutoff.date(), days=args.horizon_days, customers=f"{backtest.customers:,}",
                 out=backtest.out))
    print(_headers(backtest.comparison.T, m, "metric", "model").to_string(float_format=lambda v: f"{v:.3f}",
                                                                          na_rep=m["cli.not_applicable"]))
    return 0


def cmd_demo(args: argparse.Namespace, config: AppConfig) -> int:
    settings = config.demo
    m = messages(config.language)
    started = time.perf_counter()
    print(m.text("cli.demo", file=settings.transactions_path().name, cutoff=settings.cutoff, days=settings.horizon_days))
    demo = jobs.demo(config, trained=lambda training: _print_training(training, m))
    _print_scores(demo.scoring, m)
    print(m.text("cli.done", seconds=f"{time.perf_counter() - started:.0f}"))
    print(m.text("cli.look_scores", path=demo.scoring.out.resolve()))
    print(m.text("cli.look_mlflow", command=f"mlflow ui --backend-store-uri {demo.training.store}",
                 make="make mlflow-ui"))
    print(m.text("cli.look_service", command="tiercast serve", make="make serve",
                 request="POST http://127.0.0.1:3000/predict"))
    return 0


def cmd_serve(args: argparse.Namespace, config: AppConfig) -> int:
    jobs.serve(config, args.host, args.port, args.workers)
    return 0


def cmd_simulate(args: argparse.Namespace, config: AppConfig) -> int:
    sim = jobs.simulate(args.customers, args.out, args.seed, args.cutoff, args.horizon_days, args.format,
                        args.preset, args.line_items, not args.no_product_id)
    m = messages(config.language)
    print(m.text("cli.simulated", customers=f"{len(sim.world.customers):,}",
                 transactions=f"{len(sim.world.transactions):,}", seconds=f"{sim.seconds:.1f}"))
    if sim.lines is not None:
        cancelled = sim.lines["order_id"].str.startswith("C").sum()
        print(m.text("cli.simulated_lines", lines=f"{len(sim.lines):,}", cancelled=f"{cancelled:,}"))
    print(m.text("cli.simulated_truth", cutoff=sim.cutoff.date(), days=sim.horizon_days,
                 value=f"{sim.truth['expected_value'].mean():,.2f}",
                 churn=f"{sim.truth['churn_probability'].mean():.3f}"))
    for kind, path in sim.paths.items():
        print(m.text("cli.simulated_file", kind=m.table.get(f"simulate.file.{kind}", kind), path=path))
    return 0


def cmd_features(args: argparse.Namespace, config: AppConfig) -> int:
    if _spark(args, config):
        from tiercast import spark_jobs

        done = spark_jobs.features(config, _inputs(args, spark=True), args.as_of, args.out)
        customers = done.customers
    else:
        from tiercast import spilled_jobs

        inputs, out = _inputs(args), _out(args, config)
        done = ((spilled_jobs.features(config, inputs, args.as_of, out) if _files(inputs, out) else None)
                or jobs.features(config, inputs, args.as_of, out))
        customers = done.customers
    m = messages(config.language)
    print(m.text("cli.features", customers=f"{customers:,}", as_of=args.as_of.date(), out=done.out))
    print(m.text("cli.features_report", report=done.quality_report or m["cli.features_report_in_log"]))
    return 0


def cmd_plan(args: argparse.Namespace, config: AppConfig) -> int:
    done = jobs.plan(config, args.scores, args.budget, args.cost_per_contact, args.out, args.save_rate,
                     args.control_share, args.seed)
    m = messages(config.language)
    print(done.plan.summary(m))
    print(m.text("cli.plan", out=done.out))
    return 0


def cmd_report(args: argparse.Namespace, config: AppConfig) -> int:
    done = jobs.report(config, args.scores, args.out, args.previous, args.model_alias, args.history)
    m = messages(config.language)
    print(card_text(done.quality_card, m) if done.quality_card else m.text("card.none", why=done.card_source))
    print(m.text("cli.report", customers=f"{done.customers:,}", page=done.page))
    return 0


def cmd_evaluate_plan(args: argparse.Namespace, config: AppConfig) -> int:
    done = jobs.evaluate_plan(config, args.plan, args.transactions, args.start, args.horizon_days, args.confidence,
                              args.out)
    m = messages(config.language)
    print("\n".join(done.result.lines(m)))
    if done.out:
        print(m.text("cli.campaign", out=done.out))
    return 0


def cmd_monitor(args: argparse.Namespace, config: AppConfig) -> int:
    done = jobs.monitor(config, args.scores, _inputs(args), args.as_of, args.out)
    result = done.result
    realized = result["realized"]
    m = messages(config.language)
    print(m.text("cli.monitored", scored=result["scored_as_of"], as_of=result["as_of"], models=result["models"]))
    window = (m["cli.window_full"] if realized["horizon_complete"] else
              m.text("cli.window_partial", elapsed=realized["elapsed_days"], horizon=realized["horizon_days"]))
    shown = [m.text("cli.metric", name=m[f"metric.{name}"], value=f"{realized[name]:.3f}")
             for name in ("norm_gini", "top20_capture", "churn_auc", "total_ratio") if realized.get(name) is not None]
    print(m.text("cli.realised", n=f"{realized['n']:,}", window=window, metrics=m.join(shown)))
    print(m.text("cli.verdict", verdict=result["verdict"]))
    print(m.text("cli.monitor_out", out=done.out, run_id=done.run_id))
    return 0


def cmd_cycle(args: argparse.Namespace, config: AppConfig) -> int:
    from tiercast.cycle import cycle

    done = cycle(config, _inputs(args), args.as_of, args.dir)
    record = done.record
    m = messages(config.language)
    print(m.text("cli.cycle_done" if done.already_done else "cli.cycle", as_of=record["as_of"], folder=done.folder))
    for decision in record["decisions"]:
        print(m.text("cli.decision", decision=decision))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tiercast", description="Customer tiering with measured, explained predictions.",
        epilog="MLflow store: $MLFLOW_TRACKING_URI, default sqlite:///mlflow.db in the working directory.")
    parser.add_argument("--config", type=Path, help="YAML config (default: the shipped configs/default.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    command("demo", cmd_demo, "train, register and score on the bundled CDNOW data; print where to look next")

    train = command("train", cmd_train, "train on data before the cutoff, log to MLflow, register and maybe promote")
    _add_input_args(train)
    train.add_argument("--cutoff", type=_date, required=True, help="YYYY-MM-DD; only data before it is used")
    train.add_argument("--horizon-days", type=_positive_int, required=True, help="outcome window length in days")
    train.add_argument("--trials", type=int, help="Optuna trials per model (default from config)")

    score_cmd = command("score", cmd_score, "score every customer with the champion models (or the rules)")
    _add_input_args(score_cmd)
    score_cmd.add_argument("--as-of", type=_date, required=True, help="YYYY-MM-DD; only data before it is used")
    score_cmd.add_argument("--out", required=True,
                           help="scored file (.csv or .parquet) or a database table (postgresql://...?table=NAME); "
                           "with --engine spark a Parquet dataset (a folder)")

    backtest = command("backtest", cmd_backtest, "train before the cutoff, predict at it, compare with what happened")
    _add_input_args(backtest)
    backtest.add_argument("--cutoff", type=_date, required=True, help="YYYY-MM-DD")
    backtest.add_argument("--horizon-days", type=_positive_int, required=True, help="outcome window length in days")
    backtest.add_argument("--out", required=True, help="scored file with actual_value and churned, or a database "
                          "table (postgresql://...?table=NAME)")

    serve = command("serve", cmd_serve, "start the prediction service (POST /predict)")
    serve.add_argument("--port", type=int, help="default 3000 (config service.port)")
    serve.add_argument("--host", help="default 127.0.0.1 (config service.host)")
    serve.add_argument("--workers", type=_positive_int,
                       help="worker processes, each answering one request at a time "
                       "(default 1; config service.workers)")

    simulate = command("simulate", cmd_simulate, "generate a synthetic retail world with ground truth")
    simulate.add_argument("--preset", choices=["default", "retail"], default="default",
                          help="world to draw: default (10,000 customers, 2023-01 to 2025-06, December peak) "
                          "or retail (an online retailer: 5,000 customers, 2023-12-01 to 2025-12-10, "
                          "autumn peak, 1%% wholesale buyers, cancellations)")
    simulate.add_argument("--customers", type=_positive_int, help="number of customers (default: the preset's)")
    simulate.add_argument("--out", type=Path, required=True, help="output folder")
    simulate.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    simulate.add_argument("--cutoff", type=_date,
                          help="ground-truth cutoff (default: the preset's horizon before the end)")
    simulate.add_argument("--horizon-days", type=_positive_int,
                          help="ground-truth horizon (default: the preset's, 180 days; retail 90)")
    simulate.add_argument("--format", choices=["csv", "parquet"], default="csv", help="file format (default csv)")
    simulate.add_argument("--line-items", action="store_true",
                          help="write transactions as invoice lines (product_id, quantity, category per "
                          "line; cancellations as C-prefixed invoices) instead of one row per order")
    simulate.add_argument("--no-product-id", action="store_true",
                          help="with --line-items: leave the product_id column out, as many exports do "
                          "(lines of one invoice can then be identical)")

    features = command("features", cmd_features, "write point-in-time features, one row per customer")
    _add_input_args(features)
    features.add_argument("--as-of", type=_date, required=True, help="YYYY-MM-DD; only data before it is used")
    features.add_argument("--out", required=True,
                          help="features file (.csv or .parquet) or a database table (postgresql://...?table=NAME); "
                          "with --engine spark a Parquet dataset (a folder)")

    plan = command("plan", cmd_plan, "pick whom to contact for retention within a budget; print the expected return")
    plan.add_argument("--scores", type=Path, required=True, help="scored file from tiercast score (.csv or .parquet)")
    plan.add_argument("--budget", type=_amount, required=True, help="money available for contacts")
    plan.add_argument("--cost-per-contact", type=_amount, required=True, help="money one contact costs")
    plan.add_argument("--save-rate", type=_rate, help="share of would-be churners a contact keeps (default: config)")
    plan.add_argument("--control-share", type=_control_share,
                      help="share of selected customers held out as a random control group (default: config, 0.1)")
    plan.add_argument("--seed", type=int, help="seed of the control hold-out (default: config)")
    plan.add_argument("--out", type=Path, required=True, help="plan file, one row per customer (.csv or .parquet)")

    report = command("report", cmd_report, "write an HTML report with charts on a scored file")
    report.add_argument("--scores", type=Path, required=True, help="scored file (.csv or .parquet)")
    report.add_argument("--previous", type=Path, help="an earlier scored file, for the tier migration matrix")
    report.add_argument("--out", type=Path, required=True, help="output folder (index.html and PNG charts)")
    report.add_argument("--model-alias", help="registry alias whose model-quality card the report shows "
                        "(default: config service.model_alias)")
    report.add_argument("--history", type=Path, help="a tiercast cycle directory: adds tier shares over its runs, "
                        "realised against promised quality per run and drift per feature")

    monitor = command("monitor", cmd_monitor, "how an earlier scoring did so far, and how far the customers "
                      "drifted from the champion's training population; recommends a retrain or not")
    monitor.add_argument("--scores", type=Path, required=True, help="an earlier scored file (.csv or .parquet)")
    _add_input_args(monitor)
    monitor.add_argument("--as-of", type=_date, required=True,
                         help="YYYY-MM-DD, after the scored file's as_of; only data before it is used")
    monitor.add_argument("--out", type=Path, default=Path("monitor"),
                         help="output folder for monitor.json and drift.png (default: ./monitor)")

    cycle = command("cycle", cmd_cycle, "the periodic re-tiering job, once per as_of: monitor the latest earlier "
                    "run in DIR, retrain when recommended, score, report with tier migration (idempotent)")
    _add_input_args(cycle)
    cycle.add_argument("--as-of", type=_date, required=True, help="YYYY-MM-DD; only data before it is used")
    cycle.add_argument("--dir", type=Path, required=True, help="the cycle directory; this run goes to DIR/<as_of>/")

    evaluate_plan = command("evaluate-plan", cmd_evaluate_plan,
                            "measure a plan's uplift in value and retention: treated against control customers")
    evaluate_plan.add_argument("--plan", type=Path, required=True,
                               help="plan file with customer_id and group (treated/control) (.csv or .parquet)")
    evaluate_plan.add_argument("--transactions", type=Path, required=True, help="transactions covering the window")
    evaluate_plan.add_argument("--start", type=_date, help="YYYY-MM-DD campaign start (default: the plan's as_of)")
    evaluate_plan.add_argument("--horizon-days", type=_positive_int,
                               help="outcome window length in days (default: config training.horizon_days)")
    evaluate_plan.add_argument("--confidence", type=_confidence, default=0.95,
                               help="confidence level of the intervals (default 0.95)")
    evaluate_plan.add_argument("--out", type=Path, help="also write the result as JSON here")
    return parser


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("alembic", "mlflow", "urllib3", "git", "numexpr"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "no_product_id", False) and not args.line_items:
        parser.error("simulate: --no-product-id needs --line-items")
    _setup_logging(args.verbose)
    if args.command != "serve":  # a batch command: its arrays are allocated and freed, never kept
        without_huge_pages()
        reuse_freed_memory()
    config: AppConfig | None = None
    try:
        config = load_config(args.config)
        return args.handler(args, config)
    except (DataError, ConfigError, InsufficientData, OutputError, SpillFolderFull, jobs.OptionError) as err:
        print(_error(args.command, err, config), file=sys.stderr)
        return EXIT_BAD_INPUT
    except jobs.ModelsUnavailableError as err:
        print(_error(args.command, err, config), file=sys.stderr)
        return EXIT_NO_MODELS
    except FolderBusy as err:
        print(_error(args.command, err, config), file=sys.stderr)
        return EXIT_BUSY
    except InfiniteOutput as err:  # a bug, not bad input: said plainly, nothing written
        print(_error(args.command, err, config), file=sys.stderr)
        return 1
    except BrokenProcessPool:  # a worker the system killed, most often for memory: said plainly, nothing written
        print(_error(args.command, WORKER_KILLED, config), file=sys.stderr)
        return 1


WORKER_KILLED = RuntimeError(
    "a worker process was killed by the system, most often for want of memory; nothing was written. Lower "
    "engine.workers, engine.bucket_customers or engine.bucket_rows in the config (or free memory) and run it again")


def _error(command: str, err: Exception, config: AppConfig | None) -> str:
    """The error line, in the configured language (English before the config is read)."""
    m = messages(config.language if config else "en")
    return m.text("cli.error", command=command, error=data_error_text(err, m) if isinstance(err, DataError) else err)


def run() -> None:
    """The ``tiercast`` program: :func:`main`, then exit with its code."""
    code = main()
    # What a command leaves behind (modules, models, caches: millions of objects) goes with the process. Frozen,
    # it is not walked again by the collector's passes at exit, which took 1-2 s after a scoring.
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
