"""Customer buckets: a partition of the customers, the same in every frame, and features built bucket by bucket
in worker processes equal to the features built at once."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_info

from tiercast.features.buckets import BucketEngine, Buckets, bucket_keys, map_buckets
from tiercast.features.builder import FeatureBuilder
from tiercast.features.spec import FeatureSpec
from tiercast.simulation.line_items import line_items
from tiercast.simulation.world import WorldConfig, simulate_world

AS_OF = pd.Timestamp("2024-09-01")
PERSONAL = ("name", "email", "phone")


@pytest.fixture(scope="module")
def world():
    return simulate_world(WorldConfig(n_customers=900, seed=5))


def test_bucket_of_a_customer_is_the_same_in_every_frame_and_run(world) -> None:
    tx, customers = world.transactions, world.customers
    keys = bucket_keys(tx["customer_id"], 7)
    assert keys.min() >= 0 and keys.max() <= 6 and len(np.unique(keys)) == 7
    per_customer = pd.Series(keys).groupby(tx["customer_id"].to_numpy()).nunique()
    assert (per_customer == 1).all()
    of_profile = dict(zip(customers["customer_id"], bucket_keys(customers["customer_id"], 7), strict=True))
    assert all(of_profile[c] == k for c, k in zip(tx["customer_id"], keys, strict=True))
    # Arrow-backed strings hash as the same text.
    assert np.array_equal(bucket_keys(tx["customer_id"].astype("string[pyarrow]"), 7), keys)
    assert bucket_keys(pd.Series(["C0000001", None]), 7)[1] == 0


def test_split_keeps_every_row_once_in_its_order(world) -> None:
    buckets = Buckets.split(world.transactions, world.customers, world.interactions, bucket_customers=100,
                            personal_data_columns=PERSONAL)
    assert buckets.count == 9  # 900 customers with transactions, 100 a bucket
    assert list(buckets.bucket(0).customers.columns) == [c for c in world.customers.columns if c not in PERSONAL]
    for name, frame in (("transactions", world.transactions), ("interactions", world.interactions)):
        rows = np.concatenate(buckets.rows[name])
        assert np.array_equal(np.sort(rows), np.arange(len(frame)))
        assert all((np.diff(r) > 0).all() for r in buckets.rows[name])
    ids = [set(buckets.bucket(b).transactions["customer_id"]) for b in range(buckets.count)]
    assert sum(len(i) for i in ids) == len(set().union(*ids))


def test_buckets_of_many_rows_a_customer_are_cut_by_rows(world) -> None:
    """A log of line items (many rows a customer) gets more buckets, so that each holds about bucket_rows rows;
    the features stay those of the buckets cut by customers alone."""
    tx = line_items(world)
    twentieth = -(-len(tx) // 20)
    by_customers = Buckets.split(tx, bucket_customers=300)
    by_rows = Buckets.split(tx, bucket_customers=300, bucket_rows=twentieth)
    assert by_customers.count == 3 and by_rows.count == 20
    assert max(len(r) for r in by_rows.rows["transactions"]) < 2 * len(tx) / 20
    assert Buckets.split(tx, bucket_customers=100, bucket_rows=len(tx)).count == 9  # customers still cut too
    spec = FeatureSpec()
    one, other = (BucketEngine(bucket_customers=300, bucket_rows=rows) for rows in (None, twentieth))
    pd.testing.assert_frame_equal(one.fit_transform(FeatureBuilder(spec), one.split(tx), AS_OF),
                                  other.fit_transform(FeatureBuilder(spec), other.split(tx), AS_OF))


def _arrow_strings(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype({c: "string[pyarrow]" for c in frame.columns if frame[c].dtype == object})


@pytest.mark.parametrize("kind", ["orders", "line_items"])
@pytest.mark.parametrize(("workers", "strings"), [(1, "object"), (2, "object"), (2, "arrow")])
def test_features_in_buckets_equal_features_at_once(world, kind: str, workers: int, strings: str, caplog) -> None:
    tx = world.transactions if kind == "orders" else line_items(world)
    frames = (tx, world.customers, world.interactions)
    if strings == "arrow":
        frames = tuple(_arrow_strings(f) for f in frames)
    spec = FeatureSpec(min_profile_level_count=2)
    whole = FeatureBuilder(spec, PERSONAL)
    expected = whole.fit_transform(*frames[:1], AS_OF, *frames[1:])
    engine = BucketEngine(workers=workers, bucket_customers=64, personal_data_columns=PERSONAL)
    buckets = engine.split(*frames)
    builder = FeatureBuilder(spec, PERSONAL)
    with caplog.at_level("INFO", logger="tiercast"):
        features = engine.fit_transform(builder, buckets, AS_OF)
    assert buckets.count > 10
    assert builder.to_dict() == whole.to_dict()
    pd.testing.assert_frame_equal(features, expected)
    # Python-object strings would be copied into every worker: those buckets run in this process.
    assert ("one process, as the inputs hold Python-object columns (transactions.customer_id" in caplog.text) == (
        workers == 2 and strings == "object")


@pytest.mark.parametrize("strings", ["object", "arrow"])
def test_tasks_reading_python_object_strings_run_in_this_process(world, strings, caplog) -> None:
    tx = world.transactions if strings == "object" else _arrow_strings(world.transactions)
    engine = BucketEngine(workers=2, bucket_customers=64)
    with caplog.at_level("INFO", logger="tiercast"):
        pids = engine.run(lambda k: os.getpid(), 3, "fitting", "fits", reads=engine.split(tx))
    assert (set(pids) == {os.getpid()}) == (strings == "object")
    assert ("fitting: one process" in caplog.text) == (strings == "object")


def test_workers_run_in_other_processes_and_answer_in_bucket_order() -> None:
    heard: list[str] = []
    pids = map_buckets(lambda b: (b, os.getpid()), 6, 2, "testing", heard.append)
    assert [b for b, _ in pids] == list(range(6))
    assert os.getpid() not in {pid for _, pid in pids}
    assert heard[-1] == "testing: 6/6 buckets done"


def test_a_failing_bucket_fails_the_job() -> None:
    def task(b: int) -> int:
        if b == 3:
            raise ValueError("bucket 3 is bad")
        return b

    with pytest.raises(ValueError, match="bucket 3 is bad"):
        map_buckets(task, 5, 2, "testing")


def test_a_worker_killed_by_the_system_fails_the_job_instead_of_waiting_for_it() -> None:
    """As the kernel's out-of-memory killer would: the job stops with BrokenProcessPool, not a wait forever."""
    from concurrent.futures.process import BrokenProcessPool

    def task(b: int) -> int:
        if b == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return b

    with pytest.raises(BrokenProcessPool):
        map_buckets(task, 4, 2, "testing")
    assert map_buckets(lambda b: b * 2, 4, 2, "testing") == [0, 2, 4, 6]  # the next job gets a pool of its own


