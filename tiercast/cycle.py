"""``tiercast cycle``: the periodic re-tiering job an orchestrator calls once per ``as_of``.

In ``DIR/<as_of>/`` it monitors the latest earlier completed run of ``DIR`` (``monitor.json``), retrains
when the monitor recommends it or there is no champion yet (the champion gate still decides promotion),
scores every customer with the champion (``scores.csv``), writes the report with the tier migration
against the earlier run (``report/index.html``) and the migration itself (``migration.csv``), and last
``cycle.json``, the marker that the run is complete and what it decided.

Idempotent per ``as_of``: a run with its marker is not redone; a run that stopped half-way reuses what it
had finished (the monitoring verdict, and ``training.json`` once a training was registered), so a second
attempt neither trains twice nor judges against a champion it has itself replaced.

One run at a time per ``DIR``: a run holds ``DIR/.cycle.lock`` (an advisory lock the system releases when
the process ends, however it ends); a second run started meanwhile stops at once with ``FolderBusy``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tiercast import jobs
from tiercast.analysis.history import MARKER, MONITOR_FILE, SCORES_FILE, completed_runs, cycle_history
from tiercast.config import AppConfig
from tiercast.features.loading import InputData, read_scores
from tiercast.monitoring import plain
from tiercast.outputs import check_output_folder, holding_lock, write_atomically, write_table
from tiercast.serving.i18n import Messages, messages

log = logging.getLogger("tiercast")

LOCK_FILE = ".cycle.lock"
TRAINING_FILE = "training.json"
MIGRATION_FILE = "migration.csv"
REPORT_FOLDER = "report"


@dataclass(frozen=True)
class CycleRun:
    folder: Path
    record: dict[str, Any]  # what cycle.json holds
    already_done: bool  # the marker was there: nothing was redone


def run_folder(root: Path, as_of: pd.Timestamp) -> Path:
    return Path(root) / as_of.date().isoformat()


def _write_json(path: Path, content: dict[str, Any]) -> Path:
    return write_atomically(path, lambda tmp: tmp.write_text(json.dumps(plain(content), indent=2, allow_nan=False)))


def _decide(folder: Path, decisions: list[str], m: Messages, key: str, **values: object) -> None:
    """Record (and log) a decision in the configured language: cycle.json's ``decisions`` are for people."""
    text = m.text(f"cycle.{key}", **values)
    log.info("cycle %s: %s", folder.name, text)
    decisions.append(text)


def _train(config: AppConfig, data: InputData, as_of: pd.Timestamp, folder: Path) -> dict[str, Any]:
    """Train at ``as_of``; the outcome is recorded in ``training.json`` as soon as the models are registered."""
    from tiercast.training.pipeline import train_and_register

    result = train_and_register(data, as_of, config.training.horizon_days, config.training, config.features,
                                config.policy, config.data.personal_data_columns, config.model_dump(mode="json"),
                                engine=jobs.bucket_engine(config))
    record = {"run_id": result.run_id, "versions": result.versions, "promoted": result.promoted,
              "decision": result.decision, "quality_card": result.quality_card}
    _write_json(folder / TRAINING_FILE, record)
    return record


def _monitor_previous(config: AppConfig, data: InputData, as_of: pd.Timestamp, folder: Path,
                      previous: tuple[pd.Timestamp, Path] | None, decisions: list[str]) -> dict[str, Any] | None:
    """The monitoring of the previous run by the champion (monitor.json), None when there is nothing to
    monitor or no champion to monitor with."""
    from tiercast.monitoring import monitor

    m = messages(config.language)
    if previous is None:
        _decide(folder, decisions, m, "nothing_to_monitor", root=folder.parent)
        return None
    if (folder / MONITOR_FILE).exists():  # an earlier attempt judged the champion before it retrained
        found = json.loads((folder / MONITOR_FILE).read_text())
        _decide(folder, decisions, m, "reusing_monitoring", verdict=found["verdict"])
        return found
    try:
        bundle = jobs.champion_models(config, "tiercast cycle")
    except jobs.ModelsUnavailableError as err:
        _decide(folder, decisions, m, "cannot_monitor", day=previous[0].date(), detail=err)
        return None
    found = monitor(config, read_scores(previous[1] / SCORES_FILE), previous[0], data, as_of, folder, bundle).result
    _decide(folder, decisions, m, "monitored", day=previous[0].date(), verdict=found["verdict"])
    return found


