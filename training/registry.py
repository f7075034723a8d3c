"""MLflow tracking and the model registry: where runs go, how models are logged, and the aliases.

The embedded default store is SQLite in the working directory; ``MLFLOW_TRACKING_URI`` overrides it.
Models are promoted with registry aliases (``challenger``, ``champion``), never stages.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import lightgbm
import mlflow
import pandas as pd
import sklearn
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

# Stated rather than inferred: inference re-loads each model in a subprocess.
MODEL_REQUIREMENTS = [f"lightgbm=={lightgbm.__version__}", f"scikit-learn=={sklearn.__version__}",
                      f"pandas=={pd.__version__}", "tiercast"]

log = logging.getLogger(__name__)


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def configure_mlflow() -> str:
    """Point MLflow at the configured store (tracking and registry alike) and return its URI."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def log_model(model: Any, name: str, registered_name: str, X_example: pd.DataFrame,
              metadata: dict[str, Any]) -> ModelVersion:
    """Log a fitted estimator with signature, input example and metadata, and register a new version.

    A model with ``predict_proba`` (the churn model) is logged by its probabilities: MLflow's pyfunc
    ``predict`` and the signature give what ``predict_proba`` gives."""
    example = X_example.head(5)
    predict_fn = "predict_proba" if hasattr(model, "predict_proba") else "predict"
    # Our own estimator classes need cloudpickle (skops allows only listed types); MLflow warns each time.
    logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        signature = infer_signature(example, getattr(model, predict_fn)(example))
        info = mlflow.sklearn.log_model(
            model, name=name, registered_model_name=registered_name, signature=signature,
            input_example=example, metadata=metadata, serialization_format="cloudpickle",
            pip_requirements=MODEL_REQUIREMENTS, pyfunc_predict_fn=predict_fn)
    return MlflowClient().get_model_version(registered_name, str(info.registered_model_version))


def version_by_alias(name: str, alias: str) -> ModelVersion | None:
    try:
        return MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def set_alias(name: str, alias: str, version: str) -> None:
    MlflowClient().set_registered_model_alias(name, alias, version)


def metadata_by_alias(name: str, alias: str) -> dict[str, Any] | None:
    """The metadata logged with the model behind an alias, without loading the model; None if there is none."""
    if version_by_alias(name, alias) is None:
        return None
    return mlflow.models.get_model_info(f"models:/{name}@{alias}").metadata or {}


def load_version(name: str, alias: str) -> tuple[Any, dict[str, Any], ModelVersion]:
    """Load the model behind an alias with its metadata; raises MlflowException if there is none."""
    version = MlflowClient().get_model_version_by_alias(name, alias)
    uri = f"models:/{name}@{alias}"
    model = mlflow.sklearn.load_model(uri)
    metadata = mlflow.models.get_model_info(uri).metadata or {}
    return model, metadata, version