_STATUS = Path("/proc/self/status")


@pytest.mark.skipif(not _STATUS.exists() or "THP_enabled" not in _STATUS.read_text(),
                    reason="the kernel does not report transparent huge pages per process (Linux 5.0 and later do)")
def test_batch_work_keeps_itself_and_its_workers_off_transparent_huge_pages() -> None:
    code = ("import os\n"
            "from tiercast.features.buckets import without_huge_pages\n"
            "without_huge_pages()\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    print([l for l in open('/proc/self/status') if l.startswith('THP_enabled')][0], end='')\n"
            "    os._exit(0)\n"
            "os.waitpid(pid, 0)\n")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert shown.split() == ["THP_enabled:", "0"]  # the forked worker inherits it


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc is tuned on Linux only")
def test_batch_work_reuses_the_memory_of_the_arrays_it_frees() -> None:
    code = ("import resource, sys\n"
            "import numpy as np\n"
            "from tiercast.features.buckets import reuse_freed_memory\n"
            "if sys.argv[1] == 'reused':\n"
            "    reuse_freed_memory()\n"
            "def step():  # a bucket's work: a few arrays of 16 MB, then freed\n"
            "    arrays = [np.ones(1 << 21) for _ in range(4)]\n"
            "step()\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
            "for _ in range(5):\n"
            "    step()\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n")
    faults = {how: int(subprocess.run([sys.executable, "-c", code, how], capture_output=True, text=True,
                                      check=True).stdout)
              for how in ("default", "reused")}
    assert faults["default"] >= 5 * 1024  # at least 4 MB of each step's arrays faulted in again, page by page
    assert faults["reused"] < 1000  # the memory the first step freed taken again


def _frozen_objects(b: int) -> int:
    return gc.get_freeze_count()


@pytest.mark.parametrize("workers", [1, 2])
def test_objects_made_before_bucket_work_are_left_to_it_frozen_and_thawed_after(workers: int) -> None:
    assert gc.get_freeze_count() == 0
    frozen = map_buckets(_frozen_objects, 3, workers, "counting")
    assert min(frozen) > 1000  # the modules and inputs, skipped by every collection while the work runs
    assert gc.get_freeze_count() == 0  # given back to the collector afterwards


def _blas_threads(b: int) -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_forked_workers_compute_with_one_blas_thread_each() -> None:
    in_workers = map_buckets(_blas_threads, 2, 2, "counting threads")
    assert in_workers and all(threads == [1] * len(threads) and threads for threads in in_workers)
