"""The loader's fast path: a clean CSV or Parquet input read, checked and cleaned with Arrow kernels.

The pandas code of :mod:`tiercast.features.loading` is the reference: it reads every form the contract accepts
and words every refusal. This module reads the forms clean exports are made of (UTF-8 CSV whose rows all fit
the header; Parquet text, integer, float and timestamp columns; plain numbers; ISO 8601 instants) a column at a
time with ``pyarrow.compute``. The moment a column holds anything else, a value to refuse or a form it does not
read (a formatted number such as ``1,234.50``, an odd date, a float id, a row with the wrong number of fields, an
undecodable byte...), it raises :class:`NotFast` and the loader reads the file again the pandas way, which then
cleans it or raises the contract's DataError. Both paths give the same values and the same cleaning report
(``tests/features/test_columnar.py`` holds them to it).

Text stays in Arrow: text columns come out as pandas' Arrow-backed ``str`` dtype (:data:`TEXT`, missing = NaN),
with no Python object per row.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from tiercast.features.encoding import arrow_codes
from tiercast.features.schema import EARLIEST, LATEST, MISSING_IDS, Column, Table

# pandas' Arrow-backed string dtype with NaN for missing (pandas 3's default `str`): comparisons give plain
# numpy booleans, as on object columns.
TEXT = pd.StringDtype("pyarrow", na_value=np.nan)

# The cleaning report's wording of what the fast path may change in place (the pandas path words them alike).
STRIPPED_IDS = "customer ids with surrounding whitespace stripped"
OFFSETS_CONVERTED = "{} values with a UTC offset converted to UTC"
TIMEZONES_CONVERTED = "{} values with a timezone converted to UTC"

# What Python's str.strip() removes (every character whose isspace() is true), so that Arrow trims exactly the
# same characters; written out, as finding them costs half a second at import.
WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
              "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
# Plain decimal numbers of at most 15 characters: parsed to the same float by pandas and Arrow (both round such
# a number correctly); anything else (exponents, signs of currency, commas, inf, nan) goes to the pandas path.
_PLAIN_NUMBER = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)$"
_LONGEST_PLAIN_NUMBER = 15
# ISO 8601 instants with valid fields (schema.INSTANT_PATTERN, but hours 00-23, minutes and seconds 00-59, months
# 01-12, days 01-31): a day past its month's end fails Arrow's parse, which sends the file to the pandas path.
_INSTANT = (r"^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
            r"(?:[T ](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?"
            r"(?:Z|[+-](?:[01][0-9]|2[0-3]):?[0-5][0-9])?)?$")
_WITH_OFFSET = r"(?:[Zz]|[+-][0-9]{2}:?[0-9]{2})$"
# From this many rows sharing a customer and an instant with a neighbour (a log of invoice lines has nearly
# every row so), identical rows are found by one hash per row: below it, coding the columns costs less than
# loading the compiled hashing.
HASHED_FROM_ROWS = 50_000


class NotFast(Exception):
    """The input holds something the fast path does not read or would refuse: the pandas path takes it."""


@dataclass
class FastColumns:
    """The cleaned canonical columns of one file, and what cleaning changed (the report's ``changes``, in the
    order the pandas path notes them)."""

    columns: dict[str, pa.ChunkedArray]
    rows_read: int
    notes: list[tuple[str, int]] = field(default_factory=list)


def _columns_to_read(path: Path, csv: bool, encoding: str, mapping: dict[str, str], spec: Table,
                     keep_others: bool) -> list[tuple[str, str]]:
    """(name in the file, canonical name) of each column to read; NotFast for a header the pandas path is to
    word (a column named twice, ignoring case and surrounding spaces, a required one missing, one without a
    name) or a declared encoding other than UTF-8."""
    if csv:
        if codecs.lookup(encoding).name != "utf-8":
            raise NotFast("a declared encoding other than UTF-8")
        reader = pa_csv.open_csv(path)
        in_file = reader.schema.names
        reader.close()
    else:
        schema = pq.read_schema(path)
        # pandas makes a stored index (a frame written after filtering) the index, not a column
        stored_index = (schema.pandas_metadata or {}).get("index_columns", [])
        in_file = [name for name in schema.names if name not in stored_index]
    renamed = {name: canonical for canonical, name in mapping.items()}
    names = [renamed.get(name.strip() if csv else name, name.strip() if csv else name) for name in in_file]
    folded = [name.strip().casefold() for name in names]
    if "" in folded or len(set(folded)) < len(folded) or any(name not in names for name in spec.required):
        raise NotFast("a column without a name, named twice, or missing")
    return [(file_name, name) for file_name, name in zip(in_file, names, strict=True)
            if keep_others or name in spec.names]


def _csv_options(read: list[tuple[str, str]]) -> pa_csv.ConvertOptions:
    return pa_csv.ConvertOptions(column_types={file_name: pa.string() for file_name, _ in read},
                                 include_columns=[file_name for file_name, _ in read], strings_can_be_null=False)


def read_canonical(path: Path, csv: bool, encoding: str, mapping: dict[str, str], spec: Table,
                   keep_others: bool) -> dict[str, pa.ChunkedArray]:
    """The columns of ``spec`` the file has (with ``keep_others``, every column), under the canonical names
    ``mapping`` gives: CSV cells as text, Parquet columns as stored (INT96 in microseconds, as the pandas path
    reads them). Only those columns are read. A header naming a column twice (ignoring case and surrounding
    spaces), a required column missing or a column without a name is left to the pandas path to word."""
    try:
        read = _columns_to_read(path, csv, encoding, mapping, spec, keep_others)
        if csv:
            table = pa_csv.read_csv(path, convert_options=_csv_options(read))
        else:
            table = pq.read_table(path, columns=[file_name for file_name, _ in read],
                                  coerce_int96_timestamp_unit="us",
                                  read_dictionary=_repeated_text(path, read, spec) or None)
    except (pa.ArrowException, OSError, ValueError) as err:  # misfit rows, bad bytes, an unreadable file
        # Arrow's message may quote a row, which may hold personal data: it is not kept
        raise NotFast("a file Arrow does not read") from err
    if table.num_rows == 0:
        raise NotFast("no rows")
    if keep_others:
        _require_plain(table, [file_name for file_name, name in read if name not in spec.names])
    columns = dict(zip([name for _, name in read], table.columns, strict=True))
    # each column holds its own buffers: one dropped from the dict is freed, without waiting for the others
    return columns if keep_others else {name: columns[name] for name in spec.names if name in columns}


# Rows decoded to measure a Parquet file's rows in memory.
_SAMPLE_ROWS = 65_536


def _parquet_batch_rows(parquet: pq.ParquetFile, columns: list[str], batch_bytes: int) -> int:
    """Rows of ``columns`` that take about ``batch_bytes`` once decoded, as measured on the file's first rows.
    The sizes Parquet stores say little of it: a dictionary-encoded text column of line items stores a tenth
    of what it decodes to, and batches cut by them held gigabytes."""
    sample = next(parquet.iter_batches(batch_size=_SAMPLE_ROWS, columns=columns), None)
    if sample is None or sample.num_rows == 0:
        return _SAMPLE_ROWS
    return max(1, batch_bytes * sample.num_rows // max(1, sample.nbytes))


def _repeated_text(path: Path, read: list[tuple[str, str]], spec: Table) -> list[str]:
    """The text columns (ids, labels, text) of which most of the file's first rows share their value with
    another: read with their dictionary, these are cleaned once a value (:func:`_value_by_value`), where
    decoding every row's text took most of the reading. Text that seldom repeats (an order id per row) costs
    more to read so."""
    kinds, schema = {column.name: column.kind for column in spec.columns}, pq.read_schema(path)
    text = [file_name for file_name, name in read if kinds.get(name) in ("id", "text", "label")
            and pa.types.is_string(schema.field(file_name).type)]
    if not text:
        return []
    sample = next(pq.ParquetFile(path, read_dictionary=text).iter_batches(batch_size=_SAMPLE_ROWS, columns=text),
                  None)
    if sample is None:
        return []
    return [name for name in text if pa.types.is_dictionary(sample.column(name).type)
            and 2 * len(pc.unique(sample.column(name).indices)) <= sample.num_rows]


def read_canonical_batches(path: Path, csv: bool, encoding: str, mapping: dict[str, str], spec: Table,
                           batch_bytes: int, only: tuple[str, ...] | None = None
                           ) -> Iterator[dict[str, pa.ChunkedArray]]:
    """:func:`read_canonical` (without ``keep_others``) a batch of rows at a time, in the file's order: about
    ``batch_bytes`` of a CSV's text, or of a Parquet file's columns once decoded, each; ``only`` reads just
    those canonical columns. NotFast as there, also for a file without rows (once every batch is read)."""
    rows = 0
    try:
        read = _columns_to_read(path, csv, encoding, mapping, spec, False)
        read = [(file_name, name) for file_name, name in read if only is None or name in only]
        if csv:
            batches: Iterator[pa.RecordBatch] = iter(pa_csv.open_csv(
                path, read_options=pa_csv.ReadOptions(block_size=batch_bytes), convert_options=_csv_options(read)))
        else:
            parquet = pq.ParquetFile(path, coerce_int96_timestamp_unit="us")
            file_names = [file_name for file_name, _ in read]
            batch_rows = _parquet_batch_rows(parquet, file_names, batch_bytes)
            repeated = _repeated_text(path, read, spec)
            if repeated:
                parquet = pq.ParquetFile(path, coerce_int96_timestamp_unit="us", read_dictionary=repeated)
            batches = parquet.iter_batches(batch_size=batch_rows, columns=file_names)
        for batch in batches:
            rows += batch.num_rows
            if batch.num_rows:
                columns = {name: pa.chunked_array([batch.column(file_name)]) for file_name, name in read}
                yield {name: columns[name] for name in spec.names if name in columns}
    except (pa.ArrowException, OSError, ValueError) as err:  # as read_canonical: the message is not kept
        raise NotFast("a file Arrow does not read") from err
    if rows == 0:
        raise NotFast("no rows")


# Column types that read into pandas alike with or without the frame's own pandas metadata.
_PLAIN_NUMPY_TYPES = ("object", "bool", "float16", "float32", "float64", "int8", "int16", "int32", "int64",
                      "uint8", "uint16", "uint32", "uint64")


def _require_plain(table: pa.Table, names: list[str]) -> None:
    """Columns kept as read must be text, numbers or booleans stored without a pandas dtype of their own (a
    nullable Int64, a categorical...), which only the pandas path restores."""
    stored = {column.get("name"): column.get("numpy_type")
              for column in (table.schema.pandas_metadata or {}).get("columns", [])}
    for name in names:
        kind = table.schema.field(name).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind)
                or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
            raise NotFast(f"a {kind} column kept as read")
        if stored.get(name, "object") not in _PLAIN_NUMPY_TYPES:
            raise NotFast("a column with a pandas dtype of its own")


def clean(columns: dict[str, pa.ChunkedArray], spec: Table) -> FastColumns:
    """Every column of ``spec`` among ``columns``, checked and cleaned as :mod:`tiercast.features.loading` does
    it (see :mod:`tiercast.features.schema` for the rules of each kind); others are kept as read. The columns
    are handed over: each is taken out of ``columns`` as it is cleaned, so the file is not held twice."""
    cleaned = FastColumns({}, len(next(iter(columns.values()))))
    try:
        for name in list(columns):
            raw = columns.pop(name)
            column = next((c for c in spec.columns if c.name == name), None)
            if column is None:
                cleaned.columns[name] = raw
            elif column.kind == "id":
                stripped: list[int] = []  # rows whose id was stripped, by chunk
                cleaned.columns[name] = _value_by_value(
                    raw, lambda values, rows_each: _ids(values, column, stripped, rows_each))  # noqa: B023
                cleaned.notes.append((STRIPPED_IDS, sum(stripped)))
            elif column.kind == "instant":
                cleaned.columns[name] = _instants(raw, column, cleaned.notes)
            elif column.kind == "number":
                cleaned.columns[name] = _numbers(raw, column)
            else:
                cleaned.columns[name] = _value_by_value(raw, lambda values, _: _text(values, column))  # noqa: B023
    except pa.ArrowInvalid as err:  # a value Arrow's parser does not take (a date past its month's end)
        raise NotFast("a value Arrow does not parse") from err
    return cleaned


def _any(mask: pa.ChunkedArray | pa.Array) -> bool:
    return bool(pc.any(mask).as_py())


def _as_text(raw: pa.ChunkedArray) -> pa.ChunkedArray:
    """Text as the pandas path makes it of a column: strings as they are, whole numbers (no nulls: pandas reads
    an integer column with nulls as floats) in decimal; any other type goes to the pandas path."""
    kind = raw.type
    if pa.types.is_dictionary(kind):
        raw, kind = raw.cast(kind.value_type), kind.value_type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return raw
    if pa.types.is_integer(kind) and raw.null_count == 0:
        return raw.cast(pa.string())
    raise NotFast(f"a {kind} column where text is expected")


def _stripped(raw: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.utf8_trim(raw, characters=WHITESPACE)


def _check_length(text: pa.ChunkedArray, column: Column) -> None:
    """NotFast for a value of more characters than the column allows. No text has more characters than bytes: the
    characters are counted only where the bytes are more (counting them took half of cleaning a column of ids)."""
    if column.max_length is None or (pc.max(pc.binary_length(text)).as_py() or 0) <= column.max_length:
        return
    if (pc.max(pc.utf8_length(text)).as_py() or 0) > column.max_length:
        raise NotFast("a value longer than allowed")


def _value_by_value(raw: pa.ChunkedArray, clean: Callable[[pa.ChunkedArray, np.ndarray | None], pa.ChunkedArray]
                    ) -> pa.ChunkedArray:
    """``clean(values, rows_each)`` of a text column. Text read with its dictionary (the ids and categories of
    line items repeat) is cleaned once per distinct value a chunk's rows hold, each row then taking its value's
    result; ``rows_each`` counts the rows of each value (None: one row each)."""
    if not pa.types.is_dictionary(raw.type) or raw.null_count:
        return clean(raw, None)
    parts = []
    for chunk in raw.chunks:
        held, rows_each = used_values(chunk)
        renumbered = np.zeros(len(chunk.dictionary), dtype=np.int64)
        renumbered[held] = np.arange(len(held))
        values = clean(pa.chunked_array([chunk.dictionary.take(pa.array(held))]), rows_each)
        parts.extend(values.take(pa.array(renumbered[chunk.indices.to_numpy(zero_copy_only=False)])).chunks)
    return pa.chunked_array(parts, type=parts[0].type if parts else raw.type.value_type)


def used_values(chunk: pa.DictionaryArray) -> tuple[np.ndarray, np.ndarray]:
    """The positions in a dictionary-encoded chunk's dictionary of the values its rows hold (a batch's dictionary
    may hold values of rows outside it), and the rows holding each."""
    rows_each = np.bincount(chunk.indices.to_numpy(zero_copy_only=False), minlength=len(chunk.dictionary))
    held = np.flatnonzero(rows_each)
    return held, rows_each[held]


def _ids(raw: pa.ChunkedArray, column: Column, stripped: list[int], rows_each: np.ndarray | None = None
         ) -> pa.ChunkedArray:
    """Ids checked and stripped; the rows whose id was stripped are added to ``stripped``."""
    raw = _as_text(raw)
    if raw.null_count:
        raise NotFast("a missing id")
    ids = _stripped(raw)
    if _any(pc.equal(ids, "")) or _any(pc.is_in(pc.utf8_lower(ids), pa.array(MISSING_IDS))):
        raise NotFast("an empty id")
    _check_length(ids, column)
    changed = pc.not_equal(ids, raw)
    stripped.append(int(pc.sum(changed).as_py() or 0) if rows_each is None
                    else int(rows_each[changed.to_numpy(zero_copy_only=False)].sum()))
    return ids


def _text(raw: pa.ChunkedArray, column: Column) -> pa.ChunkedArray:
    text = _stripped(_as_text(raw).fill_null(""))
    _check_length(text, column)
    if column.kind == "label":
        if _any(pc.equal(text, "")) or not pc.all(pc.string_is_ascii(text)).as_py():
            raise NotFast("a blank label, or one whose lower case Python and Arrow may write differently")
        return pc.ascii_lower(text)
    return _blank_as_missing(text, pc.equal(text, ""))  # blank means missing


def _written(raw: pa.ChunkedArray, column: Column, form: str) -> pa.ChunkedArray:
    """A number or instant column's stripped text, blank as missing, when every value is written in ``form``
    (a regular expression) and none is blank where the column is required."""
    text = _stripped(_as_text(raw).fill_null(""))
    blank = pc.equal(text, "")
    if column.required and _any(blank):
        raise NotFast("a blank value where one is required")
    text = _blank_as_missing(text, blank)
    if pc.all(pc.match_substring_regex(text, form)).as_py() is False:
        raise NotFast("a value in another form")
    return text


def _blank_as_missing(text: pa.ChunkedArray, blank: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.if_else(blank, pa.scalar(None, text.type), text)


def _numbers(raw: pa.ChunkedArray, column: Column) -> pa.ChunkedArray:
    kind = raw.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        values = raw.cast(pa.float64(), safe=False)
        if column.required and values.null_count:
            raise NotFast("a missing number")
        if _any(pc.invert(pc.is_finite(values))):
            raise NotFast("a number that is not finite")
    else:
        text = _written(raw, column, _PLAIN_NUMBER)
        if (pc.max(pc.utf8_length(text)).as_py() or 0) > _LONGEST_PLAIN_NUMBER:
            raise NotFast("a number longer than the plain ones both paths read alike")
        values = text.cast(pa.float64())
    if column.bound is not None and _any(pc.greater(pc.abs(values), column.bound)):
        raise NotFast("a number beyond the bound")
    return values


def _instants(raw: pa.ChunkedArray, column: Column, notes: list[tuple[str, int]]) -> pa.ChunkedArray:
    """Naive UTC timestamps in nanoseconds: ISO 8601 text parsed (offsets converted), Parquet timestamps of any
    unit converted; a value outside the supported range, or missing where required, goes to the pandas path."""
    kind = raw.type
    if pa.types.is_timestamp(kind):
        if kind.tz is not None:
            notes.append((TIMEZONES_CONVERTED.format(column.name), len(raw) - raw.null_count))
        parsed = raw.cast(pa.timestamp(kind.unit), safe=False)  # the same instants, in UTC
    else:
        text = _written(raw, column, _INSTANT)
        offset = pc.fill_null(pc.match_substring_regex(text, _WITH_OFFSET), False)
        notes.append((OFFSETS_CONVERTED.format(column.name), int(pc.sum(offset).as_py() or 0)))
        parsed = _parse_instants(text, offset)
    if column.required and parsed.null_count:
        raise NotFast("a missing instant")
    unit = parsed.type.unit
    earliest, latest = pa.scalar(EARLIEST, pa.timestamp(unit)), pa.scalar(LATEST, pa.timestamp(unit))
    if _any(pc.less(parsed, earliest)) or _any(pc.greater(parsed, latest)):
        raise NotFast("an instant outside the supported range")
    return parsed.cast(pa.timestamp("ns"))


def _parse_instants(text: pa.ChunkedArray, offset: pa.ChunkedArray) -> pa.ChunkedArray:
    """Arrow parses naive text into a naive timestamp and text with an offset into a UTC one, but not a mix of
    the two in one cast: each part is parsed on its own and put back in place."""
    if not _any(offset):
        return text.cast(pa.timestamp("us"))
    if pc.all(offset).as_py():
        return text.cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
    with_offset = offset.to_numpy()
    utc = pc.filter(text, offset).cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
    naive = pc.filter(text, pc.invert(offset)).cast(pa.timestamp("us"))
    positions = np.concatenate([np.flatnonzero(with_offset), np.flatnonzero(~with_offset)])
    back = np.empty_like(positions)
    back[positions] = np.arange(len(positions))
    return pa.chunked_array([pa.concat_arrays([*utc.chunks, *naive.chunks]).take(pa.array(back))])


def _row_codes(values: pa.ChunkedArray) -> np.ndarray:
    """Codes grouping equal values of a cleaned column (missing values together), for finding identical rows."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return arrow_codes(values)[0]
    if pa.types.is_timestamp(values.type):
        values = values.cast(pa.int64())
    return pd.factorize(values.to_numpy())[0]


