"""The training job: rolling-origin examples, value/churn/segment models, evaluation, MLflow, the champion gate.

One MLflow run per training. Models are registered, tagged ``challenger``, and become ``champion`` only
when they are at least as good as the current champion on this run's validation window (the champion
is re-scored on that same window, with its own logged feature spec, so the comparison is like for like).
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

from features.builder import FeatureBuilder
from features.loading import InputData
from features.spec import FeatureSpec
from training import metrics
from training.config import TrainingConfig
from training.labels import training_examples
from training.models import ChurnModel, ValueModel
from training.registry import configure_mlflow, log_model, set_alias, version_by_alias
from training.segments import SegmentModel

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
    validation: pd.DataFrame  # features and labels of the validation window
    metrics: dict[str, float]
    features_at_cutoff: pd.DataFrame


@dataclass
class TrainResult:
    run_id: str
    versions: dict[str, str]
    metrics: dict[str, float]
    promoted: bool
    decision: str
    champion_metrics: dict[str, float] = field(default_factory=dict)


def _split(examples: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    latest = examples["window_cutoff"].max()
    return examples[examples["window_cutoff"] < latest], examples[examples["window_cutoff"] == latest]


def evaluate(value_pred: np.ndarray, churn_pred: np.ndarray, frame: pd.DataFrame) -> dict[str, float]:
    value = metrics.value_report(frame["value"].to_numpy(), value_pred)
    churn = metrics.churn_report(frame["churned"].to_numpy().astype(int), churn_pred)
    return {**{f"value_{k}": float(v) for k, v in value.items()},
            **{f"churn_{k}": float(v) for k, v in churn.items()}}


def fit_models(data: InputData, cutoff: pd.Timestamp, horizon_days: int, config: TrainingConfig,
               spec: FeatureSpec, personal_data_columns: list[str],
               progress: Callable[[str], None] = log.info) -> TrainedModels:
    """Fit every model on data before ``cutoff``; labels of all training windows end at or before it."""
    builder = FeatureBuilder(spec, personal_data_columns).fit(
        data.transactions, cutoff, data.customers, data.interactions)
    progress(f"building training examples: {config.n_windows} windows of {horizon_days} days before {cutoff.date()}")
    examples = training_examples(data.transactions, cutoff, horizon_days, builder, config.n_windows,
                                 config.step_days, data.customers, data.interactions)
    train, valid = _split(examples)
    if train.empty or valid.empty:
        raise ValueError(f"not enough history before {cutoff.date()} for {config.n_windows} windows "
                         f"of {horizon_days} days")
    names = builder.feature_names_
    progress(f"fitting value and churn models on {len(train):,} examples, validating on {len(valid):,}")
    value = ValueModel(config.value_model, config.seed).fit(train[names], train["value"].to_numpy(),
                                                            valid[names], valid["value"].to_numpy())
    churn = ChurnModel(config.churn_model, config.seed).fit(train[names], train["churned"].to_numpy(),
                                                            valid[names], valid["churned"].to_numpy())
    features_at_cutoff = builder.transform(data.transactions, cutoff, data.customers, data.interactions)
    progress(f"fitting segments on {len(features_at_cutoff):,} customers")
    segments = SegmentModel(config.segments, config.seed).fit(features_at_cutoff)
    scores = evaluate(value.predict(valid[names]), churn.predict_proba(valid[names]), valid)
    return TrainedModels(builder, value, churn, segments, valid, scores, features_at_cutoff)


def _champion_scores(valid: pd.DataFrame, data: InputData, config: TrainingConfig) -> dict[str, float] | None:
    """The current champion's metrics on this run's validation window, or None without a champion."""
    from training.registry import load_version

    names = config.registry
    if version_by_alias(names.value_model, names.champion_alias) is None:
        return None
    value, meta, _ = load_version(names.value_model, names.champion_alias)
    churn, _, _ = load_version(names.churn_model, names.champion_alias)
    builder = FeatureBuilder.from_dict(meta["feature_builder"])
    window = valid["window_cutoff"].iloc[0]
    X = builder.transform(data.transactions, window, data.customers, data.interactions)
    X = X.loc[valid["customer_id"]]
    return evaluate(value.predict(X), churn.predict_proba(X), valid)


def _log_artifacts(trained: TrainedModels, quality: dict[str, Any], config_dump: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "config.json").write_text(json.dumps(config_dump, indent=2, default=str))
        (folder / "data_quality.json").write_text(json.dumps(quality, indent=2, default=str))
        importance = pd.DataFrame({"value": trained.value.feature_importance(),
                                   "churn": trained.churn.feature_importance()})
        importance.to_csv(folder / "feature_importance.csv", index_label="feature")
        trained.segments.profiles(trained.features_at_cutoff).to_csv(folder / "segment_profiles.csv")
        mlflow.log_artifacts(str(folder))


def train_and_register(data: InputData, cutoff: pd.Timestamp, horizon_days: int, config: TrainingConfig,
                       spec: FeatureSpec, thresholds_fn: Callable[[np.ndarray], list[float]],
                       personal_data_columns: list[str], config_dump: dict[str, Any],
                       progress: Callable[[str], None] = log.info) -> TrainResult:
    """Train, log everything to one MLflow run, register the models and apply the champion gate."""
    configure_mlflow()
    mlflow.set_experiment(config.registry.experiment)
    names = config.registry
    with mlflow.start_run(run_name=f"train-{cutoff.date()}-h{horizon_days}") as run:
        mlflow.log_params({"cutoff": str(cutoff.date()), "horizon_days": horizon_days,
                           "n_windows": config.n_windows, "step_days": config.step_days, "seed": config.seed})
        trained = fit_models(data, cutoff, horizon_days, config, spec, personal_data_columns, progress)
        mlflow.log_params({"value_best_iteration": trained.value.best_iteration_,
                           "churn_best_iteration": trained.churn.best_iteration_,
                           "segments_k": trained.segments.k_,
                           "n_features": len(trained.builder.feature_names_)})
        mlflow.log_metrics(trained.metrics)
        _log_artifacts(trained, data.quality_report(), config_dump)

        X = trained.features_at_cutoff[trained.builder.feature_names_]
        thresholds = thresholds_fn(trained.value.predict(X))
        metadata = {"feature_builder": trained.builder.to_dict(), "horizon_days": horizon_days,
                    "cutoff": str(cutoff.date()), "tier_thresholds": thresholds}
        progress("logging and registering the models")
        versions = {
            "value": log_model(trained.value, "value_model", names.value_model, X, metadata).version,
            "churn": log_model(trained.churn, "churn_model", names.churn_model, X, metadata).version,
            "segments": log_model(trained.segments, "segment_model", names.segment_model, X, metadata).version,
        }
        for kind, registered in (("value", names.value_model), ("churn", names.churn_model),
                                 ("segments", names.segment_model)):
            set_alias(registered, names.challenger_alias, versions[kind])

        champion = _champion_scores(trained.validation, data, config)
        if champion is None:
            promoted, decision = True, "no champion yet: the challenger becomes champion"
        else:
            worse = [f"{kind} {metric}: {trained.metrics[f'{kind}_{metric}']:.4f} < champion "
                     f"{champion[f'{kind}_{metric}']:.4f}" for kind, metric in GATE_METRICS.items()
                     if trained.metrics[f"{kind}_{metric}"] < champion[f"{kind}_{metric}"]]
            promoted = not worse
            decision = ("at least as good as the champion on the same window: promoted" if promoted
                        else "kept the champion: " + "; ".join(worse))
            mlflow.log_metrics({f"champion_{k}": v for k, v in champion.items()})
        if promoted:
            for kind, registered in (("value", names.value_model), ("churn", names.churn_model),
                                     ("segments", names.segment_model)):
                set_alias(registered, names.champion_alias, versions[kind])
        mlflow.set_tags({"promoted": str(promoted), "promotion_decision": decision})
        mlflow.log_metric("promoted", float(promoted))
        progress(decision)
        return TrainResult(run.info.run_id, versions, trained.metrics, promoted, decision, champion or {})
