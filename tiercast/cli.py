"""The ``tiercast`` command line: one sub-command per job, each a thin wrapper around a library call.

Bad input files and bad configuration stop a command with exit status 2 and one message naming the file,
the column or key and sample rows; outputs are written to a temporary file and moved into place only when
complete, so nothing half-made is left behind.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

import pandas as pd

from tiercast.features.schema import DataError
from tiercast.config import AppConfig, ConfigError, load_config
from tiercast.training.quality_card import card_text
from tiercast.training.sufficiency import InsufficientData

log = logging.getLogger("tiercast")

EXIT_BAD_INPUT = 2


def _date(text: str) -> pd.Timestamp:
    try:
        return pd.Timestamp(date.fromisoformat(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date in YYYY-MM-DD form") from err


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def write_table(frame: pd.DataFrame, out: Path) -> Path:
    """Write CSV or Parquet (by suffix) atomically: a reader never sees a half-written file."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(tmp, index=False)
    elif out.suffix.lower() == ".csv":
        frame.to_csv(tmp, index=False)
    else:
        raise DataError(out, f"unsupported output type '{out.suffix}': use .csv or .parquet")
    os.replace(tmp, out)
    return out


def _for_file(scores: pd.DataFrame) -> pd.DataFrame:
    """Scored rows as a flat file: the reasons list becomes one '; '-separated text cell."""
    flat = scores.copy()
    flat["reasons"] = flat["reasons"].map(lambda r: "; ".join(r))
    return flat


def _add_input_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--transactions", type=Path, required=True, help="transactions file (.csv, .parquet, CDNOW .txt)")
    parser.add_argument("--customers", type=Path, help="optional customer profiles file")
    parser.add_argument("--interactions", type=Path, help="optional interactions file (surveys, tickets)")


def _load(args: argparse.Namespace, config: AppConfig):
    from tiercast.features.loading import load_inputs

    return load_inputs(args.transactions, args.customers, args.interactions, config.data)


def cmd_train(args: argparse.Namespace, config: AppConfig) -> int:
    from tiercast.training.pipeline import train_and_register
    from tiercast.training.registry import tracking_uri

    if args.trials is not None:
        config.training.tuning.trials = args.trials
    data = _load(args, config)
    result = train_and_register(data, args.cutoff, args.horizon_days, config.training, config.features,
                                config.policy.fit_thresholds, config.data.personal_data_columns,
                                config.model_dump(mode="json"), progress=log.info)
    _print_training(result, tracking_uri())
    return 0


def _print_training(result, uri: str) -> None:
    print(f"MLflow run {result.run_id} in {uri}")
    print(f"  on the validation window {result.validation_window}:  tiercast  (BG/NBD + Gamma-Gamma)")
    for name in ("value_gini", "value_spearman", "value_top20_capture", "value_total_ratio", "churn_auc"):
        if name in result.metrics:
            print(f"  {name:<22} {result.metrics[name]:.3f}     ({result.baseline.get(name, float('nan')):.3f})")
    print(f"  registered versions: {result.versions}")
    print(f"  {result.decision}")
    print(card_text(result.quality_card))


def _champion_bundle(config: AppConfig):
    from tiercast.serving.scorer import ModelBundle, ModelsUnavailable
    from tiercast.training.registry import configure_mlflow

    configure_mlflow()
    try:
        return ModelBundle.load(config.training.registry, config.service.model_alias), ""
    except ModelsUnavailable as err:
        log.warning("%s; scoring with the rule-based fallback", err)
        return None, str(err)


def cmd_score(args: argparse.Namespace, config: AppConfig) -> int:
    from tiercast.serving.scorer import score

    data = _load(args, config)
    bundle, reason = _champion_bundle(config)
    scores = score(data.transactions, args.as_of, config.policy, config.features, bundle, config.fallback,
                   data.customers, data.interactions, config.training.horizon_days, reason or "no champion models")
    write_table(_for_file(scores), args.out)
    _print_scores(scores, args.out)
    return 0


def _print_scores(scores: pd.DataFrame, out: Path) -> None:
    print(f"Scored {len(scores):,} customers -> {out}")
    print(f"  sources: {scores['source'].value_counts().to_dict()}")
    summary = scores.groupby("tier").agg(customers=("customer_id", "size"),
                                         predicted_value=("predicted_value", "sum"))
    print(summary.sort_values("predicted_value", ascending=False).to_string(float_format=lambda v: f"{v:,.0f}"))


