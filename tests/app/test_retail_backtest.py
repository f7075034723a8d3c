"""The backtest on an online retailer's invoice lines, end to end from the files on disk (issue #18): every
line kept, the autumn peak ahead of the cutoff learnt from 21 months of history, the forecast total close
to what happened where the classic method, on calendar time, expects a summer's worth."""

from __future__ import annotations

import pandas as pd
import pytest

from tiercast.config import load_config
from tiercast.features.loading import load_transactions
from tiercast.jobs import InputFiles, backtest, simulate
from tiercast.training.evaluation import MODEL, REFERENCE

CUTOFF = pd.Timestamp("2025-09-11")  # the retail preset's default: 21 months in, the autumn peak ahead


@pytest.fixture(scope="module")
def retailer(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("retailer")
    world = simulate(1500, folder / "world", seed=1, preset="retail", line_items=True, product_id=False)
    config = load_config()
    config.training.tuning.trials = 0
    result = backtest(config, InputFiles(world.paths["transactions"]), CUTOFF, 90, folder / "scores.csv")
    return world, result


def test_every_invoice_line_is_kept_and_the_identical_ones_counted(retailer) -> None:
    world, _ = retailer
    tx, report = load_transactions(world.paths["transactions"])
    identical = int(tx.duplicated().sum())
    assert report.rows_read == report.rows_kept == len(tx) and identical > 0.2 * len(tx)
    assert sum(report.dropped.values()) == 0 and identical in report.counted.values()


def test_the_forecast_total_holds_through_the_autumn_peak(retailer) -> None:
    _, result = retailer
    table = result.comparison
    assert abs(table.loc[MODEL, "value_total_ratio"] - 1) < 0.15
    assert table.loc[REFERENCE, "value_total_ratio"] < 0.8  # calendar time: a summer's worth in the autumn
    assert table.loc[MODEL, "value_decile_error"] < table.loc[REFERENCE, "value_decile_error"]
    assert table.loc[MODEL, "value_gini"] >= table.loc[REFERENCE, "value_gini"] - 0.01
    scored = pd.read_csv(result.out, dtype={"customer_id": str})
    assert scored["customer_id"].is_unique and scored["actual_value"].notna().all()
