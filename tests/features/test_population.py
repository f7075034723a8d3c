"""Fitting from parts: buckets of customers fitted apart and combined give exactly the builder fitted on all."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from tiercast.features.builder import FeatureBuilder, FitParts
from tiercast.features.population import counted_quantile, merge_counts, value_counts
from tiercast.features.spec import FeatureSpec
from tiercast.simulation.line_items import line_items
from tiercast.simulation.world import WorldConfig, simulate_world

from .test_builder import random_world

AS_OF = pd.Timestamp("2024-09-01")
PERSONAL = ("name", "email", "phone")


def _bits(x: float) -> bytes:
    return np.float64(x).tobytes()


@pytest.mark.parametrize("seed", range(4))
def test_counted_quantile_is_numpys_quantile_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for trial in range(2_000):
        n = int(rng.integers(1, 80))
        data = [rng.integers(1, 6, n).astype(float),  # many ties
                np.round(rng.gamma(1.0, 3.0, n), 1),
                rng.gamma(1.0, 3.0, n),
                np.concatenate([rng.integers(1, 4, n), rng.integers(500, 5_000, n // 10)]).astype(float)][trial % 4]
        q = float(rng.choice([0.2, 0.4, 0.6, 0.8, 0.95, 0.97, 0.99, 1.0, rng.random()]))
        pieces = np.array_split(rng.permutation(data), int(rng.integers(1, 5)))
        values, counts = merge_counts([value_counts(p) for p in pieces])
        assert counts.sum() == len(data)
        assert _bits(counted_quantile(values, counts, q)) == _bits(np.quantile(data, q)), (data.tolist(), q)


def _buckets(frames: dict[str, pd.DataFrame | None], n_buckets: int) -> list[dict[str, pd.DataFrame | None]]:
    """Split every frame by a hash of customer_id, rows keeping their order (a customer in one bucket only)."""
    def bucket(f: pd.DataFrame) -> np.ndarray:
        return (pd.util.hash_array(f["customer_id"].to_numpy(dtype=object)) % n_buckets).astype(np.int64)
    keys = {name: None if f is None else bucket(f) for name, f in frames.items()}
    return [{name: None if f is None else f[keys[name] == b].reset_index(drop=True) for name, f in frames.items()}
            for b in range(n_buckets)]


def _world(kind: str) -> dict[str, pd.DataFrame | None]:
    if kind == "random":
        tx, customers, interactions = random_world(7, n_customers=400, n_rows=5_000)
        return {"transactions": tx, "customers": customers, "interactions": interactions}
    world = simulate_world(WorldConfig(n_customers=600, seed=11))
    tx = line_items(world) if kind == "line_items" else world.transactions
    return {"transactions": tx, "customers": world.customers, "interactions": world.interactions}


def _fit_in_buckets(spec: FeatureSpec, frames: dict[str, pd.DataFrame | None], as_of: pd.Timestamp,
                    n_buckets: int) -> tuple[FeatureBuilder, pd.DataFrame]:
    buckets = _buckets(frames, n_buckets)
    fitters = [FeatureBuilder(spec, PERSONAL) for _ in buckets]  # one per bucket, as on separate workers
    parts = [pickle.loads(pickle.dumps(b.fit_parts(f["transactions"], as_of, f["customers"], f["interactions"])))
             for b, f in zip(fitters, buckets, strict=True)]
    builder = FeatureBuilder(spec, PERSONAL).fit_from_parts(FitParts.combine(parts))
    features = pd.concat([builder.transform(f["transactions"], as_of, f["customers"], f["interactions"])
                          for f in buckets])
    return builder, features.sort_index()


@pytest.mark.parametrize("kind", ["orders", "line_items", "random"])
@pytest.mark.parametrize("n_buckets", [1, 3, 16])
def test_bucketed_fit_and_transform_equal_fit_transform(kind: str, n_buckets: int) -> None:
    frames = _world(kind)
    as_of = AS_OF if kind != "random" else pd.Timestamp("2024-05-01")
    spec = FeatureSpec(min_profile_level_count=2, quantity_cap_quantile=0.9)
    whole = FeatureBuilder(spec, PERSONAL)
    expected = whole.fit_transform(frames["transactions"], as_of, frames["customers"], frames["interactions"])
    builder, features = _fit_in_buckets(spec, frames, as_of, n_buckets)
    assert builder.to_dict() == whole.to_dict()
    assert builder.quantity_cap_ is not None and builder.profile_levels_
    pd.testing.assert_frame_equal(features, expected)


def test_combine_is_associative_and_order_independent() -> None:
    frames = _world("orders")
    parts = [FeatureBuilder(FeatureSpec(), PERSONAL).fit_parts(f["transactions"], AS_OF, f["customers"])
             for f in _buckets(frames, 6)]

    def state(p: FitParts) -> dict:
        return FeatureBuilder(FeatureSpec(), PERSONAL).fit_from_parts(p).to_dict()

    flat = state(FitParts.combine(parts))
    nested = state(FitParts.combine([FitParts.combine(parts[:2]), FitParts.combine(parts[2:])]))
    shuffled = state(FitParts.combine([parts[i] for i in np.random.default_rng(0).permutation(len(parts))]))
    assert flat == nested == shuffled


def test_parts_grow_with_customers_and_distinct_values_not_lines() -> None:
    frames = _world("line_items")
    parts = FeatureBuilder(FeatureSpec(), PERSONAL).fit_parts(frames["transactions"], AS_OF, frames["customers"])
    assert parts.quantity_counts.sum() > 10 * len(parts.quantity_values)
    assert all(len(v) == parts.customers for v in parts.rfm.values())


def test_profiles_in_one_bucket_and_history_in_another_fit_as_together() -> None:
    """A numeric attribute is learned when the population has profiles, even if no bucket has both."""
    tx = pd.DataFrame({"customer_id": ["a"], "timestamp": pd.to_datetime(["2024-01-01"]), "amount": [5.0]})
    customers = pd.DataFrame({"customer_id": ["b"], "age": [40.0]})
    spec = FeatureSpec()
    parts = [FeatureBuilder(spec).fit_parts(tx, AS_OF), FeatureBuilder(spec).fit_parts(tx.iloc[:0], AS_OF, customers)]
    whole = FeatureBuilder(spec).fit(tx, AS_OF, customers)
    assert FeatureBuilder(spec).fit_from_parts(FitParts.combine(parts)).to_dict() == whole.to_dict()
    assert whole.profile_levels_ == {"age": None}


def test_parts_of_different_inputs_are_refused() -> None:
    tx, _, _ = random_world(1, n_customers=20, n_rows=200)
    spec = FeatureSpec()
    with pytest.raises(ValueError, match="optional columns"):
        FitParts.combine([FeatureBuilder(spec).fit_parts(tx, AS_OF),
                          FeatureBuilder(spec).fit_parts(tx.drop(columns="channel"), AS_OF)])
    with pytest.raises(ValueError, match="as_of"):
        FitParts.combine([FeatureBuilder(spec).fit_parts(tx, AS_OF), FeatureBuilder(spec).fit_parts(tx, "2024-01-01")])
    with pytest.raises(ValueError, match="no transaction before"):
        FeatureBuilder(spec).fit_from_parts(FeatureBuilder(spec).fit_parts(tx, "2000-01-01"))