def repeats_an_id(ids: pa.ChunkedArray) -> bool:
    return pc.count_distinct(ids).as_py() < len(ids)


def customer_ranks(ids: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """Each row's rank among the distinct customer ids, sorted as text (by code point, as Python sorts it), and
    those ids in that order."""
    codes, distinct = arrow_codes(ids)
    order = pc.sort_indices(distinct)
    rank = np.empty(len(distinct), dtype=np.int64)
    rank[order.to_numpy()] = np.arange(len(distinct))
    return rank[codes], distinct.take(order)


def by_customer_and_time(columns: dict[str, pa.ChunkedArray], customer: np.ndarray | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """The order of a stable sort by customer_id, then timestamp (text sorts by code point, as Python's does),
    and each row's customer rank (``customer``, when given: :func:`customer_ranks`)."""
    if customer is None:
        customer = customer_ranks(columns["customer_id"])[0]
    keys = pa.table({"customer": customer, "timestamp": columns["timestamp"].cast(pa.int64())})
    order = pc.sort_indices(keys, sort_keys=[("customer", "ascending"), ("timestamp", "ascending")]).to_numpy()
    return order, customer


def identical_repeats(columns: dict[str, pa.ChunkedArray], order: np.ndarray, customer: np.ndarray
                      ) -> np.ndarray:
    """True for each row identical in every column to an earlier row, as loading.identical_repeats says, given
    the rows' ``order`` by customer and time and each row's ``customer`` rank (:func:`by_customer_and_time`).

    Identical rows share a customer and an instant, so only rows sharing both with a neighbour in that order
    are compared in full."""
    timestamp = columns["timestamp"].cast(pa.int64()).to_numpy()[order]
    ranked = customer[order]
    alike = (ranked[1:] == ranked[:-1]) & (timestamp[1:] == timestamp[:-1])
    shared = np.zeros(len(order), dtype=bool)
    shared[1:] |= alike
    shared[:-1] |= alike
    if shared.sum() >= HASHED_FROM_ROWS:
        found = _repeats_by_hashes(columns, order, np.flatnonzero(np.concatenate([[True], ~alike, [True]])))
        if found is not None:
            return found
    candidates = np.sort(order[shared])  # in the file's order: the first of a kind is not a repeat
    repeats = np.zeros(len(order), dtype=bool)
    if len(candidates):
        taken = pa.array(candidates)
        repeats[candidates] = pd.DataFrame({name: _row_codes(values.take(taken))
                                            for name, values in columns.items()}).duplicated().to_numpy()
    return repeats


def _repeats_by_hashes(columns: dict[str, pa.ChunkedArray], order: np.ndarray, starts: np.ndarray
                       ) -> np.ndarray | None:
    """:func:`identical_repeats` by one hash per row of the columns but customer and instant, which each run of
    rows sharing those (``order[starts[r]:starts[r + 1]]``) shares (:mod:`tiercast.features.row_hashes`): each
    row whose hash an earlier row of its run has is compared in full with the first such row. None when a
    column has no hash, or when two rows of one hash differ: coding the columns then tells them apart."""
    from tiercast.features.row_hashes import first_alike  # compiled: loaded only for this many rows

    first = first_alike({name: values for name, values in columns.items()
                         if name not in ("customer_id", "timestamp")}, order, starts)
    if first is None:
        return None
    later = np.flatnonzero(first >= 0)
    return first >= 0 if _equal_rows(columns, later, first[later]) else None


def _equal_rows(columns: dict[str, pa.ChunkedArray], rows: np.ndarray, others: np.ndarray) -> bool:
    """Whether each row at ``rows`` equals the row at ``others`` beside it in every column, as
    :func:`_row_codes` groups values: missing with missing, -0.0 with 0.0, NaN with NaN and with missing."""
    if not len(rows):
        return True
    for values in columns.values():
        if pa.types.is_floating(values.type):
            a, b = (values.take(at).cast(pa.float64()).to_numpy(zero_copy_only=False) for at in (rows, others))
            if not np.all((a == b) | (np.isnan(a) & np.isnan(b))):
                return False
            continue
        a, b = values.take(rows), values.take(others)
        same = pc.fill_null(pc.equal(a, b), False)
        both_missing = pc.and_(pc.is_null(a), pc.is_null(b))
        if not pc.all(pc.or_(same, both_missing)).as_py():
            return False
    return True


def to_frame(columns: dict[str, pa.ChunkedArray], order: np.ndarray | None = None) -> pd.DataFrame:
    """The rows (at positions ``order``, when given) as a pandas frame: text as :data:`TEXT`, timestamps
    datetime64[ns]. The columns are handed over: each is taken out of ``columns`` once converted, so the rows
    are not held twice."""
    positions = None if order is None else pa.array(order)
    converted = {}
    for name in list(columns):
        values = columns.pop(name)
        if positions is not None:
            values = values.take(positions)
        if pa.types.is_string(values.type):
            values = values.cast(pa.large_string())  # what pandas' Arrow-backed strings hold
        converted[name] = pa.table({name: values}).to_pandas(types_mapper={pa.large_string(): TEXT}.get)[name]
        del values
    return pd.DataFrame(converted, copy=False)
