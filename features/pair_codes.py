"""Codes of the distinct (key, customer) pairs of a history's lines, such as the orders of each customer."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tiercast.features.encoding import IntArray


def pair_codes(keys: IntArray, customers: IntArray) -> IntArray:
    """Codes 0..k-1 of the distinct (key, customer) pairs of the lines, numbered in order of first appearance as
    ``pd.factorize`` numbers them; ``customers`` are codes >= 0. A line of the same pair as the line before it
    (the lines of one order, together in a history's customer and time order) takes its code without a hash:
    only the first line of each run is hashed."""
    if not len(keys):
        return np.empty(0, dtype=np.int64)
    pairs = keys * (int(customers.max()) + 1) + customers
    starts = np.empty(len(pairs), dtype=bool)
    starts[0] = True
    np.not_equal(pairs[1:], pairs[:-1], out=starts[1:])
    codes = pd.factorize(pairs[starts])[0]
    return codes[np.cumsum(starts) - 1].astype(np.int64, copy=False)
