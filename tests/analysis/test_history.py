"""A cycle directory's history: only completed runs count, one row of tier shares per run, one row of quality per
monitored scoring, features ordered by the largest drift."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tiercast.analysis.history import completed_runs, cycle_history


def _run(root: Path, as_of: str, tiers: list[str], monitored: dict | None = None, complete: bool = True) -> Path:
    folder = root / as_of
    folder.mkdir(parents=True)
    pd.DataFrame({"customer_id": [f"C{i}" for i in range(len(tiers))], "tier": tiers}).to_csv(
        folder / "scores.csv", index=False)
    if monitored:
        (folder / "monitor.json").write_text(json.dumps(monitored))
    if complete:
        (folder / "cycle.json").write_text("{}")
    return folder


def _monitored(scored: str, as_of: str, psi: dict[str, float], gini: float) -> dict:
    return {"scored_as_of": scored, "as_of": as_of, "retrain_recommended": False,
            "realized": {"n": 4, "horizon_complete": False, "elapsed_days": 90, "horizon_days": 180,
                         "norm_gini": gini, "top20_capture": 0.5, "churn_auc": 0.8, "total_ratio": 1.1,
                         "grade": "B", "promised": {"grade": "A", "churn_auc": 0.85}},
            "drift": {"features": {name: {"psi": v} for name, v in psi.items()}}}


def test_history_of_completed_runs(tmp_path):
    _run(tmp_path, "2025-01-01", ["VIP", "low", "low", "low"])
    _run(tmp_path, "2025-04-01", ["VIP", "VIP", "low", "low"],
         _monitored("2025-01-01", "2025-04-01", {"spend_90d": 0.4, "tenure_days": 0.1}, 0.6))
    _run(tmp_path, "2025-07-01", ["low"] * 4, complete=False)  # stopped before its marker
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "cycle.json").write_text("{}")  # not a date: not a run
    assert [day for day, _ in completed_runs(tmp_path)] == [pd.Timestamp("2025-01-01"), pd.Timestamp("2025-04-01")]

    history = cycle_history(tmp_path)
    assert list(history.tier_shares.index) == ["2025-01-01", "2025-04-01"]
    assert history.tier_shares.loc["2025-04-01", "VIP"] == 0.5 and history.tier_shares.loc["2025-01-01", "low"] == 0.75
    row = history.quality.iloc[0]
    assert (row["scored"], row["measured"], row["window"]) == ("2025-01-01", "2025-04-01", "partial (90 of 180 days)")
    assert row["norm_gini"] == 0.6 and (row["grade"], row["promised_grade"]) == ("B", "A")
    assert list(history.drift.index) == ["spend_90d", "tenure_days"]

    # The run being completed joins the history before its marker is written.
    with_current = cycle_history(tmp_path, tmp_path / "2025-07-01")
    assert list(with_current.tier_shares.index)[-1] == "2025-07-01"
    assert with_current.tier_shares.loc["2025-07-01", "low"] == pytest.approx(1.0)


def test_an_empty_directory_has_no_history(tmp_path):
    history = cycle_history(tmp_path)
    assert history.tier_shares.empty and history.quality.empty and history.drift.empty
