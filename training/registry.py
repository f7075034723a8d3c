"""MLflow tracking and the model registry: where runs go, how models are logged, and the aliases.

The embedded default store is SQLite in the working directory; ``MLFLOW_TRACKING_URI`` overrides it.
Models are promoted with registry aliases (``challenger``, ``champion``), never stages.

A training run registers three models (value, churn, segments) that only work together, but MLflow moves
one alias at a time. So the value model's alias is the one write that moves a set: the set behind an alias
is the value version it names and the churn and segment versions its tags name, written when the run
registered them (:func:`tag_set`, :func:`alias_set`). The churn and segment aliases follow, for people reading the registry; a run killed
between the writes leaves them behind, and :func:`repair_alias` moves them up.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
import warnings
from typing import Any

import lightgbm
import mlflow
import pandas as pd
import sklearn
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import Model, infer_signature
from mlflow.models.model import MLMODEL_FILE_NAME

from tiercast.training.config import RegistryConfig

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

# Stated rather than inferred: inference re-loads each model in a subprocess.
MODEL_REQUIREMENTS = [f"lightgbm=={lightgbm.__version__}", f"scikit-learn=={sklearn.__version__}",
                      f"pandas=={pd.__version__}", "tiercast"]

log = logging.getLogger(__name__)


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def configure_mlflow() -> str:
    """Point MLflow at the configured store (tracking and registry alike) and return its URI. MLflow's progress
    bars for downloading a model's files stay off the commands' output, which says what they do in its own words
    (set MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=true to see them)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
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


# What the registry answers for a model or alias that does not exist (any other error is raised: a broken
# store is not an empty one).
NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def version_by_alias(name: str, alias: str) -> ModelVersion | None:
    try:
        return MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException as err:
        if err.error_code in NOT_FOUND:
            return None
        raise


def set_alias(name: str, alias: str, version: str) -> None:
    MlflowClient().set_registered_model_alias(name, alias, version)


class IncompleteSet(Exception):
    """The models behind an alias are not one training run's set."""


def _kinds(names: RegistryConfig) -> dict[str, str]:
    return {"value": names.value_model, "churn": names.churn_model, "segments": names.segment_model}


# Tags on a value model version naming the churn and segment versions registered with it.
SET_TAGS = {"churn": "tiercast.churn_version", "segments": "tiercast.segments_version"}


def tag_set(names: RegistryConfig, versions: dict[str, str]) -> None:
    """Name, on the value model version, the churn and segment versions registered with it (before any alias
    points at them)."""
    for kind, tag in SET_TAGS.items():
        MlflowClient().set_model_version_tag(names.value_model, versions["value"], tag, versions[kind])


def alias_set(names: RegistryConfig, alias: str) -> dict[str, ModelVersion] | None:
    """The value, churn and segment model versions behind ``alias``, from one training run: the value version
    the alias names and the versions its tags name. None when the value model has no such alias.

    Versions registered before sets were tagged fall back to the three aliases, which must then point at
    one run's models; :class:`IncompleteSet` when they do not."""
    anchor = version_by_alias(names.value_model, alias)
    if anchor is None:
        return None
    client = MlflowClient()
    if all(tag in anchor.tags for tag in SET_TAGS.values()):
        return {"value": anchor, **{kind: client.get_model_version(_kinds(names)[kind], anchor.tags[tag])
                                    for kind, tag in SET_TAGS.items()}}
    found = {kind: version_by_alias(name, alias) for kind, name in _kinds(names).items()}
    runs = {kind: version.run_id if version is not None else None for kind, version in found.items()}
    if len(set(runs.values())) != 1:
        raise IncompleteSet(f"the '{alias}' aliases point at models of different training runs ("
                            + ", ".join(f"{kind} from run {run}" for kind, run in runs.items())
                            + "); promote a complete set with tiercast train")
    return found


