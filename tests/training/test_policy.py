"""The tier policy: thresholds and their ties, empty tiers, the overlays, membership levels, validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from tiercast.config import load_config
from tiercast.training.policy import Membership, TierPolicy

ROOT = Path(__file__).resolve().parents[2]


def _assign(policy: TierPolicy, score, thresholds, churn=None, stage=None) -> pd.DataFrame:
    score = pd.Series(score, dtype=float)
    churn = pd.Series(np.zeros(len(score)) if churn is None else churn, index=score.index)
    stage = pd.Series(["active"] * len(score) if stage is None else stage, index=score.index)
    return pd.DataFrame(policy.assign(score, thresholds, churn, stage), index=score.index)


def test_ties_at_a_threshold_go_up_and_missing_scores_go_to_the_last_tier():
    policy = TierPolicy()
    out = _assign(policy, [10.0, 9.999, 5.0, 2.0, 1.999, np.nan, -3.0], [10.0, 5.0, 2.0])
    assert out["tier"].tolist() == ["VIP", "growth", "growth", "potential", "low value", "low value", "low value"]
    assert out["action"].tolist()[:2] == [policy.value_tiers[0].action, policy.value_tiers[1].action]


def test_share_thresholds_split_the_training_population_by_share():
    policy = TierPolicy()
    values = np.arange(1000, dtype=float)
    thresholds = policy.fit_thresholds(values)
    counts = _assign(policy, values, thresholds)["tier"].value_counts()
    assert counts.to_dict() == {"VIP": 100, "growth": 200, "potential": 300, "low value": 400}
    # Fitted on the population, applied to one customer alone: the same answer (what the service relies on).
    alone = _assign(policy, [values[899]], thresholds)["tier"].item()
    assert alone == _assign(policy, values, thresholds)["tier"].iloc[899]


def test_tied_population_fills_the_top_tier_and_leaves_the_others_empty():
    policy = TierPolicy()
    values = np.full(50, 7.0)
    thresholds = policy.fit_thresholds(values)
    out = _assign(policy, values, thresholds)
    assert set(out["tier"]) == {"VIP"}  # every threshold is 7.0 and ties go up


def test_empty_tiers_are_allowed():
    policy = TierPolicy()
    out = _assign(policy, [100.0, 50.0, 0.5], [40.0, 30.0, 1.0])  # nobody between 1 and 40 but VIP/low
    assert out["tier"].tolist() == ["VIP", "VIP", "low value"]
    assert out.columns.tolist() == ["value_tier", "tier", "action"]


def test_all_customers_new_are_onboarded_whatever_their_value():
    policy = TierPolicy()
    out = _assign(policy, [100.0, 5.0, 0.0], [10.0, 5.0, 2.0], churn=[0.9, 0.9, 0.1], stage=["new"] * 3)
    assert set(out["tier"]) == {policy.new_customer.name}
    assert set(out["action"]) == {policy.new_customer.action}
    assert out["value_tier"].tolist() == ["VIP", "growth", "low value"]


def test_at_risk_overlay_only_for_the_protected_tiers_and_from_the_threshold_up():
    policy = TierPolicy()
    minimum = policy.at_risk.churn_probability_min
    out = _assign(policy, [100.0, 100.0, 6.0, 3.0, 100.0], [10.0, 5.0, 2.0],
                  churn=[minimum, minimum - 1e-9, 0.99, 0.99, 0.99], stage=["active"] * 4 + ["new"])
    assert out["tier"].tolist() == ["at risk", "VIP", "at risk", "potential", "onboarding"]
    assert out["action"].iloc[0] == policy.at_risk.action


def test_per_customer_thresholds_place_models_and_rules_side_by_side():
    policy = TierPolicy()
    limits = np.array([[10.0, 5.0, 2.0], [13.0, 10.0, 7.0]])  # a model row, then a rules (RFM) row
    out = _assign(policy, [11.0, 11.0], limits)
    assert out["tier"].tolist() == ["VIP", "growth"]
    with pytest.raises(ValueError, match="expected 3 thresholds"):
        _assign(policy, [1.0], [1.0, 2.0])


def test_absolute_thresholds_come_from_the_policy_not_the_data():
    policy = TierPolicy.model_validate({"value_tiers": [
        {"name": "gold", "action": "a", "min_value": 500, "min_rfm_score": 12},
        {"name": "silver", "action": "b", "min_value": 100, "min_rfm_score": 8},
        {"name": "bronze", "action": "c", "min_rfm_score": 3}],
        "at_risk": {"name": "at risk", "action": "d", "applies_to": ["gold"]}})
    assert policy.threshold_kind == "absolute"
    assert policy.fit_thresholds(np.arange(10.0)) == [500.0, 100.0]
    assert policy.model_thresholds([1.0, 0.5]) == [500.0, 100.0]  # frozen values do not override the policy
    assert _assign(policy, [500.0, 499.0, 99.0], policy.fit_thresholds(np.empty(0)))["tier"].tolist() == [
        "gold", "silver", "bronze"]


def test_frozen_thresholds_that_do_not_fit_the_policy_are_refused():
    policy = TierPolicy()
    assert policy.model_thresholds([3.0, 2.0, 1.0]) == [3.0, 2.0, 1.0]
    with pytest.raises(ValueError, match="retrain"):
        policy.model_thresholds([2.0, 1.0])


@pytest.mark.parametrize(("change", "message"), [
    ({"value_tiers": [{"name": "a", "action": "x", "top_share": 0.5, "min_rfm_score": 9}]}, "rise tier by tier to 1.0"),
    ({"value_tiers": [{"name": "a", "action": "x", "top_share": 0.5, "min_rfm_score": 9},
                      {"name": "b", "action": "x", "top_share": 0.5, "min_rfm_score": 3},
                      {"name": "c", "action": "x", "top_share": 1.0, "min_rfm_score": 2}]}, "min_rfm_score"),
    ({"value_tiers": [{"name": "a", "action": "x", "top_share": 0.5, "min_rfm_score": 9},
                      {"name": "b", "action": "x", "top_share": 0.5, "min_rfm_score": 3}]}, "rise tier by tier"),
    ({"value_tiers": [{"name": "a", "action": "x", "min_value": 5, "min_rfm_score": 9},
                      {"name": "b", "action": "x", "top_share": 1.0, "min_rfm_score": 3}]},
     "no tier may set top_share"),
    ({"value_tiers": [{"name": "a", "action": "x", "min_value": 5, "min_rfm_score": 9},
                      {"name": "b", "action": "x", "min_value": 9, "min_rfm_score": 5},
                      {"name": "c", "action": "x", "min_rfm_score": 3}]}, "min_value must fall"),
    ({"value_tiers": [{"name": "a", "action": "x", "min_rfm_score": 9},
                      {"name": "b", "action": "x", "top_share": 1.0, "min_rfm_score": 3}]}, "every tier a top_share"),
    ({"new_customer": {"name": "VIP", "action": "x"}}, "distinct"),
    ({"at_risk": {"name": "at risk", "action": "x", "applies_to": ["VIPs"]}}, "unknown tiers"),
    ({"membership": {"levels": [{"name": "basic", "min_spend": 10}]}}, "min_spend 0"),
    ({"membership": {"levels": [{"name": "a", "min_spend": 0}, {"name": "b", "min_spend": 0}]}}, "rise level"),
])
def test_inconsistent_policies_are_refused_with_a_reason(change, message):
    with pytest.raises(ValidationError, match=message):
        TierPolicy.model_validate(change)


def test_membership_levels_by_trailing_spend_with_exact_thresholds():
    membership = Membership()
    spends = [0.0, -20.0, np.nan, 499.99, 500.0, 1999.0, 2000.0, 10_000.0, 1e9]
    assert membership.assign(np.array(spends)).tolist() == [
        "standard", "standard", "standard", "standard", "silver", "silver", "gold", "diamond", "diamond"]


def test_chinese_example_config_names_tiers_levels_and_actions_in_chinese():
    config = load_config(ROOT / "configs" / "zh.yaml")
    policy = config.policy
    assert policy.tier_order == ["高价值", "成长型", "潜力", "低价值"]
    assert policy.membership.level_order == ["普通", "银卡", "金卡", "钻石"]
    # Every action is written in Chinese (each has at least one CJK character).
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in action) for action in policy.actions.values())
    out = _assign(policy, [20.0, 20.0, 1.0, 20.0], [10.0, 5.0, 2.0], churn=[0.1, 0.8, 0.1, 0.1],
                  stage=["active", "active", "active", "new"])
    assert out["tier"].tolist() == ["高价值", policy.at_risk.name, "低价值", policy.new_customer.name]
    assert out["action"].iloc[0] == policy.value_tiers[0].action
    assert policy.membership.assign(np.array([1999.0, 2000.0, 60_000.0])).tolist() == ["普通", "银卡", "钻石"]
    # Only the language, the policy and the plan differ from the defaults: the rest is unchanged.
    default = load_config()
    assert (config.language, default.language) == ("zh", "en")
    assert (config.model_dump(exclude={"language", "policy", "plan"})
            == default.model_dump(exclude={"language", "policy", "plan"}))
