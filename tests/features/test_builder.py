"""FeatureBuilder: hand-computed values, registry agreement, fitted state, serialisation, parity."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from tiercast.features.builder import FeatureBuilder
from tiercast.features.encoding import group_codes, sorted_codes
from tiercast.features.registry import feature_definitions
from tiercast.features.spec import FeatureSpec, LifecycleThresholds

AS_OF = pd.Timestamp("2024-01-31")


def _tx(rows: list[tuple]) -> pd.DataFrame:
    cols = ["customer_id", "timestamp", "amount", "order_id", "quantity", "category", "channel"]
    df = pd.DataFrame(rows, columns=cols)
    df["timestamp"] = pd.to_datetime(df["timestamp"])
    df["amount"] = df["amount"].astype(float)
    df["quantity"] = df["quantity"].astype(float)
    return df


@pytest.fixture
def hand() -> pd.DataFrame:
    return _tx([
        ("A", "2024-01-01 00:00", 100.0, "o1", 2, "x", "web"),
        ("A", "2024-01-01 12:00", 50.0, "o1", 1, "y", "web"),
        ("A", "2024-01-21 00:00", 30.0, "o2", 1, "x", "store"),
        ("A", "2024-01-25 00:00", -20.0, "o3", 1, "x", "store"),
        ("A", "2024-02-05 00:00", 999.0, "o9", 1, "z", "app"),  # after as_of: ignored
        ("B", "2023-01-31 00:00", 10.0, "o4", 1, "x", "web"),
        ("C", "2024-01-31 00:00", 5.0, "o5", 1, "x", "web"),  # exactly at as_of: C is not scored
    ])


def random_world(seed: int, n_customers: int = 300, n_rows: int = 3000) -> tuple[pd.DataFrame, ...]:
    """Small random transactions/customers/interactions over two years before 2024-07-01."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"{i:05d}" for i in range(n_customers)], dtype=object)
    start = pd.Timestamp("2022-07-01")
    span = 730 * 86_400
    tx = pd.DataFrame({
        "customer_id": ids[rng.integers(0, n_customers, n_rows)],
        "timestamp": start + pd.to_timedelta(rng.integers(0, span, n_rows), unit="s"),
        "amount": np.round(rng.gamma(2.0, 30.0, n_rows) * np.where(rng.random(n_rows) < 0.05, -1, 1), 2),
        "order_id": np.array([f"o{i}" for i in rng.integers(0, n_rows // 2, n_rows)], dtype=object),
        "product_id": np.array([f"p{i}" for i in rng.integers(0, 40, n_rows)], dtype=object),
        "quantity": rng.integers(1, 4, n_rows).astype(float),
        "category": rng.choice(np.array(["books", "music", "video", None], dtype=object), n_rows),
        "channel": rng.choice(np.array(["web", "store", "App"], dtype=object), n_rows),
    })
    customers = pd.DataFrame({
        "customer_id": ids,
        "signup_date": start - pd.Timedelta(days=200) + pd.to_timedelta(rng.integers(0, 900, n_customers), unit="D"),
        "region": rng.choice(np.array(["north", "south", "east"], dtype=object), n_customers),
        "age": rng.integers(18, 80, n_customers).astype(float),
        "email": [f"{i}@example.com" for i in ids],
    })
    n_int = n_rows // 4
    interactions = pd.DataFrame({
        "customer_id": ids[rng.integers(0, n_customers, n_int)],
        "timestamp": start + pd.to_timedelta(rng.integers(0, span, n_int), unit="s"),
        "kind": rng.choice(np.array(["survey", "support_ticket", "complaint", "email_open"], dtype=object), n_int),
        "score": np.where(rng.random(n_int) < 0.2, np.nan, rng.integers(1, 6, n_int)).astype(float),
    })
    return tx, customers, interactions


def test_hand_computed_features(hand: pd.DataFrame) -> None:
    f = FeatureBuilder(FeatureSpec()).transform(hand, AS_OF)
    assert f.index.tolist() == ["A", "B"]
    a = f.loc["A"]
    assert a["recency_days"] == 10.0
    assert a["frequency"] == 2  # o1 (150) and o2 (30); o3 is a refund
    assert a["purchase_days"] == 2
    assert a["monetary_total"] == 160.0
    assert a["monetary_mean"] == 80.0
    assert a["monetary_max"] == 150.0
    assert a["orders_30d"] == 2 and a["spend_30d"] == 160.0  # o1 starts exactly 30 days before as_of
    assert a["tenure_days"] == 30.0
    assert a["gap_mean_days"] == 20.0 and math.isnan(a["gap_std_days"])
    assert a["recency_over_gap"] == 0.5
    assert a["refund_count"] == 1 and a["refund_share"] == pytest.approx(20 / 180)
    assert a["quantity_total"] == 4 and a["quantity_per_order"] == 2
    assert a["n_categories"] == 2 and a["top_category_share"] == pytest.approx(2 / 3)
    assert a["category_entropy"] == pytest.approx(-(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)))
    assert a["lifecycle_stage"] == "active"
    b = f.loc["B"]
    assert b["recency_days"] == 365.0 and b["lifecycle_stage"] == "lost"
    assert b["spend_365d"] == 10.0 and b["spend_180d"] == 0.0
    # unfitted: the spec's absolute edges -> A: recency 10 (<=30) -> 5, frequency 2 -> 2, monetary 160 -> 3
    assert (a["r_score"], a["f_score"], a["m_score"]) == (5, 2, 3)
    assert (b["r_score"], b["f_score"], b["m_score"]) == (2, 1, 1)


def test_channel_shares_use_channels_seen_in_fit(hand: pd.DataFrame) -> None:
    builder = FeatureBuilder(FeatureSpec()).fit(hand, AS_OF)
    assert builder.channels_ == ["store", "web"]  # 'app' only appears after as_of
    f = builder.transform(hand, AS_OF)
    assert f.loc["A", "channel_share_web"] == pytest.approx(2 / 3)
    assert f.loc["A", "channel_share_store"] == pytest.approx(1 / 3)


def test_without_order_id_each_instant_is_an_order(hand: pd.DataFrame) -> None:
    f = FeatureBuilder(FeatureSpec()).transform(hand.drop(columns="order_id"), AS_OF)
    assert f.loc["A", "frequency"] == 3  # o1's two lines are 12 hours apart
    assert f.loc["A", "monetary_max"] == 100.0


def test_optional_columns_absent_give_remaining_features(hand: pd.DataFrame) -> None:
    minimal = hand[["customer_id", "timestamp", "amount"]]
    builder = FeatureBuilder(FeatureSpec()).fit(minimal, AS_OF)
    f = builder.transform(minimal, AS_OF)
    assert not any(c.startswith(("quantity", "channel_share", "n_categories")) for c in f.columns)
    assert f.loc["A", "monetary_total"] == 160.0
    assert f[[c for c in f.columns if c.startswith("survey")]].isna().all().all()
    assert (f["support_tickets_30d"] == 0).all()


def test_columns_seen_at_fit_but_absent_later_are_missing_not_dropped(hand: pd.DataFrame) -> None:
    builder = FeatureBuilder(FeatureSpec()).fit(hand, AS_OF)
    f = builder.transform(hand.drop(columns=["category", "channel"]), AS_OF)
    assert list(f.columns) == [d.name for d in builder.definitions()]
    assert f["n_categories"].isna().all() and f["channel_share_web"].isna().all()


@pytest.mark.parametrize("with_profiles", [True, False])
def test_the_frame_is_what_pandas_public_constructor_makes_of_the_same_columns(with_profiles: bool) -> None:
    # The builder assembles its frame without pandas' per-column checks; it must not differ in any way
    # (dtypes, categoricals, blocks that later selections and copies rely on) from the checked way.
    tx, customers, interactions = random_world(2)
    builder = FeatureBuilder(FeatureSpec(), personal_data_columns=["email"]).fit(tx, "2024-07-01", customers,
                                                                                interactions)
    f = builder.transform(tx, "2024-07-01", customers if with_profiles else None, interactions)
    checked = pd.DataFrame({c: f[c].array for c in f.columns}, index=f.index)
    pd.testing.assert_frame_equal(f, checked, check_exact=True)
    names = builder.feature_names_
    pd.testing.assert_frame_equal(f[names], checked[names], check_exact=True)
    assert f.iloc[5:9].equals(checked.iloc[5:9]) and f.copy().equals(checked)


def test_lifecycle_new_and_dormant() -> None:
    tx = _tx([
        ("N", "2024-01-20", 10, "a", 1, "x", "web"),  # first purchase 11 days ago
        ("D", "2023-06-01", 10, "b", 1, "x", "web"),
        ("D", "2023-06-11", 10, "c", 1, "x", "web"),
        ("D", "2023-06-21", 10, "d", 1, "x", "web"),  # gap 10 d, last purchase 224 d ago
    ])
    spec = FeatureSpec(lifecycle=LifecycleThresholds(new_days=30, dormant_days=60, lost_days=365))
    f = FeatureBuilder(spec).transform(tx, AS_OF)
    assert f["lifecycle_stage"].to_dict() == {"D": "dormant", "N": "new"}


def test_registry_agrees_with_builder_columns_and_dtypes() -> None:
    tx, customers, interactions = random_world(1)
    builder = FeatureBuilder(FeatureSpec(), personal_data_columns=["email"])
    f = builder.fit_transform(tx, "2024-07-01", customers, interactions)
    defs = builder.definitions()
    assert list(f.columns) == [d.name for d in defs]
    assert builder.feature_names_ == [d.name for d in defs if d.model_input]
    assert "lifecycle_stage" not in builder.feature_names_
    for d in defs:
        if d.kind == "numeric":
            assert f[d.name].dtype == np.float64, d.name
        elif d.kind == "categorical":
            assert isinstance(f[d.name].dtype, pd.CategoricalDtype), d.name
        elif d.kind == "score":
            assert f[d.name].between(1, 5).all(), d.name
    assert set(f["lifecycle_stage"]) <= {"new", "active", "dormant", "lost"}
    assert not any("email" in c for c in f.columns)
    assert set(builder.profile_levels_) == {"region", "age"}
    assert builder.channels_ == ["app", "store", "web"]
    assert f.index.is_monotonic_increasing and f.index.is_unique and f.index.name == "customer_id"
    assert f.index.tolist()[0] == "00000"  # string ids keep their leading zeros
    assert (f["trend_spend_90d"].abs() <= 1).all()


def test_fit_learns_quintile_edges_and_scores_are_balanced() -> None:
    tx, customers, interactions = random_world(2)
    builder = FeatureBuilder(FeatureSpec()).fit(tx, "2024-07-01", customers, interactions)
    f = builder.transform(tx, "2024-07-01", customers, interactions)
    assert builder.rfm_edges_["monetary"] == pytest.approx(np.quantile(f["monetary_total"], [0.2, 0.4, 0.6, 0.8]))
    share = f["m_score"].value_counts(normalize=True)
    assert share.between(0.15, 0.25).all()  # continuous monetary -> quintiles
    r = f.groupby("r_score")["recency_days"].agg(["min", "max"])
    assert (r["max"].shift(-1) <= r["min"]).iloc[:-1].all()  # higher r_score = more recent


def test_round_trip_through_json_gives_identical_features() -> None:
    tx, customers, interactions = random_world(3)
    builder = FeatureBuilder(FeatureSpec(windows_days=[14, 60]), personal_data_columns=["email"])
    builder.fit(tx, "2024-05-01", customers, interactions)
    clone = FeatureBuilder.from_dict(json.loads(json.dumps(builder.to_dict())))
    pd.testing.assert_frame_equal(clone.transform(tx, "2024-07-01", customers, interactions),
                                  builder.transform(tx, "2024-07-01", customers, interactions))
    assert clone.feature_names_ == builder.feature_names_


def test_one_customer_alone_gets_the_same_row_as_in_the_batch() -> None:
    tx, customers, interactions = random_world(4)
    builder = FeatureBuilder(FeatureSpec(), personal_data_columns=["email"]).fit(
        tx, "2024-03-01", customers, interactions)
    batch = builder.transform(tx, "2024-07-01", customers, interactions)
    for cid in batch.index[[0, 17, 123]]:
        alone = builder.transform(tx[tx.customer_id == cid], "2024-07-01",
                                  customers[customers.customer_id == cid],
                                  interactions[interactions.customer_id == cid])
        pd.testing.assert_frame_equal(alone, batch.loc[[cid]])


def test_profiles_signed_up_after_as_of_are_unknown() -> None:
    tx, customers, _ = random_world(5)
    as_of = pd.Timestamp("2024-07-01")
    customers.loc[customers.index[:40], "signup_date"] = as_of + pd.Timedelta(days=3)
    builder = FeatureBuilder(FeatureSpec(), personal_data_columns=["email"]).fit(tx, as_of, customers)
    f = builder.transform(tx, as_of, customers)
    late = f.index.intersection(customers["customer_id"][:40])
    assert len(late) > 0
    assert f.loc[late, ["signup_tenure_days", "profile_age"]].isna().all().all()
    assert f.loc[late, "profile_region"].isna().all()
    known = f.index.difference(late)
    assert f.loc[known, "profile_region"].notna().all()


def test_fit_without_history_is_an_error(hand: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="no transaction before"):
        FeatureBuilder(FeatureSpec()).fit(hand, "2020-01-01")
    empty = FeatureBuilder(FeatureSpec()).transform(hand, "2020-01-01")
    assert empty.empty and "recency_days" in empty.columns


def test_spec_rejects_unknown_keys_and_bad_edges() -> None:
    with pytest.raises(ValueError):
        FeatureSpec.model_validate({"windows_days": [30], "bogus": 1})
    with pytest.raises(ValueError):
        FeatureSpec.model_validate({"rfm_edges": {"frequency": [1, 1, 2, 3]}})


def test_feature_definitions_follow_the_spec_windows() -> None:
    names = [d.name for d in feature_definitions(FeatureSpec(windows_days=[7, 28]))]
    assert "spend_7d" in names and "trend_orders_28d" in names and "spend_30d" not in names
    assert len(names) == len(set(names))


def test_generated_docs_are_current() -> None:
    from tiercast.features.docs import DEFAULT_PATH, render

    assert DEFAULT_PATH.read_text(encoding="utf-8") == render(), "run `python -m tiercast.features.docs`"
    for d in feature_definitions(FeatureSpec()):
        if "<" not in d.name:
            assert f"| `{d.name}` |" in render()


@pytest.mark.parametrize("dtype", ["category", "string[pyarrow]", "arrow_chunked"])
def test_string_columns_of_any_dtype_give_identical_features(dtype: str) -> None:
    tx, customers, interactions = random_world(6)
    builder = FeatureBuilder(FeatureSpec(), personal_data_columns=["email"]).fit(
        tx, "2024-06-01", customers, interactions)
    expected = builder.transform(tx, "2024-07-01", customers, interactions)
    text = ["customer_id", "order_id", "product_id", "category", "channel"]
    if dtype == "arrow_chunked":  # several Arrow chunks, as a large Parquet file gives
        import pyarrow as pa

        half = len(tx) // 2
        chunked = {c: pd.Series(pd.arrays.ArrowExtensionArray(pa.chunked_array(
            [pa.array(tx[c].iloc[:half], pa.string()), pa.array(tx[c].iloc[half:], pa.string())])),
            index=tx.index) for c in text}
        other = tx.assign(**chunked)
    else:
        other = tx.astype({c: dtype for c in text})
    got = builder.transform(other, "2024-07-01", customers.astype({"customer_id": "category"}),
                            interactions.astype({"customer_id": "category", "kind": "category"}))
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


@pytest.mark.parametrize("dtype", [object, "string[pyarrow]", "category"])
def test_group_codes_group_exactly_the_equal_values(dtype: object) -> None:
    rng = np.random.default_rng(8)
    raw = np.array([f"o{i}" for i in rng.integers(0, 500, 5000)] + [None, "", "O1"], dtype=object)
    codes = group_codes(pd.Series(raw).astype(dtype))
    reference, _ = pd.factorize(raw)  # -1 for None
    assert (codes[raw == None] == -1).all()  # noqa: E711 - elementwise on an object array
    pairs = pd.DataFrame({"got": codes, "ref": reference})
    assert pairs.groupby("ref")["got"].nunique().eq(1).all()  # equal values -> one code
    assert pairs.groupby("got")["ref"].nunique().eq(1).all()  # one code -> equal values


def test_customer_ids_sort_in_python_string_order() -> None:
    rng = np.random.default_rng(5)
    words = np.array(["客户", "Zoë", "zoe", "Émile", "10", "9", "a b", "ab", "", "αβ", "😀", "ß"], dtype=object)
    values = pd.Series(rng.choice(words, size=400))
    keep = rng.random(400) < 0.8
    codes, ids = sorted_codes(values, keep)
    assert ids.tolist() == sorted(set(values[keep]))
    assert np.array_equal(ids[codes], values[keep].to_numpy())


def test_ages_beyond_292_years_do_not_wrap_around() -> None:
    # int64 nanoseconds span 292 years; the service accepts instants from 1900 to 2199.
    as_of = pd.Timestamp("2199-12-31")
    tx = _tx([("C1", "1900-01-02", 10.0, "o1", 1, "a", "web"), ("C1", "2199-12-21", 5.0, "o2", 1, "a", "web")])
    customers = pd.DataFrame({"customer_id": ["C1"], "signup_date": [pd.Timestamp("1900-01-01")]})
    interactions = pd.DataFrame({"customer_id": ["C1"], "timestamp": [pd.Timestamp("1900-01-03")],
                                 "kind": ["survey"], "score": [4.0]})
    f = FeatureBuilder(FeatureSpec()).transform(tx, as_of, customers, interactions).iloc[0]
    days = (as_of - pd.Timestamp("1900-01-02")).days
    assert f["tenure_days"] == pytest.approx(days) and f["recency_days"] == 10.0
    assert f["signup_tenure_days"] == pytest.approx(days + 1)
    assert f["days_since_interaction"] == pytest.approx(days - 1)
    assert f["gap_mean_days"] == pytest.approx(days - 10)
