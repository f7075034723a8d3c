"""Per-customer group reductions (:mod:`tiercast.features.aggregates`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tiercast.features.aggregates import distinct, group_max, group_min, reduce_groups
from tiercast.features.pair_codes import pair_codes


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("ufunc", [np.maximum, np.minimum])
def test_groups_reduced_a_run_at_a_time_are_ufunc_at(ordered, ufunc) -> None:
    rng = np.random.default_rng(11)
    codes = rng.integers(0, 500, 20_000)  # about 40 values each; some codes have none
    codes = np.sort(codes) if ordered else codes
    values = rng.normal(size=len(codes))
    values[rng.integers(0, len(codes), 30)] = np.nan  # a NaN makes its group's result NaN, as ufunc.at does
    values[rng.integers(0, len(codes), 30)] = np.inf
    values[rng.integers(0, len(codes), 30)] = -np.inf
    start = np.full(600, np.inf if ufunc is np.minimum else -np.inf)
    expected = start.copy()
    ufunc.at(expected, codes, values)
    np.testing.assert_array_equal(reduce_groups(ufunc, codes, values, start.copy()), expected)


def test_whole_numbers_reduce_exactly_and_into_what_the_array_already_holds() -> None:
    codes = np.array([0, 0, 1, 3, 3, 3])
    stamps = np.array([2**62 + 5, 2**62 + 1, 7, 9, 2**62, 8], dtype=np.int64)  # beyond float precision
    held = np.array([3, np.iinfo(np.int64).max, 1, np.iinfo(np.int64).max], dtype=np.int64)
    assert reduce_groups(np.minimum, codes, stamps, held).tolist() == [3, 7, 1, 8]


def test_empty_groups_and_no_rows_are_missing() -> None:
    assert np.isnan(group_max(np.array([], dtype=np.int64), np.array([]), 3)).all()
    out = group_min(np.array([1, 1]), np.array([4.0, 2.0]), 3)
    assert np.isnan(out[[0, 2]]).all() and out[1] == 2.0
    assert np.isnan(group_max(np.array([0]), np.array([-np.inf]), 1)).all()  # only -inf: as no value


@pytest.mark.parametrize("customers_together", [True, False])
def test_pair_codes_number_the_pairs_as_factorize_does(customers_together) -> None:
    rng = np.random.default_rng(5)
    customers = rng.integers(0, 40, 3000)
    if customers_together:
        customers = np.sort(customers)
    keys = rng.integers(0, 25, 3000)
    keys[1:][rng.random(2999) < 0.5] = -7  # runs of one key, and a key of lines apart
    expected = pd.factorize(keys * 40 + customers)[0]
    assert pair_codes(keys, customers).tolist() == expected.tolist()
    assert pair_codes(keys[:0], customers[:0]).tolist() == []


@pytest.mark.parametrize("keys", [
    np.random.default_rng(6).integers(-50, 50, 2000),  # negative: sorted by numpy's unique
    np.sort(np.random.default_rng(7).integers(0, 10**12, 2000)),  # in order already: neighbours compared
    np.sort(np.random.default_rng(8).integers(0, 5, 2000)),  # in order, long runs
    np.random.default_rng(9).integers(0, 3000, 2000),  # a small range: counted in a table
    np.random.default_rng(10).integers(0, 10**9, 2000),  # a wide range: sorted
    np.array([7]), np.array([4, 4, 0]), np.array([0, 0]),
], ids=["negative", "in-order", "in-order-runs", "small-range", "wide-range", "one", "two-kinds", "one-kind"])
def test_distinct_keys_are_sorted_with_the_lines_of_each(keys) -> None:
    values, lines = distinct(keys)
    expected_values, expected_lines = np.unique(keys, return_counts=True)
    assert values.dtype == keys.dtype and lines.dtype == np.float64
    assert values.tolist() == expected_values.tolist() and lines.tolist() == expected_lines.tolist()
    assert [a.tolist() for a in distinct(keys[:0])] == [[], []]
