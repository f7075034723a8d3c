"""Where the commands write: output paths checked before the work starts, and writes that leave either the
complete file or nothing.

A command that would fail only when it writes (a folder where the file should go, a file where a folder should
be, a folder it may not write in) is stopped by :func:`check_output_file` or :func:`check_output_folder` before
it reads its inputs, with an :class:`OutputError` naming the path and why; the CLI exits 2 on it.
:func:`write_atomically` writes a temporary file beside the output and moves it into place, so a reader never
sees half a file, and removes the temporary file whatever happens. A table output that is not a file (a
database table, :mod:`tiercast.database_output`) checks and writes itself, by the same two calls.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


class FolderBusy(Exception):
    """Another process holds the lock of the folder a command writes in."""


@contextlib.contextmanager
def holding_lock(path: Path, what: str) -> Iterator[None]:
    """Hold the advisory lock ``path`` while the block runs (the system releases it when the process ends,
    however it ends); :class:`FolderBusy`, naming the holder, when another process holds it."""
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise FolderBusy(f"another {what} is running in {path.parent} ({holder}, holding {path.name}); "
                             "nothing was done: run again when it has finished") from None
        handle.truncate(0)
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)


class OutputError(Exception):
    """An output path a command cannot write: names the path and why."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"cannot write {path}: {problem}")
        self.path = path
        self.problem = problem

    def __reduce__(self) -> tuple[type, tuple[Path | str, str]]:  # raised in another process, it reaches this one
        return type(self), (self.path, self.problem)


@runtime_checkable
class TableTarget(Protocol):
    """An output table that is not a file: it checks that it can be written, and writes itself in one go."""

    def check(self) -> None: ...

    def write(self, frame: pd.DataFrame) -> Any: ...


def _check_can_write_in(folder: Path, out: Path) -> None:
    """``out`` can be created in ``folder`` (which need not exist yet): every existing ancestor is a folder,
    and the nearest one takes a new file (tried for real: root, read-only mounts and ACLs are all answered)."""
    existing = folder
    while not existing.exists():
        if existing.is_symlink():  # a dangling link: mkdir would fail on it
            raise OutputError(out, f"{existing} is a broken link")
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(out, f"{existing} is a file, not a folder")
    try:
        handle, probe = tempfile.mkstemp(prefix=".tiercast-write-check-", dir=existing)
    except OSError as err:
        raise OutputError(out, f"cannot create files in {existing} ({err.strerror})") from err
    os.close(handle)
    os.unlink(probe)


def check_output_file(out: Path, suffixes: Iterable[str] | None = None) -> Path:
    """``out`` as a file a command can write: not an existing folder, of one of ``suffixes`` (when given), in
    a folder that exists or can be made and that takes new files. Raises :class:`OutputError` otherwise."""
    if isinstance(out, TableTarget):
        out.check()
        return out
    out = Path(out)
    if out.is_dir():
        raise OutputError(out, "it is a folder; give a file name inside it")
    if suffixes is not None and out.suffix.lower() not in tuple(suffixes):
        raise OutputError(out, f"unsupported output type '{out.suffix}': use {', '.join(suffixes)}")
    _check_can_write_in(out.parent, out)
    return out


