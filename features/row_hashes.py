"""64-bit hashes of whole rows of Arrow columns, for finding identical rows without coding every column.

A log of invoice lines has nearly every line share its customer and instant with another line of its invoice,
so finding the lines identical to an earlier one compares nearly every row in full. Coding each column
(Arrow's hash kernel) and then pandas' ``duplicated`` over the codes took a third of loading such a log; a
compiled pass over each column's values and text bytes gives each row one hash instead.

Equal rows, as :func:`tiercast.features.loading.identical_repeats` sees them, get equal hashes: text by its
UTF-8 bytes, numbers by their bits with -0.0 as 0.0 and every NaN or missing number as one value, instants by
their nanoseconds. Unequal rows may share a hash, rarely: the caller compares the rows of one hash in full.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tiercast.features.compiled import compiled

# FNV-1a over a text's bytes. Missing texts share one hash, and so may other values: rows are compared in full.
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_MISSING_TEXT = np.uint64(0x9E3779B97F4A7C15)
_MISSING_NUMBER = np.uint64(0x7FF8000000000001)  # a NaN's bits: every missing number and every NaN alike


@compiled
def _text_hashes(offsets, data, valid, out):  # pragma: no cover - compiled
    """FNV-1a of the bytes of each text of an Arrow array (its offsets, data bytes and validity), into ``out``."""
    for i in range(out.shape[0]):
        if not valid[i]:
            out[i] = _MISSING_TEXT
            continue
        h = _FNV_OFFSET
        for j in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(data[j])) * _FNV_PRIME
        out[i] = h


@compiled
def _mix_into(hashes, values):  # pragma: no cover - compiled
    """Each row's hash so far, mixed with its next column's value (SplitMix64's finaliser on both)."""
    for i in range(hashes.shape[0]):
        x = hashes[i] * np.uint64(0x9E3779B97F4A7C15) + values[i]
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        hashes[i] = x ^ (x >> np.uint64(31))


@compiled
def _first_alike(order, starts, hashes, first):  # pragma: no cover - compiled
    """For each row of each run ``order[starts[r]:starts[r + 1]]`` (rows in the file's order), the first row of
    its run with its hash, into ``first`` (left as it is for the first of each hash). Short runs (an invoice's
    lines) compare each row with those before it; long ones sort their hashes, so that no run costs the square
    of its length."""
    for r in range(starts.shape[0] - 1):
        s, e = starts[r], starts[r + 1]
        if e - s <= 32:
            for a in range(s + 1, e):
                h = hashes[order[a]]
                for b in range(s, a):
                    if hashes[order[b]] == h:
                        first[order[a]] = order[b]
                        break
            continue
        run = order[s:e]
        run_hashes = hashes[run]
        by_hash = np.argsort(run_hashes, kind="mergesort")  # stable: equal hashes stay in the file's order
        group_first = run[by_hash[0]]
        for k in range(1, by_hash.shape[0]):
            if run_hashes[by_hash[k]] == run_hashes[by_hash[k - 1]]:
                first[run[by_hash[k]]] = group_first
            else:
                group_first = run[by_hash[k]]


def first_alike(columns: dict[str, pa.ChunkedArray], order: np.ndarray, starts: np.ndarray) -> np.ndarray | None:
    """For each row, the position of the first row of its run (``order[starts[r]:starts[r + 1]]``, each run's
    rows in the file's order) whose hash over ``columns`` is the same, or -1 for the first of each hash; None
    when a column is of a type without a hash here."""
    hashes = np.zeros(len(order), dtype=np.uint64)
    for values in columns.values():
        column = _column_hashes(values)
        if column is None:
            return None
        _mix_into(hashes, column)
    first = np.full(len(order), -1, dtype=np.int64)
    _first_alike(order.astype(np.int64, copy=False), starts.astype(np.int64, copy=False), hashes, first)
    return first


def _column_hashes(values: pa.ChunkedArray) -> np.ndarray | None:
    kind = values.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _text_column_hashes(values)
    if pa.types.is_floating(kind):
        numbers = values.cast(pa.float64()).to_numpy(zero_copy_only=False) + 0.0  # + 0.0: -0.0 is 0.0
        return np.where(np.isnan(numbers), _MISSING_NUMBER, numbers.view(np.uint64))
    if pa.types.is_timestamp(kind) or pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        whole = values.cast(pa.int64())
        present = pc.is_valid(whole).to_numpy(zero_copy_only=False)
        return np.where(present, whole.fill_null(0).to_numpy().view(np.uint64), _MISSING_NUMBER)
    return None


def _text_column_hashes(values: pa.ChunkedArray) -> np.ndarray:
    """Every text's :func:`_text_hashes`, chunk by chunk."""
    out = np.empty(len(values), dtype=np.uint64)
    offset_type = np.int64 if pa.types.is_large_string(values.type) else np.int32
    start = 0
    for chunk in values.chunks:
        _, offsets_buffer, data_buffer = chunk.buffers()
        offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[chunk.offset:chunk.offset + len(chunk) + 1]
        data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.empty(0, np.uint8)
        valid = pc.is_valid(chunk).to_numpy(zero_copy_only=False)
        _text_hashes(offsets, data, valid, out[start:start + len(chunk)])
        start += len(chunk)
    return out
