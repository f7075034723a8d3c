"""The training job: rolling-origin examples, tuned value/churn models, segments, evaluation against the
baselines, MLflow logging, and the champion gate.

One MLflow run per training, with one nested run per tuning trial. Models are registered, tagged
``challenger``, and become ``champion`` only when they are at least as good as the current champion on
this run's validation window: both are scored there through their own ``predict`` (the champion with its
own logged feature spec), so the comparison is like for like.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from tiercast.features.buckets import BucketEngine, Buckets, in_customer_order, release_freed_memory
from tiercast.features.builder import FeatureBuilder
from tiercast.features.loading import InputData
from tiercast.features.spec import FeatureSpec
from tiercast.training import evaluation, metrics
from tiercast.training.boosters import ChurnModel, ValueModel
from tiercast.training.classic.forecast import (CLASSIC_COLUMNS, ClassicFeatures, window_classic_columns,
                                                with_classic_columns)
from tiercast.training.classic.seasonality import seasonal_clock
from tiercast.training.config import LightGBMParams, TrainingConfig
from tiercast.training.customer_sample import CustomerSample, sample_customers
from tiercast.training.drift import training_reference
from tiercast.training.extension import HorizonExtension
from tiercast.training.labels import seasonal_cutoffs, training_examples
from tiercast.training.policy import TierPolicy
from tiercast.training.quality_card import quality_card
from tiercast.training.registry import (alias_set, configure_mlflow, fail_abandoned_runs, load_model_version, log_model,
                                        point_alias, process_tags, repair_alias, tag_set)
from tiercast.training.segments import SegmentModel, rfm_profiles
from tiercast.training.sufficiency import LabelWindows, choose_windows
from tiercast.training.tuning import tune

log = logging.getLogger(__name__)

# The metric each model is judged on by the champion gate (higher is better).
GATE_METRICS = {"value": "gini", "churn": "auc"}


@dataclass
class TrainedModels:
    """What one training produces, before and independent of MLflow."""

    builder: FeatureBuilder
    value: ValueModel
    churn: ChurnModel
    segments: SegmentModel
    classic: ClassicFeatures  # BG/NBD x Gamma-Gamma at the training cutoff
    validation: pd.DataFrame  # the latest window: features, classic columns and labels (index customer_id)
    metrics: dict[str, float]  # the models' out-of-fold scores on the validation window
    comparison: pd.DataFrame  # the models against the baselines on the validation window
    predictions: dict[str, pd.DataFrame]  # validation predictions of the models and each baseline
    tuning: dict[str, pd.DataFrame]  # one row per tuning trial, per model
    features_at_cutoff: pd.DataFrame
    training_rows: int
    windows: LabelWindows  # the label windows the models were trained (and validated) on
    horizon_days: int  # the horizon they predict: windows.label_days, or longer through ``extension``
    extension: HorizonExtension | None  # carries predictions from windows.label_days to horizon_days
    sample: CustomerSample  # the customers learnt from: all, or a sample above training.max_customers
    inputs: InputData  # their rows

    def predicted_value(self, features: pd.DataFrame) -> np.ndarray:
        """Predicted value over ``horizon_days`` of each row of ``features`` (the builder's columns)."""
        value = self.value.predict(features[self.builder.feature_names_])
        return value if self.extension is None else self.extension.extend_value(features, value)

    def monitoring_reference(self, policy: TierPolicy, thresholds: list[float]) -> dict[str, Any]:
        """The training population's feature, prediction and tier histograms
        (:func:`tiercast.training.drift.training_reference`), stored with the models for ``tiercast monitor``."""
        features = self.features_at_cutoff
        X = features[self.builder.feature_names_]
        value, churn = self.value.predict(X), self.churn.predict_proba(X)
        if self.extension is not None:
            value, churn = self.extension.extend(features, value, churn)
        tiers = policy.assign(value, policy.model_thresholds(thresholds), churn, features["lifecycle_stage"])["tier"]
        return training_reference(X, value, pd.Series(tiers))

    def tier_thresholds(self, policy: TierPolicy) -> list[float]:
        """The policy's value-tier thresholds fitted on the predicted values of the customers at the cutoff,
        to be frozen with the models."""
        return policy.fit_thresholds(self.predicted_value(self.features_at_cutoff))


@dataclass
class TrainResult:
    run_id: str
    versions: dict[str, str]
    metrics: dict[str, float]
    promoted: bool
    decision: str
    champion_metrics: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)  # BG/NBD + Gamma-Gamma on the same window
    validation_window: str = ""
    quality_card: dict[str, Any] = field(default_factory=dict)  # plain-words card (tiercast.training.quality_card)


