"""One scorer for batch files, backtests and the service: transactions at ``as_of`` in, a tier table out.

The models (from the registry) and the rule fallback answer with the same columns; the tier policy is
applied after either. When the models are missing or fail, every customer gets the fallback; when the
models cannot score one customer, that customer alone does; both carry a ``fallback_reason``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.builder import FeatureBuilder
from features.spec import FeatureSpec
from serving.fallback import FallbackRules, rule_predictions
from serving.policy import TierPolicy
from serving.reasons import top_reasons
from training.config import RegistryConfig
from training.registry import load_version

log = logging.getLogger(__name__)

SCORE_COLUMNS = ["customer_id", "as_of", "predicted_value", "churn_probability", "segment",
                 "lifecycle_stage", "tier", "action", "source", "fallback_reason", "reasons"]


class ModelsUnavailable(Exception):
    """No usable champion models: the caller falls back to the rules, with this as the reason."""


@dataclass
class ModelBundle:
    """The value, churn and segment models behind one alias, with the feature builder they were trained with."""

    value: object
    churn: object
    segments: object
    builder: FeatureBuilder
    tier_thresholds: list[float]
    horizon_days: int
    versions: dict[str, str]

    @classmethod
    def load(cls, registry: RegistryConfig, alias: str | None = None) -> "ModelBundle":
        alias = alias or registry.champion_alias
        try:
            value, meta, value_version = load_version(registry.value_model, alias)
            churn, _, churn_version = load_version(registry.churn_model, alias)
            segments, _, segment_version = load_version(registry.segment_model, alias)
            builder = FeatureBuilder.from_dict(meta["feature_builder"])
        except Exception as err:  # missing alias, unreachable store, unloadable artifact: all mean "no models"
            raise ModelsUnavailable(f"models '{alias}' could not be loaded: {type(err).__name__}: {err}") from err
        versions = {registry.value_model: value_version.version, registry.churn_model: churn_version.version,
                    registry.segment_model: segment_version.version}
        return cls(value, churn, segments, builder, list(meta["tier_thresholds"]), int(meta["horizon_days"]),
                   versions)

    @property
    def version_label(self) -> str:
        return ", ".join(f"{name} v{version}" for name, version in self.versions.items())


def _model_predictions(bundle: ModelBundle, features: pd.DataFrame) -> pd.DataFrame:
    X = features[bundle.builder.feature_names_]
    out = pd.DataFrame(index=features.index)
    out["predicted_value"] = bundle.value.predict(X)
    out["churn_probability"] = bundle.churn.predict_proba(X)
    out["segment"] = bundle.segments.predict(X)
    value_reasons = top_reasons(bundle.value.contributions(X), features, "value")
    churn_reasons = top_reasons(bundle.churn.contributions(X), features, "churn risk", n=1)
    out["reasons"] = [v + c for v, c in zip(value_reasons, churn_reasons)]
    return out


def score(transactions: pd.DataFrame, as_of: pd.Timestamp, policy: TierPolicy, spec: FeatureSpec,
          bundle: ModelBundle | None, fallback_rules: FallbackRules | None = None,
          customers: pd.DataFrame | None = None, interactions: pd.DataFrame | None = None,
          horizon_days: int = 180, unavailable_reason: str = "no champion models") -> pd.DataFrame:
    """Score every customer with history before ``as_of``; one row each, in customer_id order."""
    rules = fallback_rules or FallbackRules()
    builder = bundle.builder if bundle else FeatureBuilder(spec)
    features = builder.transform(transactions, as_of, customers, interactions)
    horizon = bundle.horizon_days if bundle else horizon_days
    fallback = rule_predictions(features, horizon, rules)
    fallback["source"] = "fallback"
    fallback["fallback_reason"] = unavailable_reason
    result = fallback
    if bundle is not None and len(features):
        try:
            modelled = _model_predictions(bundle, features)
        except Exception as err:  # a model that fails at predict time must not take the answer down
            log.warning("models failed, every customer gets the rule fallback: %s", err)
            fallback["fallback_reason"] = f"models failed: {type(err).__name__}: {err}"
        else:
            finite = np.isfinite(modelled[["predicted_value", "churn_probability"]]).all(axis=1)
            modelled["source"] = "model"
            modelled["fallback_reason"] = None
            fallback.loc[~finite, "fallback_reason"] = "models gave no finite prediction for this customer"
            result = modelled.where(finite, fallback[modelled.columns])
    by_model = result["source"].eq("model")
    rank_score = result["predicted_value"].where(by_model, fallback["rfm_score"])
    tiers = []
    for from_model, rows in ((True, by_model), (False, ~by_model)):
        if rows.any():
            thresholds = bundle.tier_thresholds if from_model else policy.rfm_thresholds()
            tiers.append(policy.assign(rank_score[rows], thresholds,
                                       result.loc[rows, "churn_probability"],
                                       features.loc[rows, "lifecycle_stage"]))
    tier_table = pd.concat(tiers).reindex(result.index) if tiers else pd.DataFrame(
        columns=["value_tier", "tier", "action"], index=result.index)
    out = pd.concat([result, tier_table], axis=1)
    out["lifecycle_stage"] = features["lifecycle_stage"]
    out["as_of"] = pd.Timestamp(as_of).date().isoformat()
    out.index.name = "customer_id"
    out = out.reset_index()
    return out[SCORE_COLUMNS + ["value_tier"]]
