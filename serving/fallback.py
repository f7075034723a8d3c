"""The rule-based fallback: tiers from RFM scores and lifecycle when the models are missing or cannot score.

It answers with the same columns as the models, so the tier policy is applied after either in the same way.
Its value forecast is the customer's past daily spend rate carried over the horizon, discounted by a
churn probability that depends on the lifecycle stage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from training.segments import rfm_segments


class FallbackRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    churn_probability_by_stage: dict[str, float] = Field(
        default_factory=lambda: {"new": 0.5, "active": 0.25, "dormant": 0.6, "lost": 0.9})
    min_rate_days: int = Field(default=30, ge=1, description="shortest history over which a spend rate is taken")


def rule_predictions(features: pd.DataFrame, horizon_days: int, rules: FallbackRules) -> pd.DataFrame:
    """predicted_value, churn_probability, segment, rfm_score and reasons from rule features alone."""
    stage = features["lifecycle_stage"]
    churn = stage.map(rules.churn_probability_by_stage).fillna(0.5).astype(float)
    days = np.maximum(features["tenure_days"].to_numpy(dtype=float), rules.min_rate_days)
    rate = np.clip(features["monetary_total"].to_numpy(dtype=float), 0, None) / days
    rfm = features["r_score"] + features["f_score"] + features["m_score"]
    out = pd.DataFrame(index=features.index)
    out["predicted_value"] = rate * horizon_days * (1.0 - churn.to_numpy())
    out["churn_probability"] = churn
    out["segment"] = rfm_segments(features["r_score"], features["f_score"])
    out["rfm_score"] = rfm.astype(int)
    reasons = ("RFM score " + rfm.astype(int).astype(str) + " of 15 (recency " + features["r_score"].astype(str)
               + ", frequency " + features["f_score"].astype(str) + ", value " + features["m_score"].astype(str)
               + ")")
    recency = ("no purchase for " + features["recency_days"].round().astype(int).astype(str) + " days, "
               + stage.astype(str) + " customer")
    out["reasons"] = [[a, b] for a, b in zip(reasons, recency)]
    return out
