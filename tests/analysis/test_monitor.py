"""The monitor's verdict rules, each threshold from the monitor config, on small hand-made findings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from tiercast.analysis.monitor import MonitorConfig, drift_reasons, quality_reasons, realized_quality
from tiercast.monitoring import metric_name
from tiercast.training.quality_card import QualityGrades

GRADES = QualityGrades()
CARD = {"grade": "B", "value_top_share": 0.2, "lift_over_random": 3.0, "value_top_capture": 0.6, "churn_auc": 0.8}


def _scores(n: int = 1000) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    value = rng.gamma(0.5, 100.0, n)
    ids = [f"C{i:05d}" for i in range(n)]
    scores = pd.DataFrame({"customer_id": ids, "predicted_value": value * rng.lognormal(0, 0.3, n),
                           "churn_probability": np.clip(1 / (1 + value / 20) + rng.normal(0, 0.1, n), 0, 1),
                           "source": "model"})
    outcomes = pd.DataFrame({"value": value, "churned": value < 5}, index=pd.Index(ids, name="customer_id"))
    return scores, outcomes


def test_a_grade_below_the_card_is_a_reason_and_the_promised_one_is_not():
    scores, outcomes = _scores()
    good = realized_quality(scores, outcomes, 180, 180, CARD, GRADES)
    assert good["grade"] == CARD["grade"] and quality_reasons(good, GRADES, MonitorConfig()) == []  # as promised
    shuffled = scores.assign(predicted_value=scores["predicted_value"].sample(frac=1, random_state=1).to_numpy(),
                             churn_probability=scores["churn_probability"].sample(frac=1, random_state=2).to_numpy())
    bad = realized_quality(shuffled, outcomes, 180, 180, CARD, GRADES)
    said = quality_reasons(bad, GRADES, MonitorConfig())
    assert bad["grade"] == "D" and any("below the card's grade" in r for r in said)
    assert any("churn AUC" in r for r in said)
    # Too few customers to judge: no quality reason.
    assert quality_reasons(bad, GRADES, MonitorConfig(min_customers=5000)) == []


def test_the_total_ratio_range_and_the_pro_rated_partial_window():
    scores, outcomes = _scores()
    half = realized_quality(scores.assign(predicted_value=scores["predicted_value"] * 2), outcomes, 90, 180, CARD, GRADES)
    assert not half["horizon_complete"] and half["total_ratio"] == pytest.approx(
        scores["predicted_value"].sum() / outcomes["value"].sum())  # twice the prediction, pro-rated to half
    twice = realized_quality(scores.assign(predicted_value=scores["predicted_value"] * 2), outcomes, 180, 180, CARD,
                             GRADES)
    assert any("times what customers brought" in r for r in quality_reasons(twice, GRADES, MonitorConfig()))
    assert quality_reasons(twice, GRADES, MonitorConfig(total_ratio_range=(0.5, 3.0))) == []
    with pytest.raises(ValidationError, match="total_ratio_range"):
        MonitorConfig(total_ratio_range=(1.2, 1.5))


def test_drift_reasons_count_moved_features_that_are_judged():
    drift = {"available": True, "drifted": ["spend_90d", "spend_180d"],
             "features": {"spend_90d": {"psi": 0.4}, "spend_180d": {"psi": 0.3}, "tenure_days": {"psi": 0.05}},
             "prediction": {"psi_now": 0.1}}
    assert drift_reasons(drift, MonitorConfig(drifted_features_for_retrain=3)) == []
    said = drift_reasons(drift, MonitorConfig(drifted_features_for_retrain=2))
    assert said and "spend_90d (0.40)" in said[0]
    assert "predicted value" in drift_reasons({**drift, "prediction": {"psi_now": 0.5}}, MonitorConfig())[0]
    assert drift_reasons({"available": False}, MonitorConfig()) == []


def test_metric_names_mlflow_accepts():
    assert metric_name("psi_channel_share_in-store") == "psi_channel_share_in-store"
    assert metric_name("psi_category_share_a+b(c)") == "psi_category_share_a_b_c_"
