"""Data sufficiency: is there enough history to train, and enough of a customer's own to trust a model?

Training on too little data gives confident-looking numbers that mean nothing. Before a run starts, the
whole log is checked against minimums in config and the run stops with a message that says what is
missing. (At scoring time, a customer whose own history is too short gets the rule fallback with that
reason instead of a model number: see ``tiercast.serving.fallback.FallbackRules.min_history_days``.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field


class SufficiencyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_customers: int = Field(default=200, ge=1, description="customers with a purchase before the first window")
    min_repeat_customers: int = Field(default=50, ge=0, description="of them, customers with 2+ purchase days")
    min_history_days: int = Field(default=30, ge=1,
                                  description="days of history before the earliest training window starts")
    max_days_since_last_order: int = Field(default=90, ge=1,
                                           description="the log must have an order this close to the cutoff")


class InsufficientData(Exception):
    """Training stopped before it started: the message lists what is missing."""


@dataclass(frozen=True)
class SufficiencyCheck:
    name: str
    required: float
    found: float
    passed: bool
    explanation: str


def check_training_data(transactions: pd.DataFrame, cutoff: pd.Timestamp, earliest_window: pd.Timestamp,
                        config: SufficiencyConfig) -> list[SufficiencyCheck]:
    """Each minimum in config, what the data has, and whether it passes (all rows before ``cutoff``)."""
    before = transactions[transactions["timestamp"] < cutoff]
    first_window = before[before["timestamp"] < earliest_window]
    purchases = first_window[first_window["amount"] > 0]
    days = purchases["timestamp"].dt.normalize()
    purchase_days = days.groupby(purchases["customer_id"]).nunique()
    history_days = (earliest_window - before["timestamp"].min()).days if len(before) else 0
    since_last = (cutoff - before.loc[before["amount"] > 0, "timestamp"].max()).days if len(before) else np.inf
    return [
        SufficiencyCheck("customers", config.min_customers, len(purchase_days),
                         len(purchase_days) >= config.min_customers,
                         f"customers with a purchase before the earliest training window ({earliest_window.date()})"),
        SufficiencyCheck("repeat customers", config.min_repeat_customers, int((purchase_days >= 2).sum()),
                         int((purchase_days >= 2).sum()) >= config.min_repeat_customers,
                         "of those, customers who bought on two or more days"),
        SufficiencyCheck("days of history", config.min_history_days, history_days,
                         history_days >= config.min_history_days,
                         f"days from the first transaction to the earliest training window ({earliest_window.date()})"),
        SufficiencyCheck("days since the last order", config.max_days_since_last_order, since_last,
                         since_last <= config.max_days_since_last_order,
                         f"days from the latest order to the cutoff ({cutoff.date()}); at most the minimum"),
    ]


def require_training_data(transactions: pd.DataFrame, cutoff: pd.Timestamp, earliest_window: pd.Timestamp,
                          config: SufficiencyConfig) -> list[SufficiencyCheck]:
    """Raise InsufficientData naming every failed check; return the checks when all pass."""
    checks = check_training_data(transactions, pd.Timestamp(cutoff), pd.Timestamp(earliest_window), config)
    failed = [c for c in checks if not c.passed]
    if failed:
        lines = [f"- {c.name}: found {c.found:,.0f}, need "
                 f"{'at most' if c.name.startswith('days since') else 'at least'} {c.required:,.0f} ({c.explanation})"
                 for c in failed]
        raise InsufficientData("not enough data to train:\n" + "\n".join(lines))
    return checks

