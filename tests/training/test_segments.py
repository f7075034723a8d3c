"""Segments: k by silhouette, readable and unique names, stable from one retrain to the next, and the RFM
rule segments beside them."""

from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
import pytest

from tiercast.features.builder import FeatureBuilder
from tiercast.features.spec import FeatureSpec
from tiercast.training.config import SegmentConfig
from tiercast.training.rfm_segments import rfm_segments
from tiercast.training.segments import SegmentModel, rfm_profiles

NAME = re.compile(r"(active|cooling|lapsing) ((loyal|occasional) (high|mid|low) spenders|one-timers(, high spend)?)"
                  r"( \((more|less) recent( \d)?\)| \((more|fewer) orders( \d)?\)| \((higher|lower) spend( \d)?\))?")


@pytest.fixture(scope="module")
def cdnow(cdnow_first) -> pd.DataFrame:
    return cdnow_first(6000)


def features_at(cdnow: pd.DataFrame, as_of: str) -> pd.DataFrame:
    return FeatureBuilder(FeatureSpec()).fit(cdnow, as_of).transform(cdnow, as_of)


@pytest.fixture(scope="module")
def january(cdnow) -> pd.DataFrame:
    return features_at(cdnow, "1998-01-01")


@pytest.fixture(scope="module")
def model(january) -> SegmentModel:
    return SegmentModel(SegmentConfig(k_min=2, k_max=6)).fit(january)


def test_k_is_the_best_silhouette_in_the_configured_range(model):
    assert set(model.silhouette_) == set(range(2, 7))
    assert model.k_ == max(model.silhouette_, key=model.silhouette_.get)
    assert len(model.names_) == model.k_ == len(model.centres_)


def test_names_are_readable_unique_and_ordered_by_value(model, january):
    assert len(set(model.names_)) == model.k_
    assert all(NAME.fullmatch(name) for name in model.names_), model.names_
    profiles = model.profiles(january)
    assert list(profiles.index) == model.names_
    assert profiles["customers"].sum() == len(january) and profiles["share"].sum() == pytest.approx(1.0)
    # The first segment is the most valuable one, the last the least.
    assert profiles["monetary_total"].iloc[0] == profiles["monetary_total"].max()
    assert profiles["monetary_total"].iloc[-1] == profiles["monetary_total"].min()
    one_timers = [n for n in model.names_ if "one-timers" in n]
    assert all(profiles.loc[n, "frequency"] <= 1 for n in one_timers)


def test_a_retrain_a_month_later_gives_the_same_segments(cdnow, model):
    february = features_at(cdnow, "1998-02-01")
    retrained = SegmentModel(SegmentConfig(k_min=2, k_max=6)).fit(february)
    assert retrained.names_ == model.names_
    assert (retrained.predict(february) == model.predict(february)).mean() > 0.9


def test_a_retrain_keeps_the_previous_models_names_for_matching_segments(cdnow, january, model):
    previous = SegmentModel(SegmentConfig(k_min=2, k_max=6)).fit(features_at(cdnow, "1997-12-01"))
    previous.names_ = [f"segment {chr(97 + i)}" for i in range(previous.k_)]  # names an analyst knows
    retrained = SegmentModel(SegmentConfig(k_min=2, k_max=6)).fit(january, previous)
    assert retrained.names_ == previous.names_
    # A previous model whose centres match nothing lends no names.
    far = copy.deepcopy(previous)
    far.centres_ = far.centres_ + 5.0
    assert SegmentModel(SegmentConfig(k_min=2, k_max=6)).fit(january, far).names_ == model.names_


def test_same_data_and_seed_give_the_same_segments(january, model):
    again = SegmentModel(SegmentConfig(k_min=2, k_max=6)).fit(january)
    assert np.array_equal(again.centres_, model.centres_) and again.names_ == model.names_


def test_the_builders_table_gets_the_segments_of_its_frame(cdnow, model):
    # The scorer passes the builder's arrays rather than its frame.
    table = FeatureBuilder(FeatureSpec()).fit(cdnow, "1998-01-01").transform_columns(cdnow, "1998-02-01")
    assert np.array_equal(model.predict(table), model.predict(table.frame()))


@pytest.mark.parametrize(("r", "f", "name"), [
    (5, 5, "Champions"), (3, 4, "Loyal"), (5, 1, "New"), (4, 3, "Potential loyalists"), (1, 5, "Can't lose them"),
    (2, 3, "At risk"), (1, 1, "Lost"), (2, 2, "Hibernating"), (3, 2, "Need attention"), (3, 1, "Need attention"),
])
def test_rfm_rule_segments(r, f, name):
    assert rfm_segments(pd.Series([r]), pd.Series([f])).iloc[0] == name


def test_rfm_profiles_sit_beside_the_clusters(january, model):
    table = rfm_profiles(january, model)
    assert table["customers"].sum() == len(january)
    spread = table[model.names_]
    assert (spread.sum(axis=1) == table["customers"]).all()
    assert (spread.sum(axis=0).to_numpy() == model.profiles(january)["customers"].to_numpy()).all()
    assert {"Champions", "Lost"} <= set(table.index)
