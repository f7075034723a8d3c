"""Per-customer CRM fields: rhythm, expected next order, risk band; thin histories get the rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tiercast.features.spec import FeatureSpec
from tiercast.serving.next_order import next_order
from tiercast.training.policy import ChurnRiskBands, TierPolicy
from tiercast.serving.scorer import score

AS_OF = pd.Timestamp("2025-06-01")


def test_rhythm_when_it_points_into_the_horizon_else_the_models():
    features = pd.DataFrame({"gap_mean_days": [30.0, 30.0, np.nan], "recency_days": [10.0, 200.0, 5.0]},
                            index=["regular", "overdue", "one-timer"])
    out = pd.DataFrame(next_order(features, np.array([0.2, 0.9, 0.5]), AS_OF, 180, ChurnRiskBands()),
                       index=features.index)
    assert out.loc["regular", "expected_next_order_date"] == "2025-06-21"  # last purchase + usual gap
    # Model-based: median wait given an order within H is H ln(1 - p/2) / ln(1 - p).
    for who, p in (("overdue", 0.1), ("one-timer", 0.5)):
        wait = 180 * np.log(1 - p / 2) / np.log(1 - p)
        assert out.loc[who, "expected_next_order_date"] == (AS_OF + pd.Timedelta(days=np.ceil(wait))).strftime("%Y-%m-%d")
    assert np.isnan(out.loc["one-timer", "avg_days_between_orders"])
    assert list(out["next_order_probability"]) == pytest.approx([0.8, 0.1, 0.5])
    assert list(out["churn_risk_band"]) == ["low", "high", "medium"]


def test_model_wait_shrinks_as_an_order_becomes_likely():
    features = pd.DataFrame({"gap_mean_days": np.nan, "recency_days": 1.0}, index=list("abcd"))
    dates = next_order(features, np.array([0.95, 0.7, 0.4, 0.05]), AS_OF, 180, ChurnRiskBands())
    assert list(dates["expected_next_order_date"]) == sorted(dates["expected_next_order_date"], reverse=True)


def test_band_edges_and_order():
    bands = ChurnRiskBands(medium=0.3, high=0.6)
    assert list(bands.assign(np.array([0.0, 0.3, 0.5999, 0.6, 1.0]))) == ["low", "medium", "medium", "high", "high"]
    assert list(bands.assign(np.array([np.nan]))) == ["low"]  # no probability: no risk claimed
    assert list(ChurnRiskBands(medium=0.5, high=0.5).assign(np.array([0.49, 0.5]))) == ["low", "high"]
    with pytest.raises(ValueError, match="must not exceed"):
        ChurnRiskBands(medium=0.8, high=0.5)


def test_scored_rows_carry_the_fields_with_single_order_gap_empty():
    tx = pd.DataFrame({"customer_id": ["a", "a", "a", "b"],
                       "timestamp": pd.to_datetime(["2025-01-01", "2025-02-01", "2025-03-03", "2025-05-01"]),
                       "amount": [10.0, 20.0, 30.0, 5.0]})
    scores = score(tx, AS_OF, TierPolicy(), FeatureSpec(), None).set_index("customer_id")
    assert scores.loc["a", "avg_days_between_orders"] == pytest.approx(30.5)
    assert np.isnan(scores.loc["b", "avg_days_between_orders"])
    assert scores["expected_next_order_date"].ge("2025-06-01").all()
    assert set(scores["churn_risk_band"]) <= {"low", "medium", "high"}
