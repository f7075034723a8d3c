"""The model-quality card: how good the models are, in plain words, for people who are not data scientists.

It answers two questions on the last holdout window: how much better than picking customers at random
do the models find next period's value and next period's leavers, and how do they compare with the
classic method (BG/NBD + Gamma-Gamma). The grade's thresholds are in config.
"""

from __future__ import annotations

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tiercast.training import metrics


class QualityGrades(BaseModel):
    """Lowest lift over random (value found in the top ``share`` / ``share``) for each grade, best first."""

    model_config = ConfigDict(extra="forbid")

    share: float = Field(default=0.2, gt=0, lt=1, description="the top share of customers the card talks about")
    lift_for_grade: dict[str, float] = Field(default_factory=lambda: {"A": 3.5, "B": 2.5, "C": 1.5, "D": 0.0})

    @model_validator(mode="after")
    def _falling(self) -> "QualityGrades":
        lifts = list(self.lift_for_grade.values())
        if not lifts or lifts != sorted(lifts, reverse=True):
            raise ValueError(f"lift_for_grade must fall grade by grade, got {self.lift_for_grade}")
        return self


def grade(lift: float, grades: QualityGrades) -> str:
    """The grade of a lift over random: the first (best) grade whose lowest lift it reaches."""
    return next((g for g, lowest in grades.lift_for_grade.items() if lift >= lowest),
                list(grades.lift_for_grade)[-1])


def quality_card(actual: pd.DataFrame, model: pd.DataFrame, baseline: pd.DataFrame | None,
                 grades: QualityGrades, window: str) -> dict[str, object]:
    """The card as a JSON-ready dict.

    ``actual`` holds the holdout's ``value`` and ``churned``; ``model`` and ``baseline`` hold the
    ``predicted_value`` and ``churn_probability`` of the models and of the classic method, same rows."""
    value = actual["value"].to_numpy(dtype=float)
    churned = actual["churned"].to_numpy(dtype=int)

    def capture_and_auc(predictions: pd.DataFrame) -> tuple[float, float]:
        return (metrics.top_share_captured(value, predictions["predicted_value"].to_numpy(), grades.share),
                metrics.roc_auc(churned, predictions["churn_probability"].to_numpy()))

    capture, auc = capture_and_auc(model)
    lift = capture / grades.share
    top = f"top {grades.share:.0%}"
    lines = [f"On the holdout window {window}, the {top} of customers by predicted value held "
             f"{capture:.0%} of the value customers actually brought: {lift:.1f} times what a random "
             f"{grades.share:.0%} would hold."]
    card: dict[str, object] = {"window": window, "customers": len(actual), "grade": grade(lift, grades),
                               "value_top_share": grades.share, "value_top_capture": capture,
                               "lift_over_random": lift, "churn_auc": auc}
    base_auc = None
    if baseline is not None:
        base, base_auc = capture_and_auc(baseline)
        card["baseline_top_capture"] = base
        card["baseline_churn_auc"] = base_auc
        better = "more" if capture >= base else "less"
        lines.append(f"The classic method (BG/NBD + Gamma-Gamma) found {base:.0%}: the models find "
                     f"{abs(capture - base) * 100:.1f} points {better}.")
    lines.append(f"Told one customer who left and one who stayed, the churn model ranks the leaver as "
                 f"riskier {auc:.0%} of the time (a coin toss: 50%)"
                 + (f"; the classic method {base_auc:.0%}." if base_auc is not None else "."))
    card["summary"] = lines
    return card


def card_text(card: dict[str, object]) -> str:
    """The card as a few lines of plain text, for the terminal and the report."""
    return "\n".join([f"Model quality: grade {card['grade']}", *map(str, card["summary"])])
