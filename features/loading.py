"""Read input files into the canonical frames, validate them, and report what cleaning changed.

The rules are the tables of :mod:`tiercast.features.schema`, checked here a whole column at a time.

The file suffix decides the format: ``.csv`` / ``.csv.gz`` (header row), ``.parquet`` / ``.pq``, and
``.txt`` / ``.txt.gz`` for CDNOW's own whitespace-separated format. Text files are decoded as
``data.encoding`` says (UTF-8 by default; a UTF-8 byte-order mark is honoured); one that does not decode is
refused with the byte and line where its undecodable text starts, and a hint when it is GB18030. Number cells
that are not plain numbers may be written as spreadsheets write them (:mod:`tiercast.features.number_text`).
Dates outside the supported range are refused as such, whatever the form (text, Parquet timestamps of any unit,
INT96, dates), and ids a tool stored as floats (Parquet 42.0) are read as the whole-number ids they were.
Every row of a text file must have one field per header column (:mod:`tiercast.features.text_rows`), and no
header may name a column twice, whatever its case.

CSV and Parquet files are first read by the fast path (:mod:`tiercast.features.columnar`: Arrow kernels, text kept
as Arrow strings); a file holding anything it does not take, bad input included, is read again by the pandas
code here, the reference, which cleans it or refuses it. Both give the same values and the same report.

Every problem raises :class:`~tiercast.features.schema.DataError` naming the file, the column and sample rows,
each row by the line of the file it starts on (by its position in a Parquet file), never showing a personal-data
column (:mod:`tiercast.features.privacy`); nothing is half-loaded. No row is dropped without a named reason in the :class:`CleaningReport`: rows
identical to an earlier one (:func:`identical_repeats`, the rule the service follows too) are kept and
counted unless ``data.drop_identical_rows`` says to drop them.
:func:`read_scores` reads a scored file (``tiercast score`` / ``backtest`` output) back, for the analyses.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from tiercast.features.schema import (
    CUSTOMERS,
    EARLIEST,
    INSTANT_PATTERN,
    INTERACTIONS,
    LATEST,
    MISSING_IDS,
    SCORED,
    TRANSACTIONS,
    Column,
    DataConfig,
    DataError,
    Table,
)
from tiercast.features import columnar
from tiercast.features.database import DatabaseSource, canonical_columns, is_database_url
from tiercast.features.columnar import FastColumns, NotFast
from tiercast.features.number_text import read_formatted
from tiercast.features.privacy import PersonalData
from tiercast.features.problems import Joined, Phrase, phrase
from tiercast.features.text_decoding import text_encoding, undecodable
from tiercast.features.text_rows import data_row_lines, read_csv_rows, refuse_misfit_rows, whitespace_rows

log = logging.getLogger(__name__)

_CSV_SUFFIXES = (".csv", ".csv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_CDNOW_SUFFIXES = (".txt", ".txt.gz")
_OFFSET_PATTERN = r"(?:[Zz]|[+-]\d{2}:?\d{2})$"


@dataclass
class CleaningReport:
    """What was read from one file and what cleaning did to it, with counts.

    Every row read is accounted for: ``rows_read == rows_kept + sum(dropped.values())``, each dropped count
    under the reason it was dropped for. ``changes`` counts values changed in place (rows kept), ``counted``
    what was noticed but left as it is (such as rows identical to an earlier row, kept by default)."""

    path: str
    kind: str
    rows_read: int = 0
    rows_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    changes: dict[str, int] = field(default_factory=dict)
    counted: dict[str, int] = field(default_factory=dict)
    summary: dict[str, object] = field(default_factory=dict)

    def note(self, what: str, count: int) -> None:
        """Values changed in place (the rows stay)."""
        if count:
            self.changes[what] = int(count)

    def note_dropped(self, why: str, count: int) -> None:
        if count:
            self.dropped[why] = int(count)

    def note_counted(self, what: str, count: int) -> None:
        """Something worth knowing about the rows that changed nothing."""
        if count:
            self.counted[what] = int(count)

    def finish(self, rows_kept: int) -> None:
        """Record the rows kept; every row read must be kept or dropped for a named reason."""
        self.rows_kept = int(rows_kept)
        unaccounted = self.rows_read - self.rows_kept - sum(self.dropped.values())
        if unaccounted:
            raise AssertionError(f"{self.path}: {unaccounted:,} rows neither kept nor dropped for a named reason")

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "kind": self.kind,
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "dropped": dict(self.dropped),
            "changes": dict(self.changes),
            "counted": dict(self.counted),
            "summary": dict(self.summary),
        }

    def lines(self) -> list[str]:
        head = f"{self.kind}: {self.rows_read:,} rows read from {self.path}, {self.rows_kept:,} kept"
        return ([head] + [f"  dropped, {why}: {count:,}" for why, count in self.dropped.items()]
                + [f"  {what}: {count:,}" for what, count in {**self.changes, **self.counted}.items()])


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in _CSV_SUFFIXES + _PARQUET_SUFFIXES + _CDNOW_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def read_raw(path: Path, encoding: str = "utf-8", personal: PersonalData | None = None,
             sample_rows: int = 5) -> pd.DataFrame:
    """Read a file as it is (CSV cells as text), with a DataError for unreadable or empty files, rows that do not
    fit the header, and a header naming a column twice.

    CSV and CDNOW text are decoded with ``encoding`` (a UTF-8 byte-order mark wins: it says what the file is),
    and each of their rows must have one field per column (:mod:`tiercast.features.text_rows`); a misfit row's
    text is not shown when a column is ``personal`` data. The frame's index is the position of each data row in
    the file (0 = the first), which :func:`_places` turns into the file's line numbers. A database input
    (:mod:`tiercast.features.database`) is read as its columns come, as a Parquet file is."""
    if isinstance(path, DatabaseSource):
        frame = path.read().to_pandas()
        refuse_repeated_names(path, [str(name) for name in frame.columns])
        return frame
    path = Path(path)
    if not path.exists():
        raise DataError.of(path, phrase("file_not_found"))
    suffix = _suffix(path)
    try:
        if suffix in _CSV_SUFFIXES + _CDNOW_SUFFIXES:
            encoding = text_encoding(path, encoding)
        if suffix in _CSV_SUFFIXES:
            frame = read_csv_rows(path, encoding, personal or PersonalData(), sample_rows)
        elif suffix in _PARQUET_SUFFIXES:
            # INT96 timestamps (what Spark and Hive write) are read in microseconds: in pyarrow's default,
            # nanoseconds, a year such as 1500 would wrap around silently into another date.
            frame = pd.read_parquet(path, coerce_int96_timestamp_unit="us")
        elif suffix in _CDNOW_SUFFIXES:
            frame = _read_cdnow(path, encoding, sample_rows)
        else:
            raise DataError.of(path, phrase("unsupported_type", suffix=suffix))
    except DataError:
        raise
    except UnicodeDecodeError as err:
        raise undecodable(path, encoding, delimiter="," if suffix in _CSV_SUFFIXES else None) from err
    except pd.errors.EmptyDataError as err:
        raise DataError.of(path, phrase("file_empty")) from err
    except Exception as err:  # parser errors of pandas/pyarrow, gzip: report them against the file
        raise DataError(path, f"cannot be read: {err}") from err
    if frame.empty:
        raise DataError.of(path, phrase("no_data_rows"))
    refuse_repeated_names(path, [str(name) for name in frame.columns])
    return frame


def refuse_repeated_names(path: Path, in_file: list[str], names: list[str] | None = None) -> None:
    """A DataError naming the columns named twice, ignoring case and surrounding spaces: reading one of them
    would silently ignore the other. ``in_file`` are the names in the file, ``names`` what data.columns renamed
    them to (by default the same)."""
    names = names or in_file
    seen: dict[str, list[tuple[str, str]]] = {}
    for original, name in zip(in_file, names, strict=True):
        seen.setdefault(name.strip().casefold(), []).append((original, name))

    def said(original: str, name: str, count: int) -> str | Phrase:
        shown = f"'{original}'" if original == name else phrase("read_as", original=original, name=name)
        return shown if count == 1 else phrase("name_twice", name=shown) if count == 2 else phrase(
            "name_times", name=shown, count=count)
    repeated = [Joined("and", tuple(said(*names, count) for names, count in Counter(found).items()))
                for found in seen.values() if len(found) > 1]
    if repeated:
        raise DataError.of(path, phrase("repeated_header", names=Joined("then", tuple(repeated))))


def _read_cdnow(path: Path, encoding: str, sample_rows: int) -> pd.DataFrame:
    """CDNOW master (id, yyyymmdd, CDs, dollars; one header line) or sample (master id, sample id, ...)."""
    rows, lines = whitespace_rows(path, encoding)
    if not rows:
        raise DataError.of(path, phrase("file_empty"))
    if not rows[0][0].isdigit():  # the header line
        rows, lines = rows[1:], lines[1:]
    counts = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    lines_with = np.bincount(counts, minlength=6)  # lines_with[n]: how many lines have n fields
    if not lines_with[4] and not lines_with[5]:
        raise DataError(path, f"CDNOW format has 4 or 5 columns, found {int(lines_with.argmax())}")
    width = 4 if lines_with[4] >= lines_with[5] else 5  # the master's or the sample's, whichever most lines are
    refuse_misfit_rows(path, rows, lines, counts - width, f"the {width} fields most lines have",
                       "CDNOW's format is one purchase a line: customer id, date, CDs, dollars (a sample file has the "
                       "sample id after the customer id)", hidden=False, sample_rows=sample_rows, separator=" ")
    frame = pd.DataFrame(rows, dtype=object)
    if width == 5:
        frame = frame.drop(columns=[1])
    frame.columns = ["customer_id", "date", "quantity", "amount"]
    frame["timestamp"] = frame.pop("date").str.replace(r"^(\d{4})(\d{2})(\d{2})$", r"\1-\2-\3", regex=True)
    return frame


def apply_mapping(frame: pd.DataFrame, mapping: dict[str, str], path: Path) -> pd.DataFrame:
    """The frame with its columns renamed to the canonical names ``mapping`` (``data.columns``) gives; refused
    when that makes two columns of one name (a file with both ``Sales``, mapped to amount, and ``amount``)."""
    renamed = frame.rename(columns={in_file: canonical for canonical, in_file in mapping.items()})
    refuse_repeated_names(path, [str(name) for name in frame.columns], [str(name) for name in renamed.columns])
    return renamed


def _read_named(path: Path, config: DataConfig, mapping: dict[str, str]) -> pd.DataFrame:
    """The file as read (:func:`read_raw`), its columns under their canonical names."""
    personal = PersonalData(config.personal_data_columns)
    # read_raw sees the file's own names: a personal column data.columns renames counts by its name in the file too
    in_file = PersonalData([*personal.names, *(name for canonical, name in mapping.items() if canonical in personal)])
    return apply_mapping(read_raw(path, config.encoding, in_file, config.error_sample_rows), mapping, path)


def _require(frame: pd.DataFrame, path: Path, table: Table, mapping: dict[str, str]) -> None:
    for column in table.required:
        if column not in frame.columns:
            named = mapping.get(column, column)
            raise DataError.of(path, phrase("column_missing", found=list(frame.columns)), column=named)


def _places(path: Path, encoding: str, positions: list[int]) -> list[str]:
    """Where the data rows at ``positions`` (0 = the first) are in the file: the line each starts on in a text
    file (line 1 being the header), the row counting from 1 in a Parquet file."""
    if isinstance(path, DatabaseSource) or _suffix(path) in _PARQUET_SUFFIXES:
        return [f"row {position + 1:,}" for position in positions]
    suffix = _suffix(path)
    lines = data_row_lines(path, text_encoding(path, encoding), positions, cdnow=suffix in _CDNOW_SUFFIXES)
    return [f"line {line:,}" for line in lines]


def _sample(frame: pd.DataFrame, bad: pd.Series, columns: list[str], path: Path, encoding: str,
            rows: int = 5) -> pd.DataFrame:
    """The first ``rows`` rows ``bad`` marks, with ``columns``, each named by its place in the file."""
    sample = frame.loc[bad, columns].head(rows)
    sample.index = _places(path, encoding, [int(position) for position in sample.index])
    return sample


def _bad_rows(frame: pd.DataFrame, bad: pd.Series, columns: list[str], config: DataConfig,
              path: Path) -> pd.DataFrame:
    """A sample of the rows ``bad`` marks, named by their line in the file (their row in a Parquet file), with
    the ``columns`` that are not personal data."""
    personal = PersonalData(config.personal_data_columns)
    return _sample(frame, bad, [c for c in columns if c in frame.columns and c not in personal], path,
                   config.encoding, config.error_sample_rows)


def _refuse(frame: pd.DataFrame, bad: pd.Series, problem: str | Phrase, column: str, path: Path,
            config: DataConfig, shown: list[str] | None = None) -> None:
    """A DataError for the rows ``bad`` marks, if any: ``problem`` after their count."""
    if bad.any():
        sample = _bad_rows(frame, bad, shown or [column, "customer_id"], config, path)
        count = f"{int(bad.sum()):,}"
        if isinstance(problem, Phrase):
            raise DataError.of(path, phrase("counted", count=count, problem=problem), column, sample)
        raise DataError(path, f"{count} {problem}", column, sample)


def _text(raw: pd.Series) -> pd.Series:
    """Cells as stripped text; a missing cell is blank."""
    return raw.astype(object).where(raw.notna(), "").astype(str).str.strip()


def _check_length(frame: pd.DataFrame, text: pd.Series, column: Column, path: Path, config: DataConfig) -> None:
    if column.max_length is not None:
        _refuse(frame, text.str.len() > column.max_length, phrase("too_long", length=column.max_length),
                column.name, path, config)


# Text columns that identify something: a float there is an id that a tool wrote as a number (42.0).
_IDENTIFIERS = ("customer_id", "order_id", "product_id")
# Float64 holds every whole number up to 2**53 exactly; a larger id written as a float may have lost digits.
_EXACT_FLOAT_LIMIT = 2.0 ** 53


def _float_ids_as_text(frame: pd.DataFrame, name: str, path: Path, report: CleaningReport,
                       config: DataConfig) -> pd.Series:
    """A float column of ids (Parquet written from a frame whose id column held a missing value, or Excel) as the
    text the ids were: 42.0 becomes "42", counted in the report; a null stays missing. Fractional ids (42.5)
    and ids too large for a float to hold exactly are refused: no text could be trusted to be the real id."""
    raw = frame[name]
    values = raw.to_numpy(dtype=np.float64)
    present = ~np.isnan(values)
    whole = np.isfinite(values) & (np.floor(values) == values)
    shown = list(dict.fromkeys([name, "customer_id"]))
    _refuse(frame, pd.Series(present & ~whole, index=raw.index), f"values are not whole numbers (42.5), so not ids: "
            f"the file stores {name} as floats; write {name} as text or whole numbers", name, path, config, shown)
    _refuse(frame, pd.Series(present & (np.abs(values) > _EXACT_FLOAT_LIMIT), index=raw.index),
            f"values are larger than 2**53 stored as floats, which cannot hold every digit of such an id (it may "
            f"already have been changed when the file was written); write {name} as text or integers", name, path,
            config, shown)
    ids = [f"{value:.0f}" if ok else None for value, ok in zip(values, present)]
    report.note(f"{name} values stored as whole-number floats (42.0) read as ids without the decimals (42)",
                int(present.sum()))
    return pd.Series(ids, index=raw.index, dtype=object)


def _clean_ids(frame: pd.DataFrame, column: Column, path: Path, report: CleaningReport, config: DataConfig) -> None:
    raw = frame[column.name]
    if pd.api.types.is_float_dtype(raw):
        raw = _float_ids_as_text(frame, column.name, path, report, config)
    elif not pd.api.types.is_string_dtype(raw) and raw.dtype != object:
        raw = raw.astype("Int64").astype(str) if pd.api.types.is_integer_dtype(raw) else raw.astype(str)
    raw = raw.astype(object).where(raw.notna(), "")
    ids = raw.astype(str).str.strip()
    report.note(columnar.STRIPPED_IDS, int((ids != raw.astype(str)).sum()))
    bad = ids.eq("") | ids.str.lower().isin(MISSING_IDS)
    _refuse(frame, bad, phrase("empty_ids", column=column.name), column.name, path, config, list(frame.columns))
    _check_length(frame, ids, column, path, config)
    frame[column.name] = ids


def _parse_timestamps(frame: pd.DataFrame, column: Column, path: Path, report: CleaningReport,
                      config: DataConfig) -> None:
    """Parse ISO 8601 text (or Parquet datetimes and dates) into naive UTC; offsets are converted, naive taken as
    UTC. Values outside the supported range are refused as such, not as unreadable."""
    name = column.name
    raw = frame[name]
    if pd.api.types.is_datetime64_any_dtype(raw):
        # Parquet datetimes keep their unit (s, ms, us), which holds years 1500 or 2500 that nanoseconds cannot:
        # the range is checked in that unit, before the conversion to nanoseconds could overflow.
        parsed = raw
        if isinstance(raw.dtype, pd.DatetimeTZDtype):
            report.note(columnar.TIMEZONES_CONVERTED.format(name), int(raw.notna().sum()))
            parsed = raw.dt.tz_convert("UTC").dt.tz_localize(None)
        bad = parsed.isna() if column.required else pd.Series(False, index=raw.index)
        outside = pd.Series(False, index=raw.index)
    else:  # text, or Parquet dates (date32, date64), which pandas reads as Python dates: their text is ISO 8601
        text = _text(raw)
        iso = text.str.fullmatch(INSTANT_PATTERN)
        # pandas parses text into nanoseconds, which stop at 1677 and 2262: a year outside the supported range is
        # found from the text itself, so that 1600-01-01 is called out of range rather than unreadable. The years
        # next to the range are parsed: an offset can carry 1899-12-31T23:00-02:00 into 1900 in UTC.
        year = pd.to_numeric(text.str[:4].where(iso, None), errors="coerce")
        outside = iso & ((year < EARLIEST.year - 1) | (year > LATEST.year + 1))
        parsed = pd.to_datetime(text.where(iso & ~outside, None), utc=True, format="ISO8601", errors="coerce")
        parsed = parsed.dt.tz_localize(None)
        report.note(columnar.OFFSETS_CONVERTED.format(name),
                    int(text.str.contains(_OFFSET_PATTERN, regex=True).sum()))
        bad = (parsed.isna() if column.required else parsed.isna() & text.ne("")) & ~outside
    _refuse(frame, bad, phrase("not_iso_dates"), name, path, config)
    _refuse(frame, outside | (parsed < EARLIEST) | (parsed > LATEST), _OUTSIDE_RANGE, name, path, config)
    frame[name] = parsed.astype("datetime64[ns]")


# Dates that are well-formed but outside the range tiercast supports (docs/contract.md).
_OUTSIDE_RANGE = phrase("dates_out_of_range", earliest=EARLIEST.date(), latest=LATEST.date())


def _parse_numbers(frame: pd.DataFrame, column: Column, path: Path, report: CleaningReport,
                   config: DataConfig) -> None:
    raw = frame[column.name]
    if pd.api.types.is_numeric_dtype(raw):
        values = raw.astype("float64")
        empty = raw.isna()  # a null (Parquet) is a blank
    else:
        text = _text(raw)
        values = pd.to_numeric(text, errors="coerce").astype("float64")
        empty = text.eq("")
        # Only the cells that are not plain numbers go through the slower reading of formatted ones.
        unread = values.isna() & ~empty
        if unread.any():
            values = _read_formatted_numbers(frame, text, values, unread, column, path, report, config)
    bad = pd.Series(~np.isfinite(values.to_numpy()), index=raw.index)
    if not column.required:  # blank means missing
        bad &= ~empty
    _refuse(frame, bad, phrase("not_finite"), column.name, path, config)
    if column.bound is not None:  # the schema's bound, the service's too: one limit for files and requests
        bound = f"{column.bound:g}"
        _refuse(frame, values.abs() > column.bound, phrase("beyond_bound", bound=bound, column=column.name),
                column.name, path, config)
    frame[column.name] = values


_NUMBER_FORMS = phrase("number_forms")


def _read_formatted_numbers(frame: pd.DataFrame, text: pd.Series, values: pd.Series, unread: pd.Series,
                            column: Column, path: Path, report: CleaningReport, config: DataConfig) -> pd.Series:
    """``values`` with the ``unread`` cells read as formatted numbers (:mod:`tiercast.features.number_text`)
    where that is unambiguous; forms that could mean two numbers, and a column of several currencies, are
    refused with a DataError."""
    formatted = read_formatted(text[unread])
    name = column.name
    positions = np.flatnonzero(unread.to_numpy())  # of the unread cells in the column

    def at(marks: np.ndarray) -> pd.Series:
        """The frame's rows of the unread cells ``marks`` marks."""
        rows = np.zeros(len(frame), dtype=bool)
        rows[positions[marks]] = True
        return pd.Series(rows, index=frame.index)

    _refuse(frame, at(formatted.european), phrase("european_numbers", forms=_NUMBER_FORMS), name, path, config)
    _refuse(frame, at(formatted.misplaced_comma), phrase("misplaced_comma", forms=_NUMBER_FORMS), name, path, config)
    signs = pd.Series(formatted.currency[formatted.currency != ""])
    if signs.nunique() > 1:
        usual = signs.value_counts().index[0]
        _refuse(frame, at((formatted.currency != "") & (formatted.currency != usual)),
                phrase("several_currencies", usual=usual, signs=" ".join(sorted(signs.unique()))), name, path,
                config)
    read = ~np.isnan(formatted.values)
    report.note(f"{name} values written with a currency sign or thousands separators read as numbers",
                int(read.sum()))
    numbers = values.to_numpy(dtype=np.float64, copy=True)
    numbers[positions[read]] = formatted.values[read]
    return pd.Series(numbers, index=values.index)


