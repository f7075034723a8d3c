"""The rows and header of CSV and CDNOW text files: a row that does not fit the header is refused by its line,
never shifted into other columns; a column named twice is refused by name; a bad value is named by its line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tiercast.features.loading import load_customers, load_interactions, load_transactions, read_scores
from tiercast.features.schema import ColumnMapping, DataConfig, DataError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def refused(load, path: Path, config: DataConfig | None = None) -> DataError:
    with pytest.raises(DataError) as caught:
        load(path, config)
    assert str(path) in str(caught.value)
    return caught.value


# ------------------------------------------------------------------------------ one field per header column
def test_a_row_with_an_extra_field_is_refused_rather_than_read_with_its_id_as_the_index(tmp_path):
    # pandas made the first field the index when the rows are one field wider than the header: customer X1 was
    # scored with A1's purchase and A1 vanished.
    error = refused(load_transactions, write(tmp_path / "tx.csv", "customer_id,timestamp,amount\nA1,X1,1998-03-02,10\n"))
    assert "1 rows do not have the header's 3 fields (customer_id, timestamp, amount): 1 have more" in str(error)
    assert error.sample.to_dict("index") == {"line 2": {"fields": 4, "text": "A1,X1,1998-03-02,10"}}


def test_rows_with_more_or_fewer_fields_among_good_ones_are_named_by_line(tmp_path):
    path = write(tmp_path / "tx.csv", "customer_id,timestamp,amount,category\n"
                                      "A,1998-01-01,5,jazz\n"
                                      "B,1998-01-02,6\n"  # no category: pandas padded it silently
                                      "\n"
                                      "C,1998-01-03,7,pop,rock\n"
                                      'D,1998-01-04,"1,234.50","folk, and more"\n')  # quoted commas are fine
    error = refused(load_transactions, path)
    assert "2 rows do not have the header's 4 fields" in str(error) and "1 have more, 1 fewer" in str(error)
    assert list(error.sample.index) == ["line 3", "line 5"]
    assert list(error.sample["fields"]) == [3, 5]


def test_quoted_commas_quotes_and_line_breaks_keep_their_rows_whole(tmp_path):
    path = write(tmp_path / "tx.csv", 'customer_id,timestamp,amount,category\n'
                                      '"A,1",1998-01-01,"1,234.50","say ""hi"", twice"\n'
                                      'B,1998-01-02,2,"two\nlines"\n')
    tx, report = load_transactions(path)
    assert tx.to_dict("list") == {"customer_id": ["A,1", "B"], "timestamp": [pd.Timestamp("1998-01-01"),
                                  pd.Timestamp("1998-01-02")], "amount": [1234.5, 2.0],
                                  "category": ['say "hi", twice', "two\nlines"]}
    assert report.rows_read == 2


def test_a_comma_at_the_end_of_the_header_and_every_row_is_an_empty_column_dropped(tmp_path):
    customers, _ = load_customers(write(tmp_path / "c.csv", "customer_id,region,\nA,north,\nB,south,\n"))
    assert list(customers.columns) == ["customer_id", "region"]  # not an attribute named 'Unnamed: 2'
    tx, _ = load_transactions(write(tmp_path / "tx.csv", "customer_id,timestamp,amount,\nA,1998-01-01,5,\n"))
    assert tx[["customer_id", "amount"]].to_dict("list") == {"customer_id": ["A"], "amount": [5.0]}


@pytest.mark.parametrize("rows", ["A,1998-01-01,5,\nB,1998-01-02,6,\n", "A,1998-01-01,5\nB,1998-01-02,6,\n"])
def test_a_comma_at_the_end_of_rows_but_not_of_the_header_is_refused_with_how_to_fix_it(tmp_path, rows):
    # Every row or some: it used to end in a TypeError (the ids had become the index) or a pandas parser error.
    error = refused(load_transactions, write(tmp_path / "tx.csv", "customer_id,timestamp,amount\n" + rows))
    assert "the extra fields are empty: if the lines end with a comma, remove it, or end the header" in str(error)
    assert "line 3" in list(error.sample.index)


def test_an_unnamed_column_with_values_is_refused(tmp_path):
    # What pandas' to_csv writes with its index: read as a customer attribute 'Unnamed: 0' before.
    error = refused(load_customers, write(tmp_path / "c.csv", ",customer_id,region\n0,A,north\n1,B,south\n"))
    assert "column 1 has no name in the header, yet 2 rows have a value in it" in str(error)
    assert "lines 2, 3" in str(error)


def test_a_misfit_rows_text_is_not_shown_when_the_file_has_personal_data(tmp_path):
    path = write(tmp_path / "c.csv", "customer_id,E-Mail,region\nA,a@x.org,north\nB,b@x.org,south,extra\n")
    error = refused(load_customers, path)
    assert "b@x.org" not in str(error) and "not shown" in str(error)
    assert error.sample.to_dict("index") == {"line 3": {"fields": 4}}


def test_an_unclosed_quote_names_the_line_its_row_starts_on(tmp_path):
    path = write(tmp_path / "tx.csv", 'customer_id,timestamp,amount\nA,1998-01-01,5\n\nB,1998-01-02,"6\nC,1998-01-03,7\n')
    error = refused(load_transactions, path)
    assert "the row starting on line 4" in str(error)


def test_a_cdnow_line_with_another_number_of_fields_is_refused_by_line(tmp_path):
    path = write(tmp_path / "cdnow.txt", " customer_id  date number_of_cds  dollar_value\r\n"
                                         " 00001 19970101  1   11.77\r\n"
                                         "\r\n"
                                         " 00002 19970112  1   12.00 7\r\n"
                                         " 00003 19970112  1\r\n"
                                         " 00004 19970112  2   24.00\r\n")
    error = refused(load_transactions, path)
    assert "2 rows do not have the 4 fields most lines have: 1 have more, 1 fewer" in str(error)
    assert error.sample.to_dict("index") == {"line 4": {"fields": 5, "text": "00002 19970112 1 12.00 7"},
                                             "line 5": {"fields": 3, "text": "00003 19970112 1"}}


def test_a_scored_file_with_a_row_wider_than_its_header_is_refused(tmp_path):
    path = write(tmp_path / "scores.csv", "customer_id,predicted_value\nA,1.5\nB,X,2.5\n")
    with pytest.raises(DataError, match="1 rows do not have the header's 2 fields"):
        read_scores(path)


# ---------------------------------------------------------------------------------- a column named twice
@pytest.mark.parametrize(("header", "named"), [
    ("customer_id,timestamp,amount,amount", "'amount' twice"),
    ("customer_id,timestamp,Amount,amount", "'Amount' and 'amount'"),
    ("customer_id,timestamp,amount, AMOUNT ", "'amount' and 'AMOUNT'"),
])
def test_a_header_naming_a_column_twice_is_refused_by_name(tmp_path, header, named):
    # pandas renamed the second 'amount' to 'amount.1' and the loader read the first, silently.
    error = refused(load_transactions, write(tmp_path / "tx.csv", f"{header}\nA,1998-01-01,5,6\n"))
    assert f"the header names a column more than once: {named}" in str(error)


def test_a_mapped_name_that_meets_a_column_of_the_same_name_is_refused(tmp_path):
    config = DataConfig(columns=ColumnMapping(transactions={"amount": "Sales"}))
    error = refused(load_transactions, write(tmp_path / "tx.csv", "customer_id,timestamp,Sales,amount\nA,1998-01-01,5,6\n"),
                    config)
    assert "'Sales' (read as amount by data.columns) and 'amount'" in str(error)


def test_a_repeated_name_in_an_interactions_file_is_refused(tmp_path):
    path = write(tmp_path / "i.csv", "customer_id,timestamp,kind,Kind\nA,1998-01-01,survey,visit\n")
    with pytest.raises(DataError, match="'kind' and 'Kind'"):
        load_interactions(path)


# ------------------------------------------------------------------------------------ rows named by line
def test_a_bad_value_is_named_by_its_line_counting_blank_lines_and_quoted_line_breaks(tmp_path):
    path = write(tmp_path / "tx.csv", "customer_id,timestamp,amount,category\n"  # line 1
                                      'A,1998-01-01,5,"a note\nover two lines"\n'  # lines 2-3
                                      "\n"  # line 4
                                      "B,1998-01-02,ten,pop\n"  # line 5
                                      "C,soon,7,pop\n")  # line 6
    error = refused(load_transactions, path)
    assert list(error.sample.index) == ["line 6"] and error.column == "timestamp"
    path.write_text(path.read_text().replace("soon", "1998-01-03"))
    error = refused(load_transactions, path)
    assert list(error.sample.index) == ["line 5"] and error.column == "amount"


def test_a_repeated_customer_is_named_by_its_lines_and_a_parquet_row_by_its_row(tmp_path):
    error = refused(load_customers, write(tmp_path / "c.csv", "customer_id,region\n\nA,x\nB,y\nA,z\n"))
    assert list(error.sample.index) == ["line 3", "line 5"]
    pd.DataFrame({"customer_id": ["A", "B"], "timestamp": ["1998-01-01", "never"], "amount": [1.0, 2.0]}).to_parquet(
        tmp_path / "tx.parquet")
    assert list(refused(load_transactions, tmp_path / "tx.parquet").sample.index) == ["row 2"]


def test_a_bad_cdnow_value_is_named_by_its_line(tmp_path):
    path = write(tmp_path / "cdnow.txt", " customer_id  date number_of_cds  dollar_value\r\n"
                                         " 00001 19970101  1   11.77\r\n\r\n 00002 19970112  1   twelve\r\n")
    assert list(refused(load_transactions, path).sample.index) == ["line 4"]
