"""A change in the world after a date: customers spend differently per order, or buy at another rhythm.

Monitoring is tested on worlds whose behaviour changes after the models were trained. The change is made
to a drawn world's transactions, so the world before the date is exactly the unchanged one: every
positive order on or after ``after`` has its amount multiplied by ``spend_multiplier`` (its refunds too,
so a refund never exceeds its order), and is kept with probability ``order_keep_share`` (a thinned
Poisson process is a Poisson process at the lower rate: a slower rhythm). The latent traits, and so the
analytic ground truth, describe the world before the change.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from tiercast.simulation.world import World


def shift_world(world: World, after: pd.Timestamp | str, spend_multiplier: float = 1.0,
                order_keep_share: float = 1.0, seed: int = 0) -> World:
    """``world`` with the orders from ``after`` on scaled by ``spend_multiplier`` and thinned to
    ``order_keep_share`` (drawn with ``seed``); a dropped order takes its refund rows with it."""
    if spend_multiplier <= 0:
        raise ValueError(f"spend_multiplier must be positive, got {spend_multiplier}")
    if not 0 < order_keep_share <= 1:
        raise ValueError(f"order_keep_share must be in (0, 1], got {order_keep_share}")
    tx = world.transactions
    after = pd.Timestamp(after)
    # Orders are identified by order_id; an order's refunds share it and come after it.
    first_row = tx.groupby("order_id", sort=False)["timestamp"].transform("min")
    shifted = (first_row >= after).to_numpy()
    orders = pd.unique(tx.loc[shifted, "order_id"])
    rng = np.random.default_rng(seed)
    dropped = set(orders[rng.random(orders.size) >= order_keep_share])
    keep = ~tx["order_id"].isin(dropped).to_numpy()
    amount = tx["amount"].to_numpy(dtype=float).copy()
    amount[shifted] = np.round(amount[shifted] * spend_multiplier, 2)
    changed = tx.assign(amount=amount)[keep].reset_index(drop=True)
    return replace(world, transactions=changed)