def _clean_text(frame: pd.DataFrame, column: Column, path: Path, report: CleaningReport, config: DataConfig
                ) -> None:
    raw = frame[column.name]
    if column.name in _IDENTIFIERS and pd.api.types.is_float_dtype(raw):
        raw = _float_ids_as_text(frame, column.name, path, report, config)
    text = _text(raw)
    _check_length(frame, text, column, path, config)
    if column.kind == "label":
        _refuse(frame, text.eq(""), phrase("blank_labels"), column.name, path, config)
        frame[column.name] = text.str.lower()
    else:  # blank means missing, as in the service: a blank order_id is no order (each line is its own)
        frame[column.name] = text.where(text != "", None)


def check_columns(frame: pd.DataFrame, table: Table, path: Path, report: CleaningReport, config: DataConfig) -> None:
    """Check and convert, in place, every column of ``table`` the frame has."""
    for column in table.columns:
        if column.name not in frame.columns:
            continue
        if column.kind == "id":
            _clean_ids(frame, column, path, report, config)
        elif column.kind == "instant":
            _parse_timestamps(frame, column, path, report, config)
        elif column.kind == "number":
            _parse_numbers(frame, column, path, report, config)
        else:
            _clean_text(frame, column, path, report, config)


def identical_repeats(columns: pd.DataFrame | Mapping[str, np.ndarray]) -> np.ndarray:
    """True for each row identical in every column to an earlier row (the first of a kind is not a repeat).

    The one rule for identical transaction rows, used by the file loader and the service alike: such rows
    are kept and counted unless ``data.drop_identical_rows`` says to drop them. Two lines of one order are
    legitimately identical when two products sell at the same quantity and price and the export has no
    product column, so looking alike is no evidence of a row exported twice."""
    frame = columns if isinstance(columns, pd.DataFrame) else pd.DataFrame(columns)
    return frame.duplicated(keep="first").to_numpy()


