"""The transactions log spilled into buckets of customer-id ranges (:mod:`tiercast.features.spill`): the buckets,
loaded one after another, are the whole file's frame; ranges follow Python's string order; the batches of the
file are the file."""

from __future__ import annotations

import bisect
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tiercast.features import columnar
from tiercast.features.builder import FeatureBuilder
from tiercast.features.loading import load_transactions
from tiercast.features.schema import TRANSACTIONS, DataConfig
from tiercast.features.spill import (
    CustomerRanges,
    SpillFolderFull,
    _batches,
    _rows_per_id,
    estimated_rows,
    spill_inputs,
)


def test_ranges_follow_python_string_order() -> None:
    rng = np.random.default_rng(3)
    alphabet = list("aZ09-_ éü中😀")
    ids = sorted({"".join(rng.choice(alphabet, rng.integers(1, 6))) for _ in range(3000)})
    ranges = CustomerRanges.of(pa.array(rng.permutation(ids)), 97)
    firsts = ids[::97]
    assert ranges.firsts.to_pylist() == firsts and ranges.count == len(firsts)
    expected = [bisect.bisect_right(firsts, i) - 1 for i in ids]
    assert ranges.bucket(pa.array(ids)).tolist() == expected
    assert ranges.bucket(pa.array(["", "\x00"])).tolist() == [0, 0]  # before the first id: the first bucket


def test_ranges_are_cut_before_they_pass_the_rows_of_a_bucket() -> None:
    rng = np.random.default_rng(4)
    ids = [f"c{i:05d}" for i in range(2000)]
    rows = rng.integers(1, 120, len(ids))
    rows[[10, 500]] = 1000  # customers of more rows than a bucket: a bucket each
    shuffled = rng.permutation(len(ids))
    ranges = CustomerRanges.of(pa.array(ids).take(pa.array(shuffled)), 150, rows[shuffled], 600)
    starts = [ids.index(first) for first in ranges.firsts.to_pylist()] + [len(ids)]
    assert starts[0] == 0 and starts == sorted(starts)
    for start, end in zip(starts, starts[1:]):
        assert end - start <= 150
        assert rows[start:end].sum() <= 600 or end - start == 1
        if end < len(ids):  # cut only where the next customer would not fit
            assert end - start == 150 or rows[start:end + 1].sum() > 600
    assert {10, 500} <= {start for start, end in zip(starts, starts[1:]) if end - start == 1}


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    """Transactions of 400 customers (ids of several lengths, out of order), with identical rows."""
    rng = np.random.default_rng(7)
    n = 5000
    frame = pd.DataFrame({
        "customer_id": [f" c{v} " if v % 50 == 0 else f"c{v}" for v in rng.integers(0, 400, n)],
        "timestamp": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300, n), unit="D"),
        "amount": rng.choice([-5.0, 0.0, 12.5, 30.0], n),
        "order_id": [f"o{v}" for v in rng.integers(0, 30_000, n)],  # seldom repeated
        "category": rng.choice(["books", " music ", "", "toys"], n),  # repeated text, blank = missing
    })
    frame = pd.concat([frame, frame.iloc[:40]], ignore_index=True)
    path = tmp_path / "tx.parquet"
    frame.to_parquet(path, index=False)
    return path


# With 3 workers the batches are cleaned on threads, out of step: they must still reach the buckets in order.
@pytest.mark.parametrize(("drop", "workers"), [(False, 1), (True, 1), (True, 3)])
def test_the_buckets_one_after_another_are_the_whole_file(log_file, tmp_path, monkeypatch, drop, workers) -> None:
    monkeypatch.setattr("tiercast.features.spill.BATCH_BYTES", 20_000)  # several batches
    config = DataConfig(drop_identical_rows=drop)
    whole, report = load_transactions(log_file, config)
    spill = tmp_path / "spill"
    spill.mkdir()
    with spill_inputs(log_file, None, None, config, 60, folder=spill, workers=workers) as spilled:
        assert spilled.count == 7 and len(list(next(spill.iterdir()).iterdir())) == 7
        loaded = [spilled.bucket(b) for b in range(spilled.count)]
        quality = spilled.quality_report([summary for _, summary in loaded])
    assert not list(spill.iterdir())
    frames = [bucket.transactions for bucket, _ in loaded]
    assert all(len(set(f["customer_id"])) <= 60 for f in frames)
    pd.testing.assert_frame_equal(pd.concat(frames, ignore_index=True), whole)
    assert quality == {"transactions": report.to_dict()}
    assert report.summary["identical_rows"] >= 40 and report.rows_kept == len(whole)


