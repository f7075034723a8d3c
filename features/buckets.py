"""Customer buckets: the inputs split by a stable hash of customer_id, and per-bucket work run on every core.

Every row of a customer (transactions, profile, interactions) lands in the same bucket, so the features,
labels and scores of a bucket need no other bucket, and memory beyond the loaded inputs follows the bucket,
not the log. The work runs in a pool of worker processes forked after loading: they read the parent's
frames without copying them, and return only their bucket's (small) result.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import math
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from tiercast.features.builder import FeatureBuilder, FitParts
from tiercast.features.encoding import IntArray, encode
from tiercast.features.privacy import PersonalData

log = logging.getLogger(__name__)

Result = TypeVar("Result")


def bucket_keys(customer_ids: pd.Series | np.ndarray, n_buckets: int) -> IntArray:
    """The bucket (0..n_buckets-1) of each row's customer id: a hash of the id's text, the same in every
    process, run and frame. Rows without an id go to bucket 0 (no customer's work reads them)."""
    return _keys(*encode(customer_ids), n_buckets)


def _keys(codes: IntArray, uniques: np.ndarray, n_buckets: int) -> IntArray:
    hashes = pd.util.hash_array(np.asarray([str(u) for u in uniques], dtype=object), categorize=False)
    of_unique = (hashes % np.uint64(n_buckets)).astype(np.int64)
    return np.where(codes >= 0, of_unique[codes] if len(of_unique) else 0, 0)


def bucket_count(customers: int, rows: int, bucket_customers: int, bucket_rows: int | None = None) -> int:
    """Buckets enough for at most ``bucket_customers`` customers and, hashed evenly, about ``bucket_rows`` rows
    each."""
    by_rows = 1 if bucket_rows is None else math.ceil(rows / bucket_rows)
    return max(1, math.ceil(customers / bucket_customers), by_rows)


def _bucket_rows(keys: IntArray, n_buckets: int) -> list[IntArray]:
    """Row positions of each bucket, in their original order."""
    order = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[order], np.arange(n_buckets + 1))
    return [order[bounds[b]:bounds[b + 1]] for b in range(n_buckets)]


@dataclass(frozen=True)
class Bucket:
    """One bucket's rows of each input (None where the input is None)."""

    transactions: pd.DataFrame
    customers: pd.DataFrame | None
    interactions: pd.DataFrame | None


@dataclass(frozen=True)
class Buckets:
    """The inputs and where each bucket's rows are; `bucket(b)` takes them out when a worker needs them."""

    transactions: pd.DataFrame
    customers: pd.DataFrame | None
    interactions: pd.DataFrame | None
    rows: dict[str, list[IntArray]]
    count: int

    @classmethod
    def split(cls, transactions: pd.DataFrame, customers: pd.DataFrame | None = None,
              interactions: pd.DataFrame | None = None, bucket_customers: int = 25_000,
              personal_data_columns: Sequence[str] = (), bucket_rows: int | None = None) -> Buckets:
        """Buckets of about ``bucket_customers`` customers each (by the distinct ids of the transactions), more
        where that would give buckets of more than about ``bucket_rows`` transaction rows. The buckets' profiles
        leave out the personal-data columns: no batch work reads them."""
        if bucket_customers < 1:
            raise ValueError(f"bucket_customers must be at least 1, got {bucket_customers}")
        codes, uniques = encode(transactions["customer_id"])
        count = bucket_count(len(uniques), len(transactions), bucket_customers, bucket_rows)
        rows = {"transactions": _bucket_rows(_keys(codes, uniques, count), count)}
        for name, frame in (("customers", customers), ("interactions", interactions)):
            if frame is not None:
                rows[name] = _bucket_rows(bucket_keys(frame["customer_id"], count), count)
        if customers is not None:
            personal = PersonalData(personal_data_columns)
            customers = customers[[c for c in customers.columns if c not in personal]]
        return cls(transactions, customers, interactions, rows, count)

    @property
    def held_as_objects(self) -> list[str]:
        """The inputs' columns held as Python objects (object dtype): a forked worker taking rows of them
        changes their reference counts, and so copies the pages that hold them."""
        frames = {"transactions": self.transactions, "customers": self.customers,
                  "interactions": self.interactions}
        return [f"{name}.{column}" for name, frame in frames.items() if frame is not None
                for column in frame.columns if frame[column].dtype == object]

    def bucket(self, b: int) -> Bucket:
        def take(name: str, frame: pd.DataFrame | None) -> pd.DataFrame | None:
            return None if frame is None else frame.take(self.rows[name][b])
        return Bucket(take("transactions", self.transactions), take("customers", self.customers),
                      take("interactions", self.interactions))


