"""The history of a ``tiercast cycle`` directory, for the report: tier shares over the runs, realised against
promised quality per monitored scoring, and drift per feature over the runs.

Each run folder (``DIR/<as_of>/``) holds ``scores.csv`` and, from the second run on, ``monitor.json``
measuring the run before it; a run is complete when its marker, ``cycle.json``, is there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tiercast.features.loading import read_scores

MARKER = "cycle.json"
SCORES_FILE = "scores.csv"
MONITOR_FILE = "monitor.json"
REALIZED_COLUMNS = ("norm_gini", "top20_capture", "churn_auc", "total_ratio")


def completed_runs(root: Path) -> list[tuple[pd.Timestamp, Path]]:
    """The completed runs in ``root`` (folders named by their as_of, holding the marker), earliest first."""
    runs = []
    for marker in Path(root).glob("*/" + MARKER):
        try:
            runs.append((pd.Timestamp(marker.parent.name), marker.parent))
        except ValueError:
            continue  # a folder of something else
    return sorted(runs)


@dataclass(frozen=True)
class CycleHistory:
    tier_shares: pd.DataFrame  # runs (as_of) x tiers, shares of customers
    quality: pd.DataFrame  # one row per monitored scoring: realised metrics, the grades realised and promised
    drift: pd.DataFrame  # features x monitoring as_of, PSI against the champion's training population


def cycle_history(root: Path, current: Path | None = None) -> CycleHistory:
    """The history of the completed runs of ``root``, and of ``current`` (a run folder being completed)."""
    folders = [path for _, path in completed_runs(root)]
    if current is not None and current not in folders:
        folders.append(Path(current))
    shares, quality, drift = {}, [], {}
    for folder in sorted(folders, key=lambda path: path.name):
        if (folder / SCORES_FILE).exists():
            tiers = read_scores(folder / SCORES_FILE, ("customer_id", "tier"))["tier"]
            shares[folder.name] = tiers.value_counts(normalize=True)
        if (folder / MONITOR_FILE).exists():
            found: dict[str, Any] = json.loads((folder / MONITOR_FILE).read_text())
            realized = found["realized"]
            quality.append({"scored": found["scored_as_of"], "measured": found["as_of"],
                            "window": "full" if realized["horizon_complete"] else
                            f"partial ({realized['elapsed_days']} of {realized['horizon_days']} days)",
                            "customers": realized["n"],
                            **{name: realized.get(name) for name in REALIZED_COLUMNS},
                            "grade": realized.get("grade"),
                            "promised_grade": (realized.get("promised") or {}).get("grade"),
                            "promised_churn_auc": (realized.get("promised") or {}).get("churn_auc"),
                            "retrain_recommended": found["retrain_recommended"]})
            drift[found["as_of"]] = pd.Series({name: v["psi"] for name, v in found["drift"]["features"].items()},
                                              dtype=float)
    tier_shares = pd.DataFrame(shares).T.fillna(0.0)
    tier_shares.index.name = "as_of"
    drift_table = pd.DataFrame(drift)
    if not drift_table.empty:
        drift_table = drift_table.loc[drift_table.max(axis=1).sort_values(ascending=False).index]
    return CycleHistory(tier_shares, pd.DataFrame(quality), drift_table)


def _chart(history: CycleHistory, path: Path) -> None:
    figure = Figure(figsize=(11, 4))
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    shares = history.tier_shares
    bottom = np.zeros(len(shares))
    for tier in shares.columns:
        left.bar(shares.index, shares[tier], bottom=bottom, label=tier)
        bottom += shares[tier].to_numpy()
    left.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    left.set_title("Tier shares over the runs")
    left.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    if not history.quality.empty:
        for name in ("norm_gini", "top20_capture", "churn_auc"):
            right.plot(history.quality["scored"], history.quality[name].astype(float), marker="o", label=name)
        right.set_ylim(0, 1)
        right.set_title("Realised quality of each scoring")
        right.legend(fontsize=8)
    else:
        right.set_axis_off()
    figure.tight_layout()
    figure.savefig(path, dpi=90, metadata={"Software": None})


def history_section(history: CycleHistory, out: Path, table: Any, top_features: int = 12) -> str:
    """The report's history section as HTML, its chart written into ``out``; ``table`` renders a frame."""
    parts = ["<h2 id=history>History of the runs</h2>"]
    if history.tier_shares.empty:
        return parts[0] + "<p class=note>No runs yet.</p>"
    _chart(history, out / "history.png")
    parts += [f"<p class=note>{len(history.tier_shares)} run(s): tier shares of the customers scored at each.</p>",
              table(history.tier_shares, percent=list(history.tier_shares.columns)),
              '<p><img src="history.png" alt="tier shares and realised quality over the runs"></p>',
              "<h3>Realised against promised quality</h3>"]
    if history.quality.empty:
        parts.append("<p class=note>No scoring has been monitored yet: the second run measures the first.</p>")
    else:
        parts.append(table(history.quality.set_index("scored"), ratio=(*REALIZED_COLUMNS, "promised_churn_auc")))
    parts.append("<h3>Drift per feature</h3>")
    if history.drift.empty:
        parts.append("<p class=note>No drift measured yet (or the models carry no training reference).</p>")
    else:
        parts += [f"<p class=note>PSI against the champion's training population, the {top_features} features "
                  f"that moved most; over 0.25 is usually read as a major shift.</p>",
                  table(history.drift.head(top_features), ratio=list(history.drift.columns))]
    return "\n".join(parts)