def test_buckets_hold_about_bucket_rows(log_file, tmp_path) -> None:
    whole, _ = load_transactions(log_file, DataConfig())
    with spill_inputs(log_file, None, None, DataConfig(), 60, folder=tmp_path, bucket_rows=300) as spilled:
        frames = [spilled.bucket(b)[0].transactions for b in range(spilled.count)]
    assert len(frames) >= len(whole) / 300 and max(len(f) for f in frames) <= 300
    pd.testing.assert_frame_equal(pd.concat(frames, ignore_index=True), whole)


@pytest.fixture
def line_items_file(tmp_path: Path) -> Path:
    """Line items of 300 customers with every optional column: missing order ids, products, quantities, categories
    and channels, refunds, rows identical to an earlier one and rows at or after the cutoff."""
    rng = np.random.default_rng(11)
    n = 6000
    order = rng.integers(0, 900, n)
    frame = pd.DataFrame({
        "customer_id": [f"c{v}" for v in rng.integers(0, 300, n)],
        "timestamp": pd.Timestamp("2024-01-01") + pd.to_timedelta(order % 400, unit="D"),
        "amount": rng.choice([-5.0, 0.0, 2.5, 12.5, 30.0], n),
        "order_id": [None if v % 37 == 0 else f"o{v}" for v in order],
        "product_id": rng.choice(["p1", "p2", "p3", "", "p4"], n),
        "quantity": rng.choice([1.0, 2.0, np.nan, 40.0], n),
        "category": rng.choice(["books", " music ", "", "toys"], n),
        "channel": rng.choice(["Web", "store", "", "App"], n),
    })
    late = frame["customer_id"].isin([f"c{v}" for v in range(280, 300)])  # customers only from the cutoff on
    frame.loc[late, "timestamp"] += pd.Timedelta(days=400)
    frame = pd.concat([frame, frame.iloc[:60]], ignore_index=True)
    path = tmp_path / "lines.parquet"
    frame.to_parquet(path, index=False)
    return path


def _same_grouping(a: np.ndarray | None, b: np.ndarray | None) -> None:
    """Codes that group the same lines alike (missing, -1, apart), whatever their numbers."""
    assert (a is None) == (b is None)
    if a is not None:
        assert np.array_equal(a < 0, b < 0) and np.array_equal(pd.factorize(a)[0], pd.factorize(b)[0])


@pytest.mark.parametrize("drop", [False, True])
def test_a_buckets_history_is_the_history_of_its_frame(line_items_file, tmp_path, drop) -> None:
    """Made from the spilled columns, without a frame, the history holds the lines, customers and codes the
    builder's history of the bucket's frame holds; the features of both are the same."""
    config, as_of = DataConfig(drop_identical_rows=drop), pd.Timestamp("2024-10-01")
    builder = FeatureBuilder()
    with spill_inputs(line_items_file, None, None, config, 70, folder=tmp_path) as spilled:
        assert spilled.count > 3
        without_history = 0
        for b in range(spilled.count):
            bucket, summary = spilled.bucket(b)
            of_frame = builder.history(bucket.transactions, as_of)
            history, history_summary = spilled.history(b, as_of)
            assert history_summary == summary
            assert history.present == of_frame.present == ("product_id", "quantity", "category", "channel")
            assert history.ids.tolist() == of_frame.ids.tolist() and 0 < history.n <= summary.customers
            without_history += summary.customers - history.n
            for name in ("codes", "ts", "age", "amount", "quantity"):
                np.testing.assert_array_equal(getattr(history, name), getattr(of_frame, name))
            _same_grouping(history.order, of_frame.order)
            _same_grouping(history.product, of_frame.product)
            for name in ("category", "channel"):
                text, frame_text = getattr(history, name), getattr(of_frame, name)
                values = np.append(text.uniques, None)[text.codes]
                assert values.tolist() == np.append(frame_text.uniques, None)[frame_text.codes].tolist()
            pd.testing.assert_frame_equal(builder.transform_history(history).frame(),
                                          builder.transform_history(of_frame).frame())
        assert without_history == 20


