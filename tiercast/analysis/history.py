"""The history of a ``tiercast cycle`` directory, for the report: tier shares over the runs, realised against
promised quality per monitored scoring, and drift per feature over the runs.

Each run folder (``DIR/<as_of>/``) holds ``scores.csv`` and, from the second run on, ``monitor.json``
measuring the run before it; a run is complete when its marker, ``cycle.json``, is there.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tiercast.features.loading import read_scores
from tiercast.serving.i18n import ENGLISH, Messages

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


def _chart(history: CycleHistory, path: Path, m: Messages) -> None:
    figure = Figure(figsize=(11, 4))
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    shares = history.tier_shares
    bottom = np.zeros(len(shares))
    for tier in shares.columns:
        left.bar(shares.index, shares[tier], bottom=bottom, label=tier)
        bottom += shares[tier].to_numpy()
    left.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    left.set_title(m["chart.history_tiers"])
    left.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    if not history.quality.empty:
        for name in ("norm_gini", "top20_capture", "churn_auc"):
            right.plot(history.quality["scored"], history.quality[name].astype(float), marker="o",
                       label=m[f"metric.{name}"])
        right.set_ylim(0, 1)
        right.set_title(m["chart.history_quality"])
        right.legend(fontsize=8)
    else:
        right.set_axis_off()
    figure.tight_layout()
    figure.savefig(path, dpi=90, metadata={"Software": None})


_PARTIAL = re.compile(r"partial \((\d+) of (\d+) days\)")


def _quality_shown(quality: pd.DataFrame, m: Messages) -> pd.DataFrame:
    """The quality table with its words (the window, the recommendation) in ``m``'s language."""
    def window(text: object) -> object:
        found = _PARTIAL.fullmatch(str(text))
        if found:
            return m.text("history.window_partial", elapsed=found[1], horizon=found[2])
        return m["history.window_full"] if text == "full" else text
    shown = quality.assign(window=quality["window"].map(window))
    shown["retrain_recommended"] = [m["history.yes"] if v else m["history.no"] for v in quality["retrain_recommended"]]
    return shown


def history_section(history: CycleHistory, out: Path, table: Any, top_features: int = 12,
                    m: Messages = ENGLISH) -> str:
    """The report's history section as HTML in ``m``'s language, its chart written into ``out``; ``table``
    renders a frame."""
    parts = [f"<h2 id=history>{html.escape(m['history.heading'])}</h2>"]
    if history.tier_shares.empty:
        return parts[0] + f"<p class=note>{html.escape(m['history.no_runs'])}</p>"
    _chart(history, out / "history.png", m)
    parts += [f"<p class=note>{html.escape(m.text('history.runs', runs=len(history.tier_shares)))}</p>",
              table(history.tier_shares, percent=list(history.tier_shares.columns)),
              f'<p><img src="history.png" alt="{html.escape(m["history.alt"])}"></p>',
              f"<h3>{html.escape(m['history.quality'])}</h3>"]
    if history.quality.empty:
        parts.append(f"<p class=note>{html.escape(m['history.not_monitored'])}</p>")
    else:
        parts.append(table(_quality_shown(history.quality, m).set_index("scored"),
                           ratio=(*REALIZED_COLUMNS, "promised_churn_auc")))
    parts.append(f"<h3>{html.escape(m['history.drift'])}</h3>")
    if history.drift.empty:
        parts.append(f"<p class=note>{html.escape(m['history.no_drift'])}</p>")
    else:
        parts += [f"<p class=note>{html.escape(m.text('history.drift_note', features=top_features))}</p>",
                  table(history.drift.head(top_features), ratio=list(history.drift.columns))]
    return "\n".join(parts)