def evaluate(value_pred: np.ndarray, churn_pred: np.ndarray, frame: pd.DataFrame) -> dict[str, float]:
    """Value and churn metrics of predictions against ``frame``'s ``value`` and ``churned``."""
    return evaluation.scores(frame["value"].to_numpy(), frame["churned"].to_numpy(), np.asarray(value_pred),
                             np.asarray(churn_pred))


def require_enough_data(data: InputData, cutoff: pd.Timestamp, horizon_days: int, config: TrainingConfig
                        ) -> LabelWindows:
    """The label windows to train on: ``config.n_windows`` windows of ``horizon_days`` when the log meets
    ``config.sufficiency`` for the earliest of them, else (``config.extend_short_history``) shorter ones
    that do (:func:`tiercast.training.sufficiency.shorter_windows`). Stops with InsufficientData, naming
    what is missing and what would work, when none fit."""
    requested = LabelWindows(horizon_days, config.n_windows, config.step_days)
    return choose_windows(data.transactions, pd.Timestamp(cutoff), requested, config.sufficiency,
                          config.extend_short_history, config.min_label_days)


def _short_history_note(cutoff: pd.Timestamp, horizon_days: int, windows: LabelWindows, config: TrainingConfig
                        ) -> str | None:
    """What training does differently from the configured windows, in words; None when nothing."""
    if windows.label_days < horizon_days:
        return (f"history before {cutoff.date()} holds label windows of at most {windows.label_days} days: "
                f"models trained on {windows.n_windows} windows of {windows.label_days} days, extended to "
                f"{horizon_days} days with BG/NBD x Gamma-Gamma")
    if windows.n_windows < config.n_windows:
        return (f"history before {cutoff.date()} holds {windows.n_windows} label windows of {horizon_days} days, "
                f"not {config.n_windows}: models trained on {windows.n_windows}")
    return None


def _examples_in_buckets(engine: BucketEngine, buckets: Buckets, cutoff: pd.Timestamp, label_days: int,
                         builder: FeatureBuilder, windows: LabelWindows, seasonal: list[pd.Timestamp]
                         ) -> pd.DataFrame:
    """:func:`training_examples` of every bucket (the builder fitted), oldest window first and by customer
    within each, as they come at once."""
    def examples(b: int) -> pd.DataFrame:
        bucket = buckets.bucket(b)
        return training_examples(bucket.transactions, cutoff, label_days, builder, windows.n_windows,
                                 windows.step_days, bucket.customers, bucket.interactions, seasonal)

    table = in_customer_order(engine.map(examples, buckets, "building training examples"), "customer_id")
    return table.take(np.argsort(table["window_cutoff"].to_numpy(), kind="stable")).reset_index(drop=True)


