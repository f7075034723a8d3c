"""No look-ahead: nothing at or after the cutoff can change features, fitted state or who is scored.

Property-style: for several seeded random worlds, rows at/after the cutoff are rewritten and new future
rows are appended (including future lines that reuse past order ids, new channels and categories, and
customers who only appear after the cutoff); features and the fitted state must be identical.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tiercast.features.builder import FeatureBuilder
from tiercast.features.spec import FeatureSpec

START = pd.Timestamp("2022-01-01")
SPAN_S = 900 * 86_400


def world(rng: np.random.Generator, n_customers: int, n_rows: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ids = np.array([f"{i:04d}" for i in range(n_customers)], dtype=object)
    tx = pd.DataFrame({
        "customer_id": ids[rng.integers(0, n_customers, n_rows)],
        "timestamp": START + pd.to_timedelta(rng.integers(0, SPAN_S, n_rows), unit="s"),
        "amount": np.round(rng.normal(40, 45, n_rows), 2),
        "order_id": np.array([f"o{i}" for i in rng.integers(0, n_rows // 2, n_rows)], dtype=object),
        "product_id": rng.choice(np.array(["p1", "p2", "p3", None], dtype=object), n_rows),
        "quantity": rng.integers(0, 5, n_rows).astype(float),
        "category": rng.choice(np.array(["a", "b", "c", None], dtype=object), n_rows),
        "channel": rng.choice(np.array(["web", "store"], dtype=object), n_rows),
    })
    tx.loc[rng.random(n_rows) < 0.1, "timestamp"] = tx["timestamp"].dt.floor("D")  # exact midnights
    tx.loc[rng.random(n_rows) < 0.1, "order_id"] = None  # grouped into orders by customer and instant
    customers = pd.DataFrame({
        "customer_id": ids,
        "signup_date": START - pd.Timedelta(days=100) + pd.to_timedelta(rng.integers(0, 1000, n_customers), unit="D"),
        "segment": rng.choice(np.array(["x", "y"], dtype=object), n_customers),
    })
    n_int = n_rows // 3
    interactions = pd.DataFrame({
        "customer_id": ids[rng.integers(0, n_customers, n_int)],
        "timestamp": START + pd.to_timedelta(rng.integers(0, SPAN_S, n_int), unit="s"),
        "kind": rng.choice(np.array(["survey", "support_ticket", "complaint", "email_open"], dtype=object), n_int),
        "score": rng.integers(1, 6, n_int).astype(float),
    })
    return tx, customers, interactions


def tamper_future(rng: np.random.Generator, tx: pd.DataFrame, interactions: pd.DataFrame,
                  cutoff: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Rewrite every row at/after cutoff and append arbitrary future rows; returns the future-only ids."""
    tx = tx.copy()
    fut = (tx["timestamp"] >= cutoff).to_numpy()
    k = int(fut.sum())
    tx.loc[fut, "amount"] = rng.normal(0, 500, k)
    tx.loc[fut, "order_id"] = rng.choice(tx["order_id"].to_numpy(), k)  # collide with past orders
    tx.loc[fut, "category"] = "future_cat"
    tx.loc[fut, "channel"] = "future_channel"
    tx.loc[fut, "quantity"] = 1e6  # would move the fitted quantity cap
    tx.loc[fut, "product_id"] = rng.choice(np.array(["p1", "p9"], dtype=object), k)
    tx.loc[fut, "timestamp"] = cutoff + pd.to_timedelta(rng.integers(0, 86_400 * 50, k), unit="s")
    newcomers = [f"new{i}" for i in range(5)]
    m = 300
    extra = pd.DataFrame({
        "customer_id": rng.choice(np.array(list(tx["customer_id"].unique()) + newcomers, dtype=object), m),
        "timestamp": cutoff + pd.to_timedelta(rng.integers(0, 86_400 * 400, m), unit="s"),
        "amount": rng.normal(100, 300, m),
        "order_id": rng.choice(tx["order_id"].to_numpy(), m),
        "product_id": rng.choice(np.array(["p2", "p8"], dtype=object), m),
        "quantity": rng.integers(0, 50, m).astype(float),
        "category": rng.choice(np.array(["a", "zzz"], dtype=object), m),
        "channel": rng.choice(np.array(["web", "phone"], dtype=object), m),
    })
    extra.loc[:4, "timestamp"] = cutoff  # exactly at the cutoff
    extra.loc[:4, "customer_id"] = newcomers
    tx = pd.concat([tx, extra], ignore_index=True).sample(frac=1.0, random_state=int(rng.integers(1 << 31)))

    inter = interactions.copy()
    ifut = (inter["timestamp"] >= cutoff).to_numpy()
    inter.loc[ifut, "score"] = 1.0
    inter.loc[ifut, "kind"] = "complaint"
    extra_i = pd.DataFrame({
        "customer_id": rng.choice(tx["customer_id"].to_numpy(), 200),
        "timestamp": cutoff + pd.to_timedelta(rng.integers(0, 86_400 * 100, 200), unit="s"),
        "kind": rng.choice(np.array(["survey", "support_ticket", "complaint"], dtype=object), 200),
        "score": rng.integers(1, 6, 200).astype(float),
    })
    extra_i.loc[:9, "timestamp"] = cutoff
    inter = pd.concat([inter, extra_i], ignore_index=True)
    return tx, inter, newcomers


@pytest.mark.parametrize("seed", range(6))
def test_future_rows_change_nothing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    tx, customers, interactions = world(rng, n_customers=int(rng.integers(50, 400)), n_rows=3000)
    cutoff = START + pd.Timedelta(days=int(rng.integers(200, 800)))
    if seed % 2:
        cutoff = cutoff + pd.Timedelta(hours=int(rng.integers(1, 23)))  # a cutoff inside a day
    tx2, inter2, newcomers = tamper_future(rng, tx, interactions, cutoff)
    spec = FeatureSpec(windows_days=[7, 30, 120], interaction_windows_days=[14, 60])

    fitted = FeatureBuilder(spec).fit(tx, cutoff, customers, interactions)
    refitted = FeatureBuilder(spec).fit(tx2, cutoff, customers, inter2)
    assert refitted.to_dict() == fitted.to_dict()  # edges, channels, levels: all from the past only

    before = fitted.transform(tx, cutoff, customers, interactions)
    after = fitted.transform(tx2, cutoff, customers, inter2)
    pd.testing.assert_frame_equal(after, before)
    pd.testing.assert_frame_equal(FeatureBuilder(spec).transform(tx2, cutoff, customers, inter2),
                                  FeatureBuilder(spec).transform(tx, cutoff, customers, interactions))
    assert not set(newcomers) & set(after.index)
    scored = set(tx.loc[tx["timestamp"] < cutoff, "customer_id"])
    assert set(after.index) == scored


def test_customer_with_only_future_rows_is_not_scored() -> None:
    tx = pd.DataFrame({
        "customer_id": ["old", "late", "late"],
        "timestamp": pd.to_datetime(["2024-01-01", "2024-03-01", "2024-05-01"]),
        "amount": [10.0, 20.0, 30.0],
    })
    f = FeatureBuilder(FeatureSpec()).transform(tx, "2024-03-01")
    assert f.index.tolist() == ["old"]
