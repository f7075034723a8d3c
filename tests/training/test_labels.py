"""Labels: value and churn over [cutoff, cutoff + H), rolling cutoffs, stacked training examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tiercast.features.builder import FeatureBuilder
from tiercast.features.spec import FeatureSpec
from tiercast.training.labels import make_labels, rolling_cutoffs, seasonal_cutoffs, training_examples

CUTOFF = pd.Timestamp("2024-01-01")


def _tx(rows: list[tuple], with_orders: bool = True) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount", "order_id"])
    df["timestamp"] = pd.to_datetime(df["timestamp"], format="ISO8601")
    df["amount"] = df["amount"].astype(float)
    return df if with_orders else df.drop(columns="order_id")


@pytest.fixture
def tx() -> pd.DataFrame:
    return _tx([
        ("A", "2023-12-01", 10, "a1"),
        ("A", "2024-01-01 00:00", 40, "a2"),  # at the cutoff: inside the window
        ("A", "2024-01-30 23:59", -5, "a3"),  # last minute of a 30-day window
        ("A", "2024-01-31 00:00", 100, "a4"),  # window end: outside
        ("B", "2023-06-01", 20, "b1"),
        ("B", "2024-01-10", 30, "b2"),
        ("B", "2024-01-12", -30, "b2"),  # b2 fully refunded inside the window: not a purchase
        ("C", "2023-12-31", 15, "c1"),  # history, nothing after
        ("D", "2024-01-05", 50, "d1"),  # no history before the cutoff: not labelled
    ])


def test_value_and_churn_over_the_window(tx: pd.DataFrame) -> None:
    labels = make_labels(tx, CUTOFF, 30)
    assert labels.index.tolist() == ["A", "B", "C"]
    assert labels["value"].tolist() == [35.0, 0.0, 0.0]
    assert labels["churned"].tolist() == [False, True, True]
    assert labels["churned"].dtype == bool


def test_without_order_id_a_later_line_of_minus_the_purchase_cancels_it(tx: pd.DataFrame) -> None:
    labels = make_labels(tx.drop(columns="order_id"), CUTOFF, 30)
    assert labels.loc["B", "churned"] == np.True_  # 01-12's -30 cancels 01-10's 30: no purchase
    assert labels.loc["B", "value"] == 0.0
    partly = tx.drop(columns="order_id").assign(amount=lambda f: f["amount"].replace(-30, -10))
    assert make_labels(partly, CUTOFF, 30).loc["B", "churned"] == np.False_  # a partial return cancels nothing


def test_without_order_id_the_lines_of_one_instant_are_one_order(tx: pd.DataFrame) -> None:
    # B's purchase and its cancellation exported at the same instant, without an order id: no purchase
    same_instant = tx.drop(columns="order_id")
    same_instant.loc[same_instant["amount"] == -30, "timestamp"] = pd.Timestamp("2024-01-10")
    labels = make_labels(same_instant, CUTOFF, 30)
    assert labels.loc["B", "churned"] == np.True_ and labels.loc["B", "value"] == 0.0
    assert labels.loc["A", "churned"] == np.False_


def test_rolling_cutoffs_end_their_label_windows_by_the_cutoff() -> None:
    cuts = rolling_cutoffs("2024-07-01", 90, 3, 30)
    assert cuts == [pd.Timestamp("2024-04-02"), pd.Timestamp("2024-03-03"), pd.Timestamp("2024-02-02")]
    assert all(c + pd.Timedelta(days=90) <= pd.Timestamp("2024-07-01") for c in cuts)
    with pytest.raises(ValueError):
        rolling_cutoffs("2024-07-01", 90, 0, 30)


def test_training_examples_stack_windows_and_ignore_data_after_cutoff() -> None:
    rng = np.random.default_rng(7)
    n = 4000
    tx = pd.DataFrame({
        "customer_id": np.array([f"c{i:03d}" for i in rng.integers(0, 200, n)], dtype=object),
        "timestamp": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 600 * 86_400, n), unit="s"),
        "amount": np.round(rng.gamma(2.0, 20.0, n), 2),
    })
    cutoff = pd.Timestamp("2024-06-01")
    builder = FeatureBuilder(FeatureSpec())
    ex = training_examples(tx, cutoff, 60, builder, n_windows=3, step_days=45)
    assert builder.is_fitted
    assert list(ex.columns[:2]) == ["window_cutoff", "customer_id"]
    assert list(ex.columns[-2:]) == ["value", "churned"]
    assert sorted(ex["window_cutoff"].unique()) == sorted(rolling_cutoffs(cutoff, 60, 3, 45))
    latest = ex[ex.window_cutoff == ex.window_cutoff.max()].set_index("customer_id")
    expected = make_labels(tx, ex.window_cutoff.max(), 60)
    pd.testing.assert_frame_equal(latest[["value", "churned"]], expected)
    # rows at or after the cutoff cannot change anything
    future = tx.assign(timestamp=tx.timestamp + pd.Timedelta(days=400), amount=tx.amount * 7)
    future = future[future.timestamp >= cutoff]
    again = training_examples(pd.concat([tx, future]), cutoff, 60, FeatureBuilder(FeatureSpec()), 3, 45)
    pd.testing.assert_frame_equal(again, ex)


def test_a_window_a_year_back_covers_last_years_season_when_the_history_holds_it():
    cutoff = pd.Timestamp("2025-09-01")
    assert seasonal_cutoffs(cutoff, 90, pd.Timestamp("2023-12-01"), 30) == [pd.Timestamp("2024-09-01")]
    assert seasonal_cutoffs(cutoff, 90, pd.Timestamp("2024-08-15"), 30) == []  # too little history before it
    assert seasonal_cutoffs(cutoff, 400, pd.Timestamp("2020-01-01"), 30) == []  # its labels would pass the cutoff
