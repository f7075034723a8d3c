"""Odd values through the command line, end to end on real files (issue #19): amounts beyond the contract's
bound and dates outside its range stop a command with exit 2 and nothing written; ids a tool stored as floats
come out as the ids they were; no command writes an infinite number."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tiercast.cli import main
from tiercast.outputs import InfiniteOutput, write_table


def ordinary_lines(customers: int = 30) -> list[str]:
    return [f"C{i},2020-0{month}-{i % 28 + 1:02d},{10 + i + month}" for i in range(customers) for month in (1, 3)]


@pytest.mark.parametrize("command", ["features", "score"])
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_two_amounts_of_1e308_exit_2_naming_the_rows_and_write_nothing(tmp_path, store, capsys, command, suffix):
    """Two rows of 1e308 for one customer once summed to inf in monetary_total and predicted_value."""
    lines = ordinary_lines() + ["BIG,2020-01-05,1e308", "BIG,2020-02-05,1e308"]
    source = tmp_path / "tx.csv"
    source.write_text("customer_id,timestamp,amount\n" + "\n".join(lines) + "\n")
    if suffix == ".parquet":
        pd.read_csv(source, dtype={"amount": float}).to_parquet(tmp_path / "tx.parquet")
        source.unlink()
    out_dir = tmp_path / "out"
    code = main([command, "--transactions", str(tmp_path / f"tx{suffix}"), "--as-of", "2020-06-01",
                 "--out", str(out_dir / f"{command}.csv")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"tx{suffix}, column 'amount': 2 values are outside [-1e+12, 1e+12]" in err
    assert err.count("BIG") == 2  # both rows in the sample
    assert not out_dir.exists()  # no scored or features file, no quality report, no temporary file


def test_parquet_timestamps_in_year_1500_exit_2_naming_the_rows(tmp_path, store, capsys):
    path = tmp_path / "tx.parquet"
    pq.write_table(pa.table({"customer_id": ["A", "B", "C"],
                             "timestamp": pa.array([dt.datetime(2020, 1, 1), dt.datetime(1500, 1, 1),
                                                    dt.datetime(2500, 1, 1)], pa.timestamp("us")),
                             "amount": [1.0, 2.0, 3.0]}), path)
    out = tmp_path / "features.csv"
    assert main(["features", "--transactions", str(path), "--as-of", "2021-01-01", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "column 'timestamp': 2 values are outside the supported range, 1900-01-01 to 2199-12-31" in err
    assert "Traceback" not in err and not out.exists()


def test_float_customer_ids_in_parquet_come_out_as_the_ids_they_were(tmp_path, store, capsys):
    path = tmp_path / "tx.parquet"
    pq.write_table(pa.table({"customer_id": pa.array([42.0, 42.0, 7.0], pa.float64()),
                             "timestamp": ["2020-01-01", "2020-03-01", "2020-02-01"], "amount": [10.0, 20.0, 5.0]}),
                   path)
    out = tmp_path / "features.csv"
    assert main(["features", "--transactions", str(path), "--as-of", "2021-01-01", "--out", str(out)]) == 0
    assert sorted(pd.read_csv(out, dtype={"customer_id": str})["customer_id"]) == ["42", "7"]
    quality = json.loads(Path(f"{out}.quality.json").read_text())
    changes = quality["transactions"]["changes"]
    assert changes["customer_id values stored as whole-number floats (42.0) read as ids without the decimals (42)"] == 3


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_no_command_writes_an_infinite_number(tmp_path, suffix):
    """The last guard: should a number overflow despite the bounded inputs, the file is not written."""
    scores = pd.DataFrame({"customer_id": ["A", "B", "C"], "predicted_value": [1.0, math.inf, 2.0],
                           "monetary_total": pd.array([1.0, 2.0, -np.inf], dtype="float64"),
                           "avg_days_between_orders": [np.nan, 3.0, 4.0], "tier": ["VIP", "Core", "Core"]})
    out = tmp_path / f"scores{suffix}"
    with pytest.raises(InfiniteOutput, match=r"not written: column\(s\) predicted_value, monetary_total hold "
                       r"infinite values \(2 rows; customers \['B', 'C'\]\)"):
        write_table(scores, out)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary
    # NaN is a missing value (an empty cell), not refused; a finite table is written.
    written = write_table(scores.replace([math.inf, -math.inf], 0.0), out)
    assert written == out and out.exists()
