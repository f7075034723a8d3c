"""Functions compiled by numba, for the loops numpy and Arrow have no kernel for (a tree walk, a row's hash)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from numba import njit


def compiled(function: Callable[..., Any]) -> Any:
    """``function`` compiled by numba, without the GIL (so that threads may run it side by side), and cached on
    disk. Where numba finds no writable cache folder (neither beside the source nor in the user's cache) it
    refuses caching at import time; a read-only install then compiles once per process instead."""
    try:
        return njit(nogil=True, cache=True)(function)
    except RuntimeError:
        return njit(nogil=True)(function)
