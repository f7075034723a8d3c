"""Loading and validating input files per the contract: good files load, bad files name what is wrong."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tiercast.features.loading import (
    CleaningReport,
    load_customers,
    load_inputs,
    load_interactions,
    load_transactions,
    read_scores,
)
from tiercast.features.schema import ColumnMapping, DataConfig, DataError

ROOT = Path(__file__).resolve().parents[2]
CDNOW = ROOT / "data" / "cdnow" / "CDNOW_master.txt.gz"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_cdnow_master_loads_every_row_and_keeps_ids_as_text():
    tx, report = load_transactions(CDNOW)
    assert len(tx) == 69_659 == report.rows_read == report.rows_kept
    assert tx["customer_id"].nunique() == 23_570
    assert tx["customer_id"].iloc[0] == "00001"  # zero padding kept
    assert tx["timestamp"].min() == pd.Timestamp("1997-01-01")
    assert tx["timestamp"].max() == pd.Timestamp("1998-06-30")
    assert report.summary["zero_amount_rows"] == int((tx["amount"] == 0).sum()) > 0


def test_csv_ids_whitespace_and_timezones_are_cleaned_and_identical_rows_kept_and_counted(tmp_path):
    path = write(tmp_path / "tx.csv", (
        "customer_id,timestamp,amount,order_id,category\n"
        " 00042 ,2025-01-01T23:30:00-02:00,10.5,o1,books\n"
        "00042,2025-01-02,-3,o2,books\n"
        "00042,2025-01-02,-3,o2,books\n"
        "00007,2025-01-03T10:00:00Z,0,o3,music\n"))
    tx, report = load_transactions(path)
    assert list(tx["customer_id"]) == ["00007", "00042", "00042", "00042"]
    # 23:30 at UTC-2 is 01:30 the next day in UTC, stored naive.
    assert tx.loc[tx["order_id"] == "o1", "timestamp"].item() == pd.Timestamp("2025-01-02 01:30")
    # Two lines of order o2 alike: two products at the same price, say; kept, and counted.
    assert (tx["order_id"] == "o2").sum() == 2
    assert report.counted == {"rows identical to an earlier row, kept (data.drop_identical_rows: false)": 1}
    assert report.summary["identical_rows"] == 1
    assert report.changes["customer ids with surrounding whitespace stripped"] == 1
    assert report.changes["timestamp values with a UTC offset converted to UTC"] == 2
    assert report.rows_read == 4 and report.rows_kept == 4 and report.dropped == {}


def test_identical_rows_are_dropped_only_when_the_config_says_so_and_every_row_is_accounted_for(tmp_path, caplog):
    path = write(tmp_path / "tx.csv", (
        "customer_id,timestamp,amount,order_id,quantity\n"
        "A,2025-01-01,5,o1,1\nA,2025-01-01,5,o1,1\nA,2025-01-01,5,o1,1\n"  # three alike
        "A,2025-01-01,5,o1,2\n"  # another quantity: a different line
        "B,2025-01-01,5,o1,1\n"  # another customer
        "A,2025-01-01,5,,1\nA,2025-01-01,5,,1\n"))  # alike without an order id too
    kept, kept_report = load_transactions(path)
    with caplog.at_level("INFO", logger="tiercast.features.loading"):
        dropped, dropped_report = load_transactions(path, DataConfig(drop_identical_rows=True))
    assert len(kept) == 7 and len(dropped) == 4
    assert dropped_report.dropped == {"rows identical to an earlier row (data.drop_identical_rows: true)": 3}
    assert "dropped, rows identical to an earlier row (data.drop_identical_rows: true): 3" in caplog.text
    assert dropped.drop_duplicates().shape == dropped.shape
    for report in (kept_report, dropped_report):
        assert report.rows_read == 7
        assert report.rows_read == report.rows_kept + sum(report.dropped.values())
        written = report.to_dict()  # the data-quality report's form of it
        assert written["rows_read"] == written["rows_kept"] + sum(written["dropped"].values())


def test_a_report_that_loses_rows_without_a_reason_is_an_error():
    report = CleaningReport("tx.csv", "transactions", rows_read=10)
    report.note_dropped("rows of a named kind", 3)
    report.finish(7)
    with pytest.raises(AssertionError, match="1 rows neither kept nor dropped"):
        report.finish(6)


def test_product_id_is_an_optional_text_column(tmp_path):
    path = write(tmp_path / "tx.csv", "customer_id,timestamp,amount,order_id,product_id\n"
                                      "A,2025-01-01,5,o1, 85123A \nA,2025-01-01,5,o1,71053\nA,2025-01-02,1,o2,\n")
    tx, report = load_transactions(path)
    assert tx["product_id"].tolist()[:2] == ["85123A", "71053"] and pd.isna(tx["product_id"].iloc[2])
    assert report.counted == {}  # two products at one price are not alike with the product column
    assert "product_id" not in load_transactions(write(tmp_path / "plain.csv",
                                                       "customer_id,timestamp,amount\nA,2025-01-01,5\n"))[0]


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
    with pytest.raises(DataError, match="tx.csv.gz: cannot be read: Not a gzipped file"):
        load_transactions(write(tmp_path / "tx.csv.gz", "customer_id,timestamp,amount\nA,2025-01-01,5\n"))
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
                    "A,2025-01-05,10,,web\nA,2025-02-07,20, ,\nA,2025-03-09,30,o1,web\nA,2025-03-09,5,o1,web\n"
                    "A,2025-03-09,5,o1,web\n")
    batch, _ = load_transactions(path)
    assert batch["order_id"].isna().tolist() == [True, True, False, False, False]
    assert batch["channel"].isna().tolist() == [False, True, False, False, False]
    request = [CustomerIn.model_validate({"customer_id": "A", "transactions": [
        {"timestamp": "2025-01-05", "amount": 10, "order_id": "", "channel": "web"},
        {"timestamp": "2025-02-07", "amount": 20, "order_id": " "},
        {"timestamp": "2025-03-09", "amount": 30, "order_id": "o1", "channel": "web"},
        {"timestamp": "2025-03-09", "amount": 5, "order_id": "o1", "channel": "web"},
        {"timestamp": "2025-03-09", "amount": 5, "order_id": "o1", "channel": "web"}]})]  # an identical line, kept
    online, _, _ = to_frames(request)
    builder = FeatureBuilder(FeatureSpec())
    from_file = builder.transform(batch, "2025-04-01")
    from_service = builder.transform(online, "2025-04-01")
    assert from_file.loc["A", "frequency"] == 3  # two lines without an order id, one order of three lines
    pd.testing.assert_frame_equal(from_file, from_service, check_dtype=False)
    # The service hands the builder the request's columns as arrays, without a frame: the same features.
    columns, _, _ = to_columns(request)
    assert len(columns["amount"]) == 5 and isinstance(columns["amount"], np.ndarray)
    pd.testing.assert_frame_equal(builder.transform(columns, "2025-04-01"), from_service, check_exact=True)


def test_parquet_nulls_in_an_optional_number_column_are_missing(tmp_path):
    """Blank means missing in optional columns, in CSV cells and Parquet nulls alike (as in the service)."""
    pd.DataFrame({"customer_id": ["A", "A"], "timestamp": pd.to_datetime(["2025-01-01", "2025-01-02"]),
                  "kind": ["survey", "survey"], "score": [4.0, None]}).to_parquet(tmp_path / "i.parquet")
    inter, _ = load_interactions(tmp_path / "i.parquet")
    assert inter["score"].iloc[0] == 4 and pd.isna(inter["score"].iloc[1])


@pytest.mark.parametrize(("content", "column", "shown"), [
    ("customer_id,timestamp,amount\nA,2025-01-01,2e12\n", "amount", "outside [-1e+12, 1e+12]"),
    ("customer_id,timestamp,amount\nA,1850-01-01,5\n", "timestamp",
     "outside the supported range, 1900-01-01 to 2199-12-31"),
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


# ------------------------------------------------------------------------------------------ text encodings
CHINESE = ("customer_id,timestamp,amount,category\n"
           "张伟,2025-01-01,12.5,图书\n"
           "李娜,2025-01-02,8,音乐\n"
           "C003,2025-01-03,3,生鲜食品\n")


def test_a_gb18030_file_is_read_when_the_config_names_the_encoding(tmp_path):
    path = tmp_path / "tx.csv"
    path.write_bytes(CHINESE.encode("gb18030"))
    tx, _ = load_transactions(path, DataConfig(encoding="gb18030"))
    assert tx["customer_id"].tolist() == ["C003", "张伟", "李娜"]
    assert tx["category"].tolist() == ["生鲜食品", "图书", "音乐"]
    # GBK, what older Excel writes, is a part of GB18030: its files read either way.
    path.write_bytes(CHINESE.encode("gbk"))
    assert load_transactions(path, DataConfig(encoding="gb18030"))[0].equals(tx)
    assert load_transactions(path, DataConfig(encoding="GBK"))[0].equals(tx)


def test_customers_with_chinese_names_in_gb18030(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_bytes("customer_id,name,region\nC1,王芳,华东\nC2,刘洋,华北\n".encode("gb18030"))
    customers, _ = load_customers(path, DataConfig(encoding="gb18030"))
    assert customers["region"].tolist() == ["华东", "华北"]
    with pytest.raises(DataError) as caught:
        load_customers(path)
    assert caught.value.column == "name" and "data.encoding: gb18030" in str(caught.value)
    assert "王芳" not in str(caught.value) and "\\x" not in str(caught.value)  # personal data never shown


def test_a_gb18030_file_read_as_utf8_names_the_byte_and_how_to_read_it(tmp_path):
    path = tmp_path / "tx.csv"
    path.write_bytes(CHINESE.encode("gb18030"))
    with pytest.raises(DataError) as caught:
        load_transactions(path)
    message = str(caught.value)
    header = len(CHINESE.splitlines()[0]) + 1
    assert message.startswith(f"{path}, column 'customer_id': not UTF-8 text: byte {header} (line 2, character 1)")
    assert "decodes as GB18030" in message and "`data.encoding: gb18030`" in message


def test_the_byte_position_is_the_files_not_a_read_buffers(tmp_path):
    """pandas decodes in chunks and reports positions within one; the message counts from the file's start."""
    head = "customer_id,timestamp,amount,category\n" + "A,2025-01-01,1,x\n" * 300_000
    path = tmp_path / "tx.csv.gz"
    path.write_bytes(gzip.compress((head + 'B,2025-01-01,1,"书,籍"\n').encode("gb18030")))
    with pytest.raises(DataError) as caught:
        load_transactions(path)
    offset = len(head.encode()) + len('B,2025-01-01,1,"')
    assert f"byte {offset:,} (line 300,002, character 17)" in str(caught.value)
    assert caught.value.column == "category"  # the comma inside the quotes does not split the cell


