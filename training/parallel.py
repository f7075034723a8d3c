"""Row-wise work on two halves at once, for large requests.

NumPy, SciPy's special functions and sparse products, and LightGBM release the GIL in their loops, so
two threads can use both cores while one request is scored (the service answers one request at a time
per worker; its second core is otherwise idle). Only functions whose every output row depends on its own
input row alone are split, so a row gets exactly the same numbers in any batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import numpy as np

SPLIT_FROM_ROWS = 256  # below this, starting the second half costs more than it saves
_HELPER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tiercast-rows")
_IN_HELPER = threading.local()  # set in the helper thread while it works on a half

Output = TypeVar("Output")


class Rows(Protocol):
    """Anything with rows that slices into rows: an array, or the models' prepared inputs."""

    def __len__(self) -> int: ...
    def __getitem__(self, rows: slice) -> Any: ...


def by_halves(function: Callable[[Any], Output], rows: Rows) -> Output:
    """``function(rows)`` (an array, or tuples of arrays, with one row per input row), computed on the two
    halves of ``rows`` at once when there are at least :data:`SPLIT_FROM_ROWS` of them.

    Called again inside a half (a model explained on a half of the rows), it splits only in the calling
    thread: a half running in the helper thread computes its rows itself rather than wait for itself."""
    if len(rows) < SPLIT_FROM_ROWS or getattr(_IN_HELPER, "active", False):
        return function(rows)
    half = len(rows) // 2
    second = _HELPER.submit(_in_helper, function, rows[half:])
    first = function(rows[:half])
    return _joined(first, second.result())


def _in_helper(function: Callable[[Any], Output], rows: Rows) -> Output:
    _IN_HELPER.active = True
    try:
        return function(rows)
    finally:
        _IN_HELPER.active = False


def _joined(first: Any, second: Any) -> Any:
    """Two halves' outputs as one: arrays concatenated, tuples element by element."""
    if isinstance(first, tuple):
        return tuple(_joined(a, b) for a, b in zip(first, second, strict=True))
    return np.concatenate([first, second])
