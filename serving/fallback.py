"""The rule-based fallback: predictions from RFM scores and lifecycle when the models are missing or cannot score.

It answers with the same columns as the models, so the tier policy is applied after either in the same way
(ranked by the RFM score sum against the policy's ``min_rfm_score``). Its value forecast is the customer's
past daily spend rate carried over the horizon, discounted by a churn probability that depends on the
lifecycle stage; its segment is the classic RFM rule segment.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tiercast.features.lifecycle import STAGES
from tiercast.serving.i18n import ENGLISH, Messages
from tiercast.serving.reasons import number_text, phrase
from tiercast.training.rfm_segments import rfm_segments


class FallbackRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    churn_probability_by_stage: dict[str, float] = Field(
        default_factory=lambda: {"new": 0.5, "active": 0.25, "dormant": 0.6, "lost": 0.9})
    min_rate_days: int = Field(default=30, ge=1, description="shortest history over which a spend rate is taken")
    min_history_days: int = Field(default=7, ge=0,
                                  description="customers first seen more recently get the rules, not the models")
    allow_in_batch: bool = Field(
        default=False, description="when the champion models cannot be loaded, tiercast score writes the rules' "
        "tiers for everyone (with a warning) instead of stopping with exit status 3 and writing nothing")

    @model_validator(mode="after")
    def _check(self) -> "FallbackRules":
        missing = sorted(set(STAGES) - set(self.churn_probability_by_stage))
        unknown = sorted(set(self.churn_probability_by_stage) - set(STAGES))
        if missing or unknown:
            raise ValueError(f"churn_probability_by_stage needs exactly the stages {list(STAGES)} "
                             f"(missing {missing}, unknown {unknown})")
        bad = {k: v for k, v in self.churn_probability_by_stage.items() if not 0 <= v <= 1}
        if bad:
            raise ValueError(f"churn_probability_by_stage values must be within [0, 1], got {bad}")
        return self


def rule_predictions(features: pd.DataFrame, horizon_days: int, rules: FallbackRules, m: Messages = ENGLISH
                     ) -> pd.DataFrame:
    """predicted_value, churn_probability, segment (the RFM segment's code), rfm_score and reasons (a list per
    customer, in ``m``'s language) from the builder's columns alone."""
    stage = features["lifecycle_stage"].to_numpy(dtype=object)
    churn = np.full(len(stage), np.nan)
    for name, probability in rules.churn_probability_by_stage.items():  # one pass per stage
        churn[stage == name] = probability
    days = np.maximum(features["tenure_days"].to_numpy(dtype=float), rules.min_rate_days)
    rate = np.clip(features["monetary_total"].to_numpy(dtype=float), 0, None) / days
    r, f, money = (features[c].to_numpy(dtype=np.int64) for c in ("r_score", "f_score", "m_score"))
    rfm = r + f + money
    score_template, stage_template = m["reason.rfm_score"], m["reason.stage"]
    score_text = [score_template.format(score=s, r=rs, f=fs, m=ms)
                  for s, rs, fs, ms in zip(*(number_text(v, m).tolist() for v in (rfm, r, f, money)))]
    stage_text = [stage_template.format(recency=text, stage=label)
                  for text, label in zip(phrase("recency_days", features, m).tolist(), m.labels("stage", stage).tolist())]
    return pd.DataFrame({
        "predicted_value": rate * horizon_days * (1.0 - churn),
        "churn_probability": churn,
        "segment": rfm_segments(features["r_score"], features["f_score"]).to_numpy(),
        "rfm_score": rfm,
        "reasons": pd.Series([[a, b] for a, b in zip(score_text, stage_text)], index=features.index, dtype=object),
    }, index=features.index)