def check_output_folder(out: Path) -> Path:
    """``out`` as a folder a command can write files into: an existing folder or one that can be made.
    Raises :class:`OutputError` otherwise."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(out, "it is a file, not a folder")
    _check_can_write_in(out, out)
    return out


def write_atomically(out: Path, write: Callable[[Path], Any]) -> Path:
    """``write`` a temporary file beside ``out``, then move it into place: a reader never sees half a file,
    and a failed write leaves neither a temporary file nor a changed ``out``."""
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, out)
    except OSError as err:
        raise OutputError(out, err.strerror or str(err)) from err
    finally:
        with contextlib.suppress(OSError):  # gone after the move; never made when the folder could not be
            tmp.unlink()
    return out


class InfiniteOutput(RuntimeError):
    """A table about to be written holds an infinite number: a bug, since the loader bounds every input number."""


def refuse_infinite(frame: pd.DataFrame, out: Path) -> None:
    """Raise :class:`InfiniteOutput` naming the columns (and some customers) if any number in ``frame`` is
    infinite. Inputs are bounded (docs/contract.md: amounts at most 1e12 in size), so sums and predictions stay
    finite; should one overflow all the same, the command fails rather than write ``inf`` for a reader to take
    as a value. NaN is not refused: in these files it is a missing value (an empty cell)."""
    numbers = frame.select_dtypes("number")
    cells = np.isinf(numbers.to_numpy(dtype=np.float64, na_value=np.nan))
    infinite = list(numbers.columns[cells.any(axis=0)])
    if infinite:
        rows = cells.any(axis=1)
        customers = frame.loc[rows, "customer_id"].head(5).tolist() if "customer_id" in frame.columns else []
        raise InfiniteOutput(f"{out}: not written: column(s) {', '.join(map(str, infinite))} hold infinite values "
                             f"({int(rows.sum()):,} rows; customers {customers}); this is a bug in tiercast: please "
                             "report it with the command and its input files")


def dictionary_columns(floating: dict[str, bool]) -> list[str]:
    """The columns of a Parquet output (name: whether it holds floating-point numbers) written with a dictionary:
    all but the floating-point ones, whose values seldom repeat (scores, shares, amounts) and whose dictionaries
    took a third of the writing and two thirds of reading the file back."""
    return [name for name, is_float in floating.items() if not is_float]


def write_table(frame: pd.DataFrame, out: Path) -> Path:
    """Write CSV or Parquet, by the suffix of ``out``, atomically; never a table holding an infinite number."""
    refuse_infinite(frame, out)
    if isinstance(out, TableTarget):
        return out.write(frame)
    out = Path(out)
    if out.suffix.lower() in (".parquet", ".pq"):
        floating = {name: pd.api.types.is_float_dtype(dtype) for name, dtype in frame.dtypes.items()}
        return write_atomically(out, partial(frame.to_parquet, index=False,
                                             use_dictionary=dictionary_columns(floating)))
    if out.suffix.lower() == ".csv":
        return write_atomically(out, partial(frame.to_csv, index=False))
    raise OutputError(out, f"unsupported output type '{out.suffix}': use {', '.join(TABLE_SUFFIXES)}")


# Rows of output held, at most, until every column of a part-wise Parquet file has a type (see write_table_parts).
_ROWS_HELD_FOR_TYPES = 500_000


def write_table_parts(parts: Iterable[pd.DataFrame], out: Path) -> Path:
    """Write ``parts`` (frames of the same columns) one after another as one table, CSV or Parquet by the suffix
    of ``out``, atomically, holding one part at a time: the CSV is the bytes :func:`write_table` writes of them
    concatenated, the Parquet file the same table (schema and pandas metadata included) in row groups of the
    parts. Never a table holding an infinite number.

    A text column all missing in the first parts has no type yet: parts are held until it has one (or for at
    most :data:`_ROWS_HELD_FOR_TYPES` rows, after which such a column is written as text)."""
    out = Path(out)
    parquet = out.suffix.lower() in (".parquet", ".pq")
    if not parquet and out.suffix.lower() != ".csv":
        raise OutputError(out, f"unsupported output type '{out.suffix}': use {', '.join(TABLE_SUFFIXES)}")

    def write(tmp: Path) -> None:
        if not parquet:
            with tmp.open("w", newline="", encoding="utf-8") as f:
                for number, part in enumerate(parts):
                    refuse_infinite(part, out)
                    part.to_csv(f, index=False, header=number == 0)
            return
        writer = _PartsWriter(tmp)
        try:
            for part in parts:
                refuse_infinite(part, out)
                writer.write(part)
        finally:
            writer.close()

    return write_atomically(out, write)


class _PartsWriter:
    """A Parquet file written a frame at a time, its schema that of the frames held until every column has a
    type (the schema pandas gives their concatenation)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer = None
        self.held: list[pd.DataFrame] = []
        self.untyped: set[str] | None = None

    def write(self, part: pd.DataFrame) -> None:
        import pyarrow as pa

        if self.writer is not None:
            self.writer.write_table(pa.Table.from_pandas(part, schema=self.writer.schema, preserve_index=False))
            return
        self.held.append(part)
        untyped = {f.name for f in pa.Schema.from_pandas(part, preserve_index=False) if pa.types.is_null(f.type)}
        self.untyped = untyped if self.untyped is None else self.untyped & untyped
        if not self.untyped or sum(map(len, self.held)) >= _ROWS_HELD_FOR_TYPES:
            self._start(as_text=self.untyped)

    def _start(self, as_text: set[str]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        held = pd.concat(self.held, ignore_index=True) if len(self.held) > 1 else self.held[0]
        schema = pa.Schema.from_pandas(held, preserve_index=False)
        for name in as_text:
            schema = schema.set(schema.get_field_index(name), pa.field(name, pa.string()))
        self.writer = pq.ParquetWriter(self.path, schema, use_dictionary=dictionary_columns(
            {field.name: pa.types.is_floating(field.type) for field in schema}))
        parts, self.held = self.held, []
        for part in parts:
            self.write(part)

    def close(self) -> None:
        if self.writer is None and self.held:  # every part held: their columns' types are the whole table's
            self._start(as_text=set())
        if self.writer is not None:
            self.writer.close()
