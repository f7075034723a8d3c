"""The model-quality card: numbers and grade follow the metrics and the configured thresholds."""

from __future__ import annotations

import pytest

from training.quality_card import QualityGrades, quality_card


def test_card_states_lift_and_baseline_in_words():
    card = quality_card({"value_top20_capture": 0.74, "churn_auc": 0.81},
                        {"value_top20_capture": 0.70, "churn_auc": 0.79}, QualityGrades(), "1998-01-01 to 1998-06-30")
    assert card["lift_over_random"] == pytest.approx(3.7)
    assert card["grade"] == "A"
    text = " ".join(card["summary"])
    assert "74%" in text and "3.7 times" in text and "70%" in text and "4.0 points more" in text and "81%" in text


@pytest.mark.parametrize(("capture", "grade"), [(0.72, "A"), (0.5, "B"), (0.32, "C"), (0.2, "D"), (0.1, "D")])
def test_grade_thresholds(capture, grade):
    assert quality_card({"value_top20_capture": capture}, None, QualityGrades(), "w")["grade"] == grade


def test_grades_must_fall():
    with pytest.raises(ValueError, match="must fall"):
        QualityGrades(lift_for_grade={"A": 1.0, "B": 2.0})
