"""The training reference and the population stability index: known values, the same population gives 0,
a moved one passes the usual 0.25, the reference holds histograms only."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tiercast.training.drift import SHARE_FLOOR, feature_drift, feature_reference, psi, shares_now, training_reference


def test_psi_by_hand():
    expected, actual = [0.5, 0.5], [0.25, 0.75]
    by_hand = (0.25 - 0.5) * np.log(0.25 / 0.5) + (0.75 - 0.5) * np.log(0.75 / 0.5)
    assert psi(expected, actual) == pytest.approx(by_hand)
    assert psi(expected, expected) == 0.0
    # An empty bin is floored rather than made infinite.
    assert psi([1.0, 0.0], [0.5, 0.5]) == pytest.approx(
        (0.5 - 1.0) * np.log(0.5 / 1.0) + (0.5 - SHARE_FLOOR) * np.log(0.5 / SHARE_FLOOR))
    with pytest.raises(ValueError, match="same bins"):
        psi([0.5, 0.5], [1.0])


def _population(n: int, seed: int, scale: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    spend = rng.gamma(2.0, 50.0 * scale, n)
    spend[rng.random(n) < 0.05] = np.nan
    region = pd.Categorical(rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2]))
    return pd.DataFrame({"spend": spend, "region": region})


def test_reference_is_quantile_bins_and_level_shares():
    reference = feature_reference(_population(20_000, 0))
    spend = reference["spend"]
    assert spend["kind"] == "numeric" and len(spend["edges"]) == 9 and len(spend["shares"]) == 11
    # Ten bins of about a tenth of the present values each, and the missing share last.
    assert np.allclose(spend["shares"][:-1], 0.095, atol=0.002) and spend["shares"][-1] == pytest.approx(0.05, abs=0.005)
    region = reference["region"]
    assert region["levels"] == ["east", "north", "south"]
    assert np.allclose(region["shares"], [0.2, 0.5, 0.3, 0.0, 0.0], atol=0.01)
    json.dumps(reference)  # stored in the model's metadata


def test_same_population_is_stable_and_a_moved_one_is_not():
    reference = feature_reference(_population(20_000, 0))
    same = feature_drift(reference, _population(20_000, 1))
    assert max(same.values()) < 0.01
    moved = feature_drift(reference, _population(20_000, 2, scale=2.0).assign(region="west"))
    assert moved["spend"] > 0.25 and moved["region"] > 0.25
    assert list(moved) == sorted(moved, key=lambda name: -moved[name])  # largest first


def test_unseen_levels_and_missing_values_have_their_own_bins():
    entry = feature_reference(pd.DataFrame({"c": pd.Categorical(["a", "b", "a", "b"])}))["c"]
    assert shares_now(entry, pd.Series(["a", "z", None, "b"])) == [0.25, 0.25, 0.25, 0.25]
    numeric = feature_reference(pd.DataFrame({"x": np.arange(100.0)}), bins=4)["x"]
    assert shares_now(numeric, np.array([np.nan, np.nan, 0.0, 99.0])) == [0.25, 0.0, 0.0, 0.25, 0.5]


def test_training_reference_holds_predictions_and_tier_shares():
    features = _population(1000, 0)
    reference = training_reference(features, np.linspace(0, 100, 1000), pd.Series(["VIP"] * 100 + ["low"] * 900))
    assert reference["customers"] == 1000 and set(reference["features"]) == {"spend", "region"}
    assert reference["tier_shares"] == {"VIP": 0.1, "low": 0.9}
    assert np.allclose(reference["predicted_value"]["shares"][:-1], 0.1, atol=0.002)
