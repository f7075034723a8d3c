"""Training above the customer cap: a seeded sample of whole customers, the same for the same seed."""

from __future__ import annotations

import pandas as pd
import pytest

from tiercast.features.loading import InputData
from tiercast.simulation.world import WorldConfig, simulate_world
from tiercast.training.customer_sample import CustomerSample, sample_customers

CUTOFF = pd.Timestamp("2024-09-01")


@pytest.fixture(scope="module")
def data() -> InputData:
    world = simulate_world(WorldConfig(n_customers=500, seed=2))
    return InputData(world.transactions, world.customers, world.interactions, [])


def _with_history(data: InputData) -> set[str]:
    tx = data.transactions
    return set(tx.loc[tx["timestamp"] < CUTOFF, "customer_id"])


def test_under_the_cap_every_customer_is_kept(data, caplog) -> None:
    n = len(_with_history(data))
    kept, sample = sample_customers(data, CUTOFF, n, seed=1)
    assert kept is data and sample == CustomerSample(n, n) and not sample.sampled
    assert sample_customers(data, CUTOFF, None, seed=1)[1] == sample
    assert "sample" not in caplog.text


def test_above_the_cap_whole_customers_are_sampled_and_the_log_says_so(data, caplog) -> None:
    population = _with_history(data)
    kept, sample = sample_customers(data, CUTOFF, 100, seed=1)
    assert sample == CustomerSample(len(population), 100) and sample.sampled
    assert sample.params() == {"training_customers": 100, "customers_before_cutoff": len(population),
                               "customers_sampled": True}
    chosen = set(kept.transactions["customer_id"])
    assert len(chosen) == 100 and chosen <= population
    for name in ("transactions", "customers", "interactions"):
        frame, sampled = getattr(data, name), getattr(kept, name)
        pd.testing.assert_frame_equal(sampled, frame[frame["customer_id"].isin(chosen)])
    assert f"training on 100 of the {len(population)} customers" in caplog.text and "seed 1" in caplog.text
    again, _ = sample_customers(data, CUTOFF, 100, seed=1)
    other, _ = sample_customers(data, CUTOFF, 100, seed=2)
    assert set(again.transactions["customer_id"]) == chosen != set(other.transactions["customer_id"])
