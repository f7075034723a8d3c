"""Campaign read-out: a known effect planted in the data is recovered within the reported interval."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tiercast.analysis.campaign import evaluate_plan

START = pd.Timestamp("2025-03-01")


def planted_world(seed: int, n: int = 4000, retention=(0.40, 0.55), spend=(50.0, 60.0)):
    """Customers split at random; treated ones come back more often and spend more (known truth)."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"C{i:05d}" for i in range(n)])
    group = np.where(rng.random(n) < 0.5, "treated", "control")
    treated = group == "treated"
    back = rng.random(n) < np.where(treated, retention[1], retention[0])
    amount = rng.gamma(2.0, np.where(treated, spend[1], spend[0]) / 2.0)
    tx = pd.DataFrame({"customer_id": ids[back],
                       "timestamp": START + pd.to_timedelta(rng.integers(0, 90, back.sum()), unit="D"),
                       "amount": amount[back]})
    # Activity before the start and after the window must not count.
    noise = pd.DataFrame({"customer_id": ids, "timestamp": START - pd.Timedelta(days=3), "amount": 999.0})
    late = pd.DataFrame({"customer_id": ids, "timestamp": START + pd.Timedelta(days=90), "amount": 999.0})
    plan = pd.DataFrame({"customer_id": ids, "group": group})
    true_value = retention[1] * spend[1] - retention[0] * spend[0]
    return plan, pd.concat([tx, noise, late]), true_value, retention[1] - retention[0]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_known_uplift_is_inside_the_interval(seed):
    plan, tx, true_value, true_retention = planted_world(seed)
    result = evaluate_plan(plan, tx, START, 90)
    assert result.value.ci_low <= true_value <= result.value.ci_high
    assert result.retention.ci_low <= true_retention <= result.retention.ci_high
    assert result.treated + result.control == len(plan)
    assert result.incremental_value == pytest.approx(result.value.uplift * result.treated)


def test_no_effect_interval_covers_zero_and_narrows_with_size():
    plan, tx, _, _ = planted_world(7, n=2000, retention=(0.5, 0.5), spend=(40.0, 40.0))
    small = evaluate_plan(plan, tx, START, 90)
    assert small.retention.ci_low <= 0 <= small.retention.ci_high
    plan, tx, _, _ = planted_world(7, n=20000, retention=(0.5, 0.5), spend=(40.0, 40.0))
    large = evaluate_plan(plan, tx, START, 90)
    assert (large.value.ci_high - large.value.ci_low) < (small.value.ci_high - small.value.ci_low) / 2


def test_plan_without_control_is_refused():
    plan = pd.DataFrame({"customer_id": ["a", "b", "c"], "group": "treated"})
    with pytest.raises(ValueError, match="control"):
        evaluate_plan(plan, pd.DataFrame(columns=["customer_id", "timestamp", "amount"]), START, 30)