def test_a_file_that_is_neither_utf8_nor_gb18030_gets_no_gb18030_hint(tmp_path):
    path = tmp_path / "tx.csv"
    path.write_bytes("customer_id,timestamp,amount,category\nA,2025-01-01,5,caf\u00e9\n".encode("latin-1"))
    with pytest.raises(DataError) as caught:
        load_transactions(path)
    assert "GB18030" not in str(caught.value) and "`data.encoding: ...`" in str(caught.value)
    assert caught.value.column == "category"
    assert load_transactions(path, DataConfig(encoding="latin-1"))[0]["category"].item() == "caf\u00e9"


def test_a_utf8_file_declared_gb18030_is_refused_rather_than_garbled(tmp_path):
    path = tmp_path / "tx.csv"
    path.write_bytes(CHINESE.encode("utf-8"))
    with pytest.raises(DataError, match=r"UTF-8 text with non-ASCII characters, but `data.encoding` says gb18030"):
        load_transactions(path, DataConfig(encoding="gb18030"))
    ascii_only = write(tmp_path / "ascii.csv", "customer_id,timestamp,amount\nA,2025-01-01,5\n")
    assert len(load_transactions(ascii_only, DataConfig(encoding="gb18030"))[0]) == 1  # ASCII is both


@pytest.mark.parametrize("declared", ["utf-8", "gb18030"])
def test_a_utf8_byte_order_mark_is_accepted_in_csv_and_cdnow_text(tmp_path, declared):
    csv_path = tmp_path / "tx.csv"
    csv_path.write_bytes(CHINESE.encode("utf-8-sig"))  # what Excel's "CSV UTF-8" writes
    tx, _ = load_transactions(csv_path, DataConfig(encoding=declared))
    assert sorted(tx["customer_id"]) == ["C003", "张伟", "李娜"]
    with gzip.open(CDNOW, "rt") as handle:
        head = "".join([next(handle) for _ in range(21)][1:])  # 20 data lines, no header: the mark precedes an id
    for name, write_bytes in (("cdnow.txt", lambda p, b: p.write_bytes(b)),
                              ("cdnow.txt.gz", lambda p, b: p.write_bytes(gzip.compress(b)))):
        write_bytes(tmp_path / name, head.encode("utf-8-sig"))
        cdnow, _ = load_transactions(tmp_path / name, DataConfig(encoding=declared))
        assert cdnow["customer_id"].iloc[0] == "00001" and len(cdnow) == 20


def test_an_unknown_encoding_is_a_config_error():
    with pytest.raises(ValueError, match="unknown text encoding 'utf-9'"):
        DataConfig(encoding="utf-9")
    assert DataConfig(encoding="GB18030").encoding == "gb18030"
