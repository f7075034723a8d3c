"""A world that changes after a date: the same before it, lower spend per order and fewer orders after it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tiercast.simulation.shift import shift_world
from tiercast.simulation.world import WorldConfig, simulate_world

AFTER = pd.Timestamp("2024-07-01")


@pytest.fixture(scope="module")
def world():
    return simulate_world(WorldConfig(n_customers=2000, seed=11))


def test_before_the_date_nothing_changes_and_after_it_spend_and_rhythm_do(world):
    shifted = shift_world(world, AFTER, spend_multiplier=0.5, order_keep_share=0.6, seed=1)
    before, now = world.transactions, shifted.transactions
    early = before["timestamp"] < AFTER
    pd.testing.assert_frame_equal(before[early & (before["amount"] > 0)].reset_index(drop=True),
                                  now[(now["timestamp"] < AFTER) & (now["amount"] > 0)].reset_index(drop=True))
    late_orders = before[~early & (before["amount"] > 0)]
    kept = now[(now["timestamp"] >= AFTER) & (now["amount"] > 0)]
    assert len(kept) / len(late_orders) == pytest.approx(0.6, abs=0.03)
    original = late_orders.set_index("order_id")["amount"]
    assert np.allclose(kept.set_index("order_id")["amount"], np.round(original[kept["order_id"]] * 0.5, 2))
    # A refund goes with its order: none refers to a dropped one, none exceeds what was paid.
    paid = now[now["amount"] > 0].groupby("order_id")["amount"].sum()
    refunded = -now[now["amount"] < 0].groupby("order_id")["amount"].sum()
    assert refunded.index.isin(paid.index).all() and (refunded <= paid[refunded.index] + 0.01).all()


def test_no_change_is_the_same_world_and_bad_values_are_refused(world):
    pd.testing.assert_frame_equal(shift_world(world, AFTER).transactions, world.transactions)
    with pytest.raises(ValueError, match="order_keep_share"):
        shift_world(world, AFTER, order_keep_share=0)
    with pytest.raises(ValueError, match="spend_multiplier"):
        shift_world(world, AFTER, spend_multiplier=-1)
