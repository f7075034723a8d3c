"""Odd CSV rows and headers through the real command line: exit 2 naming the file and the lines, nothing
written, no traceback, and no personal data on stderr or in the log."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from tiercast.cli import main

HEADER = "customer_id,timestamp,amount"


@pytest.fixture
def store(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)


def command(name: str, transactions: Path, out: Path, *extra: str) -> list[str]:
    return [name, "--transactions", str(transactions), "--as-of", "1998-06-01", "--out", str(out), *extra]


def assert_refused(code: int, err: str, path: Path, out: Path, *lines: str) -> None:
    assert code == 2
    assert "Traceback" not in err and f"error: {path}" in err
    assert all(f"line {line} " in err for line in lines), err
    assert [p.name for p in out.parent.iterdir() if p.name.startswith((out.name, f".{out.name}"))] == []


@pytest.mark.parametrize("rows", [
    "A0,1998-01-02,5,\nA1,1998-03-02,10,\n",  # a comma at the end of every row but not of the header
    "A0,1998-01-02,5\nA1,1998-03-02,10,\n",  # ... of some rows
])
@pytest.mark.parametrize("name", ["features", "score"])
def test_trailing_commas_on_rows_exit_2_naming_the_lines_and_write_nothing(tmp_path, store, capsys, name, rows):
    path = tmp_path / "tx.csv"
    path.write_text(f"{HEADER}\n{rows}")
    out = tmp_path / "out.csv"
    code = main(command(name, path, out))
    err = capsys.readouterr().err
    assert_refused(code, err, path, out, "3")
    assert "the extra fields are empty: if the lines end with a comma, remove it" in err


def test_a_comma_at_the_end_of_the_header_and_every_row_is_read_as_it_means(tmp_path, store):
    path = tmp_path / "tx.csv"
    path.write_text(f"{HEADER},\nA0,1998-01-02,5,\nA1,1998-03-02,10,\n")
    out = tmp_path / "features.csv"
    assert main(command("features", path, out)) == 0
    features = pd.read_csv(out, dtype={"customer_id": str}).set_index("customer_id")
    assert features["monetary_total"].to_dict() == {"A0": 5.0, "A1": 10.0}


def test_a_row_with_an_extra_field_stops_score_instead_of_scoring_the_wrong_customer(tmp_path, store, capsys):
    path = tmp_path / "tx.csv"
    path.write_text(f"{HEADER}\nA1,X1,1998-03-02,10\n")
    out = tmp_path / "scores.csv"
    code = main(command("score", path, out))
    err = capsys.readouterr().err
    assert_refused(code, err, path, out, "2")
    assert "A1,X1,1998-03-02,10" in err


def test_capitalised_personal_columns_stay_out_of_stderr_and_the_log(tmp_path, store, capsys, caplog):
    transactions = tmp_path / "tx.csv"
    transactions.write_text(f"{HEADER}\nA,1998-01-02,5\nB,1998-02-02,7\n")
    customers = tmp_path / "customers.csv"
    customers.write_text("Name,Email,Phone,customer_id,region\nAnn Lee,ann@x.org,555-0101,A,north\n"
                         "Jo Secret,jo@x.org,555-0199, ,south\n")
    out = tmp_path / "features.csv"
    with caplog.at_level(logging.DEBUG):
        code = main(command("features", transactions, out, "--customers", str(customers)))
    err = capsys.readouterr().err
    assert_refused(code, err, customers, out, "3")
    assert "empty customer_id" in err and "south" in err  # the row is shown, without its personal columns
    for value in ("Jo Secret", "jo@x.org", "555-0199", "Ann Lee", "ann@x.org"):
        assert value not in err and value not in caplog.text
