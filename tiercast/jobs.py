"""The jobs behind the ``tiercast`` commands: one function per command. Each takes the typed config and the
command's files and values, does the work and returns what the command line prints.

Output paths are checked before the work starts, and outputs are written to a temporary file and moved into
place only when complete, so nothing half-made is left behind (:mod:`tiercast.outputs`). LightGBM, MLflow and
BentoML are imported inside the jobs that use them, so that ``tiercast --help`` and bad-input errors answer
without loading them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tiercast.config import AppConfig
from tiercast.features.problems import phrase
from tiercast.features.schema import DataError
from tiercast.outputs import (
    TABLE_SUFFIXES,
    TableTarget,
    check_output_file,
    check_output_folder,
    write_atomically,
    write_table,
)

if TYPE_CHECKING:
    from tiercast.analysis.campaign import CampaignResult
    from tiercast.features.buckets import Bucket, BucketEngine
    from tiercast.features.builder import FeatureColumns
    from tiercast.analysis.plan import RetentionPlan
    from tiercast.features.loading import InputData
    from tiercast.monitoring import Monitoring
    from tiercast.simulation.world import World
    from tiercast.serving.scorer import ModelBundle, ModelsUnavailable
    from tiercast.training.pipeline import TrainResult

log = logging.getLogger("tiercast")


class OptionError(Exception):
    """A command's value that does not fit what it applies to, e.g. a cutoff outside the simulated period."""


@dataclass(frozen=True)
class InputFiles:
    """A command's input files: transactions, and optionally customer profiles and interactions."""

    transactions: Path
    customers: Path | None = None
    interactions: Path | None = None

    def load(self, config: AppConfig) -> InputData:
        from tiercast.features.loading import load_inputs

        return load_inputs(self.transactions, self.customers, self.interactions, config.data)


def require_history(data: InputData, as_of: pd.Timestamp, transactions: Path) -> None:
    """Refuse an ``as_of`` before every transaction: no customer could be scored or described, and an empty
    file would pass for a result."""
    require_first_before(data.transactions["timestamp"].min(), as_of, transactions)


def require_first_before(first: pd.Timestamp, as_of: pd.Timestamp, transactions: Path) -> None:
    """:func:`require_history` given the first transaction's time."""
    if pd.isna(first):
        raise DataError.of(transactions, phrase("no_transactions"), "timestamp")
    if not first < as_of:
        raise DataError.of(transactions, phrase("as_of_before_history", as_of=as_of.date(), first=first.date()),
                           "timestamp")


def bucket_engine(config: AppConfig) -> BucketEngine:
    """The local engine of config ``engine``: its workers (unset: every core) and bucket size, with progress
    in the log; the buckets leave out the personal-data columns."""
    from tiercast.features.buckets import BucketEngine, default_workers

    return BucketEngine(config.engine.workers or default_workers(), config.engine.bucket_customers, log.info,
                        config.data.personal_data_columns, config.engine.bucket_rows)