def fit_models(data: InputData, cutoff: pd.Timestamp, horizon_days: int, config: TrainingConfig,
               spec: FeatureSpec, personal_data_columns: list[str],
               progress: Callable[[str], None] = log.info,
               previous_segments: SegmentModel | None = None, engine: BucketEngine | None = None) -> TrainedModels:
    """Fit, tune and evaluate every model on data before ``cutoff``; labels of all windows end by it.

    The latest window validates (early stopping, calibration, tuning, the gate); the earlier ones train.
    When the history is too short for label windows of ``horizon_days`` (see :func:`require_enough_data`),
    the models learn shorter ones and ``extension`` carries their predictions to ``horizon_days``.
    ``previous_segments`` (the champion's) lends its names to the segments that match it. Above
    ``config.max_customers`` customers or ``config.max_rows`` rows, a seeded sample of the customers is learnt
    from (:mod:`customer_sample`).
    Features and examples are built bucket by bucket on ``engine`` (default: one bucket, this process), and as
    many customer folds' boosters as it has workers are trained side by side (the same boosters either way).
    """
    cutoff = pd.Timestamp(cutoff)
    # The sample first, so the windows are judged on the customers learnt from, as on the Spark engine, which
    # draws it before the rows reach this process.
    data, sample = sample_customers(data, cutoff, config.max_customers, config.seed, config.max_rows)
    windows = require_enough_data(data, cutoff, horizon_days, config)
    note = _short_history_note(cutoff, horizon_days, windows, config)
    if note:
        log.warning(note)
    engine = engine or BucketEngine.at_once()
    label_days = windows.label_days
    tx = data.transactions
    buckets = engine.split(tx, data.customers, data.interactions)
    builder = FeatureBuilder(spec, personal_data_columns)
    features_at_cutoff = engine.fit_transform(builder, buckets, cutoff)
    seasonal = (seasonal_cutoffs(cutoff, label_days, tx["timestamp"].min(), config.sufficiency.min_history_days)
                if config.seasonal_windows else [])
    progress(f"building training examples before {cutoff.date()}: {windows}"
             + (f", and last year's same season from {seasonal[0].date()}" if seasonal else ""))
    examples = _examples_in_buckets(engine, buckets, cutoff, label_days, builder, windows,
                                    seasonal).set_index("customer_id")
    window = examples["window_cutoff"]
    latest = (window == window.max()).to_numpy()
    if latest.all() or len(examples) == 0:
        raise ValueError(f"not enough history before {cutoff.date()} for {windows}")
    cutoffs = np.unique(window.to_numpy())

    # Each window's BG/NBD x Gamma-Gamma on its own seasonal clock, and the cutoff's for new rows: independent
    # fits (most of the time of building the examples), one per task on the engine's workers.
    def classic_fit(k: int) -> np.ndarray | ClassicFeatures:
        if k == len(cutoffs):
            return ClassicFeatures(label_days, seasonal_clock(tx, cutoff, horizon_days)).fit(features_at_cutoff)
        w = pd.Timestamp(cutoffs[k])
        return window_classic_columns(examples[(window == w).to_numpy()], label_days,
                                      seasonal_clock(tx, w, label_days))

    *window_values, classic = engine.run(classic_fit, len(cutoffs) + 1, "fitting BG/NBD x Gamma-Gamma per window",
                                         "fits", reads=buckets)
    examples = with_classic_columns(examples, window, window_values)
    release_freed_memory()  # the examples' intermediates, before LightGBM's datasets and boosters
    extension = HorizonExtension.of(classic, horizon_days) if label_days < horizon_days else None
    names = builder.feature_names_
    X = examples[names + CLASSIC_COLUMNS]
    validation = examples[latest]
    progress(f"fitting value and churn models on {int((~latest).sum()):,} examples, "
             f"validating on {len(validation):,} customers in {config.folds} folds")

    def fit_value(params: LightGBMParams) -> tuple[ValueModel, float]:
        model = ValueModel(params, config.seed, config.folds, config.threads, classic, engine.workers).fit(
            X, examples["value"].to_numpy(), window)
        return model, metrics.normalized_gini(validation["value"].to_numpy(), model.oof_prediction_.to_numpy())

    def fit_churn(params: LightGBMParams) -> tuple[ChurnModel, float]:
        model = ChurnModel(params, config.seed, config.folds, config.threads, classic, engine.workers).fit(
            X, examples["churned"].to_numpy(dtype=np.float64), window)
        return model, metrics.roc_auc(validation["churned"].to_numpy(dtype=int), model.oof_prediction_.to_numpy())

    value = tune(fit_value, config.value_model, config.tuning, config.seed, "value", "value_gini", progress)
    churn = tune(fit_churn, config.churn_model, config.tuning, config.seed, "churn", "churn_auc", progress)
    progress(f"refitting the chosen models on the {int((~latest).sum()):,} examples of every customer")
    value.model.refit(X, examples["value"].to_numpy(), window)
    churn.model.refit(X, examples["churned"].to_numpy(dtype=np.float64), window)
    progress(f"fitting segments on {len(features_at_cutoff):,} customers")
    segments = SegmentModel(config.segments, config.seed, config.threads).fit(features_at_cutoff,
                                                                              previous_segments)

    predictions = {evaluation.MODEL: pd.DataFrame({"predicted_value": value.model.oof_prediction_.to_numpy(),
                                                   "churn_probability": churn.model.oof_prediction_.to_numpy()},
                                                  index=validation.index)}
    predictions.update(evaluation.baseline_predictions(tx, window.max(), label_days, validation,
                                                       examples[~latest]))
    comparison = evaluation.comparison(validation, predictions)
    scores = comparison.loc[evaluation.MODEL].to_dict()
    return TrainedModels(builder, value.model, churn.model, segments, classic, validation, scores, comparison,
                         predictions, {"value": value.trials, "churn": churn.trials}, features_at_cutoff,
                         int((~latest).sum()), windows, horizon_days, extension, sample, data)