def columnar_format(path: Path) -> str | None:
    """'csv' or 'parquet' for a file of a form the fast path reads (by its suffix), else None."""
    suffix = _suffix(path)
    return "csv" if suffix in _CSV_SUFFIXES else "parquet" if suffix in _PARQUET_SUFFIXES else None


def _read_fast(path: Path, config: DataConfig, table: Table, mapping: dict[str, str],
               keep_others: bool = False) -> FastColumns | None:
    """The file's columns read, checked and cleaned by the fast path (:mod:`tiercast.features.columnar`), or
    None for a file the pandas path is to read: one with anything the fast path does not take, bad input
    included, whose DataError the pandas path words."""
    if isinstance(path, DatabaseSource):
        try:
            return columnar.clean(canonical_columns(path.read(), mapping, table, keep_others), table)
        except NotFast:
            log.debug("%s: read the pandas way", path)
            return None
    suffix = _suffix(path)
    if suffix not in _CSV_SUFFIXES + _PARQUET_SUFFIXES or not path.is_file():
        return None
    try:
        csv = suffix in _CSV_SUFFIXES
        encoding = text_encoding(path, config.encoding) if csv else config.encoding
        return columnar.clean(columnar.read_canonical(path, csv, encoding, mapping, table, keep_others), table)
    except (NotFast, DataError, OSError, UnicodeError):  # the pandas path says what is wrong, if anything
        log.debug("%s: read the pandas way", path)
        return None


