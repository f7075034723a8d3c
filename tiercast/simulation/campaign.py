"""Campaigns in the synthetic world: a known effect planted on treated customers, and its exact expected uplift.

A campaign that starts at ``start`` changes the latent traits of the treated customers still alive then
(``CampaignEffect``): the dropout hazard is multiplied by ``dropout_multiplier`` (both of its causes, so the
complaint rate is scaled with it and leaving over a complaint keeps its share), the purchase rate by
``purchase_rate_multiplier`` and the mean spend by ``spend_multiplier``. Refund, ticket and email-open
behaviour stay as they were.

The world is memoryless (Poisson orders, exponential lifetime), so a customer alive at ``start`` is continued
from there exactly: a fresh remaining lifetime ``~ Exp(new hazard)``, then orders, refunds and interactions
drawn by the world's own generator over ``[start, end)`` under the changed traits. Everything before
``start`` is kept, and so are the later refunds of orders placed before it; other customers are untouched.
The one thing lost: survey answers after ``start`` about orders placed before it (interactions carry no
order id, so they cannot be told apart from the redrawn ones).

The true uplift is analytic (``expected_uplift``): ``ground_truth`` at ``start`` under the changed traits
minus under the original ones, per customer, conditional on their traits and their state at ``start``
(expected refunds of earlier orders are the same in both and cancel).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from tiercast.simulation.truth import ground_truth
from tiercast.simulation.world import SeasonClock, World, days_since, draw_activity, padded_ids


class CampaignEffect(BaseModel):
    """How a campaign changes a treated customer's latent traits from its start on (1 = unchanged)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dropout_multiplier: float = Field(default=1.0, gt=0, description="factor on the dropout hazard")
    purchase_rate_multiplier: float = Field(default=1.0, gt=0, description="factor on the purchase rate")
    spend_multiplier: float = Field(default=1.0, gt=0, description="factor on the mean order amount")


@dataclass(frozen=True)
class TrueUplift:
    """Expected uplift per treated customer in the window: net value, and the chance of buying again."""

    value: float
    retention: float
    customers: int


@dataclass(frozen=True)
class Campaign:
    """The world with the campaign run (``world``), the one without it (``baseline``), and what was done to whom.

    ``treated`` holds the treated customer ids, sorted and unique.
    """

    world: World
    baseline: World
    treated: np.ndarray
    start: pd.Timestamp
    effect: CampaignEffect

    def true_uplift(self, horizon_days: int) -> TrueUplift:
        """Mean over the treated customers of the analytic uplift in ``[start, start + horizon_days)``."""
        per_customer = expected_uplift(self.baseline, self.treated, self.start, horizon_days, self.effect)
        return TrueUplift(value=float(per_customer["value_uplift"].mean()),
                          retention=float(per_customer["retention_uplift"].mean()),
                          customers=len(per_customer))