def test_a_released_bucket_leaves_the_folder_and_the_rest_stays(log_file, tmp_path) -> None:
    folder = tmp_path / "spill"
    folder.mkdir()
    with spill_inputs(log_file, None, None, DataConfig(), 60, folder=folder) as spilled:
        spilled.keep(1, "history", np.arange(3))
        spilled.release(0)
        spilled.release(1, "history")
        spilled.release(0)  # twice: nothing left to remove
        assert not spilled.path(0).exists() and spilled.path(1).exists()
        assert sorted(p.name for p in spilled.folder.iterdir()) == [spilled.path(b).name for b in range(1, 7)]
        assert len(spilled.bucket(1)[0].transactions) > 0
    assert not list(folder.iterdir())


def _spilled_sizes_and_frames(log_file: Path, folder: Path) -> tuple[int, list[pd.DataFrame]]:
    with spill_inputs(log_file, None, None, DataConfig(), 60, folder=folder) as spilled:
        size = sum(spilled.path(b).stat().st_size for b in range(spilled.count))
        return size, [spilled.bucket(b)[0].transactions for b in range(spilled.count)]


def test_spill_files_are_compressed_only_where_the_folder_lacks_room_for_them(log_file, tmp_path, monkeypatch
                                                                              ) -> None:
    roomy, roomy_frames = _spilled_sizes_and_frames(log_file, tmp_path)
    # A disk short of room cannot be made here: the free space the system reports is.
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr("tiercast.features.spill.shutil.disk_usage",
                        lambda path: usage._replace(free=roomy * 2))  # under 3 times what they need
    cramped, cramped_frames = _spilled_sizes_and_frames(log_file, tmp_path)
    assert cramped < 0.7 * roomy  # LZ4 on text of few values
    for a, b in zip(roomy_frames, cramped_frames, strict=True):
        pd.testing.assert_frame_equal(a, b)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a file every write to fails as a full disk")
def test_what_a_bucket_keeps_in_a_folder_without_room_is_said_as_such(log_file, tmp_path) -> None:
    with spill_inputs(log_file, None, None, DataConfig(), 60, folder=tmp_path) as spilled:
        (spilled.folder / "history-000000.pickle").symlink_to("/dev/full")  # answers every write "no space left"
        with pytest.raises(SpillFolderFull, match=f"cannot write {tmp_path}: no space left") as raised:
            spilled.keep(0, "history", np.zeros(100_000))
    assert pickle.loads(pickle.dumps(raised.value)).folder == tmp_path  # as a worker hands it back


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_batches_are_the_file(log_file, tmp_path, suffix) -> None:
    path = log_file
    if suffix == ".csv":
        path = tmp_path / "tx.csv"
        pd.read_parquet(log_file).to_csv(path, index=False)
    args = (path, suffix == ".csv", "utf-8", {}, TRANSACTIONS)
    batches = list(columnar.read_canonical_batches(*args, 20_000))
    assert len(batches) >= 3
    whole = columnar.read_canonical(*args, keep_others=False)
    assert list(batches[0]) == list(whole)
    for name, column in whole.items():
        assert pa.chunked_array([c for b in batches for c in _decoded(b[name]).chunks]).equals(_decoded(column))


def _decoded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column


def test_repeated_text_is_read_with_its_dictionary_and_cleaned_as_every_row(log_file) -> None:
    """Ids and categories that repeat come with their dictionary and are cleaned once a value; the rows get what
    cleaning the whole file row by row gives them, and the report counts the rows whose id was stripped."""
    args = (log_file, False, "utf-8", {}, TRANSACTIONS)
    batches = list(columnar.read_canonical_batches(*args, 20_000))
    assert len(batches) >= 3
    assert {name for name, column in batches[0].items() if pa.types.is_dictionary(column.type)} == {
        "customer_id", "category"}  # the order ids seldom repeat: read as text
    cleaned = [columnar.clean(dict(batch), TRANSACTIONS) for batch in batches]
    read = columnar.read_canonical(*args, keep_others=False)
    assert pa.types.is_dictionary(read["customer_id"].type)  # the whole file is read so too
    whole = columnar.clean({name: _decoded(column) for name, column in read.items()}, TRANSACTIONS)  # row by row
    for name, column in whole.columns.items():
        assert pa.chunked_array([c for part in cleaned for c in part.columns[name].chunks]).equals(column)
    stripped = sum(count for part in cleaned for what, count in part.notes if what == columnar.STRIPPED_IDS)
    assert stripped == dict(whole.notes)[columnar.STRIPPED_IDS] > 0


