"""The ``tiercast monitor`` job: an earlier scored file, the transactions since, and the champion models in;
``monitor.json``, a drift chart and an MLflow monitoring run out (:mod:`tiercast.analysis.monitor` holds
the measurements).

Nothing at or after ``as_of`` is read: outcomes are taken over ``[scored as_of, as_of)``, capped at the
models' horizon, and today's features and scores are built at ``as_of`` by the champion's own builder.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tiercast.analysis.history import MONITOR_FILE
from tiercast.analysis.monitor import (MONITOR_REQUIRED, NO_RETRAIN_NEEDED, RETRAIN_RECOMMENDED, drift_chart,
                                       drift_reasons, drift_summary, quality_reasons, realized_quality, verdict)
from tiercast.config import AppConfig
from tiercast.features.loading import InputData, read_scores
from tiercast.features.schema import DataError
from tiercast.outputs import check_output_folder, write_atomically
from tiercast.serving.i18n import messages

log = logging.getLogger("tiercast")

CHART_FILE = "drift.png"


@dataclass(frozen=True)
class Monitoring:
    result: dict[str, Any]  # what monitor.json holds
    out: Path  # monitor.json
    run_id: str  # the MLflow monitoring run


def scored_as_of(scores: pd.DataFrame, path: Path) -> pd.Timestamp:
    """The one ``as_of`` of a scored file; a file holding several is refused by name."""
    days = scores["as_of"].astype(str).unique()
    if len(days) != 1:
        raise DataError(path, f"a scored file from one as_of is needed, this one holds {sorted(days)[:5]}", "as_of")
    try:
        return pd.Timestamp(days[0])
    except ValueError as err:
        raise DataError(path, f"'{days[0]}' is not a date", "as_of") from err


def _finite(values: dict[str, Any], prefix: str) -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)}


def metric_name(text: str) -> str:
    """``text`` as an MLflow metric name: features named after the data's own levels (a channel, a category)
    may hold characters MLflow refuses in names."""
    return re.sub(r"[^\w.\- /]", "_", text)


def _log_run(config: AppConfig, result: dict[str, Any], chart: Path) -> str:
    """One MLflow run in the monitoring experiment: metrics, tags, the JSON and the chart."""
    import mlflow

    from tiercast.training.registry import configure_mlflow, process_tags

    configure_mlflow()
    mlflow.set_experiment(config.monitor.experiment)
    with mlflow.start_run(run_name=f"monitor-{result['as_of']}", tags=process_tags()) as run:
        mlflow.set_tags({"scored_as_of": result["scored_as_of"], "models": result["models"],
                         "retrain_recommended": str(result["retrain_recommended"])})
        mlflow.log_metrics({**_finite(result["realized"], "realized_"),
                            **{metric_name(f"psi_{name}"): float(v["psi"]) for name, v in result["drift"]["features"].items()},
                            "drifted_features": float(len(result["drift"]["drifted"])),
                            "tier_share_psi": float(result["drift"]["tier_shares"]["psi_now_vs_then"]),
                            "retrain_recommended": float(result["retrain_recommended"])})
        if result["drift"].get("prediction"):
            mlflow.log_metrics(_finite(result["drift"]["prediction"], "prediction_"))
        mlflow.log_dict(result, MONITOR_FILE)
        mlflow.log_artifact(str(chart))
        return run.info.run_id


def measure(config: AppConfig, scores: pd.DataFrame, then: pd.Timestamp, data: InputData, as_of: pd.Timestamp,
            bundle: Any) -> tuple[dict[str, Any], pd.DataFrame]:
    """The monitoring result of ``scores`` (scored at ``then``) at ``as_of`` against the champion ``bundle``
    (a :class:`~tiercast.serving.scorer.ModelBundle`), and the bundle's scores at ``as_of``."""
    from tiercast.serving.scorer import score as score_customers
    from tiercast.training.labels import make_labels
    from tiercast.training.registry import metadata_by_alias

    tx = data.transactions
    before = tx[(tx["timestamp"] < as_of).to_numpy()]
    horizon = bundle.horizon_days
    elapsed = int((as_of - then) / pd.Timedelta(days=1))
    outcomes = make_labels(before, then, min(elapsed, horizon))
    last = before["timestamp"].max()
    if last < as_of - pd.Timedelta(days=1):
        log.warning("the transactions end on %s, before %s: purchases after it are missing from the outcomes",
                    last.date(), as_of.date())
    m = messages(config.language)
    realized = realized_quality(scores, outcomes, elapsed, horizon, bundle.quality_card, config.training.quality, m)

    now = score_customers(before, as_of, config.policy, config.features, bundle, config.fallback, data.customers,
                          data.interactions, horizon)
    features_now = bundle.builder.transform(before, as_of, data.customers, data.interactions)
    metadata = metadata_by_alias(config.training.registry.value_model, config.service.model_alias) or {}
    models = bundle.version_label
    drift = drift_summary(metadata.get("monitoring_reference"), features_now[bundle.builder.feature_names_],
                          scores["predicted_value"].astype(float), now["predicted_value"].astype(float),
                          scores["tier"], now["tier"], config.monitor, models, m)
    reasons = (quality_reasons(realized, config.training.quality, config.monitor, m)
               + drift_reasons(drift, config.monitor, m))
    result = {"as_of": str(as_of.date()), "scored_as_of": str(then.date()), "models": models,
              "realized": realized, "drift": drift, "retrain_recommended": bool(reasons),
              "reasons": [str(reason) for reason in reasons], "reason_codes": [reason.code for reason in reasons],
              "verdict_code": RETRAIN_RECOMMENDED if reasons else NO_RETRAIN_NEEDED,
              "verdict": verdict(realized, drift, reasons, config.monitor, m)}
    return result, now


def monitor(config: AppConfig, scores: pd.DataFrame, then: pd.Timestamp, data: InputData, as_of: pd.Timestamp,
            out: Path, bundle: Any) -> Monitoring:
    """Measure, write ``out/monitor.json`` and ``out/drift.png``, and log the monitoring run."""
    if not then < as_of:
        raise ValueError(f"as_of {as_of.date()} is not after the scored file's as_of, {then.date()}")
    check_output_folder(out)
    result, _ = measure(config, scores, then, data, as_of, bundle)
    result = plain(result)
    with tempfile.TemporaryDirectory() as tmp:
        chart = drift_chart(result["drift"], Path(tmp) / CHART_FILE, m=messages(config.language))
        run_id = _log_run(config, result, chart)
        result = {**result, "mlflow_run_id": run_id}
        write_atomically(Path(out) / CHART_FILE, lambda path: path.write_bytes(chart.read_bytes()))
    written = write_atomically(Path(out) / MONITOR_FILE,
                               lambda path: path.write_text(json.dumps(result, indent=2, allow_nan=False)))
    log.info("monitor: %s", result["verdict"])
    return Monitoring(result, written, run_id)


def plain(value: Any) -> Any:
    """``value`` as strict JSON holds it: numpy numbers as Python ones, NaN and infinities as null (a metric
    that cannot be computed, such as a churn AUC when nobody churned)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def read_monitored_scores(path: Path) -> tuple[pd.DataFrame, pd.Timestamp]:
    """An earlier scored file and its as_of."""
    scores = read_scores(path, MONITOR_REQUIRED)
    return scores, scored_as_of(scores, path)
