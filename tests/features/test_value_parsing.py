"""Values the loader reads from real files: dates outside the supported range, numbers beyond the contract's
bounds, ids a tool stored as floats, and where a file's foreign-encoded text starts (issue #19)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tiercast.features.loading import load_customers, load_inputs, load_transactions, read_scores
from tiercast.features.schema import DataError

OUT_OF_RANGE = "outside the supported range, 1900-01-01 to 2199-12-31"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def transactions_parquet(path: Path, timestamps: pa.Array, **write_options) -> Path:
    """Customer A in range, customer B at the date under test."""
    pq.write_table(pa.table({"customer_id": ["A", "B"], "timestamp": timestamps, "amount": [1.0, 2.0]}), path,
                   **write_options)
    return path


def refusal(path: Path, load=load_transactions) -> DataError:
    with pytest.raises(DataError) as caught:
        load(path)
    return caught.value


# ------------------------------------------------------------------------------ dates outside the range
@pytest.mark.parametrize(("kind", "when"), [
    (pa.timestamp("s"), dt.datetime(1500, 1, 1)),
    (pa.timestamp("ms"), dt.datetime(2500, 6, 1, 12)),
    (pa.timestamp("us"), dt.datetime(1500, 1, 1)),
    (pa.timestamp("us", tz="UTC"), dt.datetime(2500, 1, 1, tzinfo=dt.timezone.utc)),
    (pa.timestamp("ns"), dt.datetime(1800, 1, 1)),  # nanoseconds hold 1677-2262 only
    (pa.timestamp("ns"), dt.datetime(2250, 1, 1)),
    (pa.date32(), dt.date(2500, 1, 1)),
    (pa.date64(), dt.date(1500, 1, 1)),
    (pa.string(), "1500-01-01"),
    (pa.string(), "2500-01-01T10:00:00Z"),
])
def test_parquet_dates_outside_the_range_are_refused_by_name(tmp_path, kind, when):
    if kind == pa.string():
        first = "2020-01-01"
    elif kind in (pa.date32(), pa.date64()):
        first = dt.date(2020, 1, 1)
    else:
        first = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc if getattr(kind, "tz", None) else None)
    error = refusal(transactions_parquet(tmp_path / "tx.parquet", pa.array([first, when], kind)))
    assert error.column == "timestamp" and OUT_OF_RANGE in error.problem and "1 values" in error.problem
    assert error.sample["customer_id"].tolist() == ["B"]


def test_int96_parquet_timestamps_keep_their_year_rather_than_wrapping_around(tmp_path):
    """Spark and Hive write INT96 timestamps; read in nanoseconds, the year 1500 became 2084 without a word."""
    path = transactions_parquet(tmp_path / "tx.parquet", pa.array([dt.datetime(2020, 1, 1), dt.datetime(1500, 1, 1)],
                                                                  pa.timestamp("us")),
                                use_deprecated_int96_timestamps=True)
    error = refusal(path)
    assert OUT_OF_RANGE in error.problem and error.sample["customer_id"].tolist() == ["B"]
    assert str(error.sample["timestamp"].iloc[0]).startswith("1500-01-01")
    good = transactions_parquet(tmp_path / "good.parquet", pa.array([dt.datetime(2020, 1, 1, 8, 30, 0, 123456),
                                                                     dt.datetime(1999, 12, 31)], pa.timestamp("us")),
                                use_deprecated_int96_timestamps=True)
    tx, _ = load_transactions(good)
    assert tx["timestamp"].tolist() == [pd.Timestamp("2020-01-01 08:30:00.123456"), pd.Timestamp("1999-12-31")]


def test_years_1600_and_2300_in_a_csv_are_called_out_of_range_not_unreadable(tmp_path):
    path = write(tmp_path / "tx.csv", "customer_id,timestamp,amount\nA,2020-01-01,1\nB,1600-01-01,2\n"
                 "C,2300-05-05T10:00:00,3\nD,2021-03-04 10:00,4\n")
    error = refusal(path)
    assert error.column == "timestamp" and "not ISO 8601" not in error.problem
    assert error.problem.startswith(f"2 values are {OUT_OF_RANGE} (in UTC; see docs/contract.md)")
    assert error.sample["customer_id"].tolist() == ["B", "C"]
    assert error.sample["timestamp"].tolist() == ["1600-01-01", "2300-05-05T10:00:00"]


def test_a_date_that_is_not_iso_8601_is_still_called_so_and_comes_first(tmp_path):
    path = write(tmp_path / "tx.csv", "customer_id,timestamp,amount\nA,2020-01-01,1\nB,1600-01-01,2\n"
                 "C,01/02/2020,3\nD,2020-02-30,4\n")
    error = refusal(path)
    assert "not ISO 8601" in error.problem and OUT_OF_RANGE not in error.problem
    assert error.sample["customer_id"].tolist() == ["C", "D"]  # 2020-02-30 is no date; 1600-01-01 is one


def test_the_range_is_inclusive_and_checked_in_utc(tmp_path):
    inside = write(tmp_path / "in.csv", "customer_id,timestamp,amount\nA,1900-01-01,1\nB,2199-12-31T23:59:59,2\n"
                   "C,2199-12-31T23:00:00+01:00,3\nD,1899-12-31T23:00:00-02:00,4\nE,2200-01-01T00:30:00+01:00,5\n")
    assert len(load_transactions(inside)[0]) == 5  # D and E are 1900-01-01 01:00 and 2199-12-31 23:30 in UTC
    # 2199-12-31 23:00 at UTC-05:00 is 2200-01-01 04:00 UTC; 1900-01-01 00:30 at +01:00 is 1899-12-31 UTC.
    across = write(tmp_path / "across.csv", "customer_id,timestamp,amount\nA,2199-12-31T23:00:00-05:00,1\n"
                   "B,1900-01-01T00:30:00+01:00,2\nC,2020-01-01,3\n")
    error = refusal(across)
    assert OUT_OF_RANGE in error.problem and error.sample["customer_id"].tolist() == ["A", "B"]


def test_a_customers_parquet_signup_date_outside_the_range_is_refused(tmp_path):
    path = tmp_path / "customers.parquet"
    pq.write_table(pa.table({"customer_id": ["A", "B", "C"],
                             "signup_date": pa.array([dt.date(2020, 1, 1), dt.date(1500, 1, 1), None], pa.date32())}),
                   path)
    error = refusal(path, load_customers)
    assert error.column == "signup_date" and OUT_OF_RANGE in error.problem
    assert error.sample["customer_id"].tolist() == ["B"]


# -------------------------------------------------------------------------------- numbers beyond bounds
@pytest.mark.parametrize(("amount", "problem"), [
    ("1e308", "outside [-1e+12, 1e+12], the size docs/contract.md allows for amount"),
    ("-1000000000001", "outside [-1e+12, 1e+12]"),
    ("1e400", "not finite numbers"),
    ("inf", "not finite numbers"),
    ("-Infinity", "not finite numbers"),
    ("nan", "not finite numbers"),
])
def test_csv_amounts_beyond_the_contract_are_refused_by_name(tmp_path, amount, problem):
    path = write(tmp_path / "tx.csv", f"customer_id,timestamp,amount\nA,2020-01-01,5\nB,2020-01-02,{amount}\n")
    error = refusal(path)
    assert error.column == "amount" and problem in error.problem
    assert error.sample["customer_id"].tolist() == ["B"]


def test_the_largest_amount_the_contract_allows_is_read(tmp_path):
    path = write(tmp_path / "tx.csv", "customer_id,timestamp,amount,quantity\nA,2020-01-01,1e12,1e9\n"
                 "A,2020-01-02,-1e12,-1e9\n")
    assert load_transactions(path)[0]["amount"].tolist() == [1e12, -1e12]


@pytest.mark.parametrize(("column", "values", "problem"), [
    ("amount", [5.0, 1e308], "outside [-1e+12, 1e+12]"),
    ("amount", [5.0, float("inf")], "not finite numbers"),
    ("quantity", [1.0, 2e9], "outside [-1e+09, 1e+09]"),
    ("quantity", [1.0, float("-inf")], "not finite numbers"),
])
def test_parquet_numbers_beyond_the_contract_are_refused_by_name(tmp_path, column, values, problem):
    table = {"customer_id": ["A", "B"], "timestamp": ["2020-01-01", "2020-01-02"], "amount": [5.0, 6.0], column: values}
    pd.DataFrame(table).to_parquet(tmp_path / "tx.parquet")
    error = refusal(tmp_path / "tx.parquet")
    assert error.column == column and problem in error.problem and error.sample["customer_id"].tolist() == ["B"]


# ------------------------------------------------------------------------------------ ids stored as floats
def test_whole_number_float_ids_in_parquet_are_read_as_the_ids_they_were_and_counted(tmp_path):
    """pandas writes an integer id column holding one missing value as float64; the ids are 42, not 42.0."""
    pq.write_table(pa.table({"customer_id": pa.array([42.0, 7.0, 42.0], pa.float64()),
                             "timestamp": ["2020-01-01", "2020-01-02", "2020-01-03"], "amount": [1.0, 2.0, 3.0],
                             "order_id": pa.array([1001.0, None, 1002.0], pa.float64()),
                             "product_id": pa.array([5.0, 6.0, 5.0], pa.float64())}), tmp_path / "tx.parquet")
    pq.write_table(pa.table({"customer_id": pa.array([42, 7], pa.int64()), "region": ["north", "south"]}),
                   tmp_path / "customers.parquet")
    data = load_inputs(tmp_path / "tx.parquet", tmp_path / "customers.parquet")
    tx = data.transactions
    assert tx["customer_id"].tolist() == ["42", "42", "7"]
    assert tx["order_id"].tolist() == ["1001", "1002", None]  # a null stays a missing order id
    assert tx["product_id"].tolist() == ["5", "5", "6"]
    assert set(tx["customer_id"]) == set(data.customers["customer_id"])  # the two files name the same customers
    changes = data.reports[0].changes
    assert changes["customer_id values stored as whole-number floats (42.0) read as ids without the decimals (42)"] == 3
    assert changes["order_id values stored as whole-number floats (42.0) read as ids without the decimals (42)"] == 2


@pytest.mark.parametrize(("column", "values", "problem"), [
    ("customer_id", [42.0, 42.5], "not whole numbers (42.5), so not ids"),
    ("customer_id", [42.0, 2.0 ** 60], "larger than 2**53"),
    ("customer_id", [42.0, None], "empty customer_id"),
    ("order_id", [1.0, 1.25], "not whole numbers (42.5), so not ids"),
    ("product_id", [1.0, float("inf")], "not whole numbers (42.5), so not ids"),
])
def test_float_ids_that_are_not_whole_numbers_are_refused_by_name(tmp_path, column, values, problem):
    table = {"customer_id": ["A", "B"], "timestamp": ["2020-01-01", "2020-01-02"], "amount": [5.0, 6.0]}
    pq.write_table(pa.table({**table, column: pa.array(values, pa.float64())}), tmp_path / "tx.parquet")
    error = refusal(tmp_path / "tx.parquet")
    assert error.column == column and problem in error.problem and len(error.sample) == 1


# ------------------------------------------------------------------------------- where foreign text starts
def test_the_gbk_hint_points_at_the_first_byte_of_the_chinese_text(tmp_path):
    """GBK's 图 (CD BC) is also a valid UTF-8 character, so a UTF-8 decoder fails only at 书, two bytes later:
    the message names where the Chinese text starts, on the file's third line, 18th character."""
    text = "customer_id,timestamp,amount,category\nA1,2020-01-01,10,books\nA2,2020-01-02,20,图书\n"
    path = tmp_path / "tx.csv"
    path.write_bytes(text.encode("gbk"))
    first_chinese_byte = len("customer_id,timestamp,amount,category\nA1,2020-01-01,10,books\nA2,2020-01-02,20,")
    assert first_chinese_byte == 78 and path.read_bytes()[78:80] == "图".encode("gbk")
    error = refusal(path)
    assert error.column == "category"
    assert error.problem.startswith("not UTF-8 text: byte 78 (line 3, character 18) starts text that does not decode")
    assert "`data.encoding: gb18030`" in error.problem


