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


def test_above_the_row_cap_the_sample_holds_at_most_that_many_rows(data, caplog) -> None:
    population = _with_history(data)
    tx = data.transactions
    held = tx[tx["customer_id"].isin(population)]
    cap = len(held) // 3
    kept, sample = sample_customers(data, CUTOFF, None, seed=1, max_rows=cap)
    chosen = set(kept.transactions["customer_id"])
    assert sample == CustomerSample(len(population), len(chosen)) and sample.sampled
    assert chosen <= population and cap - held["customer_id"].value_counts().max() < len(kept.transactions) <= cap
    for name in ("transactions", "customers", "interactions"):
        frame, sampled = getattr(data, name), getattr(kept, name)
        pd.testing.assert_frame_equal(sampled, frame[frame["customer_id"].isin(chosen)])
    assert f"of their {len(held):,} transaction rows" in caplog.text and "(training.max_rows)" in caplog.text
    again, _ = sample_customers(data, CUTOFF, None, seed=1, max_rows=cap)
    assert set(again.transactions["customer_id"]) == chosen
    # Under the rows' cap the customers' cap alone draws, as it did before there was a rows' cap.
    by_customers, _ = sample_customers(data, CUTOFF, 100, seed=1)
    both, _ = sample_customers(data, CUTOFF, 100, seed=1, max_rows=len(held))
    assert set(both.transactions["customer_id"]) == set(by_customers.transactions["customer_id"])


def test_with_both_caps_the_rows_cap_cuts_the_customers_sample_short(data, caplog) -> None:
    by_customers, _ = sample_customers(data, CUTOFF, 200, seed=1)
    rows = len(by_customers.transactions)
    kept, sample = sample_customers(data, CUTOFF, 200, seed=1, max_rows=rows // 2)
    assert 0 < sample.kept < 200 and len(kept.transactions) <= rows // 2
    assert set(kept.transactions["customer_id"]) < set(by_customers.transactions["customer_id"])
    assert "(training.max_customers, training.max_rows)" in caplog.text
