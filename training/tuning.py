"""Optuna tuning of a model's LightGBM parameters, each trial a nested MLflow run under the training run.

The search is seeded (``TPESampler(seed)``) and the first trial is the configured starting point, so the
same inputs and seed give the same trials, the same best parameters and the same model (a timeout makes
the number of trials, and so the result, depend on the machine). Each trial is scored on the validation
window's out-of-fold predictions, the metric the champion gate compares.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import mlflow
import optuna
import pandas as pd

from tiercast.training.config import LightGBMParams, TuningConfig

log = logging.getLogger(__name__)

Model = TypeVar("Model")

# Ranges searched (log scale where a parameter acts multiplicatively); rounds and patience stay as configured.
SEARCH_SPACE: dict[str, tuple[float, float, bool]] = {
    "learning_rate": (0.01, 0.3, True),
    "num_leaves": (4, 128, True),
    "min_child_samples": (5, 500, True),
    "feature_fraction": (0.4, 1.0, False),
    "bagging_fraction": (0.4, 1.0, False),
    "lambda_l2": (1e-3, 100.0, True),
}


def suggest(trial: optuna.Trial, start: LightGBMParams) -> LightGBMParams:
    """One point of :data:`SEARCH_SPACE`; the parameters not searched keep their starting values."""
    values: dict[str, float | int] = {}
    for name, (low, high, log_scale) in SEARCH_SPACE.items():
        if isinstance(getattr(start, name), int):
            values[name] = trial.suggest_int(name, int(low), int(high), log=log_scale)
        else:
            values[name] = trial.suggest_float(name, low, high, log=log_scale)
    return start.model_copy(update=values)


@dataclass
class TuningResult(Generic[Model]):
    """The best trial's fitted model, parameters and score, and one row per trial."""

    model: Model
    params: LightGBMParams
    score: float
    trials: pd.DataFrame


def tune(fit: Callable[[LightGBMParams], tuple[Model, float]], start: LightGBMParams, config: TuningConfig,
         seed: int, name: str, metric: str, progress: Callable[[str], None] = log.info) -> TuningResult[Model]:
    """Search parameters for one model, maximising ``metric`` as returned by ``fit(params) -> (model, score)``.

    ``config.trials`` trials (0 fits the starting parameters once, without a study). When an MLflow run is
    active, every trial is a nested run named ``{name}-trial-{n}`` with its parameters and score.
    """
    best: dict[str, object] = {}
    rows: list[dict[str, object]] = []

    def run_trial(number: int, params: LightGBMParams) -> float:
        model, score = fit(params)
        score = float(score) if math.isfinite(score) else float("-inf")
        if mlflow.active_run() is not None:
            with mlflow.start_run(run_name=f"{name}-trial-{number}", nested=True):
                mlflow.set_tags({"model": name, "trial": str(number)})
                mlflow.log_params(params.model_dump())
                mlflow.log_metric(metric, score)
        rows.append({"trial": number, metric: score, **params.model_dump()})
        if not best or score > best["score"]:
            best.update(model=model, params=params, score=score)
        progress(f"{name} trial {number}: {metric} {score:.4f}")
        return score

    if config.trials == 0:
        run_trial(0, start)
    else:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        study.enqueue_trial({k: getattr(start, k) for k in SEARCH_SPACE})
        study.optimize(lambda trial: run_trial(trial.number, suggest(trial, start)),
                       n_trials=config.trials, timeout=config.timeout_seconds)
    return TuningResult(best["model"], best["params"], best["score"], pd.DataFrame(rows))