def default_workers() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# prctl(2)'s option that keeps a process, and the processes it forks, off transparent huge pages.
_PR_SET_THP_DISABLE = 41


def without_huge_pages() -> None:
    """Keep this process and the workers it forks off transparent huge pages (Linux; elsewhere nothing), for
    the rest of its life: the CLI's batch commands call it first thing. Batch work allocates and frees large
    arrays, bucket after bucket or step after step; backed by huge pages, each fresh 2 MB page is zeroed in full
    first, which took a fifth of the CPU of spilling a large log and two fifths of `features` on 1M rows."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_THP_DISABLE, 1, 0, 0, 0)
    except (OSError, AttributeError):  # no C library to ask: the memory just stays as the system gives it
        log.debug("could not turn transparent huge pages off")


# mallopt(3)'s parameters: the free memory at the heap's top from which malloc hands it back to the system, and
# the size from which it maps a block of its own (unmapped when freed). 32 MB is the largest glibc takes.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_TRIM_FROM_BYTES, _MAPPED_FROM_BYTES = 1 << 30, 32 << 20


def reuse_freed_memory() -> None:
    """Let this process and the workers it forks reuse the memory of the arrays they free (glibc; elsewhere
    nothing), for the rest of its life: the CLI's batch commands call it first thing. By default glibc maps a
    block of over 128 KB of its own and hands freed memory back, so the next bucket's arrays, of the same sizes,
    were faulted in again page by page. Blocks of up to 32 MB now come from the heap and stay there for the
    next; :func:`release_freed_memory` still hands them back where a step needs it."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, _MAPPED_FROM_BYTES)
        libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_FROM_BYTES)
    except (OSError, AttributeError):  # not glibc (musl has no mallopt): freed memory is only faulted in again
        log.debug("could not keep freed memory for reuse")


