"""Monitoring: how an earlier scoring did now that its outcome window has (partly) passed, and whether the
customers drifted from the population the champion models were trained on.

Realised quality is measured with :mod:`tiercast.training.metrics` on the customers the earlier file
scored, and compared with the champion's quality card; drift is the population stability index
(:mod:`tiercast.training.drift`) of each feature, of the predicted value and of the tier shares. The
verdict recommends a retrain when realised quality falls below the card's grade or drift passes the
thresholds of the ``monitor`` config section.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tiercast.serving.i18n import ENGLISH, Messages
from tiercast.training import metrics
from tiercast.training.drift import feature_drift, psi, shares_now
from tiercast.training.quality_card import QualityGrades, grade

MONITOR_REQUIRED = ("customer_id", "as_of", "predicted_value", "churn_probability", "tier")
# The top share whose capture the contract names (top20_capture); the card's own share may differ.
CONTRACT_TOP_SHARE = 0.2


class MonitorConfig(BaseModel):
    """When ``tiercast monitor`` recommends a retrain, and where its runs are logged."""

    model_config = ConfigDict(extra="forbid")

    psi_threshold: float = Field(default=0.25, gt=0, description="a feature whose PSI passes this has moved")
    drifted_features_for_retrain: int = Field(default=3, ge=1,
                                              description="moved features that make drift alone a reason to retrain")
    prediction_psi_threshold: float = Field(default=0.25, gt=0,
                                            description="PSI of the predicted value that is a reason to retrain")
    churn_auc_tolerance: float = Field(default=0.05, ge=0,
                                       description="realised churn AUC this far below the card's is a reason")
    total_ratio_range: tuple[float, float] = Field(
        default=(0.67, 1.5), description="realised total predicted over total actual value outside it is a reason")
    min_customers: int = Field(default=200, ge=1, description="fewer scored customers with outcomes: no quality verdict")
    ignore_features: list[str] = Field(default_factory=list, description="features whose drift is shown, not judged")
    experiment: str = Field(default="tiercast-monitoring", min_length=1)

    @model_validator(mode="after")
    def _range(self) -> "MonitorConfig":
        low, high = self.total_ratio_range
        if not 0 < low < 1 < high:
            raise ValueError(f"total_ratio_range must hold 1 between two positive bounds, got {self.total_ratio_range}")
        return self


# monitor.json's verdict_code, for programs; ``verdict`` says it (and why) in the configured language.
RETRAIN_RECOMMENDED, NO_RETRAIN_NEEDED = "retrain_recommended", "no_retrain_needed"


class Reason(str):
    """A reason to retrain, in words, with its stable ``code`` (monitor.json's ``reason_codes``)."""

    code: str

    def __new__(cls, code: str, text: str) -> "Reason":
        reason = super().__new__(cls, text)
        reason.code = code
        return reason


def _reason(m: Messages, code: str, **values: object) -> Reason:
    return Reason(code, m.text(f"monitor.reason.{code}", **values))


def _shares(tiers: pd.Series) -> dict[str, float]:
    return {str(k): float(v) for k, v in tiers.value_counts(normalize=True).sort_index().items()}


def share_psi(then: dict[str, float], now: dict[str, float]) -> float:
    """PSI between two sets of shares over the union of their names (tier shares)."""
    names = sorted(set(then) | set(now))
    return psi([then.get(n, 0.0) for n in names], [now.get(n, 0.0) for n in names])


def realized_quality(scores: pd.DataFrame, outcomes: pd.DataFrame, elapsed_days: int, horizon_days: int,
                     card: dict[str, Any] | None, grades: QualityGrades, m: Messages = ENGLISH) -> dict[str, Any]:
    """The earlier scoring's quality on what its customers did in the ``elapsed_days`` since it.

    ``outcomes`` holds ``value`` and ``churned`` by customer_id over ``[as_of, as_of + elapsed_days)``.
    With the window partial, ranking metrics (Gini, capture, AUC) use what happened so far, and the total
    ratio compares the predictions pro-rated to the elapsed days (linearly, without the seasons)."""
    rows = scores.set_index("customer_id")
    rows = rows[np.isfinite(rows["predicted_value"]) & np.isfinite(rows["churn_probability"])]
    joined = rows.join(outcomes, how="inner")
    complete = elapsed_days >= horizon_days
    pro_rata = 1.0 if complete else elapsed_days / horizon_days
    value = joined["value"].to_numpy(dtype=float)
    predicted = joined["predicted_value"].to_numpy(dtype=float)
    churned = joined["churned"].to_numpy(dtype=int)
    n = len(joined)
    found = {"n": n, "horizon_complete": bool(complete), "elapsed_days": int(min(elapsed_days, horizon_days)),
             "horizon_days": int(horizon_days), "fallback_customers": int((joined.get("source") == "fallback").sum())
             if "source" in joined else 0, "without_outcome": int(len(rows) - n)}
    if n == 0:
        return {**found, "norm_gini": None, "top20_capture": None, "churn_auc": None, "total_ratio": None}
    found.update(norm_gini=metrics.normalized_gini(value, predicted),
                 top20_capture=metrics.top_share_captured(value, predicted, CONTRACT_TOP_SHARE),
                 churn_auc=metrics.roc_auc(churned, joined["churn_probability"].to_numpy(dtype=float)),
                 total_ratio=metrics.total_ratio(value, predicted * pro_rata))
    found["comparison"] = (m["monitor.comparison_full"] if complete else
                           m.text("monitor.comparison_partial", elapsed=elapsed_days, horizon=horizon_days,
                                  share=f"{pro_rata:.0%}"))
    if card:
        share = float(card.get("value_top_share", grades.share))
        capture = metrics.top_share_captured(value, predicted, share)
        found["grade"] = grade(capture / share, grades) if np.isfinite(capture) else None
        found["lift_over_random"] = capture / share
        found["promised"] = {"grade": card.get("grade"), "lift_over_random": card.get("lift_over_random"),
                             "value_top_capture": card.get("value_top_capture"), "churn_auc": card.get("churn_auc"),
                             "window": card.get("window")}
    return found


def quality_reasons(realized: dict[str, Any], grades: QualityGrades, config: MonitorConfig,
                    m: Messages = ENGLISH) -> list[Reason]:
    """Why realised quality calls for a retrain, in words; empty when it does not."""
    promised = realized.get("promised")
    if not promised or realized["n"] < config.min_customers:
        return total_ratio_reasons(realized, config, m)
    order = list(grades.lift_for_grade)
    reasons = []
    now, then = realized.get("grade"), promised.get("grade")
    if now in order and then in order and order.index(now) > order.index(then):
        reasons.append(_reason(m, "grade_fell", now=now, share=f"{grades.share:.0%}",
                               lift=f"{realized['lift_over_random']:.1f}", then=then,
                               promised_lift=f"{promised['lift_over_random']:.1f}"))
    auc, promised_auc = realized.get("churn_auc"), promised.get("churn_auc")
    if auc is not None and promised_auc is not None and np.isfinite(auc) and \
            auc < promised_auc - config.churn_auc_tolerance:
        reasons.append(_reason(m, "churn_auc_fell", auc=f"{auc:.3f}", tolerance=f"{config.churn_auc_tolerance:.2f}",
                               promised=f"{promised_auc:.3f}"))
    return reasons + total_ratio_reasons(realized, config, m)


def total_ratio_reasons(realized: dict[str, Any], config: MonitorConfig, m: Messages = ENGLISH) -> list[Reason]:
    """Predicted value far from what customers brought in total (the card grades ranking, not totals)."""
    ratio = realized.get("total_ratio")
    low, high = config.total_ratio_range
    if realized["n"] < config.min_customers or ratio is None or not np.isfinite(ratio) or low <= ratio <= high:
        return []
    return [_reason(m, "total_ratio", ratio=f"{ratio:.2f}", low=f"{low:g}", high=f"{high:g}",
                    pro_rated="" if realized["horizon_complete"] else m["monitor.pro_rated"])]


def drift_summary(reference: dict[str, Any] | None, features_now: pd.DataFrame, predicted_then: pd.Series,
                  predicted_now: pd.Series, tiers_then: pd.Series, tiers_now: pd.Series, config: MonitorConfig,
                  models: str, m: Messages = ENGLISH) -> dict[str, Any]:
    """PSI per feature against the training reference, of the predicted value, and tier shares then and now.

    Without a reference (models trained before one was stored), the feature and prediction drift are
    absent with a message; the tier shares then and now are compared all the same."""
    tiers = {"then": _shares(tiers_then), "now": _shares(tiers_now)}
    summary: dict[str, Any] = {"threshold": config.psi_threshold,
                               "tier_shares": {**tiers, "psi_now_vs_then": share_psi(tiers["then"], tiers["now"])}}
    if not reference:
        return {**summary, "available": False, "features": {}, "drifted": [],
                "message": m.text("monitor.no_reference", models=models)}
    by_feature = feature_drift(reference["features"], features_now)
    drifted = [name for name, value in by_feature.items()
               if value > config.psi_threshold and name not in config.ignore_features]
    entry = reference["predicted_value"]
    summary["tier_shares"]["training"] = reference["tier_shares"]
    return {**summary, "available": True, "features": {name: {"psi": value} for name, value in by_feature.items()},
            "drifted": drifted, "prediction": {
                "psi_now": psi(entry["shares"], shares_now(entry, predicted_now)),
                "psi_then": psi(entry["shares"], shares_now(entry, predicted_then)),
                "mean_then": float(predicted_then.mean()), "mean_now": float(predicted_now.mean())},
            "reference_customers": reference.get("customers")}


def drift_reasons(drift: dict[str, Any], config: MonitorConfig, m: Messages = ENGLISH) -> list[Reason]:
    """Why drift calls for a retrain, in words; empty when it does not."""
    if not drift.get("available"):
        return []
    reasons = []
    moved = drift["drifted"]
    if len(moved) >= config.drifted_features_for_retrain:
        named = m.join([m.text("monitor.feature_psi", name=name, psi=f"{drift['features'][name]['psi']:.2f}")
                        for name in moved[:8]])
        reasons.append(_reason(m, "features_drifted", moved=len(moved), threshold=f"{config.psi_threshold:g}",
                               named=named))
    prediction = drift["prediction"]["psi_now"]
    if prediction > config.prediction_psi_threshold:
        reasons.append(_reason(m, "prediction_drifted", psi=f"{prediction:.2f}",
                               threshold=f"{config.prediction_psi_threshold:g}"))
    return reasons


def verdict(realized: dict[str, Any], drift: dict[str, Any], reasons: Sequence[str], config: MonitorConfig,
            m: Messages = ENGLISH) -> str:
    """The monitor's finding in one paragraph."""
    window = (m["monitor.window_full"] if realized["horizon_complete"] else
              m.text("monitor.window_partial", elapsed=realized["elapsed_days"], horizon=realized["horizon_days"]))
    parts = [m.text("monitor.checked", n=f"{realized['n']:,}", window=window)]
    if realized.get("grade") and realized.get("promised"):
        parts.append(m.text("monitor.grade", grade=realized["grade"], promised=realized["promised"]["grade"]))
    if realized["n"] < config.min_customers:
        parts.append(m.text("monitor.too_few", min=config.min_customers))
    if drift.get("available"):
        parts.append(m.text("monitor.drifted", moved=len(drift["drifted"]), features=len(drift["features"]),
                            threshold=f"{config.psi_threshold:g}"))
    else:
        parts.append(m.text("monitor.sentence", text=drift["message"]))
    parts.append(m.text("monitor.retrain", reasons=m["monitor.reason_separator"].join(reasons)) if reasons
                 else m["monitor.no_retrain"])
    return m["monitor.sentence_separator"].join(parts)


def drift_chart(drift: dict[str, Any], path: Path, top: int = 15, m: Messages = ENGLISH) -> Path:
    """Bar charts of the largest feature PSIs and of the tier shares then and now."""
    # matplotlib is imported when a chart is drawn: at the top it slowed every command's start.
    from matplotlib import rc_context

    from tiercast.analysis.report_fonts import chart_font_families

    with rc_context({"font.family": chart_font_families()}):
        return _drift_chart(drift, path, top, m)


def _drift_chart(drift: dict[str, Any], path: Path, top: int, m: Messages) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 5))
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    features = list(drift.get("features", {}).items())[:top]
    if features:
        names = [n for n, _ in features][::-1]
        values = [v["psi"] for _, v in features][::-1]
        left.barh(names, values, color=["#c0504d" if v > drift["threshold"] else "#9db4d0" for v in values])
        left.axvline(drift["threshold"], color="#555", linestyle="--", linewidth=1)
        left.set_title(m["chart.drift_title"])
    else:
        left.text(0.5, 0.5, m["chart.no_reference"], ha="center", va="center")
        left.set_axis_off()
    shares = drift["tier_shares"]
    tiers = sorted(set(shares["then"]) | set(shares["now"]))
    y = np.arange(len(tiers))
    right.barh(y - 0.2, [shares["then"].get(t, 0) for t in tiers], height=0.4, label=m["chart.then"], color="#9db4d0")
    right.barh(y + 0.2, [shares["now"].get(t, 0) for t in tiers], height=0.4, label=m["chart.now"], color="#2b5d8c")
    right.set_yticks(y, tiers)
    right.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    right.set_title(m["chart.tier_shares_title"])
    right.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=90, metadata={"Software": None})
    return path
