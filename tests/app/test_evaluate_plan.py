"""Campaign read-out on a simulated campaign with a known effect, and ``tiercast evaluate-plan`` end to end.

The plan is every customer who bought in the year before the start, split at random (seeded) into
treated and control. The effect (dropout hazard halved, purchase rate doubled, spend up 20%) is sized
so the expected z of the retention uplift is about 4 and of the value uplift about 12 on this world:
the 95% intervals should exclude zero and contain the analytic truth.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tiercast.analysis.campaign import evaluate_plan
from tiercast.cli import main
from tiercast.simulation.campaign import Campaign, CampaignEffect, run_campaign
from tiercast.simulation.world import World, WorldConfig, simulate_world

START = pd.Timestamp("2024-10-01")
HORIZON = 180
EFFECT = CampaignEffect(dropout_multiplier=0.5, purchase_rate_multiplier=2.0, spend_multiplier=1.2)


@pytest.fixture(scope="module")
def world() -> World:
    return simulate_world(WorldConfig(n_customers=8_000, seed=3))


def simulated_campaign(world: World, seed: int) -> tuple[pd.DataFrame, Campaign]:
    """A plan of last year's buyers split at random, and the campaign run on its treated half."""
    tx = world.transactions
    last = tx[tx["timestamp"] < START].groupby("customer_id")["timestamp"].max()
    ids = last.index[last >= START - pd.Timedelta(days=365)].to_numpy()
    group = np.where(np.random.default_rng(seed).random(ids.size) < 0.5, "treated", "control")
    plan = pd.DataFrame({"customer_id": ids, "group": group})
    return plan, run_campaign(world, ids[group == "treated"], START, EFFECT, seed=seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_simulated_campaign_is_recovered_within_the_interval(world, seed) -> None:
    plan, campaign = simulated_campaign(world, seed)
    truth = campaign.true_uplift(HORIZON)
    result = evaluate_plan(plan, campaign.world.transactions, START, HORIZON)
    assert result.treated == truth.customers > 1_500 and result.control > 1_500
    for measured, true in ((result.value, truth.value), (result.retention, truth.retention)):
        assert true > 0
        assert 0 < measured.ci_low <= true <= measured.ci_high


def test_without_the_campaign_the_interval_covers_zero(world) -> None:
    plan, campaign = simulated_campaign(world, 0)
    result = evaluate_plan(plan, campaign.baseline.transactions, START, HORIZON)
    assert result.value.ci_low <= 0 <= result.value.ci_high
    assert result.retention.ci_low <= 0 <= result.retention.ci_high


@pytest.fixture(scope="module")
def files(world, tmp_path_factory) -> tuple[Path, Path, Campaign]:
    """The campaign's transactions (Parquet) and its plan (CSV with an as_of column, as a plan carries)."""
    plan, campaign = simulated_campaign(world, 0)
    folder = tmp_path_factory.mktemp("campaign")
    transactions = folder / "transactions.parquet"
    campaign.world.transactions.to_parquet(transactions, index=False)
    plan_path = folder / "plan.csv"
    plan.assign(as_of=str(START.date()), expected_saved_value=1.0).to_csv(plan_path, index=False)
    return plan_path, transactions, campaign


def test_evaluate_plan_cli_reports_the_uplift_with_its_interval(files, tmp_path, capsys) -> None:
    plan_path, transactions, campaign = files
    out = tmp_path / "result" / "campaign.json"
    code = main(["evaluate-plan", "--plan", str(plan_path), "--transactions", str(transactions),
                 "--horizon-days", str(HORIZON), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    truth = campaign.true_uplift(HORIZON)
    assert result["start"] == "2024-10-01" and result["horizon_days"] == HORIZON  # start from the as_of column
    assert result["value"]["ci_low"] <= truth.value <= result["value"]["ci_high"]
    assert result["retention"]["ci_low"] <= truth.retention <= result["retention"]["ci_high"]
    assert f"{result['treated']:,} treated, {result['control']:,} control" in printed
    assert f"uplift {result['value']['uplift']:+,.2f}" in printed and "95% CI" in printed
    assert str(out) in printed


def test_evaluate_plan_cli_takes_start_and_horizon_from_flag_and_config(files, tmp_path, capsys) -> None:
    plan_path, transactions, campaign = files
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"training": {"horizon_days": 90}}))
    out = tmp_path / "campaign.json"
    code = main(["--config", str(config), "evaluate-plan", "--plan", str(plan_path), "--transactions",
                 str(transactions), "--start", "2024-11-01", "--confidence", "0.8", "--out", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    expected = evaluate_plan(pd.read_csv(plan_path, dtype=str), campaign.world.transactions,
                             pd.Timestamp("2024-11-01"), 90, confidence=0.8)
    assert (result["start"], result["horizon_days"], result["confidence"]) == ("2024-11-01", 90, 0.8)
    assert result["value"] == pytest.approx(expected.to_dict()["value"])
    assert result["retention"] == pytest.approx(expected.to_dict()["retention"])
    assert "80% CI" in capsys.readouterr().out


def test_evaluate_plan_warns_when_the_window_outruns_the_data(tmp_path, caplog, capsys) -> None:
    transactions = tmp_path / "tx.csv"
    transactions.write_text("customer_id,timestamp,amount\nA,2025-01-10,5\nB,2025-01-12,7\nC,2025-01-02,1\n")
    plan = tmp_path / "plan.csv"
    plan.write_text("customer_id,group\nA,treated\nB,treated\nC,control\nD,control\n")
    with caplog.at_level(logging.WARNING, logger="tiercast"):
        code = main(["evaluate-plan", "--plan", str(plan), "--transactions", str(transactions),
                     "--start", "2025-01-01", "--horizon-days", "30"])
    assert code == 0
    assert "interim" in caplog.text
    assert "2 treated, 2 control" in capsys.readouterr().out


BAD_PLANS = {
    "missing group": ("customer_id,segment\nA,x\nB,y\n", "'group'", "columns found"),
    "unknown group": ("customer_id,group\nA,treated\nB,holdout\nC,control\nD,Treatment\n", "'group'", "holdout"),
    "repeated customer": ("customer_id,group\nA,treated\nA,control\nB,control\n", "'customer_id'", "repeated"),
    "no start": ("customer_id,group\nA,treated\nB,control\n", "'as_of'", "--start"),
    "bad as_of": ("customer_id,group,as_of\nA,treated,2025-01-01\nB,control,someday\n", "'as_of'", "someday"),
    "two as_of dates": ("customer_id,group,as_of\nA,treated,2025-01-01\nB,control,2025-02-01\n", "'as_of'",
                        "2025-02-01"),
    "no control group": ("customer_id,group,as_of\nA,treated,2025-01-01\nB,treated,2025-01-01\n", "'group'",
                         "at least 2"),
}


@pytest.mark.parametrize("case", list(BAD_PLANS))
def test_bad_plan_exits_2_naming_file_column_and_rows(case, tmp_path, capsys) -> None:
    text, column, shown = BAD_PLANS[case]
    plan = tmp_path / "my_plan.csv"
    plan.write_text(text)
    transactions = tmp_path / "tx.csv"
    transactions.write_text("customer_id,timestamp,amount\nA,2025-01-10,5\nB,2025-01-12,7\n")
    out = tmp_path / "result.json"
    code = main(["evaluate-plan", "--plan", str(plan), "--transactions", str(transactions), "--horizon-days", "30",
                 "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "my_plan.csv" in err and f"column {column}" in err and shown in err
    assert not out.exists()
