"""Fixtures shared by the classic-forecast and booster tests: the first 4,000 CDNOW customers, their stacked
training examples with each window's classic columns, and the features at the cutoff."""

from __future__ import annotations

import pandas as pd
import pytest

from tiercast.features.builder import FeatureBuilder
from tiercast.features.spec import FeatureSpec
from tiercast.training.classic.forecast import ClassicFeatures, add_classic_columns
from tiercast.training.labels import training_examples

CUTOFF = pd.Timestamp("1998-01-01")
HORIZON = 181


@pytest.fixture(scope="session")
def cdnow_4000(cdnow_first) -> pd.DataFrame:
    """The first 4,000 CDNOW customers (real purchase patterns, seconds to train on)."""
    return cdnow_first(4000)


@pytest.fixture(scope="session")
def prepared(cdnow_4000):
    """Stacked training examples with each window's classic columns, and the features at the cutoff."""
    builder = FeatureBuilder(FeatureSpec()).fit(cdnow_4000, CUTOFF)
    examples = training_examples(cdnow_4000, CUTOFF, HORIZON, builder, 4, 30).set_index("customer_id")
    examples = add_classic_columns(examples, examples["window_cutoff"], HORIZON)
    features = builder.transform(cdnow_4000, CUTOFF)
    classic = ClassicFeatures(HORIZON).fit(features)
    return builder, examples, features, classic