def _champion_segments(config: TrainingConfig) -> SegmentModel | None:
    """The champion's segment model, whose names a retrain keeps; None without a usable one."""
    names = config.registry
    try:
        found = alias_set(names, names.champion_alias)
        if found is None:
            return None
        segments, _ = load_model_version(found["segments"])
    except Exception as err:  # an unloadable champion only costs the names' continuity
        log.warning("champion segments could not be loaded, names start afresh: %s", err)
        return None
    return segments if isinstance(segments, SegmentModel) and hasattr(segments, "centres_") else None


def _gate_scores(value: Any, churn: Any, X: pd.DataFrame, validation: pd.DataFrame) -> dict[str, float]:
    return evaluate(value.predict(X), churn.predict_proba(X), validation)


def _horizons(metadata: dict[str, Any]) -> tuple[int, int]:
    """(label window days, predicted horizon days) of logged models; models logged before label windows
    could be shorter than the horizon give the horizon for both."""
    horizon = int(metadata["horizon_days"])
    return int(metadata.get("label_horizon_days", horizon)), horizon


def _champion_scores(validation: pd.DataFrame, data: InputData, config: TrainingConfig, engine: BucketEngine
                     ) -> tuple[dict[str, float] | None, tuple[int, int] | None]:
    """The current champion's gate metrics on this run's validation window and its (label window days,
    horizon days); (None, None) without a champion. The champion's features come from its own logged
    spec, and the classic columns from a BG/NBD refitted at the window on its seasonal clock over its own
    label windows, as for the challenger."""
    found = alias_set(config.registry, config.registry.champion_alias)
    if found is None:
        return None, None
    value, meta = load_model_version(found["value"])
    churn, _ = load_model_version(found["churn"])
    builder = FeatureBuilder.from_dict(meta["feature_builder"])
    label_days, horizon = _horizons(meta)
    window = validation["window_cutoff"].iloc[0]
    population = engine.transform(builder, engine.split(data.transactions, data.customers, data.interactions),
                                  window)
    classic = ClassicFeatures(label_days, seasonal_clock(data.transactions, window, label_days)).fit(population)
    population = population.join(classic.transform(population))
    X = population.loc[validation.index, builder.feature_names_ + CLASSIC_COLUMNS]
    return _gate_scores(value, churn, X, validation), (label_days, horizon)


def _gate(trained: TrainedModels, config: TrainingConfig, engine: BucketEngine
          ) -> tuple[bool, str, dict[str, float], dict[str, float]]:
    """(promote?, decision, challenger's gate scores, champion's gate scores).

    Both are scored on the challenger's validation window, over its label windows: only models trained on
    label windows of the same length, for the same horizon, are compared there."""
    X = trained.validation[trained.value.feature_names_]
    challenger = _gate_scores(trained.value, trained.churn, X, trained.validation)
    try:
        champion, horizons = _champion_scores(trained.validation, trained.inputs, config, engine)
    except Exception as err:  # an unloadable or failing champion cannot defend its title
        return True, f"the champion could not be scored ({type(err).__name__}: {err}): promoted", challenger, {}
    if champion is None:
        return True, "no champion yet: the challenger becomes champion", challenger, {}
    label_days, horizon = horizons
    if horizon != trained.horizon_days:
        return (True, f"the champion predicts {horizon} days, not {trained.horizon_days}: not comparable, "
                "promoted", challenger, champion)
    if label_days != trained.windows.label_days:
        return (True, f"the champion was trained on {label_days}-day label windows, the challenger on "
                f"{trained.windows.label_days}-day ones (both for {horizon} days): not comparable, promoted",
                challenger, champion)
    worse = [f"{kind} {metric}: {challenger[f'{kind}_{metric}']:.4f} < champion {champion[f'{kind}_{metric}']:.4f}"
             for kind, metric in GATE_METRICS.items()
             if not challenger[f"{kind}_{metric}"] >= champion[f"{kind}_{metric}"]]
    if worse:
        return False, "kept the champion: " + "; ".join(worse), challenger, champion
    better = ", ".join(f"{kind} {metric} {challenger[f'{kind}_{metric}']:.4f} >= {champion[f'{kind}_{metric}']:.4f}"
                       for kind, metric in GATE_METRICS.items())
    return True, f"at least as good as the champion on the same window ({better}): promoted", challenger, champion


