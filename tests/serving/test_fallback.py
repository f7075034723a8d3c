"""The rule-based fallback: its predictions, and the scorer's answer when there are no models to load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from tiercast.features.builder import FeatureBuilder
from tiercast.features.spec import FeatureSpec
from tiercast.serving.fallback import FallbackRules, rule_predictions
from tiercast.training.policy import TierPolicy
from tiercast.serving.scorer import SCORE_COLUMNS, ModelBundle, ModelsUnavailable, score
from tiercast.training.config import RegistryConfig

AS_OF = pd.Timestamp("2025-07-01")


@pytest.fixture
def transactions() -> pd.DataFrame:
    """Five customers with known histories (amounts in whole money, dates before AS_OF)."""
    rows = [
        # A: active, buys every 20 days for 190 days, 10 orders of 120 -> RFM 15 with the default edges.
        *[("A", AS_OF - pd.Timedelta(days=10 + 20 * k), 120.0) for k in range(10)],
        # B: dormant (last purchase 150 days ago, usually every 30), 4 orders of 50.
        *[("B", AS_OF - pd.Timedelta(days=150 + 30 * k), 50.0) for k in range(4)],
        # C: new (first purchase 5 days ago).
        ("C", AS_OF - pd.Timedelta(days=5), 30.0),
        # D: lost (one purchase 400 days ago) and a refund.
        ("D", AS_OF - pd.Timedelta(days=400), 20.0), ("D", AS_OF - pd.Timedelta(days=399), -20.0),
        # E: active with a short history: 15 days, one order of 90 and one of 30.
        ("E", AS_OF - pd.Timedelta(days=45), 90.0), ("E", AS_OF - pd.Timedelta(days=14), 30.0),
    ]
    return pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"])


def test_rule_predictions_follow_the_documented_formulas(transactions):
    features = FeatureBuilder(FeatureSpec()).transform(transactions, AS_OF)
    rules = FallbackRules()
    out = rule_predictions(features, 180, rules)
    assert features["lifecycle_stage"].to_dict() == {"A": "active", "B": "dormant", "C": "new", "D": "lost",
                                                     "E": "active"}
    churn = rules.churn_probability_by_stage
    assert out["churn_probability"].to_dict() == {k: churn[s] for k, s in features["lifecycle_stage"].items()}
    # Past daily spend rate over the tenure (at least min_rate_days), carried over the horizon, kept if not churned.
    expected = {"A": 1200 / 190 * 180 * 0.75, "B": 200 / 240 * 180 * 0.4, "C": 30 / 30 * 180 * 0.5,
                "D": 0.0, "E": 120 / 45 * 180 * 0.75}
    assert out["predicted_value"].to_dict() == pytest.approx(expected)
    assert out.loc["A", "rfm_score"] == 15 and out.loc["A", "segment"] == "Champions"
    assert out.loc["A", "reasons"] == ["RFM score 15 of 15 (recency 5, frequency 5, spend 5 of 5)",
                                       "last purchase 10 days ago, usually every 20: active customer"]
    assert out.loc["B", "reasons"][1] == "no purchase for 150 days, usually every 30: dormant customer"
    assert (out["rfm_score"] == features[["r_score", "f_score", "m_score"]].sum(axis=1)).all()


def test_without_models_everyone_is_scored_by_the_rules_with_the_reason(transactions):
    policy = TierPolicy()
    out = score(transactions, AS_OF, policy, FeatureSpec(), None, horizon_days=90,
                unavailable_reason="models 'champion' could not be loaded")
    assert out.columns[: len(SCORE_COLUMNS)].tolist() == SCORE_COLUMNS
    assert out["customer_id"].tolist() == ["A", "B", "C", "D", "E"]
    assert set(out["source"]) == {"fallback"}
    assert (out["fallback_reason"] == "models 'champion' could not be loaded").all()
    features = FeatureBuilder(FeatureSpec()).transform(transactions, AS_OF)
    assert np.allclose(out["predicted_value"], rule_predictions(features, 90, FallbackRules())["predicted_value"])
    tiers = out.set_index("customer_id")["tier"]
    # A reaches VIP by RFM score (15 >= 13); C is new; every tier is a tier of the policy.
    assert tiers["A"] == "VIP" and tiers["C"] == policy.new_customer.name
    rfm = features[["r_score", "f_score", "m_score"]].sum(axis=1)
    value_tier = out.set_index("customer_id")["value_tier"]
    for customer, total in rfm.items():
        reached = [t.name for t in policy.value_tiers if total >= t.min_rfm_score]
        assert value_tier[customer] == reached[0]


def test_dormant_valuable_customers_get_the_retention_action_from_the_rules():
    policy = TierPolicy.model_validate({"at_risk": {"name": "at risk", "action": "call them",
                                                    "applies_to": ["VIP", "growth"]}})
    # Dormant (fallback churn 0.6 >= 0.5) with a frequent, valuable past (RFM 3 + 4 + 5: growth): at risk.
    tx = pd.DataFrame({"customer_id": ["B"] * 8,
                       "timestamp": [AS_OF - pd.Timedelta(days=100 + 10 * k) for k in range(8)],
                       "amount": [200.0] * 8})
    out = score(tx, AS_OF, policy, FeatureSpec(), None)
    assert out.loc[0, "lifecycle_stage"] == "dormant" and out.loc[0, "value_tier"] == "growth"
    assert out.loc[0, "tier"] == "at risk"
    assert out.loc[0, "action"] == "call them"


def test_an_empty_model_store_means_no_models(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    from tiercast.training.registry import configure_mlflow

    configure_mlflow()
    with pytest.raises(ModelsUnavailable, match="no 'champion' models in the registry; train some with tiercast train"):
        ModelBundle.load(RegistryConfig())


def test_fallback_rules_need_a_probability_for_every_stage():
    with pytest.raises(ValidationError, match="missing \\['lost'\\]"):
        FallbackRules(churn_probability_by_stage={"new": 0.5, "active": 0.2, "dormant": 0.6})
    with pytest.raises(ValidationError, match="within \\[0, 1\\]"):
        FallbackRules(churn_probability_by_stage={"new": 0.5, "active": 0.2, "dormant": 0.6, "lost": 1.5})