def test_the_character_counts_characters_not_bytes_on_a_line_with_utf8_text_before(tmp_path):
    """A UTF-8 file with a latin-1 'é' pasted in later: the line's earlier 'ü' (two bytes) is one character."""
    path = tmp_path / "tx.csv"
    path.write_bytes("customer_id,timestamp,amount,category\n".encode() + "Mü,2020-01-01,1,".encode("utf-8")
                     + "caf\u00e9".encode("latin-1") + b"\n")
    error = refusal(path)
    offset = len(b"customer_id,timestamp,amount,category\n") + len("Mü,2020-01-01,1,caf".encode("utf-8"))
    assert error.problem.startswith(f"not UTF-8 text: byte {offset} (line 2, character 20)")
    assert error.column == "category"


def test_nullable_float_ids_from_pandas_are_read_the_same_way(tmp_path):
    """A frame with pandas' nullable Float64 ids round-trips through Parquet as Float64, with <NA> for nulls."""
    pd.DataFrame({"customer_id": pd.array([42.0, 7.0], dtype="Float64"), "timestamp": ["2020-01-01", "2020-01-02"],
                  "amount": [1.0, 2.0], "order_id": pd.array([1001.0, None], dtype="Float64")}
                 ).to_parquet(tmp_path / "tx.parquet")
    tx, report = load_transactions(tmp_path / "tx.parquet")
    assert tx["customer_id"].tolist() == ["42", "7"] and tx["order_id"].tolist() == ["1001", None]
    assert sum(report.changes.values()) == 3


def test_a_scored_file_with_an_infinite_number_is_refused_by_name(tmp_path):
    """Scored files are read back for plans and reports: an edited one holding inf is bad input, not a value."""
    path = write(tmp_path / "scores.csv", "customer_id,predicted_value,churn_probability\nA,12.5,0.1\nB,inf,0.2\n"
                 "C,,0.3\n")
    with pytest.raises(DataError, match=r"(?s)scores.csv, column 'predicted_value': not a finite number.*B +inf"):
        read_scores(path)
    assert read_scores(write(tmp_path / "ok.csv", "customer_id,predicted_value\nA,12.5\nC,\n"))[
        "predicted_value"].isna().tolist() == [False, True]  # a blank stays a missing value