def point_alias(names: RegistryConfig, alias: str, versions: dict[str, str]) -> None:
    """Point ``alias`` at one run's versions (by kind: value, churn, segments). The value model's alias goes
    first: from that write on, :func:`alias_set` gives the new set whole."""
    for kind, name in _kinds(names).items():
        set_alias(name, alias, versions[kind])


def repair_alias(names: RegistryConfig, alias: str) -> list[str]:
    """Move the churn and segment aliases that lag behind the value model's (a training run killed while
    promoting) to its set; what was moved, in words."""
    try:
        found = alias_set(names, alias)
    except IncompleteSet as err:
        log.warning("the '%s' models cannot be repaired: %s", alias, err)
        return []
    if found is None:
        return []
    moved = []
    for kind, name in list(_kinds(names).items())[1:]:
        current = version_by_alias(name, alias)
        if current is None or current.version != found[kind].version:
            set_alias(name, alias, found[kind].version)
            moved.append(f"{name}@{alias} v{current.version if current else '-'} -> v{found[kind].version}")
    if moved:
        log.warning("repaired the '%s' aliases of an interrupted promotion (run %s): %s", alias,
                    found["value"].run_id, "; ".join(moved))
    return moved


def load_model_version(version: ModelVersion) -> tuple[Any, dict[str, Any]]:
    """Load one registered model version with the metadata logged beside it. Its files are fetched once and
    its MLmodel file (which holds the metadata) read once: given the version's URI, each of MLflow's loaders
    would resolve it and read that file again."""
    with tempfile.TemporaryDirectory(prefix="tiercast-model-") as folder:
        local = mlflow.artifacts.download_artifacts(f"models:/{version.name}/{version.version}", dst_path=folder)
        metadata = Model.load(os.path.join(local, MLMODEL_FILE_NAME)).metadata or {}
        return mlflow.sklearn.load_model(local), metadata


def metadata_by_alias(name: str, alias: str) -> dict[str, Any] | None:
    """The metadata logged with the model behind an alias, without loading the model; None if there is none."""
    if version_by_alias(name, alias) is None:
        return None
    return mlflow.models.get_model_info(f"models:/{name}@{alias}").metadata or {}


def load_version(name: str, alias: str) -> tuple[Any, dict[str, Any], ModelVersion]:
    """Load the model behind an alias with its metadata; raises MlflowException if there is none."""
    version = MlflowClient().get_model_version_by_alias(name, alias)
    return (*load_model_version(version), version)


# Tags naming the process of a training run, so that the next one can tell a run whose process was killed
# (left RUNNING for ever) from one still going.
PROCESS_TAGS = ("tiercast.host", "tiercast.pid")


def process_tags() -> dict[str, str]:
    return dict(zip(PROCESS_TAGS, (socket.gethostname(), str(os.getpid()))))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def fail_abandoned_runs(experiment: str) -> list[str]:
    """Mark FAILED the runs of ``experiment`` left RUNNING by a training process of this host that no longer
    exists (and their nested runs); the ids of the runs marked."""
    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    running = client.search_runs([found.experiment_id], "attributes.status = 'RUNNING'", max_results=1000)
    by_id = {run.info.run_id: run for run in running}
    here = socket.gethostname()

    def abandoned(run: Any) -> bool:
        while "mlflow.parentRunId" in run.data.tags:  # a nested run lives and dies with its root
            parent = by_id.get(run.data.tags["mlflow.parentRunId"])
            if parent is None:
                return client.get_run(run.data.tags["mlflow.parentRunId"]).info.status != "RUNNING"
            run = parent
        host, pid = (run.data.tags.get(tag) for tag in PROCESS_TAGS)
        return host == here and pid is not None and not _process_alive(int(pid))

    failed = [run_id for run_id, run in by_id.items() if abandoned(run)]
    for run_id in failed:
        client.set_tag(run_id, "tiercast.failure", "its training process ended without finishing it")
        client.set_terminated(run_id, "FAILED", end_time=int(time.time() * 1000))
    if failed:
        log.warning("marked %d run(s) left running by a training process that no longer exists as failed: %s",
                    len(failed), ", ".join(failed))
    return failed