def cmd_backtest(args: argparse.Namespace, config: AppConfig) -> int:
    from tiercast.serving.scorer import ModelBundle, score
    from tiercast.training.evaluation import compare_at
    from tiercast.training.labels import make_labels
    from tiercast.training.pipeline import fit_models

    data = _load(args, config)
    trained = fit_models(data, args.cutoff, args.horizon_days, config.training, config.features,
                         config.data.personal_data_columns, progress=log.info)
    X = trained.features_at_cutoff[trained.builder.feature_names_]
    bundle = ModelBundle(trained.value, trained.churn, trained.segments, trained.builder,
                         config.policy.fit_thresholds(trained.value.predict(X)), args.horizon_days,
                         {"backtest": "unregistered"})
    scores = score(data.transactions, args.cutoff, config.policy, config.features, bundle, config.fallback,
                   data.customers, data.interactions)
    labels = make_labels(data.transactions, args.cutoff, args.horizon_days)
    scores = scores.join(labels.rename(columns={"value": "actual_value"}), on="customer_id")
    write_table(_for_file(scores), args.out)
    actual = scores.set_index("customer_id").rename(columns={"actual_value": "value"})
    table = compare_at(data.transactions, args.cutoff, args.horizon_days, actual, trained.features_at_cutoff,
                       trained.validation)
    print(f"Backtest at {args.cutoff.date()}, horizon {args.horizon_days} days: {len(scores):,} customers -> {args.out}")
    print(table.T.to_string(float_format=lambda v: f"{v:.3f}"))
    return 0


def cmd_demo(args: argparse.Namespace, config: AppConfig) -> int:
    from tiercast.features.loading import load_inputs
    from tiercast.serving.scorer import score
    from tiercast.training.pipeline import train_and_register
    from tiercast.training.registry import tracking_uri

    demo = config.demo
    started = time.perf_counter()
    print(f"tiercast demo: CDNOW purchases ({demo.transactions_path().name}), trained at {demo.cutoff}, "
          f"horizon {demo.horizon_days} days")
    config.training.tuning.trials = demo.trials
    data = load_inputs(demo.transactions_path(), config=config.data)
    cutoff = pd.Timestamp(demo.cutoff)
    result = train_and_register(data, cutoff, demo.horizon_days, config.training, config.features,
                                config.policy.fit_thresholds, config.data.personal_data_columns,
                                config.model_dump(mode="json"), progress=log.info)
    _print_training(result, tracking_uri())
    bundle, reason = _champion_bundle(config)
    scores = score(data.transactions, cutoff, config.policy, config.features, bundle, config.fallback,
                   horizon_days=demo.horizon_days, unavailable_reason=reason or "no champion models")
    out = write_table(_for_file(scores), demo.out)
    _print_scores(scores, out)
    uri = tracking_uri()
    print(f"\nDone in {time.perf_counter() - started:.0f} s. Where to look next:")
    print(f"  scored customers:  {out.resolve()}")
    print(f"  experiments (UI):  mlflow ui --backend-store-uri {uri}   (or: make mlflow-ui)")
    print("  prediction API:    tiercast serve   (or: make serve), then POST http://127.0.0.1:3000/predict")
    return 0


def cmd_serve(args: argparse.Namespace, config: AppConfig) -> int:
    from tiercast.serving.config import ServingSettings
    from tiercast.serving.service import run

    service = config.service.model_copy(update={"workers": args.workers}) if args.workers else config.service
    settings = ServingSettings(service=service, policy=config.policy, features=config.features,
                               fallback=config.fallback, registry=config.training.registry,
                               horizon_days=config.training.horizon_days,
                               personal_data_columns=config.data.personal_data_columns)
    run(settings, host=args.host or config.service.host, port=args.port or config.service.port)
    return 0


def cmd_simulate(args: argparse.Namespace, config: AppConfig) -> int:
    from tiercast.simulation.world import WorldConfig, ground_truth, simulate_world, write_world

    world_config = WorldConfig(n_customers=args.customers, seed=args.seed)
    started = time.perf_counter()
    world = simulate_world(world_config)
    cutoff = args.cutoff if args.cutoff is not None else pd.Timestamp(world_config.default_cutoff)
    paths = write_world(world, args.out, cutoff, args.horizon_days, args.format)
    truth = ground_truth(world, cutoff, args.horizon_days)
    print(f"Simulated {len(world.customers):,} customers and {len(world.transactions):,} transactions "
          f"in {time.perf_counter() - started:.1f} s")
    print(f"  ground truth at {cutoff.date()}, horizon {args.horizon_days} days: mean expected value "
          f"{truth['expected_value'].mean():,.2f}, mean churn probability {truth['churn_probability'].mean():.3f}")
    for kind, path in paths.items():
        print(f"  {kind:<13} {path}")
    return 0


def cmd_features(args: argparse.Namespace, config: AppConfig) -> int:
    from tiercast.features.builder import FeatureBuilder

    data = _load(args, config)
    builder = FeatureBuilder(config.features, config.data.personal_data_columns).fit(
        data.transactions, args.as_of, data.customers, data.interactions)
    features = builder.transform(data.transactions, args.as_of, data.customers, data.interactions)
    out = write_table(features.reset_index(), args.out)
    quality = {**data.quality_report(), "customers_scored": len(features), "as_of": str(args.as_of.date())}
    report = out.with_name(out.name + ".quality.json")
    report.write_text(json.dumps(quality, indent=2, default=str))
    print(f"Features for {len(features):,} customers at {args.as_of.date()} -> {out}\n  data-quality report -> {report}")
    return 0


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