def flat_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Scored rows as a flat file: the reasons list becomes one '; '-separated text cell."""
    flat = scores.copy()
    flat["reasons"] = flat["reasons"].map(lambda r: "; ".join(r))
    return flat


# ------------------------------------------------------------------------------------------- train, score
@dataclass(frozen=True)
class Training:
    result: TrainResult
    store: str  # the MLflow tracking URI the run and the models went to


@dataclass(frozen=True)
class Scoring:
    scores: pd.DataFrame
    out: Path
    fallback_reason: str = ""  # why no customer was scored by the models; empty when the models were used


@dataclass(frozen=True)
class ScoreSummary:
    """What a scoring that did not hold every score at once wrote: how many, by source and by tier."""

    customers: int
    out: Path | str
    sources: dict[str, int]
    tiers: pd.DataFrame  # customers and predicted value by tier
    fallback_reason: str = ""


class ModelsUnavailableError(Exception):
    """Batch scoring found no usable champion models and the config does not allow the rules instead."""


def _train(config: AppConfig, data: InputData, cutoff: pd.Timestamp, horizon_days: int, trials: int | None
           ) -> Training:
    from tiercast.training.pipeline import train_and_register
    from tiercast.training.registry import tracking_uri

    if trials is not None:
        config = config.model_copy(deep=True)
        config.training.tuning.trials = trials
    result = train_and_register(data, cutoff, horizon_days, config.training, config.features, config.policy,
                                config.data.personal_data_columns, config.model_dump(mode="json"),
                                progress=log.info, engine=bucket_engine(config))
    return Training(result, tracking_uri())


def train(config: AppConfig, inputs: InputFiles, cutoff: pd.Timestamp, horizon_days: int,
          trials: int | None = None) -> Training:
    """Train on data before ``cutoff``, log to MLflow, register the models and maybe promote them."""
    return _train(config, inputs.load(config), cutoff, horizon_days, trials)


def load_champion(config: AppConfig) -> ModelBundle | ModelsUnavailable:
    """The champion models, or why there are none to load (which :func:`_champion_bundle` acts on)."""
    from tiercast.serving.scorer import ModelBundle, ModelsUnavailable
    from tiercast.training.registry import configure_mlflow

    configure_mlflow()
    try:
        return ModelBundle.load(config.training.registry, config.service.model_alias)
    except ModelsUnavailable as err:
        return err


class ChampionLoading:
    """:func:`load_champion` on a thread, started now, while the caller reads the inputs: seconds of imports and
    of the model store, in Python, beside reading and cleaning in Arrow's threads. :meth:`result` is for
    :func:`_champion_bundle` to act on once the inputs are found good, so that a bad file is said first; a
    command stopped before that does not wait for the store (a daemon thread: a store that does not answer
    holds up neither the error nor the exit)."""

    def __init__(self, config: AppConfig) -> None:
        self._loaded: Future[ModelBundle | ModelsUnavailable] = Future()
        self._thread = threading.Thread(target=self._load, args=(config,), name="tiercast-champion", daemon=True)
        self._thread.start()

    def _load(self, config: AppConfig) -> None:
        try:
            self._loaded.set_result(load_champion(config))
        except BaseException as err:  # noqa: BLE001 - raised in the caller's thread by result()
            self._loaded.set_exception(err)

    def result(self) -> ModelBundle | ModelsUnavailable:
        """The champion, or why there is none, once loaded (the thread has ended: workers may fork)."""
        self._thread.join()
        return self._loaded.result()


def _champion_bundle(config: AppConfig, loaded: ModelBundle | ModelsUnavailable | None = None
                     ) -> tuple[ModelBundle | None, str]:
    """The champion models (``loaded`` already, or loaded now), or (None, why not) when there are none."""
    from tiercast.serving.scorer import ModelsUnavailable

    loaded = load_champion(config) if loaded is None else loaded
    if isinstance(loaded, ModelsUnavailable):
        err = loaded
        if not config.fallback.allow_in_batch:
            raise ModelsUnavailableError(
                f"{err}. Nothing was written. To score with the rule-based tiers instead, set "
                "fallback.allow_in_batch: true in the config") from err
        log.warning("%s; scoring every customer with the rule-based fallback (fallback.allow_in_batch)", err)
        return None, str(err)
    return loaded, ""


def score_with_config(config: AppConfig, transactions: pd.DataFrame, customers: pd.DataFrame | None,
                      interactions: pd.DataFrame | None, as_of: pd.Timestamp, bundle: ModelBundle | None,
                      horizon_days: int, reason: str | None = "no champion models",
                      features: FeatureColumns | None = None) -> pd.DataFrame:
    """:func:`tiercast.serving.scorer.score` of these customers with config's policy, features, fallback rules
    and language: what every batch engine (local, spilled, Spark) and the cycle score a customer with."""
    from tiercast.serving.scorer import score as score_customers

    return score_customers(transactions, as_of, config.policy, config.features, bundle, config.fallback, customers,
                           interactions, horizon_days, reason, config.language, features)


def score_in_buckets(config: AppConfig, data: InputData, as_of: pd.Timestamp, bundle: ModelBundle | None,
                     horizon_days: int, reason: str = "no champion models") -> pd.DataFrame:
    """:func:`tiercast.serving.scorer.score` of every customer, bucket by bucket on the local engine."""
    from tiercast.features.buckets import in_customer_order

    engine = bucket_engine(config)
    buckets = engine.split(data.transactions, data.customers, data.interactions)

    def scores(b: int) -> pd.DataFrame:
        bucket = buckets.bucket(b)
        return score_with_config(config, bucket.transactions, bucket.customers, bucket.interactions, as_of, bundle,
                                 horizon_days, reason)

    return in_customer_order(engine.map(scores, buckets, "scoring"), "customer_id")


def _score(config: AppConfig, data: InputData, as_of: pd.Timestamp, horizon_days: int, out: Path,
           champion: ModelBundle | ModelsUnavailable | None = None) -> Scoring:
    bundle, reason = _champion_bundle(config, champion)
    scores = score_in_buckets(config, data, as_of, bundle, horizon_days, reason)
    return Scoring(scores, write_table(flat_scores(scores), out), reason)


def score(config: AppConfig, inputs: InputFiles, as_of: pd.Timestamp, out: Path,
          champion: ChampionLoading | None = None) -> Scoring:
    """Score every customer with the champion models (or the rules without them) and write the file;
    ``champion``: the champion loading already (else it starts now)."""
    check_output_file(out, TABLE_SUFFIXES)
    champion = champion or ChampionLoading(config)
    data = inputs.load(config)
    require_history(data, as_of, inputs.transactions)
    return _score(config, data, as_of, config.training.horizon_days, out, champion.result())


@dataclass(frozen=True)
class Demo:
    training: Training
    scoring: Scoring


def demo(config: AppConfig, trained: Callable[[Training], Any] = lambda training: None) -> Demo:
    """Train, register and score on the bundled CDNOW data (config ``demo``); ``trained`` hears of the
    training before the scoring starts."""
    settings = config.demo
    check_output_file(settings.out, TABLE_SUFFIXES)  # before the training, not after it
    data = InputFiles(settings.transactions_path()).load(config)
    cutoff = pd.Timestamp(settings.cutoff)
    training = _train(config, data, cutoff, settings.horizon_days, settings.trials)
    trained(training)
    return Demo(training, _score(config, data, cutoff, settings.horizon_days, settings.out))


# ------------------------------------------------------------------------------------------------ backtest
@dataclass(frozen=True)
class Backtest:
    customers: int  # scored, with what they did next
    comparison: pd.DataFrame  # the models against the baselines on what happened
    out: Path


@dataclass(frozen=True)
class BacktestPart:
    """A bucket's share of a backtest."""

    rows: pd.DataFrame  # the output's rows: the scores (flat) with actual_value and churned
    scored: pd.DataFrame  # what evaluation.compare reads of them (index customer_id)
    baselines: pd.DataFrame  # what the baselines read of their transactions (evaluation.baseline_inputs)


