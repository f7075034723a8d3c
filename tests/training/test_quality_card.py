"""The model-quality card: numbers and grade follow the holdout and the configured thresholds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tiercast.training import metrics
from tiercast.training.quality_card import QualityGrades, card_text, quality_card


def holdout(seed: int = 0, n: int = 1000) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Skewed actual value; a model that sees it through little noise, a baseline through more."""
    rng = np.random.default_rng(seed)
    value = rng.lognormal(3, 1.2, n) * (rng.random(n) < 0.4)
    churned = (value == 0).astype(int)
    actual = pd.DataFrame({"value": value, "churned": churned})

    def noisy(scale: float) -> pd.DataFrame:
        guess = np.log1p(value) + rng.normal(0, scale, n)
        return pd.DataFrame({"predicted_value": np.expm1(np.clip(guess, 0, None)),
                             "churn_probability": 1 / (1 + np.exp(guess - 2))})

    return actual, noisy(0.5), noisy(2.0)


def test_card_states_lift_and_baseline_in_words():
    actual, model, baseline = holdout()
    card = quality_card(actual, model, baseline, QualityGrades(), "1998-01-01 to 1998-06-30")
    capture = metrics.top_share_captured(actual["value"], model["predicted_value"], 0.2)
    base = metrics.top_share_captured(actual["value"], baseline["predicted_value"], 0.2)
    assert card["value_top_capture"] == pytest.approx(capture)
    assert card["lift_over_random"] == pytest.approx(capture / 0.2)
    assert card["baseline_top_capture"] == pytest.approx(base) and base < capture
    text = card_text(card)
    assert f"{capture:.0%}" in text and f"{capture / 0.2:.1f} times" in text and f"{base:.0%}" in text
    assert f"{(capture - base) * 100:.1f} points more" in text and f"grade {card['grade']}" in text


def test_share_in_config_changes_what_the_card_measures():
    actual, model, _ = holdout()
    card = quality_card(actual, model, None, QualityGrades(share=0.1), "w")
    assert card["value_top_capture"] == pytest.approx(
        metrics.top_share_captured(actual["value"], model["predicted_value"], 0.1))
    assert "top 10%" in card_text(card) and "classic method" not in card_text(card)


@pytest.mark.parametrize(("lift", "grade"), [(3.6, "A"), (2.5, "B"), (1.6, "C"), (1.0, "D"), (0.5, "D")])
def test_grade_thresholds(lift, grade):
    actual, model, _ = holdout()
    found = quality_card(actual, model, None, QualityGrades(), "w")["lift_over_random"]
    # Scaling every threshold by found / lift grades this card as a card of ``lift`` under the defaults.
    scaled = QualityGrades(lift_for_grade={g: v * found / lift for g, v in QualityGrades().lift_for_grade.items()})
    assert quality_card(actual, model, None, scaled, "w")["grade"] == grade


def test_grades_must_fall():
    with pytest.raises(ValueError, match="must fall"):
        QualityGrades(lift_for_grade={"A": 1.0, "B": 2.0})