def _log_artifacts(trained: TrainedModels, quality: dict[str, Any], config_dump: dict[str, Any],
                   decision: dict[str, Any], card: dict[str, Any]) -> None:
    validation = trained.validation
    ours = trained.predictions[evaluation.MODEL]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "config.json").write_text(json.dumps(config_dump, indent=2, default=str))
        (folder / "data_quality.json").write_text(json.dumps(quality, indent=2, default=str))
        (folder / "champion_decision.json").write_text(json.dumps(decision, indent=2, default=str))
        (folder / "quality_card.json").write_text(json.dumps(card, indent=2, default=str))
        importance = pd.DataFrame({"value": trained.value.feature_importance(),
                                   "churn": trained.churn.feature_importance()})
        importance.sort_values("value", ascending=False).to_csv(folder / "feature_importance.csv",
                                                                index_label="feature")
        trained.segments.profiles(trained.features_at_cutoff).to_csv(folder / "segment_profiles.csv")
        rfm_profiles(trained.features_at_cutoff, trained.segments).to_csv(folder / "rfm_segments.csv")
        trained.comparison.to_csv(folder / "comparison.csv")
        (folder / "comparison.md").write_text(evaluation.comparison_markdown(trained.comparison))
        metrics.decile_table(validation["value"].to_numpy(), ours["predicted_value"].to_numpy()).to_csv(
            folder / "decile_table.csv", index=False)
        metrics.calibration_curve_table(validation["churned"].to_numpy(dtype=int),
                                        ours["churn_probability"].to_numpy()).to_csv(
            folder / "churn_calibration.csv", index=False)
        for kind, trials in trained.tuning.items():
            trials.to_csv(folder / f"tuning_{kind}.csv", index=False)
        window = f"validation window {pd.Timestamp(validation['window_cutoff'].iloc[0]).date()}"
        evaluation.gain_chart(validation["value"].to_numpy(),
                              {name: p["predicted_value"].to_numpy() for name, p in trained.predictions.items()},
                              folder / "gain_chart.png", title=f"Gain chart, {window}")
        evaluation.calibration_chart(validation, trained.predictions, folder / "calibration_chart.png",
                                     title=f"Calibration, {window}")
        mlflow.log_artifacts(str(folder))


def _run_params(trained: TrainedModels, cutoff: pd.Timestamp, horizon_days: int, config: TrainingConfig
                ) -> dict[str, Any]:
    bgnbd = trained.classic.bgnbd_.params_
    params: dict[str, Any] = {
        "cutoff": str(cutoff.date()), "horizon_days": horizon_days,
        "label_horizon_days": trained.windows.label_days, "n_windows": trained.windows.n_windows,
        "step_days": trained.windows.step_days, "folds": config.folds, "seed": config.seed,
        "trials": config.tuning.trials, "training_rows": trained.training_rows,
        "validation_customers": len(trained.validation), "validation_window":
            str(pd.Timestamp(trained.validation["window_cutoff"].iloc[0]).date()),
        "n_features": len(trained.builder.feature_names_), "segments_k": trained.segments.k_,
        "value_best_iterations": str(trained.value.best_iterations_),
        "churn_best_iterations": str(trained.churn.best_iterations_),
        **{f"bgnbd_{k}": round(v, 6) for k, v in bgnbd._asdict().items()},
        **trained.sample.params(),
        "seasonal_index": "none (calendar time)" if trained.classic.clock.index is None
        else " ".join(f"{v:.3f}" for v in trained.classic.clock.index),
    }
    for kind, model in (("value", trained.value), ("churn", trained.churn)):
        params.update({f"{kind}_{k}": v for k, v in model.params.model_dump().items()})
    return params


