"""Orders and line-item features: what an order is (order_id, else customer and timestamp; returns and
fully cancelled orders are no purchase), and basket size, breadth, returns, daily rhythm and concentration
computed from the lines of those orders."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tiercast.features.builder import FeatureBuilder
from tiercast.features.spec import FeatureSpec
from tiercast.training.labels import make_labels

AS_OF = pd.Timestamp("2024-03-01")
COLUMNS = ["customer_id", "timestamp", "amount", "order_id", "product_id", "quantity"]
PRODUCT_FEATURES = ["n_products", "products_per_order"]


def _tx(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS).astype({"timestamp": "datetime64[ns]", "amount": float,
                                                       "quantity": float})


@pytest.fixture
def invoices() -> pd.DataFrame:
    """An online retailer's invoice lines: baskets of several products, a cancellation invoice, a return."""
    return _tx([
        # W: three invoices, then a cancellation invoice of its own number (as online retailers export them),
        # exactly minus i3: i3 is cancelled in full and no order
        ("W", "2024-01-02 10:00", 20.0, "i1", "p1", 2),
        ("W", "2024-01-02 10:00", 20.0, "i1", "p2", 2),  # same quantity and price, another product
        ("W", "2024-01-02 10:00", 10.0, "i1", "p1", 1),  # p1 again in the same invoice
        ("W", "2024-01-02 15:00", 300.0, "i2", "p3", 5000),  # an absurd quantity
        ("W", "2024-02-01 09:00", 40.0, "i3", "p4", 4),
        ("W", "2024-02-03 09:00", -40.0, "C-i3", "p4", -4),  # cancels i3's line: against value, no order
        ("W", "2024-03-05 09:00", 999.0, "i4", "p5", 1),  # after as_of: ignored
        # R: one order, a line of it returned later under the same order_id: still a purchase
        ("R", "2024-02-10 12:00", 60.0, "r1", "p1", 1),
        ("R", "2024-02-10 12:00", 40.0, "r1", "p2", 1),
        ("R", "2024-02-20 12:00", -40.0, "r1", "p2", -1),
        # X: everything bought was returned under the same order_id: no purchase order at all
        ("X", "2024-02-01 08:00", 25.0, "x1", "p1", 1),
        ("X", "2024-02-02 08:00", -25.0, "x1", "p1", -1),
    ])


def test_an_order_is_an_order_id_and_a_cancelled_order_is_none(invoices: pd.DataFrame) -> None:
    f = FeatureBuilder(FeatureSpec()).transform(invoices, AS_OF)
    w, r, x = f.loc["W"], f.loc["R"], f.loc["X"]
    assert w["frequency"] == 2  # i1, i2; C-i3 cancels i3, and is itself a cancellation, not an order
    assert w["monetary_total"] == 350.0 and w["monetary_mean"] == pytest.approx(350 / 2)
    assert w["monetary_max"] == 300.0 and w["orders_90d"] == 2
    assert r["frequency"] == 1 and r["monetary_total"] == 60.0
    assert x["frequency"] == 0 and x["orders_365d"] == 0 and math.isnan(x["monetary_mean"])


def test_without_order_id_the_lines_of_one_customer_and_instant_are_one_order(invoices: pd.DataFrame) -> None:
    f = FeatureBuilder(FeatureSpec()).transform(invoices.drop(columns="order_id"), AS_OF)
    # W: 10:00 (three lines), 15:00, and 02-01, cancelled by the negative 02-03 line of exactly its value
    assert f.loc["W", "frequency"] == 2
    assert f.loc["W", "lines_per_order"] == pytest.approx(4 / 2)
    assert f.loc["W", "cancelled_orders"] == 1
    assert f.loc["R", "frequency"] == 1  # the 02-20 return is no order of its own, and cancels no order in full
    assert f.loc["X", "frequency"] == 0  # the return is exactly the purchase before it: cancelled
    # blank order ids mixed with named ones: the blank lines are grouped by instant, apart from named orders
    mixed = invoices.assign(order_id=invoices["order_id"].where(invoices["customer_id"] != "W", None))
    g = FeatureBuilder(FeatureSpec()).transform(mixed, AS_OF)
    pd.testing.assert_series_equal(g.loc["W"], f.loc["W"])
    pd.testing.assert_series_equal(g.loc["R"], FeatureBuilder(FeatureSpec()).transform(invoices, AS_OF).loc["R"])


