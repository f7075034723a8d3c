"""Feature configuration: every window and threshold the feature builder uses.

`FeatureSpec` is the `features` section of the YAML config. It is a plain pydantic model so it can be
dumped to JSON and logged beside each model: scoring rebuilds features from the logged spec, not from
the current defaults.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def _strictly_increasing(values: list[float], name: str) -> list[float]:
    if any(b <= a for a, b in zip(values[:-1], values[1:], strict=True)):
        raise ValueError(f"{name} must be strictly increasing, got {values}")
    return values


class LifecycleThresholds(BaseModel):
    """Day thresholds of the lifecycle stage (see `tiercast.features.lifecycle.lifecycle_stage`).

    new: first purchase less than `new_days` days before as_of.
    lost: last purchase at least `lost_days` days before as_of.
    dormant: days since last purchase > max(`dormant_gap_multiple` x usual gap, `dormant_days`).
    active: everyone else.
    """

    model_config = ConfigDict(extra="forbid")

    new_days: int = Field(30, gt=0)
    dormant_gap_multiple: float = Field(3.0, gt=0)
    dormant_days: int = Field(90, gt=0)
    lost_days: int = Field(365, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LifecycleThresholds:
        if self.dormant_days >= self.lost_days:
            raise ValueError("lifecycle.dormant_days must be smaller than lifecycle.lost_days")
        return self


class RfmEdges(BaseModel):
    """Four increasing cut points per dimension that split customers into RFM scores 1-5.

    Used as they are when the builder is not fitted (the rule fallback with no model); a fit replaces
    them with the training population's quintile edges when `FeatureSpec.rfm_learn_edges` is true.
    Recency: fewer days is better (score 5 below the first edge); frequency and monetary: more is better.
    """

    model_config = ConfigDict(extra="forbid")

    recency_days: list[float] = [30.0, 90.0, 180.0, 365.0]
    frequency: list[float] = [1.0, 2.0, 4.0, 8.0]
    monetary: list[float] = [50.0, 150.0, 400.0, 1000.0]

    @field_validator("recency_days", "frequency", "monetary")
    @classmethod
    def _four_increasing(cls, v: list[float], info) -> list[float]:  # noqa: ANN001 - pydantic info
        if len(v) != 4:
            raise ValueError(f"{info.field_name} needs exactly 4 edges for scores 1-5, got {len(v)}")
        return _strictly_increasing(v, info.field_name)


class InteractionKinds(BaseModel):
    """Values of `interactions.kind` that feed the satisfaction and service-contact features."""

    model_config = ConfigDict(extra="forbid")

    survey: str = "survey"
    support_ticket: str = "support_ticket"
    complaint: str = "complaint"


class FeatureSpec(BaseModel):
    """All settings of the point-in-time feature builder (YAML key `features`)."""

    model_config = ConfigDict(extra="forbid")

    windows_days: list[int] = [30, 90, 180, 365]
    interaction_windows_days: list[int] = [30, 90]
    lifecycle: LifecycleThresholds = LifecycleThresholds()
    rfm_edges: RfmEdges = RfmEdges()
    rfm_learn_edges: bool = True
    # Per-line quantities above this quantile of the purchase lines' quantities at fit count as that
    # quantile in the item features. Below 1 - (share of absurd lines): The Complete Journey's fuel lines
    # (3% of lines, quantities in the thousands) need a cap under the 0.97 quantile.
    quantity_cap_quantile: float = Field(0.95, gt=0, le=1)
    interaction_kinds: InteractionKinds = InteractionKinds()
    max_channels: int = Field(20, gt=0)
    max_profile_levels: int = Field(50, gt=0)
    min_profile_level_count: int = Field(5, gt=0)

    @field_validator("windows_days", "interaction_windows_days")
    @classmethod
    def _windows(cls, v: list[int], info) -> list[int]:  # noqa: ANN001 - pydantic info
        if not v or any(w <= 0 for w in v):
            raise ValueError(f"{info.field_name} must be a non-empty list of positive day counts")
        return _strictly_increasing(v, info.field_name)
