"""Loading and validating input files per the contract: good files load, bad files name what is wrong."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tiercast.features.loading import load_customers, load_inputs, load_interactions, load_transactions, read_scores
from tiercast.features.schema import ColumnMapping, DataConfig, DataError

ROOT = Path(__file__).resolve().parents[2]
CDNOW = ROOT / "data" / "cdnow" / "CDNOW_master.txt.gz"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_cdnow_master_loads_every_row_and_keeps_ids_as_text():
    tx, report = load_transactions(CDNOW)
    assert len(tx) == 69_659
    assert tx["customer_id"].nunique() == 23_570
    assert tx["customer_id"].iloc[0] == "00001"  # zero padding kept
    assert tx["timestamp"].min() == pd.Timestamp("1997-01-01")
    assert tx["timestamp"].max() == pd.Timestamp("1998-06-30")
    assert report.summary["zero_amount_rows"] == int((tx["amount"] == 0).sum()) > 0


def test_csv_ids_whitespace_timezones_and_duplicates_are_cleaned(tmp_path):
    path = write(tmp_path / "tx.csv", (
        "customer_id,timestamp,amount,order_id,category\n"
        " 00042 ,2025-01-01T23:30:00-02:00,10.5,o1,books\n"
        "00042,2025-01-02,-3,o2,books\n"
        "00042,2025-01-02,-3,o2,books\n"
        "00007,2025-01-03T10:00:00Z,0,o3,music\n"))
    tx, report = load_transactions(path)
    assert list(tx["customer_id"]) == ["00007", "00042", "00042"]
    # 23:30 at UTC-2 is 01:30 the next day in UTC, stored naive.
    assert tx.loc[tx["order_id"] == "o1", "timestamp"].item() == pd.Timestamp("2025-01-02 01:30")
    assert report.changes["exact duplicate order lines dropped"] == 1
    assert report.changes["customer ids with surrounding whitespace stripped"] == 1
    assert report.changes["timestamp values with a UTC offset converted to UTC"] == 2
    assert report.rows_read == 4 and report.rows_kept == 3


def test_column_mapping_renames_user_columns(tmp_path):
    path = write(tmp_path / "tx.csv", "client,date,revenue\nA,2025-01-01,5\n")
    config = DataConfig(columns=ColumnMapping(transactions={"customer_id": "client", "timestamp": "date",
                                                            "amount": "revenue"}))
    tx, _ = load_transactions(path, config)
    assert tx.iloc[0].to_dict() == {"customer_id": "A", "timestamp": pd.Timestamp("2025-01-01"), "amount": 5.0}


def test_parquet_with_timezone_aware_timestamps(tmp_path):
    frame = pd.DataFrame({"customer_id": ["1", "2"],
                          "timestamp": pd.to_datetime(["2025-03-01T12:00:00+01:00", "2025-03-02T00:00:00+01:00"]),
                          "amount": [1.0, 2.0]})
    frame.to_parquet(tmp_path / "tx.parquet")
    tx, _ = load_transactions(tmp_path / "tx.parquet")
    assert list(tx["timestamp"]) == [pd.Timestamp("2025-03-01 11:00"), pd.Timestamp("2025-03-01 23:00")]


@pytest.mark.parametrize(("content", "column", "shown"), [
    ("customer_id,timestamp\nA,2025-01-01\n", "amount", "required column missing"),
    ("customer_id,timestamp,amount\nA,2025-01-01,5\nB,yesterday,3\nC,2025-13-45,1\n", "timestamp", "yesterday"),
    ("customer_id,timestamp,amount\nA,2025-01-01,5\nB,2025-01-02,ten\n", "amount", "ten"),
    ("customer_id,timestamp,amount\nA,2025-01-01,inf\n", "amount", "inf"),
    ("customer_id,timestamp,amount\n ,2025-01-01,5\n", "customer_id", "empty customer_id"),
])
def test_bad_transactions_name_the_file_column_and_rows(tmp_path, content, column, shown):
    path = write(tmp_path / "bad.csv", content)
    with pytest.raises(DataError) as caught:
        load_transactions(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"column '{column}'" in message
    assert shown in message


def test_bad_timestamp_sample_lists_every_bad_row(tmp_path):
    path = write(tmp_path / "bad.csv", "customer_id,timestamp,amount\nA,2025-01-01,5\nB,yesterday,3\nC,soon,1\n")
    with pytest.raises(DataError) as caught:
        load_transactions(path)
    assert "2 values" in str(caught.value)
    assert list(caught.value.sample["timestamp"]) == ["yesterday", "soon"]


@pytest.mark.parametrize(("content", "problem"), [
    (b"", "empty"),
    (b"customer_id,timestamp,amount\n", "no data rows"),
    ("customer_id,timestamp,amount\nJos\u00e9,2025-01-01,5\n".encode("latin-1"), "not UTF-8"),
])
def test_unreadable_files(tmp_path, content, problem):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=problem):
        load_transactions(path)


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="unsupported file type"):
        load_transactions(write(tmp_path / "tx.xlsx", "x"))
    with pytest.raises(DataError, match="file not found"):
        load_transactions(tmp_path / "nope.csv")


def test_customers_and_interactions(tmp_path):
    customers = write(tmp_path / "customers.csv",
                      "customer_id,signup_date,region,email\nA,2024-01-03,north,a@x.org\nB,,south,b@x.org\n")
    interactions = write(tmp_path / "interactions.csv",
                         "customer_id,timestamp,kind,score\nA,2025-01-01,Survey,4\nA,2025-01-02,support_ticket,\n")
    cust, _ = load_customers(customers)
    assert cust.loc[cust.customer_id == "A", "signup_date"].item() == pd.Timestamp("2024-01-03")
    assert pd.isna(cust.loc[cust.customer_id == "B", "signup_date"].item())
    inter, _ = load_interactions(interactions)
    assert list(inter["kind"]) == ["survey", "support_ticket"]
    assert inter["score"].iloc[0] == 4 and pd.isna(inter["score"].iloc[1])


def test_repeated_customer_and_bad_score_are_errors(tmp_path):
    with pytest.raises(DataError, match="repeat a customer_id"):
        load_customers(write(tmp_path / "c.csv", "customer_id,region\nA,x\nA,y\n"))
    with pytest.raises(DataError, match="column 'score'"):
        load_interactions(write(tmp_path / "i.csv", "customer_id,timestamp,kind,score\nA,2025-01-01,survey,great\n"))


def test_personal_data_never_shown_in_error_samples(tmp_path):
    path = write(tmp_path / "tx.csv", "customer_id,timestamp,amount,email\n,2025-01-01,5,secret@x.org\n")
    with pytest.raises(DataError) as caught:
        load_transactions(path)
    assert "secret@x.org" not in str(caught.value)


def test_load_inputs_gathers_reports(tmp_path):
    with gzip.open(CDNOW, "rt") as handle:
        head = [next(handle) for _ in range(50)]
    path = tmp_path / "small.txt"
    path.write_text("".join(head))
    data = load_inputs(path)
    assert data.customers is None and data.interactions is None
    assert data.quality_report()["transactions"]["rows_read"] == 49


def test_blank_order_ids_are_missing_so_each_line_is_its_own_order_as_in_the_service(tmp_path):
    from tiercast.features.builder import FeatureBuilder
    from tiercast.features.spec import FeatureSpec
    from tiercast.serving.api import CustomerIn, to_columns, to_frames

    path = tmp_path / "tx.csv"
    path.write_text("customer_id,timestamp,amount,order_id,channel\n"
                    "A,2025-01-05,10,,web\nA,2025-02-07,20, ,\nA,2025-03-09,30,o1,web\nA,2025-03-09,5,o1,web\n")
    batch, _ = load_transactions(path)
    assert batch["order_id"].isna().tolist() == [True, True, False, False]
    assert batch["channel"].isna().tolist() == [False, True, False, False]
    request = [CustomerIn.model_validate({"customer_id": "A", "transactions": [
        {"timestamp": "2025-01-05", "amount": 10, "order_id": "", "channel": "web"},
        {"timestamp": "2025-02-07", "amount": 20, "order_id": " "},
        {"timestamp": "2025-03-09", "amount": 30, "order_id": "o1", "channel": "web"},
        {"timestamp": "2025-03-09", "amount": 5, "order_id": "o1", "channel": "web"},
        {"timestamp": "2025-03-09", "amount": 5, "order_id": "o1", "channel": "web"}]})]  # a repeated line
    online, _, _ = to_frames(request)
    builder = FeatureBuilder(FeatureSpec())
    from_file = builder.transform(batch, "2025-04-01")
    from_service = builder.transform(online, "2025-04-01")
    assert from_file.loc["A", "frequency"] == 3  # two lines without an order id, one order of two lines
    pd.testing.assert_frame_equal(from_file, from_service, check_dtype=False)
    # The service hands the builder the request's columns as arrays, without a frame: the same features.
    columns, _, _ = to_columns(request)
    assert len(columns["amount"]) == 4 and isinstance(columns["amount"], np.ndarray)
    pd.testing.assert_frame_equal(builder.transform(columns, "2025-04-01"), from_service, check_exact=True)


def test_parquet_nulls_in_an_optional_number_column_are_missing(tmp_path):
    """Blank means missing in optional columns, in CSV cells and Parquet nulls alike (as in the service)."""
    pd.DataFrame({"customer_id": ["A", "A"], "timestamp": pd.to_datetime(["2025-01-01", "2025-01-02"]),
                  "kind": ["survey", "survey"], "score": [4.0, None]}).to_parquet(tmp_path / "i.parquet")
    inter, _ = load_interactions(tmp_path / "i.parquet")
    assert inter["score"].iloc[0] == 4 and pd.isna(inter["score"].iloc[1])


@pytest.mark.parametrize(("content", "column", "shown"), [
    ("customer_id,timestamp,amount\nA,2025-01-01,2e12\n", "amount", "outside [-1e+12, 1e+12]"),
    ("customer_id,timestamp,amount\nA,1850-01-01,5\n", "timestamp", "not between 1900-01-01 and 2199-12-31"),
    ("customer_id,timestamp,amount\nA,20250101,5\n", "timestamp", "not ISO 8601"),
    ("customer_id,timestamp,amount\nnan,2025-01-01,5\n", "customer_id", "empty customer_id"),
])
def test_the_schemas_bounds_name_the_column(tmp_path, content, column, shown):
    with pytest.raises(DataError) as caught:
        load_transactions(write(tmp_path / "bad.csv", content))
    assert f"column '{column}'" in str(caught.value) and shown in str(caught.value)


def test_bad_scored_files_name_the_file_and_the_problem(tmp_path):
    missing = tmp_path / "missing.csv"
    missing.write_text("customer_id,tier\nA,VIP\n")
    with pytest.raises(DataError, match=r"missing.csv.*predicted_value"):
        read_scores(missing, ("customer_id", "predicted_value"))
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,predicted_value\nA,12.5\nB,lots\n")
    with pytest.raises(DataError, match=r"(?s)bad.csv, column 'predicted_value'.*lots"):
        read_scores(bad)
    twice = tmp_path / "twice.parquet"
    pd.DataFrame({"customer_id": ["A", "A"], "predicted_value": [1.0, 2.0]}).to_parquet(twice)
    with pytest.raises(DataError, match="more than once"):
        read_scores(twice)
    text = tmp_path / "scores.txt"
    text.write_text("customer_id\nA\n")
    with pytest.raises(DataError, match="unsupported"):
        read_scores(text)