def cmd_plan(args: argparse.Namespace, config: AppConfig) -> int:
    from tiercast.serving.plan import PLAN_REQUIRED, plan_retention
    from tiercast.serving.scorer import read_scores

    scores = read_scores(args.scores, PLAN_REQUIRED)
    save_rate = args.save_rate if args.save_rate is not None else config.plan.save_rate
    control_share = args.control_share if args.control_share is not None else config.plan.control_share
    seed = args.seed if args.seed is not None else config.plan.seed
    plan = plan_retention(scores, args.budget, args.cost_per_contact, save_rate, control_share, seed)
    out = write_table(plan.contacts, args.out)
    print(plan.summary())
    print(f"  plan -> {out}")
    return 0


def _quality_card(config: AppConfig, alias: str) -> tuple[dict | None, str]:
    """The value model's quality card behind ``alias`` and where it came from; (None, why not) without one."""
    from tiercast.training.registry import configure_mlflow, metadata_by_alias

    uri = configure_mlflow()
    name = config.training.registry.value_model
    metadata = metadata_by_alias(name, alias)
    if metadata is None:
        return None, f"no '{alias}' models in {uri}"
    card = metadata.get("quality_card")
    return card, f"{name}@{alias} in {uri}" if card else f"{name}@{alias} was logged without a quality card"


def cmd_report(args: argparse.Namespace, config: AppConfig) -> int:
    from tiercast.serving.report import REPORT_REQUIRED, write_report
    from tiercast.serving.scorer import read_scores

    scores = read_scores(args.scores, REPORT_REQUIRED)
    previous = read_scores(args.previous, ("customer_id", "tier")) if args.previous else None
    alias = args.model_alias or config.service.model_alias
    card, card_source = _quality_card(config, alias)
    page = write_report(scores, args.out, config.policy, previous, source=str(args.scores),
                        previous_source=str(args.previous or ""), quality_card=card, card_source=card_source)
    print(card_text(card) if card else f"Model quality: no card ({card_source})")
    print(f"Report on {len(scores):,} customers -> {page}")
    return 0


def _confidence(text: str) -> float:
    value = _amount(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a level strictly between 0 and 1 (e.g. 0.95), got {text}")
    return value


def cmd_evaluate_plan(args: argparse.Namespace, config: AppConfig) -> int:
    from tiercast.features.loading import load_transactions
    from tiercast.serving.campaign import evaluate_plan, read_plan

    plan, start = read_plan(args.plan, args.start, config.data.error_sample_rows)
    transactions, _ = load_transactions(args.transactions, config.data)
    horizon_days = args.horizon_days or config.training.horizon_days
    window_end = start + pd.Timedelta(days=horizon_days)
    if transactions["timestamp"].max() < window_end - pd.Timedelta(days=1):
        log.warning("the transactions end at %s, before the window closes at %s: later purchases are missing, "
                    "so the read-out is an interim one", transactions["timestamp"].max(), window_end)
    try:
        result = evaluate_plan(plan, transactions, start, horizon_days, args.confidence)
    except ValueError as err:  # too few treated or control customers
        raise DataError(args.plan, str(err), "group") from err
    print("\n".join(result.lines()))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps(result.to_dict(), indent=2))
        os.replace(tmp, out)
        print(f"  result -> {out}")
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
    score_cmd.add_argument("--out", type=Path, required=True, help="scored file (.csv or .parquet)")

    backtest = command("backtest", cmd_backtest, "train before the cutoff, predict at it, compare with what happened")
    _add_input_args(backtest)
    backtest.add_argument("--cutoff", type=_date, required=True, help="YYYY-MM-DD")
    backtest.add_argument("--horizon-days", type=_positive_int, required=True, help="outcome window length in days")
    backtest.add_argument("--out", type=Path, required=True, help="scored file with actual_value and churned")

    serve = command("serve", cmd_serve, "start the prediction service (POST /predict)")
    serve.add_argument("--port", type=int, help="default 3000 (config service.port)")
    serve.add_argument("--host", help="default 127.0.0.1 (config service.host)")
    serve.add_argument("--workers", type=_positive_int,
                       help="worker processes, each answering one request at a time "
                       "(default 1; config service.workers)")

    simulate = command("simulate", cmd_simulate, "generate a synthetic retail world with ground truth")
    simulate.add_argument("--customers", type=_positive_int, required=True, help="number of customers")
    simulate.add_argument("--out", type=Path, required=True, help="output folder")
    simulate.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    simulate.add_argument("--cutoff", type=_date, help="ground-truth cutoff (default: 180 days before the end)")
    simulate.add_argument("--horizon-days", type=_positive_int, default=180, help="ground-truth horizon (default 180)")
    simulate.add_argument("--format", choices=["csv", "parquet"], default="csv", help="file format (default csv)")

    features = command("features", cmd_features, "write point-in-time features, one row per customer")
    _add_input_args(features)
    features.add_argument("--as-of", type=_date, required=True, help="YYYY-MM-DD; only data before it is used")
    features.add_argument("--out", type=Path, required=True, help="features file (.csv or .parquet)")

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
    _setup_logging(args.verbose)
    try:
        config = load_config(args.config)
        return args.handler(args, config)
    except (DataError, ConfigError, InsufficientData) as err:
        print(f"tiercast {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
