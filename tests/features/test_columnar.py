"""The loader's fast path (Arrow kernels) against the pandas path it hands odd files to: the same frames value
for value, the same cleaning reports, the same refusals, and downstream the same features, labels, models and
scores, on simulated worlds and on a table of odd cells."""

from __future__ import annotations

import gzip
import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tiercast.features import loading
from tiercast.features.builder import FeatureBuilder
from tiercast.features.columnar import TEXT
from tiercast.features.loading import InputData, load_inputs, load_interactions, load_transactions
from tiercast.features.schema import ColumnMapping, DataConfig, DataError
from tiercast.features.spec import FeatureSpec
from tiercast.serving.scorer import ModelBundle, score
from tiercast.simulation.files import write_world
from tiercast.simulation.line_items import line_items
from tiercast.simulation.world import WorldConfig, simulate_world
from tiercast.training.config import LightGBMParams, SegmentConfig, TrainingConfig, TuningConfig
from tiercast.training.labels import make_labels
from tiercast.training.pipeline import fit_models
from tiercast.training.policy import TierPolicy

CUTOFF = pd.Timestamp("2025-01-01")
HORIZON_DAYS = 180
HEADER = "customer_id,timestamp,amount,order_id,quantity,category,channel\n"


def the_pandas_way(load: Callable[..., object], *args: object) -> object:
    """What ``load`` gives with the fast path turned off: the pandas path, the reference."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loading, "_read_fast", lambda *_, **__: None)
        return load(*args)


def as_objects(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with Arrow-backed text as the pandas path's object columns (None for missing)."""
    text = [name for name in frame.columns if frame[name].dtype == TEXT]
    converted = frame.astype({name: object for name in text})
    for name in text:
        converted[name] = converted[name].where(frame[name].notna(), None)
    return converted


