"""The rows of CSV and CDNOW's whitespace-separated text files: each checked against the header, and found again
by the line of the file it starts on.

pandas' CSV reader guesses when a row does not fit its header: when the rows have one field more than the
header, the first field silently becomes the index (customer ``A1`` replaced by the next field, ``X1``); a row
with fewer fields is padded with blanks; a repeated header name becomes ``amount.1``. So before pandas reads a
file, Python's ``csv`` module splits it the same way (a quoted value may hold commas, double quotes written
twice, and line breaks) and the file is refused, naming the lines, unless every row has exactly one field per
header column; pandas then reads it with ``index_col=False`` and the number of rows both found must agree.
Blank lines are skipped, as pandas skips them. pandas still does the reading: its text cells are what the
checks downstream are fast on.

A comma at the end of the header and of every row (what some exports write) is no misfit: it makes a column
without a name, which :func:`read_csv_rows` drops when it holds no value.

An error about a value names the line its row starts on (line 1 is the header, the first data row usually
line 2, and blank lines and quoted line breaks count): :func:`data_row_lines` reads the file again to find
them, which costs a pass over the file only when something is wrong. The text of a misfit row is shown only
when no header column is personal data: with fields in the wrong places, nothing says which one is the e-mail.
"""

from __future__ import annotations

import codecs
import csv
import gzip
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from tiercast.features.privacy import PersonalData
from tiercast.features.problems import phrase
from tiercast.features.schema import DataError


_QUOTING = ("a value that starts with a double quote ends with one, followed by a comma or the end of the line, and a "
            "double quote inside it is written twice")


def _open_text(path: Path, encoding: str) -> TextIO:
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"  # a byte-order mark is not part of the first column's name
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding=encoding, newline="")
    return open(path, encoding=encoding, newline="")


def _is_blank(fields: list[str]) -> bool:
    """A line pandas skips: nothing on it, or only spaces and tabs."""
    return not fields or (len(fields) == 1 and not fields[0].strip())


def _csv_records(path: Path, encoding: str) -> Iterator[tuple[int, list[str]]]:
    """(the line it starts on, its fields) of every CSV record that is not a blank line, the header first."""
    with _open_text(path, encoding) as handle:
        reader = csv.reader(handle)
        last = 0  # the line the previous record ended on: a quoted line break makes a record span lines
        for fields in reader:
            start, last = last + 1, reader.line_num
            if not _is_blank(fields):
                yield start, fields


def csv_header(path: Path, encoding: str, personal: PersonalData, sample_rows: int = 5) -> tuple[list[str], int]:
    """The header's names (surrounding spaces stripped; a column without a name is '') and the number of data
    rows of a CSV file, after checking that every row has one field per header column: a DataError names the
    lines of the rows that do not. A UnicodeDecodeError is left to the caller, who knows how to describe it."""
    with _open_text(path, encoding) as handle:
        reader = csv.reader(handle)
        header = next((fields for fields in reader if not _is_blank(fields)), None)
        if header is None:
            raise DataError.of(path, phrase("file_empty"))
        counts = np.fromiter(map(len, reader), dtype=np.int64)  # the fast pass: blank lines count 0 fields
    names = [name.strip() for name in header]
    width = len(names)
    if ((counts != width) & (counts > 0)).any() or width == 1:  # misfits, or lines of spaces: look closer
        records = list(_csv_records(path, encoding))[1:]
        counts = np.fromiter((len(fields) for _, fields in records), dtype=np.int64, count=len(records))
        hidden = any(name in personal for name in names)
        refuse_misfit_rows(path, [fields for _, fields in records], [line for line, _ in records], counts - width,
                           f"the header's {width} fields ({', '.join(names)})",
                           "a value holding a comma or a line break must be in double quotes", hidden, sample_rows)
    return names, int((counts > 0).sum())