def _read_checked(path: Path, config: DataConfig, table: Table, mapping: dict[str, str], kind: str,
                  keep_others: bool = False) -> tuple[pd.DataFrame, CleaningReport]:
    """The pandas path: the file read (:func:`read_raw`), its required columns checked, the columns of ``table``
    (and with ``keep_others`` the rest) checked and cleaned, with the report of what cleaning changed."""
    frame = _read_named(path, config, mapping)
    report = CleaningReport(str(path), kind, rows_read=len(frame))
    _require(frame, path, table, mapping)
    frame = (frame if keep_others else frame[[c for c in table.names if c in frame.columns]]).copy()
    check_columns(frame, table, path, report, config)
    return frame, report


def _fast_report(path: Path, kind: str, fast: FastColumns) -> CleaningReport:
    report = CleaningReport(str(path), kind, rows_read=fast.rows_read)
    for what, count in fast.notes:
        report.note(what, count)
    return report


def input_path(path: Path | str | DatabaseSource) -> Path | DatabaseSource:
    """An input as the loader reads it: a file (or dataset) path, or a database table or query."""
    if isinstance(path, DatabaseSource):
        return path
    return DatabaseSource.parse(path) if is_database_url(path) else Path(path)


def note_identical_rows(report: CleaningReport, count: int, config: DataConfig) -> None:
    """Rows identical to an earlier row, dropped or counted as ``data.drop_identical_rows`` says."""
    if config.drop_identical_rows:
        report.note_dropped("rows identical to an earlier row (data.drop_identical_rows: true)", count)
    else:
        report.note_counted("rows identical to an earlier row, kept (data.drop_identical_rows: false)", count)