def train_and_register(data: InputData, cutoff: pd.Timestamp, horizon_days: int, config: TrainingConfig,
                       spec: FeatureSpec, policy: TierPolicy, personal_data_columns: list[str],
                       config_dump: dict[str, Any], progress: Callable[[str], None] = log.info,
                       engine: BucketEngine | None = None) -> TrainResult:
    """Train, log everything to one MLflow run, register the models and apply the champion gate.

    The tier thresholds of ``policy`` are fitted on the training population's predicted values and frozen
    with the models.
    """
    cutoff = pd.Timestamp(cutoff)
    engine = engine or BucketEngine.at_once()
    # Checked here as well as in fit_models so that too little data leaves no failed run behind in MLflow.
    require_enough_data(data, cutoff, horizon_days, config)
    configure_mlflow()
    mlflow.set_experiment(config.registry.experiment)
    names = config.registry
    fail_abandoned_runs(names.experiment)
    repair_alias(names, names.champion_alias)
    repair_alias(names, names.challenger_alias)
    with mlflow.start_run(run_name=f"train-{cutoff.date()}-h{horizon_days}", tags=process_tags()) as run:
        trained = fit_models(data, cutoff, horizon_days, config, spec, personal_data_columns, progress,
                             _champion_segments(config), engine)
        mlflow.log_params(_run_params(trained, cutoff, horizon_days, config))
        mlflow.log_metrics({k: v for k, v in trained.metrics.items() if np.isfinite(v)})
        mlflow.log_metrics({f"baseline_{name}_{metric}": value for name, row in trained.comparison.iterrows()
                            if name != evaluation.MODEL for metric, value in row.items() if np.isfinite(value)})

        X = trained.features_at_cutoff[trained.builder.feature_names_]
        thresholds = trained.tier_thresholds(policy)
        start = pd.Timestamp(trained.validation["window_cutoff"].iloc[0])
        window = f"{start.date()} to {(start + pd.Timedelta(days=trained.windows.label_days)).date()}"
        card = quality_card(trained.validation, trained.predictions[evaluation.MODEL],
                            trained.predictions.get(evaluation.REFERENCE), config.quality, window)
        # The models predict label_horizon_days; a ModelBundle extends them to horizon_days when longer.
        metadata = {"feature_builder": trained.builder.to_dict(), "horizon_days": horizon_days,
                    "label_horizon_days": trained.windows.label_days,
                    "cutoff": str(cutoff.date()), "tier_thresholds": thresholds, "quality_card": card,
                    "monitoring_reference": trained.monitoring_reference(policy, thresholds)}
        progress("logging and registering the models")
        versions = {
            "value": log_model(trained.value, "value_model", names.value_model, X, metadata).version,
            "churn": log_model(trained.churn, "churn_model", names.churn_model, X, metadata).version,
            "segments": log_model(trained.segments, "segment_model", names.segment_model, X, metadata).version,
        }
        tag_set(names, versions)
        point_alias(names, names.challenger_alias, versions)
        promoted, decision, challenger, champion = _gate(trained, config, engine)
        if promoted:
            point_alias(names, names.champion_alias, versions)
        mlflow.log_metrics({f"gate_challenger_{k}": v for k, v in challenger.items() if np.isfinite(v)})
        mlflow.log_metrics({f"gate_champion_{k}": v for k, v in champion.items() if np.isfinite(v)})
        mlflow.set_tags({"promoted": str(promoted), "promotion_decision": decision})
        mlflow.log_metric("promoted", float(promoted))
        _log_artifacts(trained, data.quality_report(), config_dump,
                       {"promoted": promoted, "decision": decision, "gate_metrics": GATE_METRICS,
                        "challenger": challenger, "champion": champion, "versions": versions}, card)
        progress(decision)
        return TrainResult(run.info.run_id, versions, trained.metrics, promoted, decision, champion,
                           trained.comparison.loc[evaluation.REFERENCE].to_dict(),
                           str(pd.Timestamp(trained.validation["window_cutoff"].iloc[0]).date()), card)