def backtest_part(config: AppConfig, bucket: Bucket, cutoff: pd.Timestamp, horizon_days: int, bundle: ModelBundle
                  ) -> BacktestPart:
    """One bucket of customers scored at ``cutoff`` by ``bundle``, with what they did next."""
    from tiercast.training.evaluation import baseline_inputs
    from tiercast.training.labels import make_labels

    tx = bucket.transactions
    # the features the models were trained on: scored, and the recency rule's r_score read from them
    features = bundle.builder.transform_columns(tx, cutoff, bucket.customers, bucket.interactions)
    scores = score_with_config(config, tx, bucket.customers, bucket.interactions, cutoff, bundle, horizon_days,
                               features=features)
    labels = make_labels(tx, cutoff, horizon_days)
    scores = scores.join(labels.rename(columns={"value": "actual_value"}), on="customer_id")
    scored = scores.set_index("customer_id")[["actual_value", "churned", "predicted_value", "churn_probability"]]
    r_score = pd.Series(features["r_score"], index=pd.Index(features.ids, name="customer_id"))
    scored = scored.rename(columns={"actual_value": "value"}).assign(r_score=r_score.loc[scored.index])
    return BacktestPart(flat_scores(scores), scored, baseline_inputs(tx, cutoff, horizon_days))


def backtest_comparison(parts: list[BacktestPart], cutoff: pd.Timestamp, horizon_days: int, rule_rows: pd.DataFrame
                        ) -> pd.DataFrame:
    """The comparison table of the buckets' ``parts``, gathered in customer order: that of the whole log."""
    from tiercast.features.buckets import in_customer_order
    from tiercast.training.evaluation import compare

    return compare(in_customer_order([p.scored for p in parts]), in_customer_order([p.baselines for p in parts]),
                   cutoff, horizon_days, rule_rows)


