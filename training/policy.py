"""The tier policy: one definition, frozen with the models at training and used alike by batch scoring, the
service and the rule fallback.

A customer is ranked by a score (predicted value for the models; the RFM score sum for the rule
fallback), placed in the value tiers by thresholds on that score (``score >= threshold`` enters a tier, so
ties at a threshold go up), and then two overlays apply in order: customers in a protected value tier with
a high churn probability get the at-risk tier, whose retention action comes first, and new customers get
the onboarding tier (thin history is not judged). Membership levels are a separate column, by trailing
spend against fixed thresholds, and so are the churn risk bands, by churn probability.

Value tiers are set either by shares of customers (``top_share``: "the top 10%") or by absolute predicted
values (``min_value``). Shares are turned into value thresholds once, on the training population
(:meth:`TierPolicy.fit_thresholds`), and frozen with the model, so one customer scored alone by the service
gets the same tier as in a batch; a change of shares takes effect at the next training. Absolute
thresholds are read from the policy at scoring time.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

_BANDS = np.array(["low", "medium", "high"], dtype=object)


class ChurnRiskBands(BaseModel):
    """Lowest churn probability of the medium and high bands (below medium: low)."""

    model_config = ConfigDict(extra="forbid")

    medium: float = Field(default=0.4, ge=0, le=1)
    high: float = Field(default=0.7, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> "ChurnRiskBands":
        if self.medium > self.high:
            raise ValueError(f"churn risk bands: medium ({self.medium}) must not exceed high ({self.high})")
        return self

    def assign(self, churn_probability: np.ndarray) -> np.ndarray:
        """The band of each probability (object array of str; NaN is low), by the number of thresholds it
        reaches."""
        p = np.asarray(churn_probability, dtype=float)
        return _BANDS[(p >= self.medium).astype(np.intp) + (p >= self.high).astype(np.intp)]


class ValueTier(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    action: str
    top_share: float | None = Field(default=None, gt=0, le=1,
                                    description="share of customers in this tier and those above")
    min_value: float | None = Field(default=None, description="lowest predicted value in this tier (absolute)")
    min_rfm_score: int = Field(ge=3, le=15, description="rule fallback: lowest RFM score sum (3-15) in the tier")


class OverlayTier(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    action: str


class AtRiskOverlay(OverlayTier):
    churn_probability_min: float = Field(default=0.5, ge=0, le=1)
    applies_to: list[str] = Field(description="value tiers whose customers are worth a retention action")


class MembershipLevel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    min_spend: float = Field(ge=0, description="lowest trailing spend of the level")


class Membership(BaseModel):
    """Membership levels by net spend over the trailing ``window_days``, lowest level first."""

    model_config = ConfigDict(extra="forbid")

    window_days: int = Field(default=365, ge=1)
    levels: list[MembershipLevel] = Field(default_factory=lambda: [
        MembershipLevel(name="standard", min_spend=0), MembershipLevel(name="silver", min_spend=500),
        MembershipLevel(name="gold", min_spend=2000), MembershipLevel(name="diamond", min_spend=10000)])

    @model_validator(mode="after")
    def _check(self) -> "Membership":
        spends = [level.min_spend for level in self.levels]
        names = [level.name for level in self.levels]
        if not spends or spends[0] != 0:
            raise ValueError("membership.levels: the first (lowest) level must have min_spend 0")
        if any(b <= a for a, b in zip(spends, spends[1:])):
            raise ValueError(f"membership.levels.min_spend must rise level by level, got {spends}")
        if len(set(names)) != len(names):
            raise ValueError(f"membership level names must be distinct, got {names}")
        return self

    @property
    def level_order(self) -> list[str]:
        return [level.name for level in self.levels]

    def assign(self, spend: np.ndarray | pd.Series) -> np.ndarray:
        """Level per customer; reaching a level's min_spend exactly enters it; no spend is the first level."""
        values = np.nan_to_num(np.asarray(spend, dtype=float), nan=0.0)
        bounds = np.asarray([level.min_spend for level in self.levels[1:]], dtype=float)
        reached = np.searchsorted(bounds, values, side="right")
        return np.asarray(self.level_order, dtype=object)[reached]


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
    membership: Membership = Field(default_factory=Membership)
    churn_risk_bands: ChurnRiskBands = Field(default_factory=ChurnRiskBands)

    @model_validator(mode="after")
    def _check(self) -> "TierPolicy":
        if not self.value_tiers:
            raise ValueError("value_tiers: at least one tier is needed")
        upper, last = self.value_tiers[:-1], self.value_tiers[-1]
        if all(t.min_value is None for t in self.value_tiers):
            shares = [t.top_share for t in self.value_tiers]
            if None in shares:
                raise ValueError("value_tiers: give every tier a top_share (the last one 1.0), "
                                 "or every tier but the last a min_value")
            if any(b <= a for a, b in zip(shares, shares[1:])) or shares[-1] != 1.0:
                raise ValueError(f"value_tiers.top_share must rise tier by tier to 1.0, got {shares}")
        else:
            values = [t.min_value for t in upper]
            if None in values or last.min_value is not None or any(t.top_share is not None for t in self.value_tiers):
                raise ValueError("value_tiers: with absolute thresholds every tier but the last needs a min_value "
                                 "(the last takes everyone below) and no tier may set top_share")
            if any(b >= a for a, b in zip(values, values[1:])):
                raise ValueError(f"value_tiers.min_value must fall tier by tier, got {values}")
        scores = [t.min_rfm_score for t in self.value_tiers]
        if any(b >= a for a, b in zip(scores, scores[1:])):
            raise ValueError(f"value_tiers.min_rfm_score must fall tier by tier, got {scores}")
        names = self.tier_names
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be distinct, got {names}")
        unknown = set(self.at_risk.applies_to) - set(self.tier_order)
        if unknown:
            raise ValueError(f"at_risk.applies_to names unknown tiers: {sorted(unknown)}")
        return self

    @property
    def tier_order(self) -> list[str]:
        """Value tiers from most to least valuable (the order mean actual value should follow)."""
        return [t.name for t in self.value_tiers]

    @property
    def tier_names(self) -> list[str]:
        """Every tier a customer can get: the value tiers in order, then the at-risk and onboarding overlays."""
        return self.tier_order + [self.at_risk.name, self.new_customer.name]

    @property
    def actions(self) -> dict[str, str]:
        actions = {t.name: t.action for t in self.value_tiers}
        actions[self.at_risk.name] = self.at_risk.action
        actions[self.new_customer.name] = self.new_customer.action
        return actions

    @property
    def threshold_kind(self) -> Literal["share", "absolute"]:
        return "absolute" if self.value_tiers[0].min_value is not None else "share"

    def fit_thresholds(self, predicted_values: np.ndarray) -> list[float]:
        """Lowest predicted value of each tier but the last: from the shares of customers on these
        predictions (the training population), or the policy's absolute ``min_value``\\ s."""
        if self.threshold_kind == "absolute":
            return [float(t.min_value) for t in self.value_tiers[:-1]]  # type: ignore[arg-type]
        values = np.asarray(predicted_values, dtype=float)
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise ValueError("cannot fit tier thresholds: no finite predicted value")
        return [float(np.quantile(values, 1.0 - t.top_share)) for t in self.value_tiers[:-1]]  # type: ignore[operator]

    def model_thresholds(self, frozen: list[float]) -> list[float]:
        """The value thresholds to use with models that froze ``frozen`` at training.

        Share-based tiers use the frozen thresholds (the training population's quantiles); absolute ones
        use the policy's current values. Raises ValueError when the frozen list does not fit this policy.
        """
        if self.threshold_kind == "absolute":
            return self.fit_thresholds(np.empty(0))
        if len(frozen) != len(self.value_tiers) - 1:
            raise ValueError(f"the models froze {len(frozen)} tier thresholds but the policy has "
                             f"{len(self.value_tiers)} value tiers: retrain to use this policy")
        return [float(x) for x in frozen]

    def rfm_thresholds(self) -> list[float]:
        return [float(t.min_rfm_score) for t in self.value_tiers[:-1]]

    def assign(self, score: pd.Series | np.ndarray, thresholds: list[float] | np.ndarray,
               churn_probability: pd.Series | np.ndarray, lifecycle_stage: pd.Series | np.ndarray
               ) -> dict[str, np.ndarray]:
        """value_tier, tier and action per customer, as arrays in the order of ``score``.

        ``score >= threshold`` enters a tier (ties go up) and a missing score is in the last tier.
        ``thresholds`` holds one threshold per value tier but the last, shared by every customer, or a
        row of them per customer (models and rules side by side in one call)."""
        values = np.asarray(score, dtype=float)
        limits = np.asarray(thresholds, dtype=float)
        if limits.shape[-1:] != (len(self.value_tiers) - 1,) or limits.ndim > 2:
            raise ValueError(f"expected {len(self.value_tiers) - 1} thresholds per customer, got shape {limits.shape}")
        # Count the thresholds a score reaches; thresholds fall tier by tier, so that count picks the tier.
        reached = (values[:, None] >= np.atleast_2d(limits)).sum(axis=1)
        # Tiers as positions in tier_names (value tiers, at risk, onboarding); names and actions come last.
        n_value = len(self.value_tiers)
        value_tier = n_value - 1 - reached
        at_risk = np.array([t.name in self.at_risk.applies_to for t in self.value_tiers])  # per value tier
        tier = np.where(at_risk[value_tier] & (np.asarray(churn_probability, dtype=float)
                                               >= self.at_risk.churn_probability_min), n_value, value_tier)
        tier = np.where(np.asarray(lifecycle_stage, dtype=object) == "new", n_value + 1, tier)
        names = np.asarray(self.tier_names, dtype=object)
        actions = self.actions
        return {"value_tier": names[value_tier], "tier": names[tier],
                "action": np.asarray([actions[name] for name in self.tier_names], dtype=object)[tier]}
