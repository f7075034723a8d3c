"""The tier policy: one definition, used alike by batch scoring, the service and the rule fallback.

A customer is ranked by a score (predicted value for the models; the RFM score sum for the rule
fallback), placed in the value tiers by thresholds on that score, and then two overlays apply in order:
new customers get the onboarding tier (thin history is not judged), and customers in a protected value
tier with a high churn probability get the at-risk tier, whose retention action comes first.

Share-based thresholds ("top 10% of customers") are turned into absolute score thresholds once, on the
training population (:meth:`TierPolicy.fit_thresholds`), and frozen with the model, so one customer
scored alone by the service gets the same tier as in a batch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator


class ValueTier(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    action: str
    top_share: float = Field(gt=0, le=1, description="this tier and those above hold this share of customers")
    min_rfm_score: int = Field(ge=3, le=15, description="rule fallback: lowest RFM score sum (3-15) in the tier")


class OverlayTier(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    action: str


class AtRiskOverlay(OverlayTier):
    churn_probability_min: float = Field(default=0.5, ge=0, le=1)
    applies_to: list[str] = Field(description="value tiers whose customers are worth a retention action")


class TierPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value_tiers: list[ValueTier] = Field(default_factory=lambda: [
        ValueTier(name="VIP", action="customised service, exclusive offers and priority handling",
                  top_share=0.1, min_rfm_score=13),
        ValueTier(name="growth", action="standard service and periodic offers", top_share=0.3, min_rfm_score=10),
        ValueTier(name="potential", action="standard service and periodic offers", top_share=0.6, min_rfm_score=7),
        ValueTier(name="low value", action="basic service", top_share=1.0, min_rfm_score=3),
    ])
    at_risk: AtRiskOverlay = Field(default_factory=lambda: AtRiskOverlay(
        name="at risk", action="retention offer before they go", churn_probability_min=0.5,
        applies_to=["VIP", "growth"]))
    new_customer: OverlayTier = Field(default_factory=lambda: OverlayTier(
        name="onboarding", action="welcome series and a second-purchase offer"))

    @model_validator(mode="after")
    def _check(self) -> "TierPolicy":
        shares = [t.top_share for t in self.value_tiers]
        scores = [t.min_rfm_score for t in self.value_tiers]
        if not self.value_tiers:
            raise ValueError("value_tiers: at least one tier is needed")
        if shares != sorted(shares) or shares[-1] != 1.0:
            raise ValueError(f"value_tiers.top_share must rise tier by tier to 1.0, got {shares}")
        if scores != sorted(scores, reverse=True):
            raise ValueError(f"value_tiers.min_rfm_score must fall tier by tier, got {scores}")
        names = [t.name for t in self.value_tiers] + [self.at_risk.name, self.new_customer.name]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be distinct, got {names}")
        unknown = set(self.at_risk.applies_to) - {t.name for t in self.value_tiers}
        if unknown:
            raise ValueError(f"at_risk.applies_to names unknown tiers: {sorted(unknown)}")
        return self

    @property
    def tier_order(self) -> list[str]:
        """Value tiers from most to least valuable (the order mean actual value should follow)."""
        return [t.name for t in self.value_tiers]

    def fit_thresholds(self, predicted_values: np.ndarray) -> list[float]:
        """Lowest predicted value of each tier but the last, from the tiers' shares of customers."""
        values = np.asarray(predicted_values, dtype=float)
        return [float(np.quantile(values, 1.0 - t.top_share)) for t in self.value_tiers[:-1]]

    def rfm_thresholds(self) -> list[float]:
        return [float(t.min_rfm_score) for t in self.value_tiers[:-1]]

    def assign(self, score: pd.Series, thresholds: list[float], churn_probability: pd.Series,
               lifecycle_stage: pd.Series) -> pd.DataFrame:
        """Tier and action per customer; ``score >= threshold`` enters a tier (ties go up)."""
        if len(thresholds) != len(self.value_tiers) - 1:
            raise ValueError(f"expected {len(self.value_tiers) - 1} thresholds, got {len(thresholds)}")
        values = score.to_numpy(dtype=float)
        # Count the thresholds a score reaches; thresholds fall tier by tier, so that count picks the tier.
        reached = (values[:, None] >= np.asarray(thresholds, dtype=float)[None, :]).sum(axis=1)
        names = np.array([t.name for t in self.value_tiers], dtype=object)
        tier = names[len(self.value_tiers) - 1 - reached]
        value_tier = tier.copy()
        at_risk = np.isin(value_tier, self.at_risk.applies_to) & (
            churn_probability.to_numpy(dtype=float) >= self.at_risk.churn_probability_min)
        tier = np.where(at_risk, self.at_risk.name, tier)
        tier = np.where(lifecycle_stage.to_numpy() == "new", self.new_customer.name, tier)
        actions = {t.name: t.action for t in self.value_tiers}
        actions[self.at_risk.name] = self.at_risk.action
        actions[self.new_customer.name] = self.new_customer.action
        out = pd.DataFrame({"value_tier": value_tier, "tier": tier}, index=score.index)
        out["action"] = out["tier"].map(actions)
        return out
