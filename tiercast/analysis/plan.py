"""Budgeted retention: whom to contact when each contact costs money and the budget is fixed.

Each scored customer's expected saved value is ``churn_probability x predicted_value x save_rate - cost``:
the value at stake if they leave, times the chance the offer keeps them, less what the contact costs.
Every contact costs the same, so the best plan within the budget is simply the customers with the largest
positive expected saved value, as many as the budget pays for.

A seeded random share of the selected customers is held out as group ``control``: they are not contacted
and cost nothing, and since chance alone decided who they are, comparing them later with the ``treated``
customers (``tiercast evaluate-plan``) measures what the contacts did. The expected return counts the
treated customers only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tiercast.serving.i18n import ENGLISH, Messages

PLAN_REQUIRED = ("customer_id", "churn_probability", "predicted_value")
# Columns of the scored file carried into the plan when present, so the plan can be acted on as it is;
# as_of dates the plan (a campaign read-out measures from it).
CARRIED = ("as_of", "tier", "action", "segment", "lifecycle_stage", "membership")


class PlanConfig(BaseModel):
    """Defaults of ``tiercast plan`` (YAML key ``plan``)."""

    model_config = ConfigDict(extra="forbid")

    save_rate: float = Field(default=0.2, gt=0, le=1,
                             description="share of would-be churners a retention contact keeps")
    control_share: float = Field(default=0.1, ge=0, lt=1,
                                 description="share of the selected customers held out, not contacted")
    seed: int = Field(default=0, description="seed of the random control hold-out")


@dataclass(frozen=True)
class RetentionPlan:
    """The selected customers (``contacts``, best first) and what the plan costs and returns."""

    contacts: pd.DataFrame
    budget: float
    cost_per_contact: float
    save_rate: float
    scored: int
    candidates: int

    @property
    def treated(self) -> pd.DataFrame:
        return self.contacts[self.contacts["group"] == "treated"]

    @property
    def total_cost(self) -> float:
        return float(self.contacts["contact_cost"].sum())

    @property
    def expected_saved_value(self) -> float:
        """Net of the contact costs: the plan's expected return."""
        return float(self.treated["expected_saved_value"].sum())

    @property
    def return_on_cost(self) -> float:
        """Expected net saved value per unit of money spent (NaN when nothing is spent)."""
        return self.expected_saved_value / self.total_cost if self.total_cost > 0 else float("nan")

    def summary(self, m: Messages = ENGLISH) -> str:
        lines = [
            m.text("plan.head", selected=f"{len(self.contacts):,}", candidates=f"{self.candidates:,}",
                   scored=f"{self.scored:,}", treated=f"{len(self.treated):,}",
                   control=f"{len(self.contacts) - len(self.treated):,}"),
            m.text("plan.rates", save_rate=f"{self.save_rate:.0%}", cost=f"{self.cost_per_contact:,.2f}"),
            m.text("plan.cost", cost=f"{self.total_cost:,.2f}", budget=f"{self.budget:,.2f}"),
            m.text("plan.saved", gross=f"{self.expected_saved_value + self.total_cost:,.2f}",
                   net=f"{self.expected_saved_value:,.2f}"),
        ]
        if self.total_cost > 0:
            lines.append(m.text("plan.return", ratio=f"{self.return_on_cost:,.2f}"))
        return "\n".join(lines)


def plan_retention(scores: pd.DataFrame, budget: float, cost_per_contact: float,
                   save_rate: float, control_share: float = 0.0, seed: int = 0) -> RetentionPlan:
    """The customers with the largest positive expected saved value whose contacts fit in ``budget``.

    Ties are broken by customer_id, so the same scores always give the same plan."""
    if not budget >= 0 or not math.isfinite(budget):
        raise ValueError(f"budget must be a finite amount >= 0, got {budget}")
    if not cost_per_contact >= 0 or not math.isfinite(cost_per_contact):
        raise ValueError(f"cost_per_contact must be a finite amount >= 0, got {cost_per_contact}")
    if not 0 < save_rate <= 1:
        raise ValueError(f"save_rate must be in (0, 1], got {save_rate}")
    if not 0 <= control_share < 1:
        raise ValueError(f"control_share must be in [0, 1), got {control_share}")
    missing = [c for c in PLAN_REQUIRED if c not in scores.columns]
    if missing:
        raise ValueError(f"scores lack column(s) {missing}")
    churn = scores["churn_probability"].to_numpy(dtype=float)
    value = scores["predicted_value"].to_numpy(dtype=float)
    saved = np.nan_to_num(churn * value * save_rate, nan=0.0) - cost_per_contact
    frame = pd.DataFrame({"customer_id": scores["customer_id"].astype(str).to_numpy(),
                          "expected_saved_value": saved})
    for column in CARRIED:
        if column in scores.columns:
            frame[column] = scores[column].to_numpy()
    frame["churn_probability"] = churn
    frame["predicted_value"] = value
    candidates = frame[frame["expected_saved_value"] > 0]
    affordable = len(candidates) if cost_per_contact == 0 else math.floor(round(budget / cost_per_contact, 9))
    ranked = candidates.sort_values("customer_id", kind="stable").sort_values(
        "expected_saved_value", ascending=False, kind="stable")
    contacts = ranked.head(affordable).reset_index(drop=True)
    held_out = np.zeros(len(contacts), dtype=bool)
    held_out[np.random.default_rng(seed).permutation(len(contacts))[:round(control_share * len(contacts))]] = True
    contacts.insert(2, "group", np.where(held_out, "control", "treated"))
    contacts.insert(3, "contact_cost", np.where(held_out, 0.0, float(cost_per_contact)))
    contacts.insert(0, "rank", np.arange(1, len(contacts) + 1))
    return RetentionPlan(contacts, float(budget), float(cost_per_contact), float(save_rate), len(frame),
                         len(candidates))
