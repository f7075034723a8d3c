"""The model-quality card: how good the models are, in plain words, for people who are not data scientists.

It answers two questions on the last holdout window: how much better than picking customers at random
do the models find next period's value and next period's leavers, and how do they compare with the
classic method (BG/NBD + Gamma-Gamma). The grade's thresholds are in config.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class QualityGrades(BaseModel):
    """Lowest lift over random (top-20% value capture / 0.20) for each grade, best first."""

    model_config = ConfigDict(extra="forbid")

    share: float = Field(default=0.2, gt=0, lt=1, description="the top share of customers the card talks about")
    lift_for_grade: dict[str, float] = Field(default_factory=lambda: {"A": 3.5, "B": 2.5, "C": 1.5, "D": 0.0})

    @model_validator(mode="after")
    def _falling(self) -> "QualityGrades":
        lifts = list(self.lift_for_grade.values())
        if not lifts or lifts != sorted(lifts, reverse=True):
            raise ValueError(f"lift_for_grade must fall grade by grade, got {self.lift_for_grade}")
        return self


def _grade(lift: float, grades: QualityGrades) -> str:
    return next((g for g, lowest in grades.lift_for_grade.items() if lift >= lowest),
                list(grades.lift_for_grade)[-1])


def quality_card(model: dict[str, float], baseline: dict[str, float] | None, grades: QualityGrades,
                 window: str) -> dict[str, object]:
    """The card as a JSON-ready dict. ``model``/``baseline`` hold value_top20_capture and churn_auc."""
    capture = model["value_top20_capture"]
    lift = capture / grades.share
    top = f"top {grades.share:.0%}"
    lines = [f"On the holdout window {window}, the {top} of customers by predicted value held "
             f"{capture:.0%} of the value customers actually brought: {lift:.1f} times what a random "
             f"{grades.share:.0%} would hold."]
    card: dict[str, object] = {"window": window, "grade": _grade(lift, grades), "value_top_share": grades.share,
                               "value_top_capture": capture, "lift_over_random": lift,
                               "churn_auc": model.get("churn_auc")}
    if baseline:
        base = baseline["value_top20_capture"]
        card["baseline_top_capture"] = base
        card["baseline_churn_auc"] = baseline.get("churn_auc")
        better = "more" if capture >= base else "less"
        lines.append(f"The classic method (BG/NBD + Gamma-Gamma) found {base:.0%}: the models find "
                     f"{abs(capture - base) * 100:.1f} points {better}.")
    if model.get("churn_auc") is not None:
        auc = model["churn_auc"]
        lines.append(f"Told one customer who left and one who stayed, the churn model ranks the leaver as "
                     f"riskier {auc:.0%} of the time (a coin toss: 50%)"
                     + (f"; the classic method {baseline['churn_auc']:.0%}." if baseline and
                        baseline.get("churn_auc") is not None else "."))
    card["summary"] = lines
    return card