def test_a_cancellation_invoice_cancels_the_latest_earlier_order_of_its_value_once() -> None:
    f = FeatureBuilder(FeatureSpec()).transform(_tx([
        ("V", "2024-01-05 10:00", 30.0, "v1", "p1", 1),
        ("V", "2024-01-06 10:00", 30.0, "v2", "p1", 1),
        ("V", "2024-01-07 10:00", -30.0, "C-v2", "p1", -1),  # cancels v2 (the latest of its value), not v1
        ("V", "2024-01-08 10:00", 50.0, "v3", "p2", 1),
        ("V", "2024-01-09 10:00", -20.0, "C-v3", "p2", -1),  # in part: v3 stays an order
        ("V", "2024-01-10 10:00", -99.0, "C-x", "p3", -1),  # matches nothing: cancels nothing
        ("V", "2024-03-02 10:00", -30.0, "C-v1", "p1", -1),  # after as_of: v1 stays an order then
    ]), AS_OF)
    assert f.loc["V", "frequency"] == 2 and f.loc["V", "cancelled_orders"] == 3


def test_line_item_features_by_hand(invoices: pd.DataFrame) -> None:
    builder = FeatureBuilder(FeatureSpec(quantity_cap_quantile=0.5))
    f = builder.fit_transform(invoices, AS_OF)
    # purchase lines' quantities before as_of: 2, 2, 1, 5000, 4, 1, 1, 1 -> median 1.5
    assert builder.quantity_cap_ == 1.5
    w = f.loc["W"]
    assert w["lines_per_order"] == pytest.approx(4 / 2)  # i1: 3 lines, i2: 1; i3 is cancelled by C-i3
    assert w["n_products"] == 3  # p1 twice in i1 counts once; i3's p4 was cancelled
    assert w["products_per_order"] == pytest.approx(3 / 2)  # i1: p1, p2; i2: p3
    assert w["quantity_total"] == 1.5 + 1.5 + 1 + 1.5  # each line capped at 1.5: the 5000 counts 1.5
    assert w["quantity_per_order"] == pytest.approx(5.5 / 2)
    assert w["refund_count"] == 1 and w["return_line_share"] == pytest.approx(1 / 6)
    assert w["cancelled_orders"] == 1  # C-i3
    assert w["orders_per_purchase_day"] == 1.0  # i1 and i2 on 01-02; 02-01's i3 was cancelled
    assert w["largest_order_share"] == pytest.approx(300 / 350)
    r = f.loc["R"]
    assert r["lines_per_order"] == 2.0 and r["products_per_order"] == 2.0 and r["n_products"] == 2
    assert r["cancelled_orders"] == 0 and r["return_line_share"] == pytest.approx(1 / 3)
    assert r["largest_order_share"] == 1.0
    x = f.loc["X"]
    assert x["cancelled_orders"] == 1 and x["n_products"] == 0
    assert math.isnan(x["lines_per_order"]) and math.isnan(x["products_per_order"])
    assert math.isnan(x["quantity_per_order"]) and math.isnan(x["largest_order_share"])


