"""The classic forecast columns of a feature row: agreement with the baseline, one classic model per window,
exact Shapley values over the RFM inputs, and the seasonal clock."""

from __future__ import annotations

from itertools import permutations

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from tiercast.features.builder import FeatureBuilder
from tiercast.simulation.world import WorldConfig, simulate_world
from tiercast.features.spec import FeatureSpec
from tiercast.training.classic.clv import ClassicCLV
from tiercast.training.classic.forecast import CLASSIC_COLUMNS, ClassicFeatures
from tiercast.training.classic.rfm import RFM_INPUTS
from tiercast.training.classic.seasonality import SeasonalClock, months_needed, seasonal_clock
from tiercast.training.extension import HorizonExtension
from tiercast.training.labels import make_labels

CUTOFF = pd.Timestamp("1998-01-01")
HORIZON = 181


def test_classic_features_agree_with_the_baseline_fitted_on_transactions(cdnow_4000, prepared):
    # Same BG/NBD model read from the builder's columns instead of the raw log: same ranking of customers.
    _, _, features, classic = prepared
    ours = classic.transform(features)
    reference = ClassicCLV().fit(cdnow_4000, CUTOFF).predict(cdnow_4000, CUTOFF, HORIZON).set_index("customer_id")
    reference = reference.loc[features.index]
    assert np.corrcoef(ours["bgnbd_expected_purchases"], reference["expected_purchases"])[0, 1] > 0.99
    assert np.corrcoef(ours["bgnbd_churn_probability"], reference["churn_probability"])[0, 1] > 0.99
    assert np.corrcoef(ours["bgnbd_expected_value"], reference["expected_value"])[0, 1] > 0.95
    assert ours["bgnbd_expected_value"].sum() == pytest.approx(reference["expected_value"].sum(), rel=0.05)


def test_each_window_gets_a_classic_model_fitted_on_its_own_customers(prepared):
    _, examples, _, _ = prepared
    first = examples["window_cutoff"] == examples["window_cutoff"].min()
    alone = ClassicFeatures(HORIZON).fit(examples[first]).transform(examples[first])
    assert np.allclose(alone.to_numpy(), examples.loc[first.to_numpy(), CLASSIC_COLUMNS].to_numpy())


def test_shapley_values_split_the_classic_score_exactly_over_the_rfm_inputs(prepared):
    _, _, features, classic = prepared
    rows = features.iloc[::97]

    def link(columns) -> np.ndarray:
        return np.log(np.asarray(columns["bgnbd_expected_value"]))

    phi = classic.shapley(rows[RFM_INPUTS].to_numpy(), link)
    reference = pd.DataFrame([classic.reference_], columns=RFM_INPUTS)
    expected = link(classic.transform(rows)) - link(classic.transform(reference))[0]
    assert phi.shape == (len(rows), len(RFM_INPUTS))
    assert np.allclose(phi.sum(axis=1), expected)
    # An input at the reference value gets no credit, whatever the others are.
    at_median = rows.assign(recency_days=classic.reference_[1])
    assert np.allclose(classic.shapley(at_median[RFM_INPUTS].to_numpy(), link)[:, 1], 0.0)


@pytest.mark.parametrize("seasonal", [False, True])
def test_each_coalition_is_exactly_the_forecast_of_its_mixed_rows(prepared, seasonal):
    # The coalitions share one costly term between those that mix purchase days and tenure alike; every one
    # must still be, to the bit, the forecast of its own rows (the last one: the customers' own forecast).
    _, _, features, classic = prepared
    if seasonal:  # operational time: tenure and recency run on a seasonal clock
        index = np.linspace(0.6, 1.4, 12) / np.linspace(0.6, 1.4, 12).mean()
        classic = ClassicFeatures(HORIZON, SeasonalClock(CUTOFF, index)).fit(features)
    rows = features[RFM_INPUTS].to_numpy()[::37]
    coalitions = classic.coalitions(rows)
    for k in range(16):
        mixed = np.where([(k >> i) & 1 for i in range(4)], rows, classic.reference_)
        assert np.array_equal(coalitions[k], classic.forecast(mixed)), k
    assert np.array_equal(coalitions[-1], classic.forecast(rows))


