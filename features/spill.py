"""A transactions log larger than memory, split on disk into buckets of customer-id ranges.

The log is read a batch of rows at a time and cleaned by the fast path's own steps
(:mod:`tiercast.features.columnar`); each row goes to the Arrow IPC file of its bucket in a temporary folder.
A bucket holds every row of a range of customer ids (in Python's string order, which is UTF-8 byte order and
Arrow's; cut every ``bucket_customers`` distinct ids, or sooner where the range would pass ``bucket_rows`` rows,
as a log of line items would with a hundred rows a customer), so the buckets' results, written one after
another, are in customer order as the whole table is. A bucket is then loaded as the whole file is (identical
rows found, rows sorted by customer and time): its frame is the whole frame's rows of those customers, or, for
the features, the builder's history of that frame, made from the bucket's columns without it. A bucket's file
is removed once no step reads it again.

Profiles and interactions are smaller: they are loaded whole (:mod:`tiercast.features.loading`) and their rows
taken by the same ranges. The cleaning report adds up the batches' and buckets' counts, so it equals the one of
loading the file whole. A file the fast path does not read (:class:`~tiercast.features.columnar.NotFast`, bad
input included) is not spilled: :func:`spill_inputs` answers None and the caller loads it whole.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import pickle
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tiercast.features import columnar
from tiercast.features.buckets import Bucket, without_huge_pages
from tiercast.features.builder import CodedLines, CodedText, History
from tiercast.features.columnar import NotFast
from tiercast.features.encoding import NAT, arrow_codes, instant_ns
from tiercast.features.loading import (
    CleaningReport,
    columnar_format,
    load_customers,
    load_interactions,
    note_identical_rows,
)
from tiercast.features.privacy import PersonalData
from tiercast.features.registry import OPTIONAL_FEATURE_COLUMNS
from tiercast.features.schema import TRANSACTIONS, DataConfig, DataError
from tiercast.features.text_decoding import text_encoding

log = logging.getLogger(__name__)
Item = TypeVar("Item")
Done = TypeVar("Done")

# Bytes read and cleaned at a time (a CSV's text, a Parquet file's columns decoded): the batches in flight and
# their cleaned copies are what the spilling holds.
BATCH_BYTES = 64 << 20
# Spill files are read twice, soon after: Arrow IPC files, which are written and memory-mapped back without
# decoding. Uncompressed they take 4 (orders) to 13 (line items) times the Parquet file, compressed with LZ4 about
# half to a third of that: LZ4 is used where the spill folder's free space is under this many times the estimate.
_ROOM_FOR_UNCOMPRESSED = 3
_UNCOMPRESSED = pa.ipc.IpcWriteOptions()
_COMPRESSED = pa.ipc.IpcWriteOptions(compression="lz4")
# A CSV's rows are estimated from the mean length of the lines in its first bytes.
_SAMPLE_BYTES = 1 << 20


class SpillFolderFull(Exception):
    """The spill folder ran out of room for the spilled transactions or what the buckets keep there (loading
    the log whole instead could take more memory than the machine has). Raised in a worker, it reaches the
    command's process whole."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.folder = folder

    def __str__(self) -> str:
        return (f"cannot write {self.folder}: no space left for the transactions spilled into buckets: free space "
                "there, or set engine.spill_folder to a folder with more")


@contextlib.contextmanager
def _room_in(folder: Path) -> Iterator[None]:
    """Writes to the spill folder ``folder`` that run out of room raise :class:`SpillFolderFull`."""
    try:
        yield
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise SpillFolderFull(folder) from err
        raise


def estimated_rows(path: Path) -> int | None:
    """The rows of a transactions file the fast path may read: a Parquet footer's count, a CSV's size over
    the mean length of its first lines (compressed: None, as for other formats)."""
    kind = columnar_format(path) if path.is_file() else None
    if kind == "parquet":
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowException, OSError):
            return None
    if kind == "csv" and path.suffix.lower() == ".csv":
        with path.open("rb") as f:
            sample = f.read(_SAMPLE_BYTES)
        return path.stat().st_size * max(1, sample.count(b"\n")) // max(1, len(sample))
    return None