def read_csv_rows(path: Path, encoding: str, personal: PersonalData, sample_rows: int = 5) -> pd.DataFrame:
    """A CSV file's data rows as text cells (blank = ''), under the header's names with surrounding spaces
    stripped, after :func:`csv_header`'s check of every row. A column without a name is dropped when it holds
    no value (a comma at the end of every line) and refused when it does."""
    names, rows = csv_header(path, encoding, personal, sample_rows)
    try:
        # index_col=False: never a column as the index, which pandas would make the first one were the rows wider
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding, index_col=False)
    except pd.errors.ParserError as err:  # pandas names a row by its own count: name the line instead
        raise _unreadable(path, encoding, err) from err
    if frame.shape != (rows, len(names)):  # the two readers disagree: no row may be attributed to a wrong line
        raise DataError(path, f"cannot be read: pandas finds {len(frame):,} rows of {frame.shape[1]} fields where "
                        f"Python's csv module finds {rows:,} of {len(names)}; check the file's quoting "
                        f"({_QUOTING})")
    frame.columns = names
    for position in [position for position, name in enumerate(names) if name == ""]:
        values = frame.iloc[:, position]
        filled = np.flatnonzero(values.str.strip().ne("").to_numpy())
        if len(filled):
            shown = list(filled[:sample_rows])
            lines = ", ".join(f"{line:,}" for line in data_row_lines(path, encoding, shown))
            raise DataError(path, f"column {position + 1} has no name in the header, yet {len(filled):,} rows have "
                            "a value in it: name it in the header, or remove it (a table saved with its index has "
                            f"such a first column); lines {lines}")
    return frame.loc[:, [name != "" for name in names]]


def _unreadable(path: Path, encoding: str, err: Exception) -> DataError:
    """The DataError for a CSV file pandas cannot split (a quoted value never closed), naming the line where
    the faulty row starts when Python's csv module, made strict, finds it."""
    with _open_text(path, encoding) as handle:
        reader = csv.reader(handle, strict=True)
        last = 0
        try:
            for _ in reader:
                last = reader.line_num
        except csv.Error as strict:
            return DataError(path, f"cannot be read: the row starting on line {last + 1:,}: {strict}; {_QUOTING}")
    return DataError(path, f"cannot be read: {err}")


def whitespace_rows(path: Path, encoding: str) -> tuple[list[list[str]], list[int]]:
    """The fields of each non-blank line of a whitespace-separated text file (CDNOW's), and its line number."""
    rows: list[list[str]] = []
    lines: list[int] = []
    with _open_text(path, encoding) as handle:
        for number, line in enumerate(handle, start=1):
            if fields := line.split():
                rows.append(fields)
                lines.append(number)
    return rows, lines


def refuse_misfit_rows(path: Path, rows: Sequence[Sequence[str]], lines: Sequence[int], extra_fields: np.ndarray,
                       expected: str, hint: str, hidden: bool, sample_rows: int, separator: str = ",") -> None:
    """A DataError naming the lines of the rows with more or fewer fields than ``expected`` says, if any
    (``extra_fields``: how many more each row has than expected, negative for fewer). A row's text (its fields
    joined by ``separator``) is shown unless ``hidden`` (the file has personal-data columns)."""
    positions = np.flatnonzero(extra_fields)
    if not len(positions):
        return
    more = int((extra_fields[positions] > 0).sum())
    problem = (f"{len(positions):,} rows do not have {expected}: {more:,} have more, {len(positions) - more:,} "
               f"fewer; {hint}")
    if more and all(not "".join(rows[p][len(rows[p]) - int(extra_fields[p]):]).strip()
                    for p in positions if extra_fields[p] > 0):
        problem += ("; the extra fields are empty: if the lines end with a comma, remove it, or end the header "
                    "with a comma too")
    shown = positions[:sample_rows]
    sample = pd.DataFrame({"fields": [len(rows[p]) for p in shown]}, index=[f"line {lines[p]}" for p in shown])
    if hidden:
        problem += " (the rows' text is not shown: the file has personal-data columns)"
    else:
        sample["text"] = [separator.join(rows[p]) for p in shown]
    raise DataError(path, problem, sample=sample)


def data_row_lines(path: Path, encoding: str, positions: Sequence[int], cdnow: bool = False) -> list[int]:
    """The line of the file each data row at ``positions`` (0 = the first row after the header) starts on, for
    a CSV file or, with ``cdnow``, CDNOW's text (whose header line is optional: a first line that does not
    start with a customer number). Reads the file up to the last of them."""
    wanted = set(positions)
    found: dict[int, int] = {}
    if cdnow:
        rows, lines = whitespace_rows(path, encoding)
        first = 1 if rows and not rows[0][0].isdigit() else 0
        found = {p: lines[first + p] for p in wanted if first + p < len(lines)}
    else:
        records = _csv_records(path, encoding)
        next(records, None)  # the header
        for position, (line, _) in enumerate(records):
            if position in wanted:
                found[position] = line
                if len(found) == len(wanted):
                    break
    return [found[p] for p in positions]
