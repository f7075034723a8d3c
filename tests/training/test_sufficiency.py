"""Data sufficiency: training on too little data stops with a message naming what is missing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tiercast.features.loading import load_transactions
from tiercast.training.sufficiency import InsufficientData, SufficiencyConfig, require_training_data

CDNOW = Path(__file__).resolve().parents[2] / "data" / "cdnow" / "CDNOW_master.txt.gz"


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return load_transactions(CDNOW)[0]


def test_full_cdnow_is_enough(cdnow):
    checks = require_training_data(cdnow, pd.Timestamp("1998-01-01"), pd.Timestamp("1997-06-01"),
                                   SufficiencyConfig())
    found = {c.name: c.found for c in checks}
    assert found["customers"] == cdnow.loc[(cdnow.timestamp < "1997-06-01") & (cdnow.amount > 0),
                                           "customer_id"].nunique()
    assert all(c.passed for c in checks)


def test_too_few_customers_and_stale_log_are_named(cdnow):
    few = cdnow[cdnow["customer_id"].astype(int) <= 100]
    with pytest.raises(InsufficientData) as caught:
        require_training_data(few, pd.Timestamp("1999-06-01"), pd.Timestamp("1997-06-01"), SufficiencyConfig())
    message = str(caught.value)
    assert "customers: found 100, need at least 200" in message
    assert "repeat customers" in message
    assert "days since the last order" in message


def test_short_history_is_named(cdnow):
    with pytest.raises(InsufficientData, match="days of history: found 9"):
        require_training_data(cdnow, pd.Timestamp("1997-03-01"), pd.Timestamp("1997-01-10"),
                              SufficiencyConfig(min_customers=1, min_repeat_customers=0))

