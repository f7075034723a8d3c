"""The synthetic world: canonical frames, determinism, and a ground truth that agrees with what it generates.

Agreement is judged by z-scores of realised minus expected sums, with the sampling variance estimated
from the realised residuals (value, orders) or exactly (churn is Bernoulli). Limits are normal quantiles
for a 0.1% false-alarm rate per check, Bonferroni-corrected over the groups compared at once.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy.stats import norm

from tiercast.simulation.files import write_world
from tiercast.simulation.truth import ground_truth
from tiercast.simulation.world import World, WorldConfig, simulate_world

FALSE_ALARM = 1e-3
N_CUSTOMERS = 40_000
WINDOWS = [(pd.Timestamp("2024-11-01"), 90), (pd.Timestamp("2023-09-15"), 365), (pd.Timestamp("2025-01-02"), 180)]


def z_limit(n_checks: int) -> float:
    """Two-sided normal limit for ``n_checks`` simultaneous checks at the family-wise FALSE_ALARM rate."""
    return float(norm.isf(FALSE_ALARM / (2 * n_checks)))


def residual_z(realised: np.ndarray, expected: np.ndarray) -> float:
    """z of sum(realised - expected), variance estimated by the sum of squared residuals."""
    residual = realised - expected
    return float(residual.sum() / np.sqrt((residual**2).sum()))


def bernoulli_z(outcome: np.ndarray, probability: np.ndarray) -> float:
    return float((outcome - probability).sum() / np.sqrt((probability * (1 - probability)).sum()))


def two_share_z(hit_a: np.ndarray, hit_b: np.ndarray) -> float:
    """z for share(hit_a) - share(hit_b) (pooled two-proportion test)."""
    pooled = np.concatenate([hit_a, hit_b]).mean()
    se = np.sqrt(pooled * (1 - pooled) * (1 / hit_a.size + 1 / hit_b.size))
    return float((hit_a.mean() - hit_b.mean()) / se)


def realised(world: World, truth: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: int) -> pd.DataFrame:
    """What happened in the window for each customer of ``truth``: net value, positive orders, churned."""
    tx = world.transactions
    window = tx[(tx["timestamp"] >= cutoff) & (tx["timestamp"] < cutoff + pd.Timedelta(days=horizon_days))]
    value = window.groupby("customer_id")["amount"].sum()
    orders = window[window["amount"] > 0].groupby("customer_id").size()
    out = pd.DataFrame({"value": value.reindex(truth["customer_id"], fill_value=0.0).to_numpy(),
                        "orders": orders.reindex(truth["customer_id"], fill_value=0).to_numpy()})
    out["churned"] = out["orders"] == 0
    return out


@pytest.fixture(scope="module")
def world() -> World:
    return simulate_world(WorldConfig(n_customers=N_CUSTOMERS, seed=7))


@pytest.fixture(scope="module")
def small_world() -> World:
    return simulate_world(WorldConfig(n_customers=3_000, seed=5))


def test_frames_follow_the_canonical_schema(world: World) -> None:
    tx, customers, interactions = world.transactions, world.customers, world.interactions
    assert list(tx.columns) == ["customer_id", "timestamp", "amount", "order_id", "quantity", "category", "channel"]
    assert list(interactions.columns) == ["customer_id", "timestamp", "kind", "score"]
    assert {"customer_id", "signup_date", "age_band", "region", "gender", "name", "email", "phone"} <= set(
        customers.columns)
    for frame in (tx, customers, interactions):
        assert frame["customer_id"].dtype == object
        assert frame["customer_id"].map(type).eq(str).all()
    for frame, column in ((tx, "timestamp"), (interactions, "timestamp"), (customers, "signup_date")):
        assert frame[column].dtype == "datetime64[ns]"  # tz-naive
    for column in ("amount", "quantity"):
        assert tx[column].dtype == "float64"
    assert interactions["score"].dtype == "float64"
    assert customers["customer_id"].str.fullmatch(r"C\d{7}").all() and customers["customer_id"].is_unique
    assert set(tx["customer_id"]) <= set(customers["customer_id"])
    assert set(interactions["kind"]) == {"survey", "support_ticket", "complaint", "email_open"}
    assert set(tx["channel"]) == set(world.config.channels)
    assert set(tx["category"]) == set(world.config.categories)
    start, end = pd.Timestamp(world.config.start), pd.Timestamp(world.config.end)
    for frame in (tx, interactions):
        assert frame["timestamp"].between(start, end, inclusive="left").all()
    assert customers["email"].is_unique and customers["email"].str.endswith("@example.com").all()


def test_rows_are_internally_consistent(world: World) -> None:
    tx = world.transactions
    assert tx[["customer_id", "timestamp"]].equals(
        tx[["customer_id", "timestamp"]].sort_values(["customer_id", "timestamp"], kind="stable"))
    orders = tx[tx["amount"] >= 0]
    refunds = tx[tx["amount"] < 0]
    assert orders["order_id"].is_unique and refunds["order_id"].is_unique
    assert ((orders["amount"] == 0).mean() > 0) and (len(refunds) > 0)
    original = orders.iloc[pd.Index(orders["order_id"]).get_indexer(refunds["order_id"])]
    assert (original["customer_id"].to_numpy() == refunds["customer_id"].to_numpy()).all()
    assert (original["timestamp"].to_numpy() <= refunds["timestamp"].to_numpy()).all()
    assert (-refunds["amount"].to_numpy() <= original["amount"].to_numpy()).all()
    assert (original["amount"] > 0).all()
    # Order ids count orders in time order.
    number = orders["order_id"].str.slice(1).astype(np.int64).to_numpy()
    assert (np.diff(orders["timestamp"].to_numpy()[np.argsort(number)]) >= np.timedelta64(0)).all()

    first_order = tx.groupby("customer_id")["timestamp"].min()
    signup = world.customers.set_index("customer_id")["signup_date"].reindex(first_order.index)
    assert (signup <= first_order).all()

    scores = world.interactions.loc[world.interactions["kind"] == "survey", "score"]
    assert scores.isin([1.0, 2.0, 3.0, 4.0, 5.0]).all()
    assert world.interactions.loc[world.interactions["kind"] != "survey", "score"].isna().all()


def test_same_seed_same_world_new_seed_new_world() -> None:
    config = WorldConfig(n_customers=2_000, seed=11)
    first, again = simulate_world(config), simulate_world(config)
    other = simulate_world(config.model_copy(update={"seed": 12}))
    for name in ("transactions", "customers", "interactions", "traits"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(again, name))
    assert not first.transactions["amount"].equals(other.transactions["amount"])
    assert not first.traits["purchase_rate"].equals(other.traits["purchase_rate"])


def test_config_rejects_unknown_and_inconsistent_values() -> None:
    with pytest.raises(ValidationError, match="n_custmers"):
        WorldConfig(n_custmers=10)
    with pytest.raises(ValidationError, match="seasonality"):
        WorldConfig(seasonality=(1.0,) * 11)
    with pytest.raises(ValidationError, match="channels"):
        WorldConfig(channels={"web": 0.5, "app": 0.4})
    with pytest.raises(ValidationError, match="region_purchase_rate"):
        WorldConfig(regions={"north": 0.5, "south": 0.5})
    with pytest.raises(ValidationError, match="end"):
        WorldConfig(start="2024-01-01", end="2023-01-01")


def test_ground_truth_covers_exactly_the_scored_customers(world: World) -> None:
    cutoff, horizon = WINDOWS[0]
    truth = ground_truth(world, cutoff, horizon)
    tx = world.transactions
    scored = np.sort(tx.loc[tx["timestamp"] < cutoff, "customer_id"].unique())
    assert truth["customer_id"].tolist() == scored.tolist()
    assert truth["churn_probability"].between(0, 1).all()
    gone = ~truth["alive"]
    assert gone.any() and (~gone).any()
    assert (truth.loc[gone, "churn_probability"] == 1).all() and (truth.loc[gone, "expected_orders"] == 0).all()
    assert (truth["as_of"] == cutoff).all() and (truth["horizon_days"] == horizon).all()


@pytest.mark.parametrize(("cutoff", "horizon"), WINDOWS)
def test_customers_who_left_never_order_again(world: World, cutoff: pd.Timestamp, horizon: int) -> None:
    truth = ground_truth(world, cutoff, horizon)
    outcome = realised(world, truth, cutoff, horizon)
    assert (outcome.loc[~truth["alive"].to_numpy(), "orders"] == 0).all()


@pytest.mark.parametrize(("cutoff", "horizon"), WINDOWS)
def test_expected_value_and_orders_agree_with_the_generated_window(
        world: World, cutoff: pd.Timestamp, horizon: int) -> None:
    truth = ground_truth(world, cutoff, horizon)
    outcome = realised(world, truth, cutoff, horizon)
    limit = z_limit(2 + 10)
    assert abs(residual_z(outcome["value"].to_numpy(), truth["expected_value"].to_numpy())) < limit
    assert abs(residual_z(outcome["orders"].to_numpy(), truth["expected_orders"].to_numpy())) < limit
    # Deciles of expected value among customers still alive (those who left hold too few events for a
    # residual-based variance; they are checked in test_pending_refunds_of_customers_who_left).
    alive = truth["alive"].to_numpy()
    decile = pd.qcut(truth.loc[alive, "expected_value"].rank(method="first"), 10, labels=False).to_numpy()
    value, expected = outcome["value"].to_numpy()[alive], truth["expected_value"].to_numpy()[alive]
    z = [residual_z(value[decile == d], expected[decile == d]) for d in range(10)]
    assert max(abs(v) for v in z) < limit, z


@pytest.mark.parametrize(("cutoff", "horizon"), WINDOWS)
def test_churn_probability_agrees_with_the_generated_window(
        world: World, cutoff: pd.Timestamp, horizon: int) -> None:
    truth = ground_truth(world, cutoff, horizon)
    churned = realised(world, truth, cutoff, horizon)["churned"].to_numpy()
    probability = truth["churn_probability"].to_numpy()
    limit = z_limit(1 + 10)
    assert abs(bernoulli_z(churned, probability)) < limit
    # Deciles of churn probability among customers still alive (those who left churn with certainty).
    alive = truth["alive"].to_numpy()
    decile = pd.qcut(pd.Series(probability[alive]).rank(method="first"), 10, labels=False).to_numpy()
    z = [bernoulli_z(churned[alive][decile == d], probability[alive][decile == d]) for d in range(10)]
    assert max(abs(v) for v in z) < limit, z


def test_ground_truth_without_the_season_is_rejected(world: World) -> None:
    """Power check: the same comparison rejects a truth that ignores the December peak."""
    cutoff, horizon = WINDOWS[0]
    flat = dataclasses.replace(world, config=world.config.model_copy(update={"seasonality": (1.0,) * 12}))
    truth = ground_truth(flat, cutoff, horizon)
    outcome = realised(world, truth, cutoff, horizon)
    assert residual_z(outcome["value"].to_numpy(), truth["expected_value"].to_numpy()) > z_limit(1)
    assert bernoulli_z(outcome["churned"].to_numpy(), truth["churn_probability"].to_numpy()) < -z_limit(1)


def test_pending_refunds_of_customers_who_left() -> None:
    """Those who left before the cutoff are worth only their refunds still to come; many refunds, slow."""
    config = WorldConfig(n_customers=20_000, seed=3, refund_share=0.5, refund_delay_days=60.0,
                         dropout_rate_mean=1 / 90)
    refund_world = simulate_world(config)
    cutoff, horizon = WINDOWS[0]
    truth = ground_truth(refund_world, cutoff, horizon)
    gone = ~truth["alive"].to_numpy()
    outcome = realised(refund_world, truth, cutoff, horizon)
    value, expected = outcome["value"].to_numpy()[gone], truth["expected_value"].to_numpy()[gone]
    assert (value <= 0).all() and (expected <= 0).all()
    assert (value < 0).sum() > 200  # enough refunds for a residual-based variance
    assert abs(residual_z(value, expected)) < z_limit(1)


def test_dissatisfied_and_complaining_customers_churn_more(world: World) -> None:
    cutoff, horizon = WINDOWS[0]
    truth = ground_truth(world, cutoff, horizon)
    churned = realised(world, truth, cutoff, horizon)["churned"].to_numpy()
    history = world.interactions[world.interactions["timestamp"] < cutoff]
    survey = history[history["kind"] == "survey"].groupby("customer_id")["score"].mean()
    survey = survey.reindex(truth["customer_id"]).to_numpy()
    assert two_share_z(churned[survey <= 3], churned[survey >= 4]) > z_limit(2)
    complained = truth["customer_id"].isin(history.loc[history["kind"] == "complaint", "customer_id"]).to_numpy()
    assert two_share_z(churned[complained], churned[~complained]) > z_limit(2)


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_write_world_round_trip(small_world: World, tmp_path, file_format: str) -> None:
    world = small_world
    cutoff, horizon = world.config.default_cutoff, world.config.default_horizon_days
    paths = write_world(world, tmp_path, cutoff, horizon, file_format=file_format)
    assert sorted(paths) == ["customers", "ground_truth", "interactions", "transactions"]
    assert all(path.parent == tmp_path and path.suffix == f".{file_format}" for path in paths.values())
    if file_format == "csv":
        tx = pd.read_csv(paths["transactions"], dtype={"customer_id": str, "order_id": str},
                         parse_dates=["timestamp"])
        truth = pd.read_csv(paths["ground_truth"], dtype={"customer_id": str})
        customers = pd.read_csv(paths["customers"], dtype={"customer_id": str}, parse_dates=["signup_date"])
        interactions = pd.read_csv(paths["interactions"], dtype={"customer_id": str})
        assert interactions["score"].notna().sum() == world.interactions["score"].notna().sum()
    else:
        tx, truth, customers = (pd.read_parquet(paths[name]) for name in ("transactions", "ground_truth",
                                                                            "customers"))
    pd.testing.assert_frame_equal(tx, world.transactions, check_dtype=False)
    pd.testing.assert_series_equal(customers["signup_date"], world.customers["signup_date"], check_dtype=False)
    expected = ground_truth(world, cutoff, horizon)
    assert truth["customer_id"].tolist() == expected["customer_id"].tolist()
    # Arrow writes CSV floats to 11-12 significant digits.
    np.testing.assert_allclose(truth["expected_value"], expected["expected_value"], rtol=1e-9)


def test_bad_requests_write_nothing(small_world: World, tmp_path) -> None:
    world = small_world
    end = pd.Timestamp(world.config.end)
    with pytest.raises(ValueError, match="file_format"):
        write_world(world, tmp_path / "a", end - pd.Timedelta(days=30), 30, file_format="xlsx")
    with pytest.raises(ValueError, match="window"):
        write_world(world, tmp_path / "b", end - pd.Timedelta(days=30), 31)
    with pytest.raises(ValueError, match="window"):
        ground_truth(world, pd.Timestamp(world.config.start), 30)
    assert not any(tmp_path.iterdir())
