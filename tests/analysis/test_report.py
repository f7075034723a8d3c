"""The tier report: its tables (tier sizes, 80/20 curve, migration, segments, holdout) and `tiercast report`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tiercast.training.policy import TierPolicy
from tiercast.analysis.report import (
    NOT_BEFORE,
    NOT_NOW,
    holdout_check,
    migration_matrix,
    segment_profiles,
    tier_summary,
    value_share_of_top,
    write_report,
)
from tiercast.cli import main
from tiercast.config import load_config

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _scores(n: int = 300, seed: int = 0, policy: TierPolicy | None = None) -> pd.DataFrame:
    policy = policy or TierPolicy()
    rng = np.random.default_rng(seed)
    tiers = rng.choice(policy.tier_names[:-1], size=n)  # every tier but onboarding
    return pd.DataFrame({
        "customer_id": [f"{i:05d}" for i in range(n)], "as_of": "2025-07-01",
        "predicted_value": rng.gamma(0.5, 100.0, n), "churn_probability": rng.uniform(0, 1, n),
        "segment": rng.choice(["loyal", "lapsing", "new <b>"], size=n),
        "lifecycle_stage": rng.choice(["active", "dormant", "lost"], size=n), "tier": tiers,
        "source": rng.choice(["model", "fallback"], size=n),
        "membership": rng.choice(policy.membership.level_order[:3], size=n), "trailing_spend": rng.gamma(1, 200, n)})


def test_tier_summary_lists_every_tier_in_policy_order_with_shares():
    policy = TierPolicy()
    scores = _scores()
    table = tier_summary(scores, policy)
    assert table.index.tolist() == policy.tier_names  # onboarding is empty but listed
    assert table.loc[policy.new_customer.name, "customers"] == 0
    assert table["customers"].sum() == len(scores)
    assert table["share_of_customers"].sum() == pytest.approx(1.0)
    assert table["share_of_value"].sum() == pytest.approx(1.0)
    vip = scores[scores["tier"] == "VIP"]
    assert table.loc["VIP", "predicted_value"] == pytest.approx(vip["predicted_value"].sum())
    assert table.loc["VIP", "action"] == policy.value_tiers[0].action


def test_value_share_of_the_top_fifth():
    # Ten customers: the two best hold 80 of 100.
    values = pd.Series([50.0, 30.0, 5.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0, 0.0])
    assert value_share_of_top(values, 0.2) == pytest.approx(0.8)
    assert value_share_of_top(values, 0.1) == pytest.approx(0.5)
    assert value_share_of_top(pd.Series([1.0] * 5), 0.2) == pytest.approx(0.2)  # equal customers: no concentration
    assert value_share_of_top(pd.Series([0.0, 0.0]), 0.5) == pytest.approx(0.5)


def test_migration_matrix_counts_moves_arrivals_and_departures():
    policy = TierPolicy()
    before = pd.DataFrame({"customer_id": ["a", "b", "c", "d", "e"],
                           "tier": ["VIP", "VIP", "growth", "low value", "potential"]})
    now = pd.DataFrame({"customer_id": ["a", "b", "c", "d", "f", "g"],
                        "tier": ["VIP", "at risk", "VIP", "low value", "onboarding", "growth"]})
    matrix = migration_matrix(before, now, policy)
    assert matrix.index.tolist() == ["VIP", "growth", "potential", "low value", NOT_BEFORE]
    assert matrix.columns.tolist() == ["VIP", "growth", "low value", "at risk", "onboarding", NOT_NOW]
    moves = {(r, c): int(v) for (r, c), v in matrix.stack().items() if v}
    assert moves == {("VIP", "VIP"): 1, ("VIP", "at risk"): 1, ("growth", "VIP"): 1, ("low value", "low value"): 1,
                     ("potential", NOT_NOW): 1, (NOT_BEFORE, "onboarding"): 1, (NOT_BEFORE, "growth"): 1}


def test_segment_profiles_and_holdout_check():
    scores = _scores()
    profiles = segment_profiles(scores)
    assert profiles["customers"].sum() == len(scores) and profiles["customers"].is_monotonic_decreasing
    loyal = scores[scores["segment"] == "loyal"]
    assert profiles.loc["loyal", "mean_predicted_value"] == pytest.approx(loyal["predicted_value"].mean())

    policy = TierPolicy()
    rank = {name: i for i, name in enumerate(policy.tier_order)}
    falling = scores.assign(actual_value=scores["tier"].map(lambda t: 100.0 - 10 * rank.get(t, 5)))
    table, falls = holdout_check(falling, policy)
    assert falls == {"all": True, "fallback": True, "model": True}
    assert table.loc["VIP", "mean actual value (all)"] == 100.0
    rising = falling.assign(actual_value=-falling["actual_value"])
    assert not any(holdout_check(rising, policy)[1].values())


def test_write_report_makes_a_page_with_charts_in_any_script(tmp_path):
    policy = load_config(ROOT / "configs" / "zh.yaml").policy
    scores = _scores(policy=policy)
    previous = _scores(seed=1, policy=policy).iloc[20:]
    page = write_report(scores.assign(actual_value=scores["predicted_value"]), tmp_path / "report", policy,
                        previous, source="scores.csv", previous_source="last_month.csv")
    text = page.read_text(encoding="utf-8")
    images = re.findall(r'<img src="([^"]+)"', text)
    assert set(images) == {"tiers.png", "value_curve.png", "migration.png", "segments.png", "lifecycle.png",
                           "membership.png"}
    for name in images:
        assert (page.parent / name).read_bytes()[:8] == PNG_MAGIC
    for heading in ("Tiers", "Tier migration", "Segment profiles", "Lifecycle mix", "Membership levels",
                    "Holdout check"):
        assert f"<h2>{heading}</h2>" in text
    assert "高价值" in text and "银卡" in text and "share of value" in text
    assert "new &lt;b&gt;" in text and "new <b>" not in text  # names are escaped
    assert "last_month.csv" in text and f"{len(scores):,} customers" in text


def test_tiercast_report_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    scores = _scores()
    current, earlier = tmp_path / "now.parquet", tmp_path / "before.csv"
    scores.to_parquet(current)
    _scores(seed=5).to_csv(earlier, index=False)
    out = tmp_path / "report"
    assert main(["report", "--scores", str(current), "--previous", str(earlier), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out / "index.html") in printed
    assert "Model quality: no card (no 'champion' models in sqlite:///" in printed  # an empty registry
    assert "No model-quality card: no &#x27;champion&#x27; models" in (out / "index.html").read_text()
    assert (out / "migration.png").exists()
    assert main(["report", "--scores", str(tmp_path / "nope.csv"), "--out", str(out)]) == 2