def release_freed_memory() -> None:
    """Hand the pages of the heap that hold only freed memory back to the system (glibc's malloc_trim; elsewhere
    nothing). A step that freed large intermediates leaves them with this process otherwise, counted in its
    memory beside what the workers forked next, or the models fitted next, take."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim): the memory is only held longer
        log.debug("could not hand freed memory back to the system")


# Whether this system forks workers (not Windows): where it does not, the work runs in this process.
_FORKS = "fork" in multiprocessing.get_all_start_methods()

# The task of the running pool, set before its workers fork so that they inherit it (and what it reads).
_task: Callable[[int], Any] | None = None


def _run_task(b: int) -> Any:
    assert _task is not None
    return _task(b)


def _start_worker() -> None:
    """A worker computes with one BLAS thread: the workers share the cores already, and BLAS's own threads
    would only spin beside them."""
    threadpool_limits(1, user_api="blas")


def _results(task: Callable[[int], Result], count: int, workers: int) -> Iterator[Result]:
    global _task
    # What exists before the work (modules, inputs, models: hundreds of thousands of objects) outlives it. Frozen,
    # the garbage collector of this process and of its forked workers skips it, instead of walking it all
    # every time the work's own objects start a full collection.
    gc.freeze()
    try:
        if workers <= 1 or count <= 1 or not _FORKS:
            yield from (task(b) for b in range(count))
            return
        _task = task
        release_freed_memory()
        # A pool of concurrent.futures, not multiprocessing's: a worker the system kills (out of memory) breaks it
        # with BrokenProcessPool, where multiprocessing's pool would wait for its result forever.
        pool = ProcessPoolExecutor(min(workers, count), multiprocessing.get_context("fork"), _start_worker)
        try:
            yield from pool.map(_run_task, range(count))
        finally:  # on an error, the buckets not started are dropped, not computed
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        _task = None
        gc.unfreeze()


def worker_lock() -> contextlib.AbstractContextManager[Any]:
    """A lock that the workers :func:`each_bucket` forks share, for a step only one of them should take at a
    time (such as one holding much memory for a moment); a no-op where no worker is forked."""
    if not _FORKS:
        return contextlib.nullcontext()
    return multiprocessing.get_context("fork").Lock()


def each_bucket(task: Callable[[int], Result], count: int, workers: int, what: str,
                progress: Callable[[str], None] | None = None, unit: str = "buckets") -> Iterator[Result]:
    """``task(b)`` for b in range(count), in that order, as each is done: computed by ``workers`` forked
    processes (in this one when 1). ``progress`` hears of about every tenth of the buckets (or other ``unit``)
    done, naming ``what`` is being done."""
    step = max(1, math.ceil(count / 10))
    for done, result in enumerate(_results(task, count, workers), start=1):
        if progress is not None and count > 1 and (done % step == 0 or done == count):
            progress(f"{what}: {done}/{count} {unit} done")
        yield result


def map_buckets(task: Callable[[int], Result], count: int, workers: int, what: str,
                progress: Callable[[str], None] | None = None, unit: str = "buckets") -> list[Result]:
    """``[task(b) for b in range(count)]``, as :func:`each_bucket` computes them."""
    return list(each_bucket(task, count, workers, what, progress, unit))


def in_customer_order(parts: Sequence[pd.DataFrame], column: str | None = None) -> pd.DataFrame:
    """Per-bucket tables (each sorted by customer id) as one, sorted by customer id as the builder sorts
    (Python string order): by the index, or by ``column`` when given (the index then 0..n-1). Gathered a
    column at a time, so the whole table exists once beside the parts, not twice."""
    if len(parts) == 1:
        return parts[0]
    ids = np.concatenate([(p.index if column is None else p[column]).to_numpy(dtype=object) for p in parts])
    order = np.argsort(ids, kind="stable")
    columns: dict[str, Any] = {}
    for name in parts[0].columns:
        gathered = pd.concat([p[name] for p in parts], ignore_index=True).take(order)
        columns[name] = (gathered.array if isinstance(gathered.dtype, pd.api.extensions.ExtensionDtype)
                         else gathered.to_numpy())
    index = (pd.RangeIndex(len(ids)) if column is not None
             else pd.Index(ids[order], dtype=object, name=parts[0].index.name))
    return pd.DataFrame(columns, index=index, copy=False)


@dataclass(frozen=True)
class BucketEngine:
    """How batch work is split and run: buckets of about ``bucket_customers`` customers (more buckets where they
    would hold more than about ``bucket_rows`` transaction rows), ``workers`` processes (1: in this one), and
    ``progress`` hearing how far long jobs are."""

    workers: int = 1
    bucket_customers: int = 25_000
    progress: Callable[[str], None] | None = None
    personal_data_columns: Sequence[str] = ()
    bucket_rows: int | None = None

    @classmethod
    def at_once(cls) -> BucketEngine:
        """Everything in one bucket, in this process."""
        return cls(1, sys.maxsize)

    def split(self, transactions: pd.DataFrame, customers: pd.DataFrame | None = None,
              interactions: pd.DataFrame | None = None) -> Buckets:
        return Buckets.split(transactions, customers, interactions, self.bucket_customers,
                             self.personal_data_columns, self.bucket_rows)

    def map(self, task: Callable[[int], Result], buckets: Buckets, what: str) -> list[Result]:
        """``task`` of every bucket, in bucket order."""
        workers = self._workers_reading(buckets, what) if buckets.count > 1 else self.workers
        return map_buckets(task, buckets.count, workers, what, self.progress)

    def run(self, task: Callable[[int], Result], count: int, what: str, unit: str, reads: Buckets | None = None
            ) -> list[Result]:
        """``[task(k) for k in range(count)]`` on the engine's workers: independent pieces of work (``unit``, as
        the progress names them) that read what this process holds, such as one model fit per window, and
        ``reads`` the inputs of these buckets."""
        workers = self._workers_reading(reads, what) if count > 1 else self.workers
        return map_buckets(task, count, workers, what, self.progress, unit)

    def _workers_reading(self, buckets: Buckets | None, what: str) -> int:
        """The workers of work reading ``buckets``' inputs: this process alone when they hold Python-object
        strings, which every worker would copy as it read them."""
        if self.workers > 1 and buckets is not None and buckets.held_as_objects:
            log.info("%s: one process, as the inputs hold Python-object columns (%s) that each worker would "
                     "copy", what, ", ".join(buckets.held_as_objects))
            return 1
        return self.workers

    def fit_transform(self, builder: FeatureBuilder, buckets: Buckets, as_of: Any) -> pd.DataFrame:
        """``builder.fit_transform`` of the buckets' inputs: fitted from the buckets' parts, then the
        features of each bucket, in customer order."""
        if buckets.count == 1:
            return builder.fit_transform(buckets.transactions, as_of, buckets.customers, buckets.interactions)

        def parts(b: int) -> FitParts:
            bucket = buckets.bucket(b)
            return builder.fit_parts(bucket.transactions, as_of, bucket.customers, bucket.interactions)

        builder.fit_from_parts(FitParts.combine(self.map(parts, buckets, "fitting features")))
        return self.transform(builder, buckets, as_of)

    def transform(self, builder: FeatureBuilder, buckets: Buckets, as_of: Any) -> pd.DataFrame:
        """``builder.transform`` of the buckets' inputs, bucket by bucket, in customer order."""
        def features(b: int) -> pd.DataFrame:
            bucket = buckets.bucket(b)
            return builder.transform(bucket.transactions, as_of, bucket.customers, bucket.interactions)

        return in_customer_order(self.map(features, buckets, "building features"))