def backtest(config: AppConfig, inputs: InputFiles, cutoff: pd.Timestamp, horizon_days: int, out: Path
             ) -> Backtest:
    """Train before ``cutoff`` (nothing registered), score at it, and compare with what happened next."""
    from tiercast.features.buckets import in_customer_order
    from tiercast.serving.scorer import ModelBundle
    from tiercast.training.pipeline import fit_models

    check_output_file(out, TABLE_SUFFIXES)
    data = inputs.load(config)
    trained = fit_models(data, cutoff, horizon_days, config.training, config.features,
                         config.data.personal_data_columns, progress=log.info, engine=bucket_engine(config))
    bundle = ModelBundle.from_trained(trained, config.policy, horizon_days, {"backtest": "unregistered"})
    engine = bucket_engine(config)
    buckets = engine.split(data.transactions, data.customers, data.interactions)
    parts = engine.map(lambda b: backtest_part(config, buckets.bucket(b), cutoff, horizon_days, bundle), buckets,
                       "backtesting")
    rows = in_customer_order([p.rows for p in parts], "customer_id")
    written = write_table(rows, out)
    return Backtest(len(rows), backtest_comparison(parts, cutoff, horizon_days, trained.validation), written)


# ------------------------------------------------------------------------------------------ serve, simulate
def serve(config: AppConfig, host: str | None = None, port: int | None = None, workers: int | None = None
          ) -> None:
    """Run the prediction service until it is stopped; unset arguments come from config ``service``."""
    from tiercast.serving.config import ServingSettings
    from tiercast.serving.service import run

    service = config.service.model_copy(update={"workers": workers}) if workers else config.service
    settings = ServingSettings(service=service, policy=config.policy, features=config.features,
                               fallback=config.fallback, registry=config.training.registry,
                               horizon_days=config.training.horizon_days,
                               personal_data_columns=config.data.personal_data_columns,
                               drop_identical_rows=config.data.drop_identical_rows, language=config.language)
    run(settings, host=host or config.service.host, port=port or config.service.port)


@dataclass(frozen=True)
class Simulation:
    world: World
    cutoff: pd.Timestamp
    horizon_days: int
    truth: pd.DataFrame  # each customer's expected value and churn probability after the cutoff
    paths: dict[str, Path]  # the files written, by kind
    seconds: float
    lines: pd.DataFrame | None = None  # the invoice lines written as transactions, when asked for


def simulate(customers: int | None, out: Path, seed: int = 0, cutoff: pd.Timestamp | None = None,
             horizon_days: int | None = None, file_format: str = "csv", preset: str = "default",
             line_items: bool = False, product_id: bool = True) -> Simulation:
    """A synthetic world (a named preset) written to ``out``, with its ground truth at ``cutoff``.

    Unset ``customers`` and ``horizon_days`` come from the preset; with ``line_items`` the transactions
    file holds invoice lines (without ``product_id`` when it is False) instead of one row per order.
    """
    from tiercast.simulation.files import write_world
    from tiercast.simulation.line_items import line_items as invoice_lines
    from tiercast.simulation.presets import preset_config
    from tiercast.simulation.truth import ground_truth
    from tiercast.simulation.world import simulate_world

    check_output_folder(out)
    overrides = {"seed": seed} if customers is None else {"seed": seed, "n_customers": customers}
    world_config = preset_config(preset, **overrides)
    horizon_days = horizon_days or world_config.default_horizon_days
    cutoff = cutoff if cutoff is not None else pd.Timestamp(world_config.default_cutoff)
    start, end = pd.Timestamp(world_config.start), pd.Timestamp(world_config.end)
    if not start < cutoff or cutoff + pd.Timedelta(days=horizon_days) > end:  # checked before the slow part
        raise OptionError(f"the ground-truth window from {cutoff.date()} over {horizon_days} days must start "
                          f"after {start.date()} and end by {end.date()}, the '{preset}' world's period")
    started = time.perf_counter()
    world = simulate_world(world_config)
    lines = invoice_lines(world, product_id=product_id) if line_items else None
    paths = write_world(world, out, cutoff, horizon_days, file_format, transactions=lines)
    truth = ground_truth(world, cutoff, horizon_days)
    return Simulation(world, cutoff, horizon_days, truth, paths, time.perf_counter() - started, lines)


