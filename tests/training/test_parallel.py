"""Row-wise work on two halves at once gives what one pass gives, in the same order."""

from __future__ import annotations

import threading

import numpy as np

from tiercast.training.parallel import SPLIT_FROM_ROWS, by_halves


def test_halves_give_one_pass_result_for_arrays_and_tuples():
    rows = np.random.default_rng(0).normal(size=(SPLIT_FROM_ROWS * 2 + 1, 3))
    threads: set[str] = set()

    def work(part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        threads.add(threading.current_thread().name)
        return part.sum(axis=1, keepdims=True), np.exp(part)

    total, exp = by_halves(work, rows)
    assert np.array_equal(total, rows.sum(axis=1, keepdims=True)) and np.array_equal(exp, np.exp(rows))
    assert len(threads) == 2  # the second half ran beside the first
    assert np.array_equal(by_halves(np.sqrt, np.abs(rows)), np.sqrt(np.abs(rows)))


def test_few_rows_stay_in_the_calling_thread():
    threads: list[str] = []
    by_halves(lambda part: threads.append(threading.current_thread().name) or part, np.ones((SPLIT_FROM_ROWS - 1, 2)))
    assert threads == [threading.current_thread().name]