def load_transactions(path: Path | str, config: DataConfig | None = None) -> tuple[pd.DataFrame, CleaningReport]:
    """Load and validate a transactions file into the canonical frame."""
    config = config or DataConfig()
    path = input_path(path)
    mapping = config.columns.transactions
    fast = _read_fast(path, config, TRANSACTIONS, mapping)
    if fast is None:
        frame, report = _read_checked(path, config, TRANSACTIONS, mapping, "transactions")
        repeats = identical_repeats(frame)
    else:
        report = _fast_report(path, "transactions", fast)
        order, customer = columnar.by_customer_and_time(fast.columns)
        repeats = columnar.identical_repeats(fast.columns, order, customer)
    note_identical_rows(report, int(repeats.sum()), config)
    if fast is None:
        if config.drop_identical_rows:
            frame = frame.loc[~repeats]
        frame = frame.sort_values(["customer_id", "timestamp"], kind="stable").reset_index(drop=True)
    else:
        frame = columnar.to_frame(fast.columns, order[~repeats[order]] if config.drop_identical_rows else order)
    report.finish(len(frame))
    report.summary = {
        "customers": int(frame["customer_id"].nunique()),
        "first_timestamp": str(frame["timestamp"].min()),
        "last_timestamp": str(frame["timestamp"].max()),
        "refund_rows": int((frame["amount"] < 0).sum()),
        "zero_amount_rows": int((frame["amount"] == 0).sum()),
        "identical_rows": int(repeats.sum()),
        "amount_min": float(frame["amount"].min()),
        "amount_max": float(frame["amount"].max()),
    }
    for line in report.lines():
        log.info(line)
    return frame, report


