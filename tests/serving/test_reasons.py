"""Reasons: features phrased for a person, the strongest contributions picked per customer, merged per model."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from tiercast.features.builder import FeatureBuilder
from tiercast.features.spec import FeatureSpec
from tiercast.serving import reasons as reasons_module
from tiercast.serving.i18n import ENGLISH, Messages, messages
from tiercast.serving.reasons import _strongest, phrase, reason_lists, top_reasons
from tiercast.simulation.world import WorldConfig, simulate_world

AS_OF = pd.Timestamp("2025-07-01")


def _features(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    """Real point-in-time features from (customer, date, amount) rows, as the scorer builds them."""
    tx = pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"])
    tx["timestamp"] = pd.to_datetime(tx["timestamp"])
    return FeatureBuilder(FeatureSpec()).transform(tx, AS_OF)


def test_recency_is_phrased_against_the_usual_rhythm():
    # A: bought every 30 days, last 120 days ago. B: bought 10 days ago, usually every 30. C: one purchase.
    features = _features([("A", "2025-01-02", 10), ("A", "2025-02-01", 10), ("A", "2025-03-03", 10),
                          ("B", "2025-05-22", 5), ("B", "2025-06-21", 5), ("C", "2025-05-02", 5)])
    assert phrase("recency_days", features).tolist() == [
        "no purchase for 120 days, usually every 30", "last purchase 10 days ago, usually every 30",
        "no purchase for 60 days"]
    assert phrase("recency_over_gap", features).tolist() == phrase("recency_days", features).tolist()


def test_spend_trend_is_the_percentage_change_on_the_previous_period():
    # 100 spent in the quarter before the last, 140 in the last quarter: up 40%. D spent only in the older one.
    features = _features([("A", "2025-02-15", 100), ("A", "2025-05-15", 140), ("D", "2025-02-15", 80),
                          ("E", "2025-05-15", 20)])
    assert phrase("trend_spend_90d", features).tolist() == [
        "spend up 40% on the previous quarter", "spend down 100% on the previous quarter",
        "spend in the last quarter after none in the one before"]
    assert phrase("spend_90d", features).tolist() == ["spent 140 in the last quarter", "no spend in the last quarter",
                                                      "spent 20 in the last quarter"]
    assert phrase("orders_30d", features).tolist() == ["no orders in the last month"] * 3
    assert phrase("frequency", features).tolist() == ["2 orders so far", "1 order so far", "1 order so far"]


def test_missing_values_and_unknown_features_are_still_phrased():
    features = _features([("A", "2025-06-01", 10)])
    assert phrase("gap_mean_days", features).tolist() == ["no repeat purchase yet"]
    assert phrase("survey_score_last", features).tolist() == ["no satisfaction survey"]
    assert phrase("bgnbd_expected_value", features).tolist() == ["spend expected from the buying pattern"]
    assert phrase("propensity_score", features).tolist() == ["propensity score"]
    assert phrase("monetary_total", features.iloc[:0]).tolist() == []


def test_item_counts_and_categories_missing_from_the_input_are_not_phrased_as_no_order():
    # A builder fitted with quantities and categories, asked about a customer sent without them (a service
    # request may omit both): they bought, so "no order yet" would mislead; the counts are just not known.
    history = pd.DataFrame({"customer_id": ["A", "A", "B"], "amount": [10.0, 20.0, 5.0], "quantity": [1.0, 3.0, 2.0],
                            "category": ["pop", "jazz", "pop"],
                            "timestamp": pd.to_datetime(["2025-03-01", "2025-05-01", "2025-06-01"])})
    # (quantities uncapped: the default cap, a high quantile of three lines, would cap the 3-item line)
    builder = FeatureBuilder(FeatureSpec(quantity_cap_quantile=1.0)).fit(history, AS_OF)
    features = builder.transform(history.drop(columns=["quantity", "category"]), AS_OF)
    assert phrase("quantity_per_order", features).tolist() == ["no item counts on record"] * 2
    assert phrase("quantity_total", features).tolist() == ["no item counts on record"] * 2
    assert phrase("n_categories", features).tolist() == ["no category on record"] * 2
    known = builder.transform(history, AS_OF)
    assert phrase("quantity_per_order", known).tolist() == ["2 items per order", "2 items per order"]
    assert phrase("n_categories", known).tolist() == ["bought in 2 categories", "bought in 1 category"]


def test_top_reasons_pick_the_strongest_contributions_with_their_direction():
    features = _features([("A", "2025-01-02", 10), ("A", "2025-03-03", 30), ("B", "2025-06-21", 500)])
    contributions = pd.DataFrame({"monetary_total": [0.1, 2.0], "recency_days": [-1.5, 0.0],
                                  "frequency": [0.3, 0.0]}, index=features.index)
    phrases, effects = top_reasons(contributions.to_numpy(), list(contributions.columns), features, "value", n=2)
    assert phrases.tolist() == [["no purchase for 120 days, usually every 60", "2 orders so far"],
                                ["spent 500 in total", None]]  # a zero contribution gives no reason
    assert effects.tolist() == [["lowers value", "raises value"], ["raises value", None]]


def test_vectorised_phrasing_equals_phrasing_each_customer_alone():
    # 160 customers: the features most of them pick are phrased by array operations, the others one by one
    rows = [(f"C{i}", f"2025-0{1 + i % 6}-{10 + i % 15}", float(5 + 7 * i)) for i in range(160)]
    rows += [(f"C{i}", "2025-06-20", float(i)) for i in range(0, 160, 3)]
    features = _features(rows)
    rng = np.random.default_rng(0)
    columns = ["recency_days", "frequency", "monetary_total", "trend_spend_90d", "gap_mean_days", "spend_365d"]
    contributions = pd.DataFrame(rng.normal(size=(len(features), len(columns))), index=features.index,
                                 columns=columns)
    together = top_reasons(contributions.to_numpy(), columns, features, "value", n=3)
    for i in range(len(features)):
        alone = top_reasons(contributions.to_numpy()[[i]], columns, features.iloc[[i]], "value", n=3)
        assert alone[0][0].tolist() == together[0][i].tolist()
        assert alone[1][0].tolist() == together[1][i].tolist()


def test_a_feature_two_models_pick_is_phrased_once_for_a_customer(monkeypatch):
    rows = [(f"C{i:02}", f"2025-0{1 + i % 6}-{10 + i % 15}", float(5 + 7 * i)) for i in range(30)]
    features = _features(rows)
    names = ["recency_days", "frequency", "monetary_total"]
    rng = np.random.default_rng(2)
    value, churn = (rng.normal(size=(len(features), len(names))) for _ in range(2))
    alone = [top_reasons(value, names, features, "value", n=2), top_reasons(churn, names, features, "churn risk", n=1)]
    phrased_rows: list[int] = []
    phrases = reasons_module._phrases

    def counted(feature, frame, rows, m):
        phrased_rows.extend(rows.tolist())
        return phrases(feature, frame, rows, m)

    monkeypatch.setattr(reasons_module, "_phrases", counted)
    kept: dict[str, np.ndarray] = {}
    shared = [top_reasons(value, names, features, "value", n=2, phrased=kept),
              top_reasons(churn, names, features, "churn risk", n=1, phrased=kept)]
    for (a_phrases, a_effects), (s_phrases, s_effects) in zip(alone, shared, strict=True):
        assert a_phrases.tolist() == s_phrases.tolist() and a_effects.tolist() == s_effects.tolist()
    picks = [(row, names[j]) for contributions, n in ((value, 2), (churn, 1))
             for row, columns in enumerate(_strongest(contributions, n)[0].tolist()) for j in columns]
    assert len(phrased_rows) == len(set(picks)) < len(picks)  # once a customer and feature, not once a model


def test_reason_lists_say_a_shared_phrase_once_with_every_effect():
    value = (np.array([["no purchase for 120 days", "spent 40 in total"]], dtype=object),
             np.array([["lowers value", "raises value"]], dtype=object))
    churn = (np.array([["no purchase for 120 days"]], dtype=object), np.array([["raises churn risk"]], dtype=object))
    assert reason_lists(value, churn) == [["no purchase for 120 days (lowers value, raises churn risk)",
                                           "spent 40 in total (raises value)"]]
    none = (np.array([[None]], dtype=object), np.array([[None]], dtype=object))
    assert reason_lists(none) == [[]]


def test_profile_and_channel_features_name_their_attribute():
    frame = pd.DataFrame({"profile_age_band": pd.Categorical(["25-34", None]), "profile_income": [52000.0, np.nan],
                          "channel_share_web_shop": [0.25, np.nan]}, index=["a", "b"])
    assert phrase("profile_age_band", frame).tolist() == ["age band: 25-34", "age band unknown"]
    assert phrase("profile_income", frame).tolist() == ["income 52,000", "income unknown"]
    assert phrase("channel_share_web_shop", frame).tolist() == ["25% of purchases via web shop",
                                                                "no purchase channel on record"]


def test_the_builders_table_is_phrased_as_its_frame_for_every_feature(monkeypatch):
    # The scorer phrases from the builder's arrays (no frame); profile categoricals, text and NaN included. 300
    # customers: phrased by array operations, as phrasing each customer alone phrases them.
    world = simulate_world(WorldConfig(n_customers=300, seed=3))
    cutoff = world.config.default_cutoff
    builder = FeatureBuilder(FeatureSpec(), ["name", "email", "phone"]).fit(
        world.transactions, cutoff, world.customers, world.interactions)
    table = builder.transform_columns(world.transactions, cutoff, world.customers, world.interactions)
    frame = table.frame()
    assert any(isinstance(frame[c].dtype, pd.CategoricalDtype) for c in frame.columns)
    together = {feature: phrase(feature, table).tolist() for feature in frame.columns}
    monkeypatch.setattr(reasons_module, "ARRAYS_FROM", len(frame) + 1)
    for feature in frame.columns:
        assert together[feature] == phrase(feature, frame).tolist() == phrase(feature, table).tolist(), feature


def test_ties_go_to_the_first_feature_and_missing_contributions_come_last():
    features = _features([("A", "2025-06-01", 10)])
    names = ["frequency", "monetary_total", "tenure_days", "refund_count"]
    phrases, effects = top_reasons(np.array([[np.nan, -2.0, 2.0, 0.5]]), names, features, "value", n=4)
    assert phrases.tolist() == [["spent 10 in total", "customer for 30 days", "no refunds", "1 order so far"]]
    assert effects.tolist() == [["lowers value", "raises value", "raises value", "lowers value"]]


def test_the_strongest_contributions_are_those_a_stable_sort_of_magnitudes_puts_first():
    values = np.random.default_rng(7).choice([0.0, -0.0, 0.5, -0.5, 2.0, -2.0, np.nan], size=(400, 6))
    for n in range(1, 7):
        picked, strength = _strongest(values, n)
        expected = np.argsort(-np.fmax(np.abs(values), -1.0), axis=1, kind="stable")[:, :n]
        assert np.array_equal(picked, expected), n
        assert np.array_equal(strength, np.take_along_axis(values, expected, axis=1), equal_nan=True)


def test_reason_lists_of_a_batch_equal_each_customer_alone():
    # Sixty customers, with random contributions (some zero) and missing values (no
    # repeat purchase); customer 0 has no contribution, 1 the recency phrase from both recency features and the
    # churn model, 2 from each model once.
    rows = [(f"C{i:02}", f"2025-0{1 + i % 6}-{10 + i % 15}", float(5 + 7 * i)) for i in range(60)]
    rows += [(f"C{i:02}", "2025-06-20", float(i)) for i in range(0, 60, 3)]
    features = _features(rows)
    names = ["recency_days", "recency_over_gap", "frequency", "gap_mean_days", "trend_spend_90d",
             "bgnbd_expected_value"]
    rng = np.random.default_rng(1)
    value, churn = (rng.normal(size=(len(features), len(names))) * (rng.random((len(features), len(names))) > 0.3)
                    for _ in range(2))
    value[:3], churn[:3] = 0.0, 0.0
    value[1, :2], churn[1, 0] = [3.0, -2.0], 1.0
    value[2, 0], churn[2, 0] = -1.0, 1.0

    def reasons(at: slice | list[int]) -> list[list[str]]:
        return reason_lists(top_reasons(value[at], names, features.iloc[at], "value", n=2),
                            top_reasons(churn[at], names, features.iloc[at], "churn risk", n=1))

    together = reasons(slice(None))
    assert together == [reasons([i])[0] for i in range(len(features))]
    recency = phrase("recency_days", features)
    assert together[:3] == [[], [f"{recency[1]} (raises value, lowers value, raises churn risk)"],
                            [f"{recency[2]} (lowers value, raises churn risk)"]]


def test_reason_lists_merge_every_pattern_of_repeats_in_a_batch_as_alone():
    # Each pattern alone and ten times over in one batch give the same lists.
    cases = {("a", "b", "a", "b", "raises value", "lowers value", "raises churn risk", "lowers churn risk"):
             ["a (raises value, raises churn risk)", "b (lowers value, lowers churn risk)"],
             ("a", "a", "a", None, "raises value", "lowers value", "lowers value", None):
             ["a (raises value, lowers value)"],
             ("a", "b", "b", None, "raises value", "lowers value", "raises churn risk", None):
             ["a (raises value)", "b (lowers value, raises churn risk)"],
             ("a", None, "a", "c", "lowers value", None, "lowers value", "raises value"):
             ["a (lowers value)", "c (raises value)"],
             (None, None, None, None, None, None, None, None): [],
             ("a", "b", "c", "d", "raises value", "raises value", "lowers churn risk", "raises churn risk"):
             ["a (raises value)", "b (raises value)", "c (lowers churn risk)", "d (raises churn risk)"]}
    rows = np.array(list(cases) * 10, dtype=object)

    def lists(at: slice | list[int]) -> list[list[str]]:
        return reason_lists((rows[at, 0:2], rows[at, 4:6]), (rows[at, 2:4], rows[at, 6:8]))

    assert lists(slice(None)) == list(cases.values()) * 10
    assert [lists([i])[0] for i in range(len(cases))] == list(cases.values())


def test_reason_lists_merge_every_pattern_of_four_places_as_said_one_customer_at_a_time():
    # The lists are merged in array operations; each customer's list must be what merging their places one by
    # one says: each phrase once, where it first comes, with its effects each once in the order they come.
    def merged_alone(phrases: tuple, effects: tuple, m: Messages) -> list[str]:
        found: dict[str, dict[str, None]] = {}
        for text, effect in zip(phrases, effects, strict=True):
            if text is not None:
                found.setdefault(text, {})[effect] = None
        return [m["reason.with_effects"].format(text=text, effects=m.join(list(said))) for text, said in found.items()]

    patterns = [(p, e) for p in itertools.product([None, "a", "b", "c"], repeat=4)
                for e in itertools.product(["raises value", "lowers value"], ["raises value", "lowers value"],
                                           ["raises churn risk", "lowers value"], ["raises value", "lowers churn"])]
    phrases = np.array([p for p, _ in patterns], dtype=object)
    effects = np.array([[None if t is None else x for t, x in zip(p, e, strict=True)] for p, e in patterns],
                       dtype=object)
    for m in (ENGLISH, messages("zh")):
        lists = reason_lists((phrases[:, :2], effects[:, :2]), (phrases[:, 2:], effects[:, 2:]), m=m)
        assert lists == [merged_alone(p, tuple(e), m) for p, e in zip(map(tuple, phrases), effects, strict=True)]


def test_equal_values_share_a_phrase_but_minus_zero_is_phrased_as_alone():
    # Equal values read the same in a batch as alone; -0.0 equals 0.0 but may read differently ("-0").
    frame = pd.DataFrame({"monetary_total": [0.0, -0.0, 12.5, 12.5, np.nan, np.nan],
                          "trend_spend_90d": [0.0, -0.0, 0.25, 0.25, np.nan, np.nan]})
    for feature in frame.columns:
        alone = [phrase(feature, frame.iloc[[i]])[0] for i in range(len(frame))]
        assert phrase(feature, frame).tolist() == alone


def test_a_frame_is_phrased_as_each_customer_alone():
    # The same recency phrased with and without the usual gap, repeated values included: each row reads as
    # when phrased alone, and the gap of one frame does not leak into the other.
    with_gap = pd.DataFrame({"recency_days": [40.0, 40.0, 10.0, 200.0, 3.0, 77.0, 40.0],
                             "gap_mean_days": [30.0, 60.0, np.nan, 50.0, 3.0, 80.0, 30.0]})
    without_gap = with_gap[["recency_days"]]
    first = [phrase("recency_days", frame).tolist() for frame in (with_gap, without_gap, with_gap, without_gap)]
    assert first[0] == first[2] and first[1] == first[3]
    assert first[0][0] == "no purchase for 40 days, usually every 30"
    assert first[1][0] == "no purchase for 40 days"
    for frame, said in ((with_gap, first[0]), (without_gap, first[1])):
        assert said == [phrase("recency_days", frame.iloc[[i]])[0] for i in range(len(frame))]


def _odd_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """Values every phrasing meets: fractions, halves (rounded to even), whole numbers, signed zeros, NaN,
    infinities, shares, huge numbers."""
    edges = [0.0, -0.0, np.nan, np.inf, -np.inf, 1.0, 2.5, 9.95, 10.5, 11.5, -10.5, 0.05, 0.25, 2.675, 1e15, 0.005,
             0.125, 30.0]
    drawn = np.concatenate([rng.normal(0, 40, n), rng.integers(-40, 40, n) / 2, rng.uniform(0, 1, n),
                            rng.integers(0, 5, n).astype(float)])
    return rng.permutation(np.concatenate([edges * 4, rng.choice(drawn, n - 4 * len(edges))]))


def test_numbers_and_percents_of_arrays_are_each_numbers_text():
    values = _odd_numbers(np.random.default_rng(5), 3000)
    for m in (messages("en"), messages("zh")):
        assert m.numbers(values).tolist() == [m.number(x) for x in values]
        assert m.percents(values).tolist() == [m.percent(x) for x in values]
        assert m.percents(values / 100).tolist() == [m.percent(x) for x in values / 100]


def test_features_phrased_as_arrays_read_as_each_customer_phrased_alone(monkeypatch):
    rng = np.random.default_rng(6)
    n = 400
    frame = pd.DataFrame({name: _odd_numbers(rng, n) for name in [*reasons_module._SIMPLE, "recency_days"]})
    frame["gap_mean_days"] = np.where(rng.uniform(size=n) < 0.3, np.nan, np.abs(frame["gap_mean_days"]))
    frame["recency_days"] = np.abs(frame["recency_days"])
    frame.loc[:40, "gap_mean_days"] = frame.loc[:40, "recency_days"]  # as late as usual: not overdue
    rows = rng.permutation(n)[:320]
    assert (frame["recency_days"].iloc[rows] == 30).any()
    alone = dict(frame.loc[:, ["recency_days"]])  # recency phrased without a rhythm too
    for m in (messages("en"), messages("zh")):
        for feature, columns in [*((f, frame) for f in [*reasons_module._SIMPLE, "recency_days"]),
                                 ("recency_days", pd.DataFrame(alone))]:
            arrays = reasons_module._phrases(feature, columns, rows, m)
            assert isinstance(arrays, np.ndarray)  # the array path was taken
            with monkeypatch.context() as patched:
                patched.setattr(reasons_module, "ARRAYS_FROM", n + 1)
                each = reasons_module._phrases(feature, columns, rows, m)
            assert arrays.tolist() == each, feature


def test_reason_lists_filled_as_arrays_read_as_filled_one_by_one(monkeypatch):
    rng = np.random.default_rng(8)
    texts = np.array(["no purchase for 120 days", "2 orders so far", "spent 500 {in} total", None], dtype=object)
    effects = np.array(["lowers value", "raises value", None], dtype=object)
    phrases = texts[rng.integers(0, 4, (300, 3))]
    told = effects[rng.integers(0, 2, (300, 3))]
    told[np.equal(phrases, None)] = None
    for m in (messages("en"), messages("zh")):
        arrays = reason_lists((phrases, told), m=m)
        with monkeypatch.context() as patched:
            patched.setattr(reasons_module, "ARRAYS_FROM", 10**6)
            assert reason_lists((phrases, told), m=m) == arrays
