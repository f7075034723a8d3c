"""String columns to integer codes and timestamps to nanoseconds: the builder's and the labels' shared encoding.

Every aggregate of the feature builder is a numpy group reduction over integer customer codes, so each
string column (customer ids, order ids, categories, channels) is first turned into codes, and each
timestamp into int64 nanoseconds since the epoch (naive = UTC). Text the loader keeps in Arrow (pandas' Arrow-backed
strings) is encoded by Arrow's hash kernel without a Python object per row; other columns by pandas' factorize.
Both give the codes in order of first appearance, so either column gives the same codes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

NS_PER_DAY = 86_400 * 10**9
NAT = np.iinfo(np.int64).min  # NaT as int64 nanoseconds

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def instant_ns(as_of: Any) -> int:
    """as_of (str, date, Timestamp; tz-aware converted to UTC) as int nanoseconds since the epoch."""
    ts = pd.Timestamp(as_of)
    if ts is pd.NaT:
        raise ValueError("as_of must be a date, got NaT")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(ts.as_unit("ns").value)


def instants_ns(values: pd.Series | np.ndarray) -> IntArray:
    """Timestamps as int64 ns since the epoch (naive = UTC); NaT becomes int64 min."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return np.asarray(values, dtype="datetime64[ns]").view(np.int64)


def encode(values: pd.Series | np.ndarray) -> tuple[IntArray, npt.NDArray[np.object_]]:
    """Integer codes (-1 = missing) and uniques (object array, in order of first appearance) of a string-like
    column of any dtype."""
    if _in_arrow(values):
        codes, uniques = arrow_codes(pa.array(values))
        return codes, uniques.to_numpy(zero_copy_only=False).astype(object, copy=False)
    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    return codes.astype(np.int64, copy=False), np.asarray(uniques, dtype=object)


def arrow_codes(values: pa.Array | pa.ChunkedArray) -> tuple[IntArray, pa.Array]:
    """:func:`encode` of an Arrow column, its distinct values left in Arrow."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = pc.dictionary_encode(values)
    return pc.fill_null(encoded.indices, -1).to_numpy().astype(np.int64, copy=False), encoded.dictionary


def _in_arrow(values: pd.Series | np.ndarray) -> bool:
    """Whether ``values`` is text held in Arrow (pandas' Arrow-backed strings)."""
    dtype = getattr(values, "dtype", None)
    if isinstance(dtype, pd.StringDtype):
        return dtype.storage == "pyarrow"
    return isinstance(dtype, pd.ArrowDtype) and (pa.types.is_string(dtype.pyarrow_dtype)
                                                 or pa.types.is_large_string(dtype.pyarrow_dtype))


def group_codes(values: pd.Series | np.ndarray) -> IntArray:
    """Codes (-1 = missing) that group equal values, such as the lines of one order_id."""
    if _in_arrow(values):  # the distinct values stay in Arrow: nearly every line of a log has an order_id of its own
        return arrow_codes(pa.array(values))[0]
    return encode(values)[0]


def sorted_codes(values: pd.Series, keep: npt.NDArray[np.bool_]) -> tuple[IntArray, npt.NDArray[np.object_]]:
    """Codes 0..k-1 of the kept rows' customer ids in sorted id order, and the sorted ids."""
    return sort_encoded(*encode(values), keep)


def sort_encoded(codes: IntArray, uniques: npt.NDArray[np.object_], keep: npt.NDArray[np.bool_]
                 ) -> tuple[IntArray, npt.NDArray[np.object_]]:
    """:func:`sorted_codes` from the column's :func:`encode` result."""
    codes = codes[keep]
    used = np.flatnonzero(np.bincount(codes[codes >= 0], minlength=len(uniques)))
    ids = uniques[used]
    order = _text_order(ids)
    rank = np.full(len(uniques), -1, dtype=np.int64)
    rank[used[order]] = np.arange(len(used))
    return rank[codes], ids[order]


def _text_order(ids: npt.NDArray[np.object_]) -> IntArray:
    """The order of a stable sort of distinct ids: by Arrow, which sorts text by code point as Python does, in
    less than half numpy's time on Python strings; by numpy when they are not all text."""
    try:
        text = pa.array(ids, pa.string())
    except (pa.ArrowException, UnicodeError):  # ids that are not text (numbers), or unencodable text
        return np.argsort(ids, kind="stable")
    if text.null_count:
        return np.argsort(ids, kind="stable")
    return pc.sort_indices(text).to_numpy().astype(np.int64, copy=False)


def lookup(values: pd.Series | np.ndarray, ids: npt.NDArray[np.object_]) -> IntArray:
    """Position of each row's customer id among `ids` (-1 when absent), one hash per distinct id."""
    codes, uniques = encode(values)
    position = pd.Index(ids).get_indexer(uniques)
    return np.where(codes >= 0, position[codes] if len(position) else -1, -1)