def _treated_rows(world: World, customer_ids: Sequence[str] | np.ndarray | pd.Series,
                  start: pd.Timestamp) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted unique treated ids, their trait rows, and which of them are alive at ``start``.

    Treated customers must be known at the start (a transaction before it), as a plan's customers are.
    """
    config = world.config
    if not pd.Timestamp(config.start) < start < pd.Timestamp(config.end):
        raise ValueError(f"the campaign start {start} must lie inside the simulated period "
                         f"({config.start}, {config.end})")
    traits = world.traits
    ids = np.unique(np.asarray(customer_ids, dtype=object).astype(str))
    rows = pd.Index(traits["customer_id"]).get_indexer(ids)
    if (rows < 0).any():
        raise ValueError(f"{int((rows < 0).sum())} treated ids are not customers of the world, "
                         f"e.g. {ids[rows < 0][:5].tolist()}")
    tx = world.transactions
    before = tx.loc[tx["timestamp"] < start, "customer_id"]
    unseen = ~pd.Index(ids).isin(before.unique())
    if unseen.any():
        raise ValueError(f"{int(unseen.sum())} treated customers have no transaction before the start {start}, "
                         f"e.g. {ids[unseen][:5].tolist()}")
    start_day = (start - pd.Timestamp(config.start)) / pd.Timedelta(days=1)
    alive = days_since(traits["signup"], pd.Timestamp(config.start))[rows] + traits["lifetime_days"].to_numpy()[rows]
    return ids, rows, alive > start_day


def _with_effect(traits: pd.DataFrame, rows: np.ndarray, effect: CampaignEffect) -> pd.DataFrame:
    """A copy of ``traits`` with the rates of ``rows`` changed by ``effect``."""
    changed = traits.copy()
    factors = {"dropout_rate": effect.dropout_multiplier, "complaint_rate": effect.dropout_multiplier,
               "purchase_rate": effect.purchase_rate_multiplier, "mean_spend": effect.spend_multiplier}
    for column, factor in factors.items():
        values = changed[column].to_numpy(copy=True)
        values[rows] *= factor
        changed[column] = values
    return changed


def expected_uplift(world: World, customer_ids: Sequence[str] | np.ndarray | pd.Series, start: pd.Timestamp,
                    horizon_days: int, effect: CampaignEffect) -> pd.DataFrame:
    """What treating ``customer_ids`` at ``start`` changes, in expectation, in ``[start, start + horizon_days)``.

    One row per customer, sorted by id: ``customer_id``, ``alive`` (at the start; the effect is zero for
    those already gone), ``value_uplift`` (expected net value with minus without) and ``retention_uplift``
    (probability of a positive order in the window, with minus without).
    """
    start = pd.Timestamp(start)
    ids, rows, alive = _treated_rows(world, customer_ids, start)
    treated_world = replace(world, traits=_with_effect(world.traits, rows[alive], effect))
    without = ground_truth(world, start, horizon_days).set_index("customer_id").loc[ids]
    with_campaign = ground_truth(treated_world, start, horizon_days).set_index("customer_id").loc[ids]
    return pd.DataFrame({
        "customer_id": ids,
        "alive": alive,
        "value_uplift": (with_campaign["expected_value"] - without["expected_value"]).to_numpy(),
        "retention_uplift": (without["churn_probability"] - with_campaign["churn_probability"]).to_numpy(),
    })


def _renumber_orders(new: pd.DataFrame, old: pd.DataFrame) -> pd.Series:
    """Order ids of the redrawn rows, numbered after every order of the world so none collides."""

    def numbers(order_id: pd.Series) -> np.ndarray:
        digits = pc.utf8_slice_codeunits(pa.array(order_id.to_numpy(), type=pa.string()), 1)
        return pc.cast(digits, pa.int64()).to_numpy(zero_copy_only=False)

    number = numbers(new["order_id"]) + int(numbers(old["order_id"]).max(initial=0))
    return pd.Series(padded_ids("O", number, max(9, len(str(number.max(initial=0))))), index=new.index)


def run_campaign(world: World, treated: Sequence[str] | np.ndarray | pd.Series, start: pd.Timestamp,
                 effect: CampaignEffect, seed: int = 0) -> Campaign:
    """Run a campaign from ``start`` on the ``treated`` customers: their behaviour redrawn under ``effect``.

    Only treated customers alive at ``start`` change; their rows from ``start`` on (except refunds of
    earlier orders) are replaced by a fresh draw seeded by ``seed``. Same world, customers, start, effect
    and seed give the same result.
    """
    start = pd.Timestamp(start)
    config = world.config
    ids, rows, alive = _treated_rows(world, treated, start)
    affected = rows[alive]
    traits = _with_effect(world.traits, affected, effect)
    rng = np.random.default_rng(seed)
    period_start = pd.Timestamp(config.start)
    age = (start - period_start) / pd.Timedelta(days=1) - days_since(traits["signup"], period_start)[affected]
    remaining = rng.standard_exponential(affected.size) / traits["dropout_rate"].to_numpy()[affected]
    lifetime = traits["lifetime_days"].to_numpy(copy=True)
    lifetime[affected] = age + remaining
    traits["lifetime_days"] = lifetime
    # From the start on, an affected customer is a new customer signing up then without a first order.
    continued = traits.iloc[affected].reset_index(drop=True).assign(
        signup=start.to_datetime64().astype("datetime64[ns]"), lifetime_days=remaining, first_order=False)
    new_tx, new_ix = draw_activity(config, rng, SeasonClock.from_config(config), continued)
    new_tx["order_id"] = _renumber_orders(new_tx, world.transactions)

    customer_rows = pd.Index(traits["customer_id"])
    is_affected = np.zeros(len(traits), dtype=bool)
    is_affected[affected] = True
    tx, ix = world.transactions, world.interactions
    tx_rows, ix_rows = customer_rows.get_indexer(tx["customer_id"]), customer_rows.get_indexer(ix["customer_id"])
    # An affected customer's rows from the start on go, except refunds of orders placed before it.
    late = is_affected[tx_rows] & (tx["timestamp"] >= start).to_numpy()
    earlier_orders = tx.loc[is_affected[tx_rows] & ~late & (tx["amount"] >= 0).to_numpy(), "order_id"]
    after = tx.loc[late]
    replaced = late.copy()
    replaced[late] = ~((after["amount"] < 0) & after["order_id"].isin(earlier_orders)).to_numpy()
    ix_replaced = is_affected[ix_rows] & (ix["timestamp"] >= start).to_numpy()
    campaign_world = World(
        transactions=_merge(tx[~replaced], tx_rows[~replaced], new_tx, customer_rows),
        customers=world.customers,
        interactions=_merge(ix[~ix_replaced], ix_rows[~ix_replaced], new_ix, customer_rows),
        traits=traits,
        config=config,
    )
    return Campaign(world=campaign_world, baseline=world, treated=ids, start=start, effect=effect)


def _merge(kept: pd.DataFrame, kept_rows: np.ndarray, new: pd.DataFrame, customer_rows: pd.Index) -> pd.DataFrame:
    """Kept and redrawn rows in one frame sorted by customer (trait row) then time, kept rows first on ties."""
    both = pd.concat([kept, new], ignore_index=True)
    rows = np.concatenate([kept_rows, customer_rows.get_indexer(new["customer_id"])])
    order = np.lexsort((both["timestamp"].to_numpy(), rows))
    return both.iloc[order].reset_index(drop=True)