def load_customers(path: Path | str, config: DataConfig | None = None) -> tuple[pd.DataFrame, CleaningReport]:
    """Load and validate a customers (profiles) file; one row per customer."""
    config = config or DataConfig()
    path = input_path(path)
    mapping = config.columns.customers
    fast = _read_fast(path, config, CUSTOMERS, mapping, keep_others=True)
    if fast is not None and not columnar.repeats_an_id(fast.columns["customer_id"]):
        report = _fast_report(path, "customers", fast)
        frame = columnar.to_frame(fast.columns)
    else:  # the pandas path, which names the rows that repeat a customer
        frame, report = _read_checked(path, config, CUSTOMERS, mapping, "customers", keep_others=True)
        repeated = frame["customer_id"].duplicated(keep=False)
        if repeated.any():
            raise DataError(path, f"{int(repeated.sum()):,} rows repeat a customer_id", "customer_id",
                            _bad_rows(frame, repeated, ["customer_id"], config, path))
        frame = frame.reset_index(drop=True)
    report.finish(len(frame))
    report.summary = {"customers": len(frame), "attributes": [c for c in frame.columns if c != "customer_id"]}
    return frame, report


def load_interactions(path: Path | str, config: DataConfig | None = None) -> tuple[pd.DataFrame, CleaningReport]:
    """Load and validate an interactions file (surveys, tickets, complaints, e-mail opens)."""
    config = config or DataConfig()
    path = input_path(path)
    mapping = config.columns.interactions
    fast = _read_fast(path, config, INTERACTIONS, mapping)
    if fast is None:
        frame, report = _read_checked(path, config, INTERACTIONS, mapping, "interactions")
        if "score" not in frame.columns:
            frame["score"] = np.nan
        frame = frame.sort_values(["customer_id", "timestamp"], kind="stable").reset_index(drop=True)
    else:
        report = _fast_report(path, "interactions", fast)
        if "score" not in fast.columns:
            fast.columns["score"] = pa.chunked_array([pa.nulls(fast.rows_read, pa.float64())])
        frame = columnar.to_frame(fast.columns, columnar.by_customer_and_time(fast.columns)[0])
    report.finish(len(frame))
    report.summary = {"customers": int(frame["customer_id"].nunique()),
                      "kinds": frame["kind"].value_counts().to_dict()}
    return frame, report