@dataclass(frozen=True)
class CustomerRanges:
    """Buckets of consecutive customer ids: bucket b holds the ids from ``firsts[b]`` up to the next one."""

    firsts: pa.Array

    @classmethod
    def of(cls, distinct_ids: pa.Array, bucket_customers: int, rows: np.ndarray | None = None,
           bucket_rows: int | None = None) -> CustomerRanges:
        """Ranges of ``bucket_customers`` ids each; given each id's ``rows``, also cut before a range would
        pass ``bucket_rows`` rows (a customer of more rows is a bucket of their own)."""
        order = pc.sort_indices(distinct_ids).to_numpy()
        ids = distinct_ids.take(pa.array(order))
        if rows is None or bucket_rows is None:
            return cls(ids.take(pa.array(np.arange(0, len(ids), bucket_customers))))
        ends = np.cumsum(np.asarray(rows, dtype=np.int64)[order])  # rows up to and with each id
        firsts, start = [], 0
        while start < len(ids):
            firsts.append(start)
            before = int(ends[start - 1]) if start else 0
            fitting = int(np.searchsorted(ends, before + bucket_rows, side="right"))
            start = max(start + 1, min(start + bucket_customers, fitting))
        return cls(ids.take(pa.array(firsts, type=pa.int64())))

    @property
    def count(self) -> int:
        return len(self.firsts)

    def bucket(self, ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Each id's bucket: the last b with firsts[b] <= id (0 for an id before the first), by a binary
        search run on every id at once."""
        low = np.zeros(len(ids), dtype=np.int64)
        high = np.full(len(ids), self.count, dtype=np.int64)
        for _ in range(int(np.ceil(np.log2(max(2, self.count))))):
            middle = (low + high) // 2
            at_or_after = pc.greater_equal(ids, self.firsts.take(pa.array(middle))).to_numpy(zero_copy_only=False)
            low = np.where(at_or_after, middle, low)
            high = np.where(at_or_after, high, middle)
        return low

    def bucket_of_rows(self, ids: pa.ChunkedArray) -> np.ndarray:
        """:meth:`bucket` of many rows of fewer customers: searched once per distinct id."""
        encoded = pc.dictionary_encode(ids).combine_chunks()
        return self.bucket(encoded.dictionary)[encoded.indices.to_numpy(zero_copy_only=False)]


def _rows_by_bucket(buckets: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Row positions grouped by bucket (each bucket's in their order) and where each bucket starts."""
    order = np.argsort(buckets, kind="stable")
    return order, np.searchsorted(buckets[order], np.arange(count + 1))


def bucket_path(folder: Path, b: int) -> Path:
    return folder / f"bucket-{b:06d}.arrow"


@dataclass(frozen=True)
class BucketSummary:
    """What the cleaning report needs of one bucket's transactions."""

    rows_kept: int
    identical: int
    customers: int
    refunds: int
    zero_amounts: int


def _summary(amounts: np.ndarray, repeats: np.ndarray, customer: np.ndarray) -> BucketSummary:
    """The :class:`BucketSummary` of a bucket's kept rows' ``amounts``, the rows found identical to an earlier one
    and each row's customer rank."""
    customers = int(customer.max()) + 1 if len(customer) else 0
    return BucketSummary(len(amounts), int(repeats.sum()), customers, int((amounts < 0).sum()),
                         int((amounts == 0).sum()))


# The text columns a spilled bucket's history reads as codes (the customer ids are ranked instead).
_CODED = ("order_id", "product_id", "category", "channel")


class SpilledInputs:
    """The inputs of one run, the transactions in bucket files under ``folder`` (removed by :meth:`close`, or
    on leaving a ``with`` block); :meth:`bucket` loads one bucket."""

    def __init__(self, folder: Path, ranges: CustomerRanges, config: DataConfig, report: CleaningReport,
                 extremes: dict[str, Any], customers: pd.DataFrame | None, interactions: pd.DataFrame | None,
                 other_reports: list[CleaningReport], personal_data_columns: tuple[str, ...] = ()) -> None:
        self.folder = folder
        self.ranges = ranges
        self.config = config
        self.report = report
        self.extremes = extremes
        self.other_reports = other_reports
        if customers is not None:  # as the in-memory buckets: no batch work reads personal data
            personal = PersonalData(personal_data_columns)
            customers = customers[[c for c in customers.columns if c not in personal]]
        self.customers = customers
        self.interactions = interactions
        self._rows = {name: _rows_by_bucket(ranges.bucket(pa.array(frame["customer_id"])), ranges.count)
                      for name, frame in (("customers", customers), ("interactions", interactions))
                      if frame is not None}

    @property
    def count(self) -> int:
        return self.ranges.count

    @property
    def first_timestamp(self) -> pd.Timestamp:
        return self.extremes["first_timestamp"]

    def path(self, b: int) -> Path:
        return bucket_path(self.folder, b)

    def read(self, b: int, columns: list[str] | None = None) -> pa.Table:
        """Bucket ``b``'s spilled rows (the named columns, by default all), as cleaned, before sorting."""
        with pa.memory_map(str(self.path(b))) as source:
            if columns is None:
                return pa.ipc.open_file(source).read_all()
            # only the named columns' buffers are decompressed
            names = pa.ipc.open_file(source).schema.names
            options = pa.ipc.IpcReadOptions(included_fields=[names.index(name) for name in columns])
            return pa.ipc.open_file(source, options=options).read_all().select(columns)

    def keep(self, b: int, name: str, value: object) -> None:
        """Keep ``value`` of bucket ``b`` on disk, under ``name``, for :meth:`kept` to give back (in another
        process) before the folder is removed."""
        with _room_in(self.folder.parent), (self.folder / f"{name}-{b:06d}.pickle").open("wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)

    def kept(self, b: int, name: str) -> Any:
        """What :meth:`keep` kept of bucket ``b`` under ``name``."""
        with (self.folder / f"{name}-{b:06d}.pickle").open("rb") as f:
            return pickle.load(f)  # noqa: S301 - written by this run into its own temporary folder

    def release(self, b: int, name: str | None = None) -> None:
        """Remove bucket ``b``'s spilled rows (or what :meth:`keep` kept under ``name``) once no step reads them
        again: the folder then holds only what is still to be read, and the command ends without removing it all."""
        path = self.path(b) if name is None else self.folder / f"{name}-{b:06d}.pickle"
        with contextlib.suppress(OSError):  # where it cannot go now (a system that keeps open files), close() does
            path.unlink()

    def profiles(self, b: int) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
        """Bucket ``b``'s customer profiles and interactions (None where the run has none)."""
        def take(name: str, frame: pd.DataFrame | None) -> pd.DataFrame | None:
            if frame is None:
                return None
            order, bounds = self._rows[name]
            return frame.take(order[bounds[b]:bounds[b + 1]])
        return take("customers", self.customers), take("interactions", self.interactions)

    def bucket(self, b: int) -> tuple[Bucket, BucketSummary]:
        """Bucket ``b``'s inputs, its transactions loaded as :func:`~tiercast.features.loading.load_transactions`
        loads a file, and what the report needs of them."""
        columns = self._columns(b)
        order, customer = columnar.by_customer_and_time(columns)
        repeats = columnar.identical_repeats(columns, order, customer)
        rows = self._kept(order, repeats)
        transactions = columnar.to_frame(columns, rows)
        return Bucket(transactions, *self.profiles(b)), _summary(transactions["amount"].to_numpy(), repeats, customer)

    def history(self, b: int, as_of: Any) -> tuple[History, BucketSummary]:
        """Bucket ``b``'s transactions before as_of as the feature builder's history of :meth:`bucket`'s frame
        (:meth:`~tiercast.features.builder.FeatureBuilder.history`), made without the frame: each text column is
        coded once, for finding identical rows and for the history alike; and what the report needs of them."""
        columns = self._columns(b)
        customer, ids = columnar.customer_ranks(columns["customer_id"])
        coded = {name: arrow_codes(values) for name, values in columns.items() if name in _CODED}
        order, _ = columnar.by_customer_and_time(columns, customer)
        # codes stand for their text: -1 (missing) equals only itself, as missing text does
        repeats = columnar.identical_repeats(
            {name: pa.chunked_array([coded[name][0]]) if name in coded else values
             for name, values in columns.items()}, order, customer)
        rows = self._kept(order, repeats)
        amount = columns["amount"].to_numpy()

        def codes(name: str) -> np.ndarray | None:
            return coded[name][0] if name in coded else None

        def text(name: str) -> CodedText | None:
            return CodedText(coded[name][0], coded[name][1].to_numpy(zero_copy_only=False)) if name in coded else None

        lines = CodedLines(
            present=tuple(name for name in OPTIONAL_FEATURE_COLUMNS if name in columns), rows=rows,
            ids=ids.to_numpy(zero_copy_only=False).astype(object), customer=customer,
            ts=columns["timestamp"].cast(pa.timestamp("ns")).cast(pa.int64()).fill_null(NAT).to_numpy(),
            amount=amount, order=codes("order_id"), product=codes("product_id"),
            quantity=columns["quantity"].to_numpy() if "quantity" in columns else None,
            category=text("category"), channel=text("channel"))
        return lines.history(instant_ns(as_of)), _summary(amount[rows], repeats, customer)

    def _columns(self, b: int) -> dict[str, pa.ChunkedArray]:
        table = self.read(b).combine_chunks()  # one chunk a column: taking rows from many costs more
        return dict(zip(table.column_names, table.columns, strict=True))

    def _kept(self, order: np.ndarray, repeats: np.ndarray) -> np.ndarray:
        """The rows the frame holds, in its order: identical repeats left out, unless the config keeps them."""
        return order[~repeats[order]] if self.config.drop_identical_rows else order

    def quality_report(self, summaries: list[BucketSummary]) -> dict[str, object]:
        """The inputs' cleaning reports, as :meth:`~tiercast.features.loading.InputData.quality_report` gives
        them for the inputs loaded whole, from every bucket's summary."""
        report = self.report
        identical = sum(s.identical for s in summaries)
        note_identical_rows(report, identical, self.config)
        report.finish(sum(s.rows_kept for s in summaries))
        report.summary = {
            "customers": sum(s.customers for s in summaries),
            "first_timestamp": str(self.extremes["first_timestamp"]),
            "last_timestamp": str(self.extremes["last_timestamp"]),
            "refund_rows": sum(s.refunds for s in summaries),
            "zero_amount_rows": sum(s.zero_amounts for s in summaries),
            "identical_rows": identical,
            "amount_min": self.extremes["amount_min"],
            "amount_max": self.extremes["amount_max"],
        }
        for line in report.lines():
            log.info(line)
        return {r.kind: r.to_dict() for r in [report, *self.other_reports]}

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> SpilledInputs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _batches(path: Path, config: DataConfig, only: tuple[str, ...] | None = None
             ) -> Iterator[dict[str, pa.ChunkedArray]]:
    csv = columnar_format(path) == "csv"
    encoding = text_encoding(path, config.encoding) if csv else config.encoding
    return columnar.read_canonical_batches(path, csv, encoding, config.columns.transactions, TRANSACTIONS,
                                           BATCH_BYTES, only)


def _in_threads(task: Callable[[Item], Done], items: Iterable[Item], workers: int) -> Iterator[Done]:
    """``task(item)`` of each item, in order, on ``workers`` threads (Arrow's and numpy's kernels let go of the
    GIL), at most ``workers`` items read ahead of the one given back, so memory holds a few batches."""
    if workers <= 1:
        yield from map(task, items)
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="tiercast-spill")
    pending: deque[Future[Done]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(task, item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(cancel_futures=True)


def _rows_per_id(path: Path, config: DataConfig, workers: int) -> tuple[pa.Array, np.ndarray]:
    """The file's distinct cleaned customer ids and the rows of each (a first pass reading that column alone)."""
    def counted(batch: dict[str, pa.ChunkedArray]) -> pa.Table:
        raw = batch["customer_id"]
        if not pa.types.is_dictionary(raw.type) or raw.null_count:
            counts = pc.value_counts(columnar.clean(batch, TRANSACTIONS).columns["customer_id"])
            return pa.table({"id": pc.struct_field(counts, [0]), "rows": pc.struct_field(counts, [1])})
        # Read with its dictionary: each chunk's distinct ids are cleaned and counted without a string per row
        # (two raw ids may clean to one: the sum below adds them up).
        parts = []
        for chunk in raw.chunks:
            held, rows_each = columnar.used_values(chunk)
            ids = columnar.clean({"customer_id": pa.chunked_array([chunk.dictionary.take(pa.array(held))])},
                                 TRANSACTIONS).columns["customer_id"]
            parts.append(pa.table({"id": ids, "rows": pa.array(rows_each)}))
        return pa.concat_tables(parts)
    counts = pa.concat_tables(list(_in_threads(counted, _batches(path, config, ("customer_id",)), workers)))
    summed = counts.group_by("id").aggregate([("rows", "sum")])
    return summed.column("id").combine_chunks(), summed.column("rows_sum").to_numpy()


@dataclass
class _SortedBatch:
    """A cleaned batch, its rows grouped by bucket (bucket b's from ``bounds[b]`` to ``bounds[b + 1]``), with
    what the report needs of it."""

    table: pa.Table
    bounds: np.ndarray
    rows_read: int
    notes: list[tuple[str, int]]
    extremes: dict[str, Any]


def _write_options(folder: Path, table: pa.Table, rows: int) -> pa.ipc.IpcWriteOptions:
    """Uncompressed spill files where ``folder`` has room for ``rows`` rows like ``table``'s, with a margin;
    else compressed."""
    needed = table.nbytes / max(1, table.num_rows) * rows
    room = shutil.disk_usage(folder).free >= _ROOM_FOR_UNCOMPRESSED * needed
    log.debug("spilling about %.0f MB%s into %s", needed / 1e6, "" if room else " (compressed)", folder)
    return _UNCOMPRESSED if room else _COMPRESSED


def _spill(path: Path, config: DataConfig, ranges: CustomerRanges, folder: Path, workers: int, rows: int
           ) -> tuple[CleaningReport, dict[str, Any]]:
    """Every cleaned row into its bucket's file; the report of the reading and cleaning, and the extremes of
    the timestamps and amounts (which dropping identical rows leaves as they are). Batches are cleaned on
    ``workers`` threads and written in the file's order, which keeps each bucket's rows in it. ``rows``: the
    rows the file holds, for the room the files need."""
    def sorted_batch(batch: dict[str, pa.ChunkedArray]) -> _SortedBatch:
        cleaned = columnar.clean(batch, TRANSACTIONS)
        table = pa.table(cleaned.columns)
        extremes = {}
        for name, values in (("timestamp", table.column("timestamp").cast(pa.int64())),
                             ("amount", table.column("amount"))):
            extremes[f"{name}_min"], extremes[f"{name}_max"] = (x.as_py() for x in pc.min_max(values).values())
        order, bounds = _rows_by_bucket(ranges.bucket_of_rows(table.column("customer_id")), ranges.count)
        return _SortedBatch(table.take(pa.array(order)), bounds, cleaned.rows_read, cleaned.notes, extremes)

    writers: dict[int, pa.ipc.RecordBatchFileWriter] = {}
    schemas: dict[int, pa.Schema] = {}
    options = None
    notes: dict[str, int] = {}
    rows_read = 0
    extremes: dict[str, Any] = {}
    try:
        for batch in _in_threads(sorted_batch, _batches(path, config), workers):
            rows_read += batch.rows_read
            for what, count in batch.notes:
                notes[what] = notes.get(what, 0) + count
            for key, value in batch.extremes.items():
                extremes[key] = (min if key.endswith("_min") else max)(extremes.get(key, value), value)
            table, bounds = batch.table, batch.bounds
            if options is None:  # chosen once, on the first batch
                options = _write_options(folder, table, rows)
            for b in np.flatnonzero(np.diff(bounds)):
                if b not in writers:
                    writers[b] = pa.ipc.new_file(bucket_path(folder, b), table.schema, options=options)
                    schemas[b] = table.schema
                writers[b].write_table(table.slice(bounds[b], bounds[b + 1] - bounds[b]).cast(schemas[b]))
    finally:
        for writer in writers.values():
            writer.close()
    report = CleaningReport(str(path), "transactions", rows_read=rows_read)
    for what, count in notes.items():
        report.note(what, count)
    return report, {"first_timestamp": pd.Timestamp(extremes["timestamp_min"]),
                    "last_timestamp": pd.Timestamp(extremes["timestamp_max"]),
                    "amount_min": float(extremes["amount_min"]), "amount_max": float(extremes["amount_max"])}


def spill_inputs(transactions: Path, customers: Path | None, interactions: Path | None, config: DataConfig,
                 bucket_customers: int, personal_data_columns: tuple[str, ...] = (),
                 folder: Path | None = None, workers: int = 1, bucket_rows: int | None = None
                 ) -> SpilledInputs | None:
    """The inputs, the transactions split into bucket files of about ``bucket_customers`` customers (and at
    most ``bucket_rows`` rows, but for a customer of more) in a new temporary folder (inside ``folder``, by
    default the system's), read and cleaned on ``workers`` threads; None when the fast path does not read the
    transactions file, which is then to be loaded whole. A bad profiles or interactions file raises its
    DataError, a folder without room :class:`SpillFolderFull`; nothing is left on disk then."""
    transactions = Path(transactions)
    without_huge_pages()
    spill_folder = Path(tempfile.mkdtemp(prefix="tiercast-spill-", dir=folder))
    try:
        try:
            ids, rows = _rows_per_id(transactions, config, workers)
            ranges = CustomerRanges.of(ids, bucket_customers, rows, bucket_rows)
            with _room_in(spill_folder.parent):  # the folder's fault, not the file's: not loaded whole
                report, extremes = _spill(transactions, config, ranges, spill_folder, workers, int(rows.sum()))
        except (NotFast, DataError, OSError, UnicodeError) as err:
            log.info("%s: loaded whole, as the fast path does not read it (%s)", transactions, err)
            shutil.rmtree(spill_folder, ignore_errors=True)
            return None
        log.info("%s: %s rows spilled into %s buckets of customers", transactions, f"{report.rows_read:,}",
                 ranges.count)
        # Arrow's allocator keeps the batches' freed memory for reuse: given back before the workers fork
        pa.default_memory_pool().release_unused()
        reports, frames = [], {}
        for name, loaded, load in (("customers", customers, load_customers),
                                   ("interactions", interactions, load_interactions)):
            if loaded:
                frames[name], loaded_report = load(loaded, config)
                reports.append(loaded_report)
        return SpilledInputs(spill_folder, ranges, config, report, extremes, frames.get("customers"),
                             frames.get("interactions"), reports, tuple(personal_data_columns))
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(spill_folder)
        raise