# ------------------------------------------------------------------------------------------------ features
@dataclass(frozen=True)
class Features:
    features: pd.DataFrame
    out: Path
    quality_report: Path | None  # None for a database table: the report went to the log

    @property
    def customers(self) -> int:
        return len(self.features)


def quality_report_path(out: Path) -> Path:
    """The data-quality report written beside a features file."""
    return Path(out).with_name(Path(out).name + ".quality.json")


def _with_counts(quality: dict[str, object], customers: int, as_of: pd.Timestamp) -> dict[str, object]:
    """The inputs' cleaning report with what the features run made of it."""
    return {**quality, "customers_scored": customers, "as_of": str(as_of.date())}


def write_quality_report(quality: dict[str, object], written: Path, customers: int, as_of: pd.Timestamp) -> Path:
    """The data-quality report of the inputs' cleaning ``quality``, beside the features file ``written``."""
    quality = _with_counts(quality, customers, as_of)
    report = quality_report_path(written)
    return write_atomically(report, lambda tmp: tmp.write_text(json.dumps(quality, indent=2, default=str)))


def features(config: AppConfig, inputs: InputFiles, as_of: pd.Timestamp, out: Path) -> Features:
    """Point-in-time features, one row per customer, and a data-quality report beside them."""
    from tiercast.features.builder import FeatureBuilder

    check_output_file(out, TABLE_SUFFIXES)
    in_database = isinstance(out, TableTarget)  # a table has no file beside it: the report goes to the log
    if not in_database:
        check_output_file(quality_report_path(out))
    data = inputs.load(config)
    require_history(data, as_of, inputs.transactions)
    engine = bucket_engine(config)
    table = engine.fit_transform(FeatureBuilder(config.features, config.data.personal_data_columns),
                                 engine.split(data.transactions, data.customers, data.interactions), as_of)
    written = write_table(table.reset_index(), out)
    if in_database:
        log.info("data-quality report: %s",
                 json.dumps(_with_counts(data.quality_report(), len(table), as_of), default=str))
        return Features(table, written, None)
    return Features(table, written, write_quality_report(data.quality_report(), written, len(table), as_of))


# ---------------------------------------------------------------------------- analyses of scored files
@dataclass(frozen=True)
class Plan:
    plan: RetentionPlan
    out: Path


def plan(config: AppConfig, scores_path: Path, budget: float, cost_per_contact: float, out: Path,
         save_rate: float | None = None, control_share: float | None = None, seed: int | None = None) -> Plan:
    """Whom to contact for retention within ``budget``; unset values come from config ``plan``."""
    from tiercast.analysis.plan import PLAN_REQUIRED, plan_retention
    from tiercast.features.loading import read_scores

    check_output_file(out, TABLE_SUFFIXES)
    scores = read_scores(scores_path, PLAN_REQUIRED)
    save_rate = save_rate if save_rate is not None else config.plan.save_rate
    control_share = control_share if control_share is not None else config.plan.control_share
    seed = seed if seed is not None else config.plan.seed
    retention = plan_retention(scores, budget, cost_per_contact, save_rate, control_share, seed)
    return Plan(retention, write_table(retention.contacts, out))


def _quality_card(config: AppConfig, alias: str) -> tuple[dict | None, str]:
    """The value model's quality card behind ``alias`` and where it came from; (None, why not) without one."""
    from tiercast.serving.i18n import messages
    from tiercast.training.registry import configure_mlflow, metadata_by_alias

    m = messages(config.language)
    uri = configure_mlflow()
    name = config.training.registry.value_model
    metadata = metadata_by_alias(name, alias)
    if metadata is None:
        return None, m.text("card.no_models", alias=alias, uri=uri)
    card = metadata.get("quality_card")
    return card, m.text("card.source" if card else "card.not_logged", name=name, alias=alias, uri=uri)