@dataclass
class InputData:
    """The validated inputs of one run, with the cleaning report of each file."""

    transactions: pd.DataFrame
    customers: pd.DataFrame | None
    interactions: pd.DataFrame | None
    reports: list[CleaningReport]
    # Set when the rows are already a training sample of whole customers (the Spark engine draws it before
    # collecting): how many customers had history before the cutoff in all.
    sampled_from: int | None = None

    def quality_report(self) -> dict[str, object]:
        return {report.kind: report.to_dict() for report in self.reports}


def load_inputs(transactions: Path | str, customers: Path | str | None = None,
                interactions: Path | str | None = None, config: DataConfig | None = None) -> InputData:
    """Load every input of a run; raises DataError before anything is written if any file is bad."""
    tx, tx_report = load_transactions(transactions, config)
    reports = [tx_report]
    cust = inter = None
    if customers:
        cust, report = load_customers(customers, config)
        reports.append(report)
    if interactions:
        inter, report = load_interactions(interactions, config)
        reports.append(report)
    return InputData(tx, cust, inter, reports)


def read_scores(path: Path | str, required: Sequence[str] = ("customer_id",)) -> pd.DataFrame:
    """A scored file (``tiercast score`` / ``backtest`` output, .csv or .parquet) as a frame.

    customer_id stays text; the numeric columns present are parsed as numbers. A missing required
    column, an unparseable number or a repeated customer raises :class:`DataError` naming the file."""
    path = Path(path)
    if not path.exists():
        raise DataError.of(path, phrase("file_not_found"))
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix == ".csv":
            frame = read_csv_rows(path, "utf-8", PersonalData())
        else:
            raise DataError(path, f"unsupported scored file type '{suffix}': use .csv or .parquet")
    except (ValueError, OSError, UnicodeDecodeError) as err:
        raise DataError(path, f"cannot read the scored file: {err}") from err
    if frame.empty:
        raise DataError.of(path, phrase("no_scored_customers"))
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError.of(path, phrase("scores_columns_missing", missing=missing))
    frame["customer_id"] = frame["customer_id"].astype(str)
    for column in (c for c in SCORED.of_kind("number") if c in frame.columns):
        values = pd.to_numeric(frame[column].replace("", np.nan), errors="coerce")
        # A blank is a missing value; an infinite one is no prediction tiercast writes (an edited file).
        bad = (values.isna() & frame[column].notna() & frame[column].ne("")) | values.abs().eq(np.inf)
        if bad.any():
            raise DataError.of(path, phrase("not_a_finite_number"), column,
                               _sample(frame, bad, ["customer_id", column], path, "utf-8"))
        frame[column] = values.astype(float)
    repeated = frame["customer_id"].duplicated(keep=False)
    if repeated.any():
        raise DataError.of(path, phrase("repeated_customers"), "customer_id",
                           _sample(frame, repeated, ["customer_id"], path, "utf-8"))
    return frame