def _retrain_if_needed(config: AppConfig, data: InputData, as_of: pd.Timestamp, folder: Path,
                       found: dict[str, Any] | None, decisions: list[str]) -> dict[str, Any] | None:
    """The training of this as_of (training.json), made when the monitor recommends one or there is no
    champion, and never twice; None when the champion is kept."""
    m = messages(config.language)
    if (folder / TRAINING_FILE).exists():
        training = json.loads((folder / TRAINING_FILE).read_text())
        _decide(folder, decisions, m, "already_trained", run_id=training["run_id"], decision=_decision(training, m))
        return training
    if found is not None and found["retrain_recommended"]:
        _decide(folder, decisions, m, "retraining", reasons=m["monitor.reason_separator"].join(found["reasons"]))
    elif found is None and not _has_champion(config):
        _decide(folder, decisions, m, "first_training")
    else:
        _decide(folder, decisions, m, "no_retrain")
        return None
    training = _train(config, data, as_of, folder)
    _decide(folder, decisions, m, "trained", decision=_decision(training, m))
    return training


def _decision(training: dict[str, Any], m: Messages) -> str:
    """The champion gate's decision (training.json's ``decision``, in English) in the configured language."""
    return m.text("decision.promoted" if training["promoted"] else "decision.kept", detail=training["decision"])


def cycle(config: AppConfig, inputs: jobs.InputFiles, as_of: pd.Timestamp, root: Path) -> CycleRun:
    """Run (or find done) the cycle for ``as_of`` in ``root``, holding its lock."""
    check_output_folder(root)
    Path(root).mkdir(parents=True, exist_ok=True)
    with holding_lock(Path(root) / LOCK_FILE, "tiercast cycle"):
        return _cycle(config, inputs, as_of, root)


def _cycle(config: AppConfig, inputs: jobs.InputFiles, as_of: pd.Timestamp, root: Path) -> CycleRun:
    from tiercast.analysis.report import migration_matrix, write_report

    folder = run_folder(root, as_of)
    if (folder / MARKER).exists():
        record = json.loads((folder / MARKER).read_text())
        log.info("cycle %s: %s", folder.name,
                 messages(config.language).text("cycle.already_complete", marker=folder / MARKER))
        return CycleRun(folder, record, True)
    check_output_folder(folder)
    earlier = [(day, path) for day, path in completed_runs(root) if day < as_of]
    previous = earlier[-1] if earlier else None
    data = inputs.load(config)
    jobs.require_history(data, as_of, inputs.transactions)
    decisions: list[str] = []
    record: dict[str, Any] = {"as_of": str(as_of.date()), "previous": str(previous[0].date()) if previous else None}

    found = _monitor_previous(config, data, as_of, folder, previous, decisions)
    record["monitor"] = ({"retrain_recommended": found["retrain_recommended"], "reasons": found["reasons"],
                          "realized": found["realized"], "drifted": found["drift"]["drifted"]} if found else None)
    record["training"] = _retrain_if_needed(config, data, as_of, folder, found, decisions)

    bundle = jobs.champion_models(config, "tiercast cycle")
    scores = jobs.score_with_config(config, data.transactions, data.customers, data.interactions, as_of, bundle,
                                    bundle.horizon_days, None)
    write_table(jobs.flat_scores(scores), folder / SCORES_FILE)
    record["models"] = bundle.version_label
    m = messages(config.language)
    _decide(folder, decisions, m, "scored", customers=f"{len(scores):,}", models=bundle.version_label)

    previous_scores = read_scores(previous[1] / SCORES_FILE) if previous else None
    if previous_scores is not None:
        matrix = migration_matrix(previous_scores, scores, config.policy)
        write_atomically(folder / MIGRATION_FILE, lambda tmp: matrix.to_csv(tmp))
        _decide(folder, decisions, m, "migration", day=previous[0].date(), path=folder / MIGRATION_FILE)
    write_report(scores, folder / REPORT_FOLDER, config.policy, previous_scores, source=str(folder / SCORES_FILE),
                 previous_source=str(previous[1] / SCORES_FILE) if previous else "",
                 quality_card=bundle.quality_card, card_source=bundle.version_label,
                 history=cycle_history(root, folder), language=config.language)
    record["decisions"] = decisions
    _write_json(folder / MARKER, record)
    return CycleRun(folder, json.loads((folder / MARKER).read_text()), False)


def _has_champion(config: AppConfig) -> bool:
    try:
        jobs.champion_models(config, "tiercast cycle")
    except jobs.ModelsUnavailableError:
        return False
    return True
