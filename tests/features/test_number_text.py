"""Amounts and quantities as spreadsheets write them: read when unambiguous, refused by name otherwise."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tiercast.features.loading import load_transactions
from tiercast.features.number_text import read_formatted
from tiercast.features.schema import DataError

FORMATTED_NOTE = "amount values written with a currency sign or thousands separators read as numbers"


def load_amounts(tmp_path: Path, cells: list[str], column: str = "amount") -> tuple[pd.DataFrame, object]:
    """A CSV with one row per cell in ``column`` (quoted, as a spreadsheet writes a cell holding a comma)."""
    other = "quantity" if column == "amount" else "amount"
    rows = [f'C{i},2025-01-{i + 1:02d},"{cell}",1' for i, cell in enumerate(cells)]
    path = tmp_path / "tx.csv"
    path.write_text(f"customer_id,timestamp,{column},{other}\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return load_transactions(path)


@pytest.mark.parametrize(("cell", "number"), [
    ("1,234.50", 1234.5),
    ("1,234", 1234.0),  # never 1.234
    ("12,345,678.9", 12345678.9),
    ("¥12.00", 12.0),
    ("￥12", 12.0),
    ("¥ 12", 12.0),
    ("$1,234", 1234.0),
    ("-€5.00", -5.0),
    ("€-5.00", -5.0),
    ("£3", 3.0),
    ("$.50", 0.5),
    ("+1,000", 1000.0),
    ("-1,234.5", -1234.5),
])
def test_spreadsheet_amounts_are_read_and_counted(tmp_path, cell, number):
    tx, report = load_amounts(tmp_path, ["10", cell])
    assert tx["amount"].tolist() == [10.0, number]
    assert report.changes[FORMATTED_NOTE] == 1


def test_plain_numbers_are_not_counted_as_formatted(tmp_path):
    tx, report = load_amounts(tmp_path, ["1.234", "-3", "0.5", "1e3"])
    assert tx["amount"].tolist() == [1.234, -3.0, 0.5, 1000.0]
    assert FORMATTED_NOTE not in report.changes


def test_quantity_with_thousands_separators(tmp_path):
    tx, report = load_amounts(tmp_path, ["2", "1,200"], column="quantity")
    assert tx["quantity"].tolist() == [2.0, 1200.0]
    assert report.changes["quantity values written with a currency sign or thousands separators read as numbers"] == 1


@pytest.mark.parametrize(("cells", "problem", "shown"), [
    (["1.234,50"], "written the European way", "1.234,50"),
    (["1.234.567"], "written the European way", "1.234.567"),
    (["12,5"], "decimal comma (12,5) or a misplaced separator (1,23)", "12,5"),
    (["1,23"], "could mean either of two numbers", "1,23"),
    (["1,2345"], "not a thousands separator between groups of three", "1,2345"),
    (["1,23,456.00"], "not a thousands separator between groups of three", "1,23,456.00"),
    (["€12,50"], "not a thousands separator", "€12,50"),
    (["$5", "$6", "€7"], "another currency sign than the column's usual '$' (signs found: $ €)", "€7"),
    (["¥5", "$6", "￥7"], "another currency sign than the column's usual '¥' (signs found: $ ¥)", "$6"),
    (["-$-5"], "not finite numbers", "-$-5"),
    (["12 €"], "not finite numbers", "12 €"),
    (["(5)"], "not finite numbers", "(5)"),
])
def test_ambiguous_or_mixed_amounts_are_refused_by_name(tmp_path, cells, problem, shown):
    with pytest.raises(DataError) as caught:
        load_amounts(tmp_path, ["1,234.50", *cells])  # a readable cell beside them changes nothing
    message = str(caught.value)
    assert "tx.csv, column 'amount'" in message and problem in message
    assert shown in caught.value.sample["amount"].tolist()
    assert "1,234.50" not in caught.value.sample["amount"].tolist()  # only the bad rows are shown
    if "currency" not in problem and "finite" not in problem:
        assert "1,234.50" in message  # says how to write them


def test_one_decimal_comma_refuses_the_whole_column_rather_than_reading_the_rest(tmp_path):
    """A column with 12,50 is written the European way: its 1,234 may be 1.234, so none of it is read."""
    with pytest.raises(DataError, match="decimal comma"):
        load_amounts(tmp_path, ["1,234", "12,50"])


def test_only_cells_that_are_not_plain_numbers_are_parsed_as_formatted():
    found = read_formatted(pd.Series(["1,234.50", "abc", "1.234,5", "1,23", "$", ""]))
    assert found.values[0] == 1234.5
    assert pd.isna(found.values[1:]).all()
    assert found.european.tolist() == [False, False, True, False, False, False]
    assert found.misplaced_comma.tolist() == [False, False, False, True, False, False]
    assert found.currency.tolist() == [""] * 6