def test_shapley_values_average_each_inputs_marginal_effect_over_every_order(prepared):
    # The definition itself: the mean, over the 24 orders of adding the inputs one by one (from the
    # reference customer's values to this customer's), of what adding each input changes.
    _, _, features, classic = prepared
    rows = features[RFM_INPUTS].to_numpy()[::211]

    def link(columns) -> np.ndarray:
        return np.asarray(columns["bgnbd_churn_probability"])

    def outcome(taken: set[int]) -> np.ndarray:
        mixed = np.where([i in taken for i in range(4)], rows, classic.reference_)
        return link(classic.transform(pd.DataFrame(mixed, columns=RFM_INPUTS)))

    expected = np.zeros(rows.shape)
    for order in permutations(range(4)):
        taken: set[int] = set()
        for i in order:
            before = outcome(taken)
            taken.add(i)
            expected[:, i] += (outcome(taken) - before) / 24
    assert np.allclose(classic.shapley(rows, link), expected, atol=1e-12)


def test_operational_time_counts_each_day_at_its_months_index():
    index = np.ones(12)
    index[0], index[11] = 0.5, 2.0  # January half as busy, December twice
    clock = SeasonalClock(pd.Timestamp("2025-01-01"), index)
    assert np.allclose(clock.before(np.array([0.0, 15.5, 31.0, 61.0])), [0.0, 31.0, 62.0, 92.0])
    assert clock.after(31) == pytest.approx(15.5) and clock.after(45) == pytest.approx(15.5 + 14)
    calendar = SeasonalClock(pd.Timestamp("2025-01-01"))
    assert np.array_equal(calendar.before(np.array([3.5, 400.0])), [3.5, 400.0]) and calendar.after(10) == 10


def test_the_seasonal_clock_fixes_the_classic_forecast_right_after_a_peak():
    world = simulate_world(WorldConfig(n_customers=6000, seed=2))
    cutoff = pd.Timestamp("2025-01-02")  # two years of history, the December peak just behind
    clock = seasonal_clock(world.transactions, cutoff, HORIZON)
    truth = np.asarray(world.config.seasonality) / np.mean(world.config.seasonality)
    assert np.abs(clock.index - truth).max() < 0.1
    features = FeatureBuilder(FeatureSpec()).fit(world.transactions, cutoff).transform(world.transactions, cutoff)
    actual = make_labels(world.transactions, cutoff, HORIZON).loc[features.index, "value"].sum()

    def total_ratio(clock: SeasonalClock | None) -> float:
        return ClassicFeatures(HORIZON, clock).fit(features).transform(features)["bgnbd_expected_value"].sum() / actual

    assert total_ratio(None) > 1.15  # calendar time reads the peak as everyone's new normal
    assert total_ratio(clock) == pytest.approx(1.0, abs=0.07)


def test_a_year_and_the_horizon_of_history_are_enough_to_see_an_autumn_peak_coming():
    autumn = (0.8, 0.8, 0.9, 0.9, 0.9, 0.85, 0.85, 0.9, 1.4, 1.6, 1.8, 1.1)
    world = simulate_world(WorldConfig(n_customers=5000, seed=3, start="2023-12-01", end="2025-12-10",
                                       seasonality=autumn, default_horizon_days=90))
    cutoff, horizon = pd.Timestamp("2025-09-01"), 90  # 21 months of history, the peak ahead
    clock = seasonal_clock(world.transactions, cutoff, horizon)
    truth = np.asarray(autumn) / np.mean(autumn)
    assert np.abs(clock.index - truth).max() < 0.15
    assert clock.index[8:11].mean() / clock.index[5:8].mean() > 1.5  # autumn over summer, as drawn: 1.77
    features = FeatureBuilder(FeatureSpec()).fit(world.transactions, cutoff).transform(world.transactions, cutoff)
    actual = make_labels(world.transactions, cutoff, horizon).loc[features.index, "value"].sum()

    def total_ratio(clock: SeasonalClock | None) -> float:
        return ClassicFeatures(horizon, clock).fit(features).transform(features)["bgnbd_expected_value"].sum() / actual

    assert total_ratio(None) < 0.75  # calendar time expects a summer's worth in the autumn
    assert total_ratio(clock) == pytest.approx(1.0, abs=0.1)


