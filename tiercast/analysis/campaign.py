"""Campaign read-out: what a retention plan did, measured against its random control group.

Treated and control customers were picked the same way and split at random, so the difference in what
they did after the plan's start date is the campaign's effect. Uplifts come with a normal-approximation
confidence interval (Welch's standard error for value, the two-proportion one for retention).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from tiercast.features.loading import read_raw
from tiercast.features.problems import phrase
from tiercast.features.schema import DataError
from tiercast.serving.i18n import ENGLISH, Messages


@dataclass(frozen=True)
class Uplift:
    treated_mean: float
    control_mean: float
    uplift: float
    ci_low: float
    ci_high: float

    @classmethod
    def between(cls, treated: np.ndarray, control: np.ndarray, z: float, binary: bool) -> "Uplift":
        mean_t, mean_c = float(np.mean(treated)), float(np.mean(control))
        if binary:
            se = np.sqrt(mean_t * (1 - mean_t) / len(treated) + mean_c * (1 - mean_c) / len(control))
        else:
            se = np.sqrt(np.var(treated, ddof=1) / len(treated) + np.var(control, ddof=1) / len(control))
        diff = mean_t - mean_c
        return cls(mean_t, mean_c, diff, float(diff - z * se), float(diff + z * se))


@dataclass(frozen=True)
class CampaignResult:
    start: str
    horizon_days: int
    treated: int
    control: int
    value: Uplift
    retention: Uplift
    confidence: float

    @property
    def incremental_value(self) -> float:
        """The value uplift per treated customer carried over every treated customer."""
        return self.value.uplift * self.treated

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "incremental_value": self.incremental_value}

    def lines(self, m: Messages = ENGLISH) -> list[str]:
        pct = int(round(self.confidence * 100))
        v, r = self.value, self.retention
        return [
            m.text("campaign.head", start=self.start, days=self.horizon_days, treated=f"{self.treated:,}",
                   control=f"{self.control:,}"),
            m.text("campaign.value", treated=f"{v.treated_mean:,.2f}", control=f"{v.control_mean:,.2f}",
                   uplift=f"{v.uplift:+,.2f}", pct=pct, low=f"{v.ci_low:+,.2f}", high=f"{v.ci_high:+,.2f}"),
            m.text("campaign.retained", treated=f"{r.treated_mean:.1%}", control=f"{r.control_mean:.1%}",
                   uplift=f"{r.uplift * 100:+.1f}", pct=pct, low=f"{r.ci_low * 100:+.1f}",
                   high=f"{r.ci_high * 100:+.1f}"),
            m.text("campaign.incremental", value=f"{self.incremental_value:+,.0f}"),
        ]


def outcomes(customer_ids: pd.Series, transactions: pd.DataFrame, start: pd.Timestamp,
             horizon_days: int) -> pd.DataFrame:
    """Net value and whether they bought again in [start, start + horizon), for each listed customer."""
    end = start + pd.Timedelta(days=horizon_days)
    window = transactions[(transactions["timestamp"] >= start) & (transactions["timestamp"] < end)]
    window = window[window["customer_id"].isin(set(customer_ids))]
    value = window.groupby("customer_id")["amount"].sum()
    bought = window[window["amount"] > 0].groupby("customer_id").size() > 0
    frame = pd.DataFrame(index=pd.Index(customer_ids, name="customer_id"))
    frame["value"] = value.reindex(frame.index).fillna(0.0)
    frame["retained"] = bought.reindex(frame.index, fill_value=False).astype(bool)
    return frame


def evaluate_plan(plan: pd.DataFrame, transactions: pd.DataFrame, start: pd.Timestamp, horizon_days: int,
                  confidence: float = 0.95) -> CampaignResult:
    """Uplift in value and retention of the plan's treated customers over its control customers."""
    groups = plan.set_index("customer_id")["group"]
    counts = groups.value_counts()
    if counts.get("treated", 0) < 2 or counts.get("control", 0) < 2:
        raise ValueError(f"a plan needs at least 2 treated and 2 control customers, found {counts.to_dict()}")
    seen = outcomes(groups.index.to_series(), transactions, start, horizon_days)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    treated, control = seen[groups == "treated"], seen[groups == "control"]
    return CampaignResult(
        start=str(start.date()), horizon_days=horizon_days, treated=len(treated), control=len(control),
        value=Uplift.between(treated["value"].to_numpy(), control["value"].to_numpy(), z, binary=False),
        retention=Uplift.between(treated["retained"].to_numpy(float), control["retained"].to_numpy(float), z,
                                 binary=True),
        confidence=confidence)


def read_plan(path: Path, start: pd.Timestamp | None, sample_rows: int = 5) -> tuple[pd.DataFrame, pd.Timestamp]:
    """A plan file's customers and groups, and the campaign start (``start``, else the plan's single as_of).

    Raises DataError naming the file, the column and up to ``sample_rows`` bad rows."""
    plan = read_raw(path)

    def sample(bad: pd.Series, columns: list[str]) -> pd.DataFrame:
        rows = plan.loc[bad, columns].head(sample_rows)
        return rows.rename(index=lambda i: f"row {i + 1}")

    for column in ("customer_id", "group"):
        if column not in plan.columns:
            raise DataError.of(path, phrase("column_missing", found=list(plan.columns)), column)
    plan["customer_id"] = plan["customer_id"].astype(str).str.strip()
    plan["group"] = plan["group"].astype(str).str.strip()
    bad = ~plan["group"].isin(["treated", "control"])
    if bad.any():
        raise DataError(path, f"{int(bad.sum()):,} rows have a group other than 'treated' or 'control'", "group",
                        sample(bad, ["customer_id", "group"]))
    bad = plan["customer_id"].eq("") | plan["customer_id"].duplicated(keep=False)
    if bad.any():
        raise DataError(path, f"{int(bad.sum()):,} rows have an empty or repeated customer_id", "customer_id",
                        sample(bad, ["customer_id", "group"]))
    if start is not None:
        return plan, start
    if "as_of" not in plan.columns:
        raise DataError(path, "no campaign start: pass --start or give the plan an as_of column", "as_of")
    as_of = pd.to_datetime(plan["as_of"].astype(str).str.strip(), format="ISO8601", utc=True, errors="coerce")
    if as_of.isna().any():
        raise DataError(path, "values are not ISO 8601 dates", "as_of", sample(as_of.isna(), ["customer_id", "as_of"]))
    if as_of.nunique() > 1:
        raise DataError(path, f"{as_of.nunique()} different dates; pass --start to choose the campaign start",
                        "as_of", sample(as_of.ne(as_of.iloc[0]), ["customer_id", "as_of"]))
    return plan, as_of.iloc[0].tz_localize(None)