def test_quantity_cap_is_learned_at_fit_and_kept() -> None:
    tx = _tx([(f"c{i}", "2024-01-10", 10.0, f"o{i}", "p", q) for i, q in enumerate([1, 2, 3, 4, 10_000])])
    builder = FeatureBuilder(FeatureSpec(quantity_cap_quantile=0.75)).fit(tx, AS_OF)
    assert builder.quantity_cap_ == 4.0
    # a later batch full of absurd quantities is capped at the fitted cap, not at its own quantile
    later = tx.assign(quantity=[9_000.0, 9_000.0, 9_000.0, 9_000.0, 1.0])
    assert builder.transform(later, AS_OF)["quantity_total"].tolist() == [4.0, 4.0, 4.0, 4.0, 1.0]
    unfitted = FeatureBuilder(FeatureSpec(quantity_cap_quantile=0.75)).transform(tx, AS_OF)
    assert unfitted["quantity_total"].max() == 10_000  # no population to learn a cap from
    # a builder saved before the cap existed keeps counting quantities as it did
    state = builder.to_dict()
    del state["state"]["quantity_cap_"]
    assert FeatureBuilder.from_dict(state).transform(tx, AS_OF)["quantity_total"].max() == 10_000


def test_product_features_need_product_id_at_fit(invoices: pd.DataFrame) -> None:
    without = FeatureBuilder(FeatureSpec()).fit(invoices.drop(columns="product_id"), AS_OF)
    assert not set(PRODUCT_FEATURES) & set(without.feature_names_)
    assert "lines_per_order" in without.feature_names_  # orders alone give the line count
    with_products = FeatureBuilder(FeatureSpec()).fit(invoices, AS_OF)
    later = with_products.transform(invoices.drop(columns="product_id"), AS_OF)
    assert later[PRODUCT_FEATURES].isna().all().all()  # seen at fit, absent now: unknown, not zero


def test_a_customer_alone_gets_the_batch_row(invoices: pd.DataFrame) -> None:
    builder = FeatureBuilder(FeatureSpec()).fit(invoices, AS_OF)
    batch = builder.transform(invoices, AS_OF)
    for cid in batch.index:
        alone = builder.transform(invoices[invoices["customer_id"] == cid], AS_OF)
        pd.testing.assert_frame_equal(alone, batch.loc[[cid]])
    shuffled = builder.transform(invoices.sample(frac=1.0, random_state=3), AS_OF)
    pd.testing.assert_frame_equal(shuffled, batch, check_exact=True)


@pytest.mark.parametrize("with_order_id", [True, False])
def test_labels_count_orders_as_the_builder_does(with_order_id: bool) -> None:
    """churned at c over H days == no purchase order among the window's lines, as the builder counts them."""
    rng = np.random.default_rng(11)
    n = 3000
    ids = np.array([f"c{i:03d}" for i in range(150)], dtype=object)
    weight = 1.0 / np.arange(1, len(ids) + 1)  # a few busy customers, many occasional ones
    tx = pd.DataFrame({
        "customer_id": rng.choice(ids, n, p=weight / weight.sum()),
        # whole days, so that several lines share an instant
        "timestamp": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 400, n), unit="D"),
        "amount": np.round(rng.normal(10, 30, n), 2),
        "order_id": np.array([f"o{i}" for i in rng.integers(0, n // 3, n)], dtype=object),
    })
    # the case that tells orders from lines: a purchase line in the window, cancelled within its order
    cancelled = pd.DataFrame({"customer_id": ["z"] * 3, "order_id": ["z1", "z2", "z2"], "amount": [10.0, 5.0, -20.0],
                              "timestamp": pd.to_datetime(["2023-02-01", "2023-11-10", "2023-11-10"])})
    tx = pd.concat([tx, cancelled], ignore_index=True)
    if not with_order_id:
        tx = tx.drop(columns="order_id")
    cutoff, horizon = pd.Timestamp("2023-11-01"), 40
    labels = make_labels(tx, cutoff, horizon)
    end = cutoff + pd.Timedelta(days=horizon)
    window = tx[(tx["timestamp"] >= cutoff) & (tx["timestamp"] < end)]
    orders = FeatureBuilder(FeatureSpec()).transform(window, end)["frequency"]
    expected = orders.reindex(labels.index, fill_value=0) == 0
    assert labels["churned"].sum() > 0 and (~labels["churned"]).sum() > 0
    assert labels.loc["z", "churned"]
    pd.testing.assert_series_equal(labels["churned"], expected, check_names=False)