def test_no_seasonal_clock_without_a_year_and_the_horizon_or_without_a_season(cdnow_4000):
    assert months_needed(HORIZON) == 18
    assert seasonal_clock(cdnow_4000, CUTOFF, HORIZON).index is None  # one year of CDNOW history
    flat = simulate_world(WorldConfig(n_customers=6000, seed=2, seasonality=(1.0,) * 12))
    assert np.abs(seasonal_clock(flat.transactions, pd.Timestamp("2025-01-02"), HORIZON).index - 1).max() < 0.05



# An autumn peak, as a seasonal index (mean 1).
AUTUMN = np.array([0.8, 0.8, 0.9, 0.9, 0.9, 0.85, 0.85, 0.9, 1.4, 1.6, 1.8, 1.1])
AUTUMN = AUTUMN / AUTUMN.mean()


def same_fit_on(classic: ClassicFeatures, clock: SeasonalClock) -> ClassicFeatures:
    """A ClassicFeatures with the fitted parameters of ``classic`` and its times on ``clock``."""
    other = ClassicFeatures(classic.horizon_days, clock)
    vars(other).update({name: value for name, value in vars(classic).items() if name.endswith("_")})
    other.horizon_ = clock.after(classic.horizon_days)
    return other


def test_a_fit_forecasts_rows_built_later_on_the_clock_of_their_date(cdnow_4000, prepared):
    # Fitted at the cutoff (January: the horizon is the quiet half of the year), scoring rows built three months
    # later: their recency and tenure run back from their own date and the horizon covers April to September.
    builder, _, features, _ = prepared
    classic = ClassicFeatures(HORIZON, SeasonalClock(CUTOFF, AUTUMN)).fit(features)
    later = CUTOFF + pd.Timedelta(days=90)
    rows = builder.transform(cdnow_4000, later)
    anchored = classic.at(later)
    assert anchored.clock.anchor == later and np.array_equal(anchored.clock.index, AUTUMN)
    expected = same_fit_on(classic, SeasonalClock(later, AUTUMN)).transform(rows)
    assert np.array_equal(anchored.transform(rows).to_numpy(), expected.to_numpy())
    stale = classic.transform(rows)["bgnbd_expected_purchases"].sum()
    assert expected["bgnbd_expected_purchases"].sum() > 1.15 * stale  # the autumn comes into the horizon: 1.27
    # The fit itself is untouched, and an as_of on the cutoff's day is the fit as it is.
    assert classic.clock.anchor == CUTOFF and classic.at(CUTOFF + pd.Timedelta(hours=10)) is classic
    # On calendar time the anchor changes nothing.
    calendar = ClassicFeatures(HORIZON).fit(features)
    assert calendar.at(later) is calendar
    # A horizon extension moves both of its horizons to the later date.
    extension = HorizonExtension.of(classic, 365).at(later)
    assert np.array_equal(extension.long.transform(rows).to_numpy(),
                          same_fit_on(classic.at_horizon(365), SeasonalClock(later, AUTUMN)).transform(rows).to_numpy())
    assert extension.short is not classic and extension.short.clock.anchor == later


def test_an_unfitted_classic_model_says_so(prepared):
    _, _, features, _ = prepared
    with pytest.raises(NotFittedError):
        ClassicFeatures(HORIZON).transform(features)
