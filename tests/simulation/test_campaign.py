"""Campaigns in the synthetic world: only treated customers change, and what they do matches the analytic truth.

Agreement of realised and expected outcomes is judged as in test_simulate: z-scores of realised minus
expected sums, limits at a 0.1% false-alarm rate per check.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy.stats import norm

from tiercast.simulation.campaign import CampaignEffect, expected_uplift, run_campaign
from tiercast.simulation.truth import ground_truth
from tiercast.simulation.world import World, WorldConfig, simulate_world

START = pd.Timestamp("2024-10-01")
HORIZON = 180
STRONG = CampaignEffect(dropout_multiplier=0.3, purchase_rate_multiplier=2.0, spend_multiplier=1.5)
Z_LIMIT = float(norm.isf(1e-3 / 2))


@pytest.fixture(scope="module")
def world() -> World:
    return simulate_world(WorldConfig(n_customers=4_000, seed=5))


@pytest.fixture(scope="module")
def truth(world: World) -> pd.DataFrame:
    return ground_truth(world, START, HORIZON)


@pytest.fixture(scope="module")
def treated(truth: pd.DataFrame) -> np.ndarray:
    """Every other customer known at the start: alive and gone ones alike."""
    return truth["customer_id"].to_numpy()[::2]


def rows_of(frame: pd.DataFrame, ids: np.ndarray) -> pd.DataFrame:
    return frame[frame["customer_id"].isin(ids)].reset_index(drop=True)


def window_outcomes(tx: pd.DataFrame, ids: np.ndarray) -> pd.DataFrame:
    """Net value and whether each customer bought (a positive amount) in [START, START + HORIZON)."""
    window = tx[(tx["timestamp"] >= START) & (tx["timestamp"] < START + pd.Timedelta(days=HORIZON))]
    value = window.groupby("customer_id")["amount"].sum().reindex(ids, fill_value=0.0)
    bought = window[window["amount"] > 0].groupby("customer_id").size().reindex(ids, fill_value=0) > 0
    return pd.DataFrame({"value": value.to_numpy(), "bought": bought.to_numpy()})


def test_effect_rejects_unknown_and_non_positive_multipliers() -> None:
    with pytest.raises(ValidationError, match="spend_multiplyer"):
        CampaignEffect(spend_multiplyer=1.2)
    with pytest.raises(ValidationError, match="dropout_multiplier"):
        CampaignEffect(dropout_multiplier=0.0)


def test_same_seed_same_campaign_and_nobody_else_changes(world, truth, treated) -> None:
    first = run_campaign(world, treated, START, STRONG, seed=4)
    again = run_campaign(world, treated, START, STRONG, seed=4)
    other = run_campaign(world, treated, START, STRONG, seed=5)
    for name in ("transactions", "interactions", "traits"):
        pd.testing.assert_frame_equal(getattr(first.world, name), getattr(again.world, name))
    assert not first.world.transactions.equals(other.world.transactions)

    alive = truth.set_index("customer_id").loc[treated, "alive"].to_numpy()
    assert 0.2 < alive.mean() < 0.9  # both kinds of treated customer are present
    unchanged = np.concatenate([np.setdiff1d(world.traits["customer_id"], treated), treated[~alive]])
    for name in ("transactions", "interactions", "traits"):
        pd.testing.assert_frame_equal(rows_of(getattr(first.world, name), unchanged),
                                      rows_of(getattr(world, name), unchanged))
    # Before the start the treated customers' history is what it was.
    before = world.transactions[world.transactions["timestamp"] < START]
    campaign_before = first.world.transactions[first.world.transactions["timestamp"] < START]
    pd.testing.assert_frame_equal(rows_of(campaign_before, treated), rows_of(before, treated))

    changed = rows_of(first.world.traits, treated[alive]).set_index("customer_id")
    original = rows_of(world.traits, treated[alive]).set_index("customer_id")
    np.testing.assert_allclose(changed["purchase_rate"], original["purchase_rate"] * 2.0)
    np.testing.assert_allclose(changed["dropout_rate"], original["dropout_rate"] * 0.3)
    np.testing.assert_allclose(changed["complaint_rate"], original["complaint_rate"] * 0.3)
    np.testing.assert_allclose(changed["mean_spend"], original["mean_spend"] * 1.5)
    pd.testing.assert_series_equal(changed["refund_prob"], original["refund_prob"])
    # Treated longer lives: the remaining lifetime is drawn with a hazard 0.3 times the original.
    assert changed["lifetime_days"].mean() > original["lifetime_days"].mean()


def test_redrawn_rows_keep_the_world_consistent(world, truth, treated) -> None:
    campaign = run_campaign(world, treated, START, STRONG, seed=1)
    tx = campaign.world.transactions
    assert tx.dtypes.equals(world.transactions.dtypes)
    assert campaign.world.interactions.dtypes.equals(world.interactions.dtypes)
    assert tx[["customer_id", "timestamp"]].equals(
        tx[["customer_id", "timestamp"]].sort_values(["customer_id", "timestamp"], kind="stable"))
    orders, refunds = tx[tx["amount"] >= 0], tx[tx["amount"] < 0]
    assert orders["order_id"].is_unique and refunds["order_id"].is_unique
    original = orders.iloc[pd.Index(orders["order_id"]).get_indexer(refunds["order_id"])]
    assert (original["customer_id"].to_numpy() == refunds["customer_id"].to_numpy()).all()
    assert (original["timestamp"].to_numpy() <= refunds["timestamp"].to_numpy()).all()
    # Refunds after the start of orders placed before it are kept.
    late_refunds = refunds[(refunds["timestamp"] >= START) & (original["timestamp"].to_numpy() < START)]
    base = world.transactions
    base_late = base[(base["amount"] < 0) & (base["timestamp"] >= START)
                     & base["order_id"].isin(base.loc[(base["amount"] >= 0) & (base["timestamp"] < START), "order_id"])]
    pd.testing.assert_frame_equal(late_refunds.reset_index(drop=True), base_late.reset_index(drop=True))
    end = pd.Timestamp(world.config.end)
    for frame in (tx, campaign.world.interactions):
        assert frame["timestamp"].between(pd.Timestamp(world.config.start), end, inclusive="left").all()


def test_realised_outcomes_match_the_truth_under_the_changed_traits(world, truth, treated) -> None:
    campaign = run_campaign(world, treated, START, STRONG, seed=2)
    with_campaign = ground_truth(campaign.world, START, HORIZON).set_index("customer_id").loc[treated]
    without = truth.set_index("customer_id").loc[treated]
    seen = window_outcomes(campaign.world.transactions, treated)

    residual = seen["value"].to_numpy() - with_campaign["expected_value"].to_numpy()
    assert abs(residual.sum() / np.sqrt((residual**2).sum())) < Z_LIMIT
    p = with_campaign["churn_probability"].to_numpy()
    churned = ~seen["bought"].to_numpy()
    assert abs((churned - p).sum() / np.sqrt((p * (1 - p)).sum())) < Z_LIMIT
    # The check has power: the same outcomes are far from what the untreated world expects.
    residual = seen["value"].to_numpy() - without["expected_value"].to_numpy()
    assert residual.sum() / np.sqrt((residual**2).sum()) > 3 * Z_LIMIT

    # The analytic uplift is exactly this truth with the campaign minus the truth without it.
    uplift = expected_uplift(world, treated, START, HORIZON, STRONG).set_index("customer_id")
    np.testing.assert_allclose(uplift["value_uplift"],
                               with_campaign["expected_value"] - without["expected_value"], atol=1e-9)
    np.testing.assert_allclose(uplift["retention_uplift"],
                               without["churn_probability"] - with_campaign["churn_probability"], atol=1e-12)
    true = campaign.true_uplift(HORIZON)
    assert true.customers == len(treated)
    assert true.value == pytest.approx(uplift["value_uplift"].mean())
    assert true.retention == pytest.approx(uplift["retention_uplift"].mean())


def test_true_uplift_is_zero_without_effect_and_linear_in_spend(world, treated) -> None:
    none = expected_uplift(world, treated, START, HORIZON, CampaignEffect())
    assert (none[["value_uplift", "retention_uplift"]].to_numpy() == 0).all()

    small = expected_uplift(world, treated, START, HORIZON, CampaignEffect(spend_multiplier=1.2))
    large = expected_uplift(world, treated, START, HORIZON, CampaignEffect(spend_multiplier=1.5))
    # Spend alone does not change whether anyone buys; the value uplift is (multiplier - 1) x net value.
    np.testing.assert_allclose(large["retention_uplift"], 0.0, atol=1e-12)
    np.testing.assert_allclose(large["value_uplift"], small["value_uplift"] * 0.5 / 0.2, rtol=1e-9, atol=1e-9)
    assert (large.loc[~large["alive"], "value_uplift"] == 0).all()
    assert (large.loc[large["alive"], "value_uplift"] > 0).all()

    keep = expected_uplift(world, treated, START, HORIZON, CampaignEffect(dropout_multiplier=0.5))
    assert (keep.loc[keep["alive"], "retention_uplift"] > 0).all()
    assert (keep.loc[~keep["alive"], "retention_uplift"] == 0).all()


def test_bad_campaigns_are_refused(world, truth) -> None:
    known = truth["customer_id"].to_numpy()[:3]
    with pytest.raises(ValueError, match="not customers"):
        run_campaign(world, [*known, "C9999999"], START, STRONG)
    seen = world.transactions.loc[world.transactions["timestamp"] < START, "customer_id"].unique()
    newcomer = np.setdiff1d(world.traits["customer_id"], seen)[0]
    with pytest.raises(ValueError, match="no transaction before the start"):
        run_campaign(world, [newcomer], START, STRONG)
    with pytest.raises(ValueError, match="inside the simulated period"):
        run_campaign(world, known, pd.Timestamp(world.config.end), STRONG)
    with pytest.raises(ValueError, match="must lie after"):
        expected_uplift(world, known, pd.Timestamp("2025-06-01"), HORIZON, STRONG)