def test_parquet_batches_hold_about_their_bytes_once_decoded(tmp_path) -> None:
    """A column of few distinct long texts stores a fraction of what it decodes to: the batches are cut by
    what they hold in memory, not by what the file stores."""
    n = 40_000
    frame = pd.DataFrame({"customer_id": [f"c{i % 900}" for i in range(n)],
                          "timestamp": pd.Timestamp("2024-01-01"), "amount": 1.0,
                          "category": [f"{'a long department name ' * 8}{i % 5}" for i in range(n)]})
    path = tmp_path / "tx.parquet"
    frame.to_parquet(path, index=False)
    batches = list(columnar.read_canonical_batches(path, False, "utf-8", {}, TRANSACTIONS, 500_000))
    decoded = [pa.table({name: _decoded(column) for name, column in b.items()}).nbytes for b in batches]
    assert sum(decoded) > 10 * path.stat().st_size  # what the file stores says little of what it holds
    assert len(batches) >= 10 and max(decoded) < 1.2 * 500_000


def test_rows_are_estimated_from_the_file(log_file, tmp_path) -> None:
    assert estimated_rows(log_file) == 5040
    path = tmp_path / "tx.csv"
    pd.read_parquet(log_file).to_csv(path, index=False)
    assert 5041 * 0.9 < estimated_rows(path) < 5041 * 1.1
    assert estimated_rows(tmp_path / "missing.parquet") is None



def test_rows_of_one_customer_and_instant_keep_the_file_order_across_threads(tmp_path, monkeypatch) -> None:
    """Rows sharing a customer and an instant stay in the file's order (the loader's stable sort): the batches,
    cleaned on threads, are written in turn."""
    monkeypatch.setattr("tiercast.features.spill.BATCH_BYTES", 2_000)
    n = 3000
    frame = pd.DataFrame({"customer_id": [f"c{i % 4}" for i in range(n)],
                          "timestamp": pd.Timestamp("2024-01-01"), "amount": np.arange(n, dtype=float) + 1,
                          "order_id": [f"o{i}" for i in range(n)]})
    path = tmp_path / "tx.parquet"
    frame.to_parquet(path, index=False, row_group_size=100)
    whole, _ = load_transactions(path, DataConfig())
    with spill_inputs(path, None, None, DataConfig(), 2, folder=tmp_path, workers=3) as spilled:
        spilled_frame = pd.concat([spilled.bucket(b)[0].transactions for b in range(spilled.count)],
                                  ignore_index=True)
    pd.testing.assert_frame_equal(spilled_frame, whole)


@pytest.mark.parametrize("workers", [1, 2])
def test_rows_per_id_counted_from_the_ids_dictionary_are_the_cleaned_ids_counts(log_file, monkeypatch, workers
                                                                                ) -> None:
    # Several batches and chunks, each with its own dictionary; " c50 " and "c50" are one id once stripped.
    monkeypatch.setattr("tiercast.features.spill.BATCH_BYTES", 5_000)
    ids, rows = _rows_per_id(log_file, DataConfig(), workers)
    batches = list(_batches(log_file, DataConfig(), ("customer_id",)))
    assert len(batches) > 2 and all(pa.types.is_dictionary(b["customer_id"].type) for b in batches)
    whole, _ = load_transactions(log_file, DataConfig(drop_identical_rows=False))
    expected = whole["customer_id"].astype(str).value_counts()
    assert dict(zip(ids.to_pylist(), rows.tolist(), strict=True)) == expected.to_dict()
    assert len(ids) == len(expected) and "c50" in expected and " c50 " not in expected