def assert_same_frame(fast: pd.DataFrame, reference: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(as_objects(fast), reference, check_exact=True)


def outcome(load: Callable[..., tuple[pd.DataFrame, loading.CleaningReport]], *args: object
            ) -> tuple[pd.DataFrame, dict[str, object]] | str:
    """The frame and report a load gives, or its DataError's message."""
    try:
        frame, report = load(*args)
    except DataError as err:
        return str(err)
    return frame, report.to_dict()


def assert_same_outcome(load: Callable[..., tuple[pd.DataFrame, loading.CleaningReport]], *args: object) -> None:
    fast, reference = outcome(load, *args), the_pandas_way(outcome, load, *args)
    if isinstance(reference, str) or isinstance(fast, str):
        assert fast == reference
    else:
        assert_same_frame(fast[0], reference[0])
        assert fast[1] == reference[1]


@pytest.fixture(scope="module")
def world():
    return simulate_world(WorldConfig(n_customers=400, seed=7))


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
@pytest.mark.parametrize("lines", [False, True], ids=["orders", "line_items"])
def test_simulated_worlds_load_to_the_same_frames_features_labels_and_scores(world, tmp_path, file_format, lines):
    paths = write_world(world, tmp_path, CUTOFF, HORIZON_DAYS, file_format,
                        transactions=line_items(world) if lines else None)
    args = (paths["transactions"], paths["customers"], paths["interactions"])
    fast, reference = load_inputs(*args), the_pandas_way(load_inputs, *args)
    assert all(frame["customer_id"].dtype == TEXT for frame in (fast.transactions, fast.customers, fast.interactions))
    assert fast.transactions["order_id"].notna().all()
    assert_same_frame(fast.transactions, reference.transactions)
    assert_same_frame(fast.interactions, reference.interactions)
    assert_same_frame(fast.customers, reference.customers)
    assert fast.quality_report() == reference.quality_report()

    def features(data: InputData) -> pd.DataFrame:
        return FeatureBuilder(FeatureSpec()).fit_transform(data.transactions, CUTOFF, data.customers,
                                                           data.interactions)

    pd.testing.assert_frame_equal(features(fast), features(reference), check_exact=True)
    earlier = CUTOFF - pd.Timedelta(days=HORIZON_DAYS)
    pd.testing.assert_frame_equal(make_labels(fast.transactions, earlier, HORIZON_DAYS),
                                  make_labels(reference.transactions, earlier, HORIZON_DAYS), check_exact=True)
    pd.testing.assert_frame_equal(score(fast.transactions, CUTOFF, TierPolicy(), FeatureSpec(), None),
                                  score(reference.transactions, CUTOFF, TierPolicy(), FeatureSpec(), None),
                                  check_exact=True)


def test_models_trained_on_either_frame_score_alike(world, tmp_path):
    paths = write_world(world, tmp_path, CUTOFF, HORIZON_DAYS, "parquet")
    quick = LightGBMParams(max_rounds=30)
    config = TrainingConfig(value_model=quick, churn_model=quick, tuning=TuningConfig(trials=0), folds=2,
                            segments=SegmentConfig(k_min=3, k_max=3, sample_size=300))

    def scores(data: InputData) -> pd.DataFrame:
        trained = fit_models(data, CUTOFF, HORIZON_DAYS, config, FeatureSpec(), [])
        bundle = ModelBundle.from_trained(trained, TierPolicy(), HORIZON_DAYS, {"tiercast-value": "1"})
        return score(data.transactions, CUTOFF, TierPolicy(), FeatureSpec(), bundle, customers=data.customers,
                     interactions=data.interactions)

    args = (paths["transactions"], paths["customers"], paths["interactions"])
    fast, reference = load_inputs(*args), the_pandas_way(load_inputs, *args)
    assert fast.transactions["customer_id"].dtype == TEXT
    scored = scores(fast)
    assert (scored["source"] == "model").mean() > 0.5  # the models, not the rule fallback, score most
    pd.testing.assert_frame_equal(scored, scores(reference), check_exact=True)


ODD_CELLS = {
    "clean": "A,2025-01-01,5,o1,1,books,web\nB,2025-01-02T10:00,7.25,o2,,music,\n",
    "ids with spaces of every kind": " A\t,2025-01-01,5,o1,1,b,w\n\u3000B\xa0,2025-01-01,5,o2,1,b,w\nC\x1c,2025-01-01,5,o3,1,b,w\n",
    "blank and missing-marker ids": "A,2025-01-01,5,o1,1,b,w\n,2025-01-01,5,o2,1,b,w\nNaN,2025-01-01,5,o3,1,b,w\n",
    "instants of every form": ("A,2025-01-01,1,o1,1,b,w\nA,2025-01-01T10:00,1,o2,1,b,w\nA,2025-01-01 10:00:05,1,o3,1,b,w\n"
                               "A,2025-01-01T10:00:05.5,1,o4,1,b,w\nA,2025-01-01T10:00:05.123456,1,o5,1,b,w\n"
                               "A, 2025-01-01T23:30:00-02:00 ,1,o6,1,b,w\nA,2025-01-01T10:00:00Z,1,o7,1,b,w\n"
                               "A,2025-01-01T10:00+0530,1,o8,1,b,w\nA,2025-01-01 10:00Z,1,o9,1,b,w\n"),
    "only offsets": "A,2025-01-01T10:00:00Z,1,o1,1,b,w\nB,2025-01-01T10:00:00+08:00,1,o2,1,b,w\n",
    "a day past the month's end": "A,2025-01-01,1,o1,1,b,w\nA,2020-02-30,1,o2,1,b,w\n",
    "hour 24": "A,2025-01-01T24:00:00,1,o1,1,b,w\n",
    "a lower-case z": "A,2025-01-01T10:00:00z,1,o1,1,b,w\n",
    "seven fraction digits": "A,2025-01-01T10:00:00.1234567,1,o1,1,b,w\n",
    "an offset into the range": "A,1899-12-31T23:00-02:00,1,o1,1,b,w\nA,2025-01-01,1,o2,1,b,w\n",
    "years outside the range": "A,1600-01-01,1,o1,1,b,w\nB,2300-01-01T10:00:00,1,o2,1,b,w\n",
    "just past the last instant": "A,2199-12-31T23:59:59.5,1,o1,1,b,w\n",
    "a blank instant": "A,,1,o1,1,b,w\n",
    "plain numbers of every form": "A,2025-01-01,-0,o1,+5,b,w\nA,2025-01-02,.5,o2,5.,b,w\nA,2025-01-03, 7 ,o3,12345678901.25,b,w\n",
    "formatted numbers": "A,2025-01-01,\"1,234.50\",o1,1,b,w\nA,2025-01-02,¥12.00,o2,1,b,w\n",
    "a decimal comma": "A,2025-01-01,\"12,5\",o1,1,b,w\n",
    "exponents, infinities and not-numbers": "A,2025-01-01,1e3,o1,1,b,w\nA,2025-01-02,inf,o2,nan,b,w\n",
    "long digits": "A,2025-01-01,3.14159265358979323,o1,0.1000000000000000055511151231257827,b,w\n",
    "beyond the bound": "A,2025-01-01,1000000000000.5,o1,1,b,w\n",
    "a blank amount": "A,2025-01-01,,o1,1,b,w\n",
    "blank optional cells": "A,2025-01-01,1,,,  ,\t\nA,2025-01-02,1, o2 ,,b, w \n",
    "a text too long": f"A,2025-01-01,1,{'x' * 501},1,b,w\n",
    "a text of as many characters as allowed, in more bytes": f"A,2025-01-01,1,{'é' * 500},1,b,w\n",
    "a text too long, in more bytes": f"A,2025-01-01,1,{'é' * 501},1,b,w\n",
    "identical rows": "A,2025-01-01,1,o1,1,b,w\nA,2025-01-01,1,o1,1,b,w\nB,2025-01-01,1,o1,1,b,w\nA,2025-01-01,1,o1,1,b,w\n",
    "a quoted comma and line break": "A,2025-01-01,1,\"o1,x\",1,\"two\nlines\",w\n",
    "a row with a field too many": "A,2025-01-01,1,o1,1,b,w,extra\n",
    "a row with a field too few": "A,2025-01-01,1,o1,1,b\n",
    "a line of spaces": "A,2025-01-01,1,o1,1,b,w\n   \nB,2025-01-01,1,o1,1,b,w\n",
    "blank lines": "\nA,2025-01-01,1,o1,1,b,w\n\n\nB,2025-01-01,1,o1,1,b,w\n",
}


@pytest.mark.parametrize("drop", [False, True], ids=["kept", "dropped"])
@pytest.mark.parametrize("cells", ODD_CELLS.values(), ids=ODD_CELLS.keys())
def test_odd_cells_load_or_are_refused_as_the_pandas_path_does(tmp_path, cells, drop):
    path = tmp_path / "tx.csv"
    path.write_text(HEADER + cells, encoding="utf-8")
    assert_same_outcome(load_transactions, path, DataConfig(drop_identical_rows=drop))


def test_a_clean_file_is_taken_by_the_fast_path_and_an_odd_one_is_not(tmp_path):
    clean, odd = tmp_path / "clean.csv", tmp_path / "odd.csv"
    clean.write_text(HEADER + ODD_CELLS["instants of every form"], encoding="utf-8")
    odd.write_text(HEADER + ODD_CELLS["formatted numbers"], encoding="utf-8")
    assert load_transactions(clean)[0]["customer_id"].dtype == TEXT
    assert load_transactions(odd)[0]["customer_id"].dtype == object


@pytest.mark.parametrize("name", ["bom", "gzip", "trailing comma", "repeated header", "mapping", "latin-1",
                                  "undecodable"])
def test_text_files_of_every_shape(tmp_path, name):
    body = HEADER + ODD_CELLS["clean"]
    config = DataConfig()
    path = tmp_path / "tx.csv"
    if name == "bom":
        path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    elif name == "gzip":
        path = tmp_path / "tx.csv.gz"
        path.write_bytes(gzip.compress(body.encode()))
    elif name == "trailing comma":
        path.write_text("".join(line + ",\n" for line in body.splitlines()), encoding="utf-8")
    elif name == "repeated header":
        path.write_text(body.replace("channel", "Amount"), encoding="utf-8")
    elif name == "mapping":
        path.write_text(body.replace("amount", "Sales"), encoding="utf-8")
        config = DataConfig(columns=ColumnMapping(transactions={"amount": "Sales"}))
    elif name == "latin-1":
        path.write_bytes(body.replace("books", "livres à lire").encode("latin-1"))
        config = DataConfig(encoding="latin-1")
    else:
        path.write_bytes(body.replace("books", "livres à lire").encode("latin-1"))
    assert_same_outcome(load_transactions, path, config)


def _parquet(tmp_path: Path, columns: dict[str, pa.Array]) -> Path:
    path = tmp_path / "tx.parquet"
    pq.write_table(pa.table(columns), path)
    return path


PARQUET_IDS = pa.array(["B", " A ", "A"])
PARQUET_TIMES = pa.array([1_700_000_000_000, 1_600_000_000_000, 1_600_000_000_000], pa.timestamp("ms"))
PARQUET_CASES: dict[str, dict[str, pa.Array]] = {
    "milliseconds": {},
    "a timezone": {"timestamp": PARQUET_TIMES.cast(pa.timestamp("ms", tz="Asia/Shanghai"))},
    "integer ids": {"customer_id": pa.array([3, 1, 1]), "order_id": pa.array([10, 11, 12], pa.int32())},
    "integer ids with a null": {"order_id": pa.array([10, None, 12])},
    "float ids": {"customer_id": pa.array([3.0, 1.0, 1.0])},
    "dictionary text": {"category": pa.array(["b", None, "b"]).dictionary_encode()},
    # cleaned once a value: a blank one, and an id stripped for two rows (the report counts rows)
    "dictionary text without nulls": {"category": pa.array([" b", "", " b"]).dictionary_encode()},
    "dictionary ids": {"customer_id": pa.array([" A ", "B", " A "]).dictionary_encode()},
    "integer amounts": {"amount": pa.array([5, -2, 0], pa.int16())},
    "a null amount": {"amount": pa.array([5.0, None, 1.0])},
    "a nan quantity": {"quantity": pa.array([1.0, float("nan"), 2.0])},
    "null quantities": {"quantity": pa.array([1.0, None, None])},
    "text amounts": {"amount": pa.array(["5", " 2.5", "1,000.00"])},
    "text instants": {"timestamp": pa.array(["2025-01-01", "2025-01-01T10:00:00+01:00", "2024-06-01"])},
    "dates": {"timestamp": pa.array([20_000, 19_000, 19_500], pa.date32())},
    "a year outside the range": {"timestamp": pa.array([1_700_000_000, -15_000_000_000, 0], pa.timestamp("s"))},
    "a null instant": {"timestamp": pa.array([1_700_000_000, None, 0], pa.timestamp("s"))},
    "booleans as text": {"channel": pa.array([True, False, None])},
}


@pytest.mark.parametrize("replaced", PARQUET_CASES.values(), ids=PARQUET_CASES.keys())
def test_parquet_columns_of_every_type(tmp_path, replaced):
    columns = {"customer_id": PARQUET_IDS, "timestamp": PARQUET_TIMES, "amount": pa.array([5.0, -2.0, 0.0]),
               "order_id": pa.array(["o1", "o2", None]), "quantity": pa.array([1.0, 2.0, None]),
               "category": pa.array(["b", "", "m"]), "channel": pa.array(["web", "store", "web"])}
    assert_same_outcome(load_transactions, _parquet(tmp_path, {**columns, **replaced}), DataConfig())


def test_a_parquet_file_written_with_its_index_loads_as_the_pandas_path_reads_it(tmp_path):
    frame = pd.DataFrame({"customer_id": ["A", "B", "C"], "timestamp": pd.to_datetime(["2025-01-01"] * 3),
                          "amount": [1.0, 2.0, 3.0]})
    frame[frame["amount"] > 1].to_parquet(tmp_path / "tx.parquet")  # stores the index 1, 2
    frame.set_index("customer_id").to_parquet(tmp_path / "by_id.parquet")  # no customer_id column left
    assert_same_outcome(load_transactions, tmp_path / "tx.parquet", DataConfig())
    assert_same_outcome(load_transactions, tmp_path / "by_id.parquet", DataConfig())


@pytest.mark.parametrize("cells", ["A,2025-01-01, Survey ,4\nB,2025-01-02,complaint,\n",
                                   "A,2025-01-01,SURVEY,4\nA,2025-01-01,İnceleme,\n",
                                   "A,2025-01-01,,4\n", "A,2025-01-01,survey,n/a\n"])
def test_interactions_load_or_are_refused_as_the_pandas_path_does(tmp_path, cells):
    path = tmp_path / "i.csv"
    path.write_text("customer_id,timestamp,kind,score\n" + cells, encoding="utf-8")
    assert_same_outcome(load_interactions, path, DataConfig())
    without_score = tmp_path / "plain.csv"
    without_score.write_text("customer_id,timestamp,kind\nB,2025-01-02,survey\nA,2025-01-01,ticket\n")
    assert_same_outcome(load_interactions, without_score, DataConfig())


def test_arrow_text_encodes_to_the_same_codes_as_object_text():
    from tiercast.features.encoding import encode, lookup

    values = pd.Series(["b", None, "a", "b", "", "é", "a"], dtype=TEXT)
    objects = values.astype(object).where(values.notna(), None)
    for got, expected in zip(encode(values), encode(objects), strict=True):
        np.testing.assert_array_equal(got, expected)
    ids = np.array(["a", "b", "z"], dtype=object)
    np.testing.assert_array_equal(lookup(values, ids), lookup(objects, ids))


def _rows_with_copies(customers: int) -> pd.DataFrame:
    """Rows of a few instants, a fifth of them copied, some copies but for one column (shuffled), and copies
    but for -0.0 in place of 0.0."""
    rng = np.random.default_rng(11)
    n = 6000
    text = [f"t{i}" for i in range(3000)] + [None]
    values = {"customer_id": [f"c{i}" for i in range(customers)],
              "timestamp": list(pd.to_datetime([0, 1, 2], unit="D")),
              "amount": [1.5, 0.0, -0.0, np.nan, *map(float, range(3000))], "order_id": text, "product_id": text,
              "category": text, "channel": ["web", "store", None], "quantity": [1.0, np.nan, *map(float, range(2000))]}
    rows = pd.DataFrame({name: [v[i] for i in rng.integers(0, len(v), n)] for name, v in values.items()})
    rows = pd.concat([rows, rows.iloc[rng.integers(0, n, 1500)]]).sample(frac=1.0, random_state=3)  # copies, shuffled
    for name in ("timestamp", "order_id", "channel", "amount"):  # copies but for one column
        changed = rows.iloc[:300].copy()
        changed[name] = changed[name].shift(1)
        rows = pd.concat([rows, changed], ignore_index=True)
    zeros = rows.iloc[300:500].assign(amount=0.0)
    return pd.concat([rows, zeros, zeros.assign(amount=-0.0)], ignore_index=True)  # -0.0 repeats 0.0


def _arrow_columns(rows: pd.DataFrame, chunks: int = 1) -> dict[str, pa.ChunkedArray]:
    """The rows as Arrow columns of ``chunks`` chunks each, product ids as large strings (64-bit offsets)."""
    bounds = np.linspace(0, len(rows), chunks + 1).astype(int)
    columns = {name: pa.chunked_array([pa.Array.from_pandas(rows[name].iloc[a:b])
                                       for a, b in itertools.pairwise(bounds)]) for name in rows.columns}
    columns["product_id"] = columns["product_id"].cast(pa.large_string())
    return columns


@pytest.mark.parametrize("hashed", [False, True], ids=["codes", "hashes"])
@pytest.mark.parametrize("customers", [40, 2000], ids=["long runs", "short runs"])
def test_identical_rows_are_found_as_pandas_finds_them(monkeypatch, hashed, customers):
    """The fast path's repeats (only rows sharing a customer and an instant compared in full) are pandas'
    `duplicated` of the rows in the file's order: NaN with NaN, -0.0 with 0.0, missing text with missing text,
    rows that differ in one column apart; by coding each column, or by one hash per row (many such rows, as in
    a log of invoice lines), over columns of several chunks."""
    from tiercast.features import columnar

    monkeypatch.setattr(columnar, "HASHED_FROM_ROWS", 0 if hashed else 10**12)
    rows = _rows_with_copies(customers)
    columns = _arrow_columns(rows, chunks=3)
    repeats = columnar.identical_repeats(columns, *columnar.by_customer_and_time(columns))
    expected = rows.assign(amount=rows["amount"] + 0.0).duplicated()  # + 0.0: -0.0 is 0.0
    assert expected.sum() > 1000
    np.testing.assert_array_equal(repeats, expected.to_numpy())


def test_rows_of_one_hash_that_differ_are_told_apart(monkeypatch):
    """Unequal rows sharing a hash are not taken for repeats: the rows of one hash are compared in full, and
    where they differ, the columns are coded instead."""
    from tiercast.features import columnar, row_hashes

    monkeypatch.setattr(row_hashes, "_column_hashes", lambda values: np.zeros(len(values), dtype=np.uint64))
    monkeypatch.setattr(columnar, "HASHED_FROM_ROWS", 0)
    rows = _rows_with_copies(40)
    columns = _arrow_columns(rows)
    order, customer = columnar.by_customer_and_time(columns)
    ranked, timestamp = customer[order], columns["timestamp"].cast(pa.int64()).to_numpy()[order]
    starts = np.flatnonzero(np.concatenate([[True], (ranked[1:] != ranked[:-1]) | (timestamp[1:] != timestamp[:-1]),
                                            [True]]))
    assert columnar._repeats_by_hashes(columns, order, starts) is None  # every row of a run alike by hash
    repeats = columnar.identical_repeats(columns, order, customer)
    np.testing.assert_array_equal(repeats, rows.assign(amount=rows["amount"] + 0.0).duplicated().to_numpy())


def test_a_column_without_a_hash_is_coded():
    """A column of a type the hashes do not read (dates) leaves the rows to be coded, with the same repeats."""
    from tiercast.features import columnar

    rows = _rows_with_copies(40).assign(day=lambda r: r["timestamp"].dt.date)
    columns = _arrow_columns(rows)
    order, customer = columnar.by_customer_and_time(columns)
    assert columnar._repeats_by_hashes(columns, order, np.array([0, len(order)])) is None
    np.testing.assert_array_equal(columnar.identical_repeats(columns, order, customer),
                                  rows.assign(amount=rows["amount"] + 0.0).duplicated().to_numpy())


CUSTOMER_CASES = {
    "profiles": "customer_id,signup_date,region,Email,age\nB,2024-01-02,east,b@x.org,40\nA, ,,a@x.org,\n",
    "a repeated customer": "customer_id,signup_date,region\nB,2024-01-02,east\nB,2024-01-03,west\n",
    "an unreadable signup date": "customer_id,signup_date,region\nB,2024-13-02,east\nA,,west\n",
    "no signup date": "customer_id,region\n A ,east\nB,west\n",
}


@pytest.mark.parametrize("cells", CUSTOMER_CASES.values(), ids=CUSTOMER_CASES.keys())
def test_customers_load_or_are_refused_as_the_pandas_path_does(tmp_path, cells):
    path = tmp_path / "c.csv"
    path.write_text(cells, encoding="utf-8")
    assert_same_outcome(loading.load_customers, path, DataConfig())


@pytest.mark.parametrize("attributes", [
    {"region": ["east", None, "west"], "age": [40, 31, 22], "score": [1.5, None, 2.0], "vip": [True, False, True]},
    {"age": pd.array([40, None, 22], dtype="Int64")},
    {"region": pd.Categorical(["east", "west", "east"])},
    {"region": pd.array(["east", None, "west"], dtype="string")},
    {"joined": pd.to_datetime(["2020-01-01", "2021-01-01", None]).tz_localize("UTC")},
], ids=["plain", "nullable integers", "categorical", "pandas strings", "a timestamp"])
def test_parquet_profile_attributes_are_read_as_the_pandas_path_reads_them(tmp_path, attributes):
    frame = pd.DataFrame({"customer_id": ["C", "A", "B"],
                          "signup_date": pd.to_datetime(["2024-01-01", "2023-05-06", None]), **attributes})
    frame.to_parquet(tmp_path / "c.parquet")
    assert_same_outcome(loading.load_customers, tmp_path / "c.parquet", DataConfig())


def test_the_fast_path_strips_the_characters_python_strips():
    from tiercast.features.columnar import WHITESPACE

    assert WHITESPACE == "".join(chr(code) for code in range(0x110000) if chr(code).isspace())


@pytest.mark.parametrize("ids", [["b", "a", "é", "Z", "a\u0301", "", "\U0001f600", "ä"], [3, 1, 2]],
                         ids=["text", "numbers"])
def test_customers_sort_as_python_sorts_them(ids):
    from tiercast.features.encoding import sorted_codes

    values = np.array(ids, dtype=object)
    codes, ordered = sorted_codes(pd.Series(values), np.ones(len(values), dtype=bool))
    assert ordered.tolist() == sorted(ids)
    assert [ordered[code] for code in codes] == ids


@pytest.mark.parametrize("year", [2020, 1500], ids=["in range", "out of range"])
def test_int96_timestamps_as_spark_writes_them(tmp_path, year):
    times = pa.array([pd.Timestamp(f"{year}-03-01 10:00:00.123456").to_pydatetime()] * 2, pa.timestamp("us"))
    table = pa.table({"customer_id": ["A", "B"], "timestamp": times, "amount": [1.0, 2.0]})
    pq.write_table(table, tmp_path / "tx.parquet", use_deprecated_int96_timestamps=True)
    assert pq.read_schema(tmp_path / "tx.parquet").field("timestamp").type == pa.timestamp("ns")  # INT96, read back
    assert_same_outcome(load_transactions, tmp_path / "tx.parquet", DataConfig())