@dataclass(frozen=True)
class Report:
    customers: int
    page: Path
    quality_card: dict | None  # the models' quality card, None without one
    card_source: str  # where the card came from, or why there is none


def report(config: AppConfig, scores_path: Path, out: Path, previous: Path | None = None,
           model_alias: str | None = None, history: Path | None = None) -> Report:
    """The HTML report on a scored file, with the quality card of the models behind ``model_alias`` and, for a
    ``tiercast cycle`` directory ``history``, the history of its runs."""
    from tiercast.analysis.history import cycle_history
    from tiercast.analysis.report import REPORT_REQUIRED, write_report
    from tiercast.features.loading import read_scores

    check_output_folder(out)
    if history is not None and not Path(history).is_dir():
        raise DataError.of(history, phrase("history_not_a_folder"))
    scores = read_scores(scores_path, REPORT_REQUIRED)
    earlier = read_scores(previous, ("customer_id", "tier")) if previous else None
    card, card_source = _quality_card(config, model_alias or config.service.model_alias)
    page = write_report(scores, out, config.policy, earlier, source=str(scores_path),
                        previous_source=str(previous or ""), quality_card=card, card_source=card_source,
                        history=cycle_history(history) if history is not None else None, language=config.language)
    return Report(len(scores), page, card, card_source)


@dataclass(frozen=True)
class PlanEvaluation:
    result: CampaignResult
    out: Path | None


def evaluate_plan(config: AppConfig, plan_path: Path, transactions_path: Path, start: pd.Timestamp | None = None,
                  horizon_days: int | None = None, confidence: float = 0.95, out: Path | None = None
                  ) -> PlanEvaluation:
    """A plan's uplift in value and retention, treated against control customers, written as JSON to
    ``out`` when given."""
    from tiercast.analysis.campaign import evaluate_plan as evaluate, read_plan
    from tiercast.features.loading import load_transactions

    if out:
        check_output_file(out)
    contacts, start = read_plan(plan_path, start, config.data.error_sample_rows)
    transactions, _ = load_transactions(transactions_path, config.data)
    horizon_days = horizon_days or config.training.horizon_days
    window_end = start + pd.Timedelta(days=horizon_days)
    if transactions["timestamp"].max() < window_end - pd.Timedelta(days=1):
        log.warning("the transactions end at %s, before the window closes at %s: later purchases are missing, "
                    "so the read-out is an interim one", transactions["timestamp"].max(), window_end)
    try:
        result = evaluate(contacts, transactions, start, horizon_days, confidence)
    except ValueError as err:  # too few treated or control customers
        raise DataError(plan_path, str(err), "group") from err
    if out:
        out = write_atomically(out, lambda tmp: tmp.write_text(json.dumps(result.to_dict(), indent=2)))
    return PlanEvaluation(result, out)


# ---------------------------------------------------------------------------------------- monitor, cycle
def champion_models(config: AppConfig, command: str) -> ModelBundle:
    """The champion models, which ``command`` cannot do without (no rule fallback measures drift)."""
    from tiercast.serving.scorer import ModelBundle, ModelsUnavailable
    from tiercast.training.registry import configure_mlflow

    configure_mlflow()
    try:
        return ModelBundle.load(config.training.registry, config.service.model_alias)
    except ModelsUnavailable as err:
        raise ModelsUnavailableError(f"{err}. {command} measures the champion models; nothing was written") from err


def monitor(config: AppConfig, scores_path: Path, inputs: InputFiles, as_of: pd.Timestamp, out: Path) -> Monitoring:
    """How the scoring in ``scores_path`` did up to ``as_of`` and how far the customers drifted from the
    champion's training population: ``out/monitor.json``, a chart and an MLflow monitoring run."""
    from tiercast.monitoring import monitor as run_monitor
    from tiercast.monitoring import read_monitored_scores

    check_output_folder(out)
    scores, then = read_monitored_scores(scores_path)
    if not then < as_of:
        raise OptionError(f"--as-of {as_of.date()} must come after the scored file's as_of, {then.date()}: "
                          "nothing has happened since it yet")
    data = inputs.load(config)
    require_history(data, as_of, inputs.transactions)
    return run_monitor(config, scores, then, data, as_of, out, champion_models(config, "tiercast monitor"))
