"""Budgeted retention: the best contacts within the budget, their expected return, and `tiercast plan`."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from tiercast.analysis.plan import plan_retention
from tiercast.cli import main


def _scores(n: int = 9, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"customer_id": [f"{i:05d}" for i in range(n)],
                         "churn_probability": rng.uniform(0, 1, n).round(3),
                         "predicted_value": rng.gamma(1.0, 80.0, n).round(2),
                         "tier": ["VIP"] * n, "action": ["a"] * n, "as_of": "2025-07-01"})


@pytest.mark.parametrize(("budget", "cost"), [(0.0, 5.0), (12.0, 5.0), (25.0, 5.0), (1000.0, 5.0), (30.0, 7.5)])
def test_plan_is_the_best_affordable_set_of_contacts(budget, cost):
    scores = _scores()
    save_rate = 0.3
    plan = plan_retention(scores, budget, cost, save_rate)
    gain = dict(zip(scores["customer_id"], scores["churn_probability"] * scores["predicted_value"] * save_rate - cost))
    # Brute force over every subset whose contacts fit in the budget.
    best = max((sum(gain[c] for c in subset), subset) for k in range(len(gain) + 1)
               for subset in combinations(sorted(gain), k) if k * cost <= budget)
    assert plan.expected_saved_value == pytest.approx(best[0])
    assert set(plan.contacts["customer_id"]) == set(best[1])
    assert plan.total_cost == pytest.approx(len(best[1]) * cost) and plan.total_cost <= budget
    assert (plan.contacts["expected_saved_value"] > 0).all()
    assert plan.contacts["expected_saved_value"].is_monotonic_decreasing
    assert set(plan.contacts["group"]) <= {"treated"}


def test_free_contacts_reach_every_customer_worth_saving_and_no_one_else():
    scores = _scores(n=40)
    plan = plan_retention(scores, budget=0.0, cost_per_contact=0.0, save_rate=0.2)
    worth = scores["churn_probability"] * scores["predicted_value"] > 0
    assert set(plan.contacts["customer_id"]) == set(scores.loc[worth, "customer_id"])
    assert np.isnan(plan.return_on_cost)


def test_equal_candidates_are_chosen_in_customer_order_so_plans_repeat():
    scores = pd.DataFrame({"customer_id": ["C", "A", "D", "B"], "churn_probability": [0.5] * 4,
                           "predicted_value": [100.0] * 4})
    plan = plan_retention(scores, budget=20.0, cost_per_contact=10.0, save_rate=0.5)
    assert plan.contacts["customer_id"].tolist() == ["A", "B"]
    assert plan.contacts["rank"].tolist() == [1, 2]
    assert plan.expected_saved_value == pytest.approx(2 * (0.5 * 100 * 0.5 - 10))
    assert plan.return_on_cost == pytest.approx(plan.expected_saved_value / 20.0)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"budget": -1.0}, "budget"), ({"cost_per_contact": float("nan")}, "cost_per_contact"),
    ({"save_rate": 0.0}, "save_rate"), ({"save_rate": 1.5}, "save_rate")])
def test_bad_plan_settings_are_refused(kwargs, message):
    settings = {"budget": 10.0, "cost_per_contact": 1.0, "save_rate": 0.2} | kwargs
    with pytest.raises(ValueError, match=message):
        plan_retention(_scores(), **settings)


def test_tiercast_plan_writes_the_plan_and_prints_the_expected_return(tmp_path, capsys):
    scores = _scores(n=200, seed=11)
    path = tmp_path / "scores.csv"
    scores.to_csv(path, index=False)
    out = tmp_path / "plan.csv"
    assert main(["plan", "--scores", str(path), "--budget", "300", "--cost-per-contact", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    written = pd.read_csv(out, dtype={"customer_id": str})
    expected = plan_retention(scores, 300.0, 4.0, 0.2, 0.1, 0)  # the configured defaults
    assert {"customer_id", "expected_saved_value", "group"} <= set(written.columns)
    assert written["customer_id"].tolist() == expected.contacts["customer_id"].tolist()
    assert written["customer_id"].str.len().eq(5).all()  # '00042' stays '00042'
    assert written["group"].tolist() == expected.contacts["group"].tolist() and len(written) == 75
    assert (written["group"] == "control").sum() == round(0.1 * 75)
    assert (written["as_of"] == "2025-07-01").all()  # the plan is dated by its scoring
    assert f"{expected.expected_saved_value:,.2f} net of contact costs" in printed
    assert f"cost {4 * (75 - round(0.1 * 75)):.2f} of a budget of 300.00" in printed  # control costs nothing

    higher = tmp_path / "plan_high.parquet"
    assert main(["plan", "--scores", str(path), "--budget", "300", "--cost-per-contact", "4", "--save-rate", "0.5",
                 "--out", str(higher)]) == 0
    assert pd.read_parquet(higher)["expected_saved_value"].sum() > written["expected_saved_value"].sum()


def test_tiercast_plan_refuses_a_file_without_predictions(tmp_path, capsys):
    path = tmp_path / "scores.csv"
    pd.DataFrame({"customer_id": ["A"], "tier": ["VIP"]}).to_csv(path, index=False)
    out = tmp_path / "plan.csv"
    assert main(["plan", "--scores", str(path), "--budget", "10", "--cost-per-contact", "1", "--out", str(out)]) == 2
    assert "churn_probability" in capsys.readouterr().err and not out.exists()


def test_control_group_is_a_seeded_random_share_not_contacted():
    rng = np.random.default_rng(0)
    scores = pd.DataFrame({"customer_id": [f"C{i:04d}" for i in range(1000)],
                           "churn_probability": rng.random(1000), "predicted_value": rng.gamma(2.0, 100.0, 1000)})
    plan = plan_retention(scores, budget=5000, cost_per_contact=10, save_rate=0.5, control_share=0.2, seed=7)
    groups = plan.contacts["group"].value_counts()
    assert groups["control"] == round(0.2 * len(plan.contacts)) and groups["treated"] + groups["control"] == 500
    assert (plan.contacts.loc[plan.contacts.group == "control", "contact_cost"] == 0).all()
    assert plan.total_cost == 10 * groups["treated"]
    assert plan.expected_saved_value == pytest.approx(plan.treated["expected_saved_value"].sum())
    again = plan_retention(scores, budget=5000, cost_per_contact=10, save_rate=0.5, control_share=0.2, seed=7)
    other = plan_retention(scores, budget=5000, cost_per_contact=10, save_rate=0.5, control_share=0.2, seed=8)
    assert again.contacts.equals(plan.contacts)
    assert not other.contacts["group"].equals(plan.contacts["group"])
    # Chance decides: control customers are no better or worse than treated on average.
    means = plan.contacts.groupby("group")["expected_saved_value"].mean()
    assert abs(means["control"] - means["treated"]) < 0.25 * means.mean()
