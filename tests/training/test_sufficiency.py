"""Data sufficiency: training on too little data stops with a message naming what is missing and what would
work (the longest label window at the cutoff, the cutoffs at which the requested one fits), or trains on the
shorter label windows the history holds."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tiercast.features.loading import load_transactions
from tiercast.training.sufficiency import (
    InsufficientData,
    LabelWindows,
    SufficiencyConfig,
    choose_windows,
    data_end,
    longest_label_window,
    require_training_data,
    supported_cutoffs,
    windows_fit,
)

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



# CDNOW starts on 1997-01-01; 4 windows 30 days apart need 30 days of history before the earliest one.
SHORT_CUTOFF = pd.Timestamp("1997-09-01")
REQUESTED = LabelWindows(181, 4, 30)
DAY = pd.Timedelta(days=1)


def test_the_longest_label_window_is_the_last_that_meets_the_minimums(cdnow):
    config = SufficiencyConfig()
    longest = longest_label_window(cdnow, SHORT_CUTOFF, 4, 30, config)
    # 1997-09-01 less 123 days less 3 steps of 30 is 1997-01-31: 30 days after the first purchase.
    assert longest == 123
    assert windows_fit(cdnow, SHORT_CUTOFF, LabelWindows(longest, 4, 30), config)
    assert not windows_fit(cdnow, SHORT_CUTOFF, LabelWindows(longest + 1, 4, 30), config)
    assert longest_label_window(cdnow, SHORT_CUTOFF, 2, 30, config) == longest + 60  # two steps fewer
    # Minimums no label window can meet give none, however short.
    assert longest_label_window(cdnow, SHORT_CUTOFF, 4, 30, SufficiencyConfig(min_customers=10**6)) == 0
    assert longest_label_window(cdnow, pd.Timestamp("1990-01-01"), 4, 30, config) == 0


def test_the_requested_windows_fit_from_the_earliest_cutoff_to_the_end_of_the_data(cdnow):
    config = SufficiencyConfig()
    earliest, end = supported_cutoffs(cdnow, REQUESTED, config)
    assert end == data_end(cdnow) == pd.Timestamp("1998-07-01")  # the day after the last purchase
    assert earliest == pd.Timestamp("1997-10-29")  # less 181 days and 3 steps of 30: 1997-01-31
    assert windows_fit(cdnow, earliest, REQUESTED, config) and windows_fit(cdnow, end, REQUESTED, config)
    assert not windows_fit(cdnow, earliest - DAY, REQUESTED, config)
    assert supported_cutoffs(cdnow, REQUESTED, SufficiencyConfig(min_customers=10**6)) is None


def test_a_stale_log_moves_the_earliest_cutoff_to_the_next_recent_order(cdnow):
    # No orders from July to mid-November: from 1997-10-29, where the windows first fit, the latest order
    # is more than 90 days old until the first one after the gap.
    gap = (cdnow["timestamp"] >= "1997-07-01") & (cdnow["timestamp"] < "1997-11-15")
    stale = cdnow[~gap]
    earliest, _ = supported_cutoffs(stale, REQUESTED, SufficiencyConfig())
    assert earliest == pd.Timestamp("1997-11-16")  # the day after the first order after the gap
    assert not windows_fit(stale, earliest - DAY, REQUESTED, SufficiencyConfig())


def test_a_refusal_says_which_horizon_and_which_cutoffs_would_work(cdnow):
    with pytest.raises(InsufficientData) as caught:
        choose_windows(cdnow, SHORT_CUTOFF, REQUESTED, SufficiencyConfig(), extend=False, min_label_days=30)
    message = str(caught.value)
    assert "not enough data before 1997-09-01 to train on 4 windows of 181 days, 30 days apart" in message
    assert "days of history: found -28, need at least 30" in message  # what is missing, as before
    assert "at 1997-09-01: label windows of at most 123 days (4 windows, 30 days apart)" in message
    assert "181-day windows: cutoffs from 1997-10-29 to 1998-07-01 (the end of the data)" in message
    assert "a backtest also needs 181 days of data after its cutoff: cutoffs from 1997-10-29 to 1998-01-01" in message
    assert "training.extend_short_history: true" in message


def test_short_history_trains_on_the_longest_windows_it_holds(cdnow):
    config = SufficiencyConfig()
    assert choose_windows(cdnow, SHORT_CUTOFF, REQUESTED, config, True, 30) == LabelWindows(123, 4, 30)
    # The configured windows first; fewer only when they cannot hold min_label_days.
    assert choose_windows(cdnow, SHORT_CUTOFF, REQUESTED, config, True, 150) == LabelWindows(153, 3, 30)
    assert choose_windows(cdnow, SHORT_CUTOFF, REQUESTED, config, True, 170) == LabelWindows(181, 2, 30)
    # Enough history for the requested windows: they are used as they are.
    assert choose_windows(cdnow, pd.Timestamp("1998-01-01"), REQUESTED, config, True, 30) == REQUESTED
    with pytest.raises(InsufficientData, match=r"no label window of training.min_label_days \(200\) or more"):
        choose_windows(cdnow, SHORT_CUTOFF, REQUESTED, config, True, 200)
