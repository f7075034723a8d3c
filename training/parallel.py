"""Row-wise work on two halves at once, for large requests.

Path attribution's compiled tree walk releases the GIL (numba's ``nogil``), so two threads can use both
cores while one request is scored (the service answers one request at a time per worker; its second core
is otherwise idle). Only functions whose every output row depends on its own input row alone are split,
so a row gets exactly the same numbers in any batch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

# Below this many rows, starting the second half costs more than it saves (see docs/performance.md).
SPLIT_FROM_ROWS = 96
_HELPER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tiercast-rows")


def _new_helper() -> None:
    """A forked process (a batch engine's worker) inherits the executor but not its thread: a fresh one."""
    global _HELPER
    _HELPER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tiercast-rows")


os.register_at_fork(after_in_child=_new_helper)

Output = TypeVar("Output", np.ndarray, tuple[np.ndarray, ...])


def by_halves(function: Callable[[np.ndarray], Output], rows: np.ndarray) -> Output:
    """``function(rows)`` (an array, or a tuple of arrays, with one row per input row), computed on the two
    halves of ``rows`` at once when there are at least :data:`SPLIT_FROM_ROWS` of them."""
    if len(rows) < SPLIT_FROM_ROWS:
        return function(rows)
    half = len(rows) // 2
    second = _HELPER.submit(function, rows[half:])
    first = function(rows[:half])
    if isinstance(first, tuple):
        halves = zip(first, second.result(), strict=True)
        return tuple(np.concatenate(pair) for pair in halves)  # type: ignore[return-value]
    return np.concatenate([first, second.result()])
