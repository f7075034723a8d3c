"""One scorer for batch files, backtests and the service: transactions at ``as_of`` in, a tier table out.

The models (from the registry) and the rule fallback answer with the same columns; the tier policy is
applied after either. When the models are missing or fail, or their frozen tier thresholds do not fit the
policy, every customer gets the fallback; when the models cannot score one customer (no finite
prediction), that customer alone does; both carry a ``fallback_reason``. Membership levels come from
trailing spend, whoever predicts. The models' classic forecast of a row built at ``as_of`` runs on the
seasonal clock anchored at ``as_of`` (:meth:`ModelBundle.at`), whatever the date they were trained at.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tiercast.features.aggregates import group_count
from tiercast.features.builder import FeatureBuilder, FeatureColumns, Table
from tiercast.features.encoding import NS_PER_DAY, instant_ns, instants_ns, lookup
from tiercast.features.schema import SCORED, SCORED_CONTRACT
from tiercast.features.spec import FeatureSpec
from tiercast.serving.fallback import FallbackRules, rule_predictions
from tiercast.serving.i18n import Messages, localised, messages
from tiercast.serving.next_order import NEXT_ORDER_COLUMNS, next_order
from tiercast.serving.reasons import reason_lists, top_reasons
from tiercast.training.config import RegistryConfig
from tiercast.training.extension import HorizonExtension
from tiercast.training.policy import TierPolicy
from tiercast.training.registry import alias_set, load_model_version

if TYPE_CHECKING:  # the training job's imports (Optuna among them) stay out of the service
    from tiercast.training.pipeline import TrainedModels

log = logging.getLogger(__name__)

# The scored table's columns, as declared in tiercast.features.schema.SCORED.
SCORE_COLUMNS = list(SCORED_CONTRACT)
EXTRA_COLUMNS = [c.name for c in SCORED.columns[len(SCORED_CONTRACT):] if c.required]
# Days whose re-anchored models a bundle keeps (ModelBundle.at): as_of moves on a day at a time, but a
# client may send any date.
AS_OF_DAYS_KEPT = 8


class ModelsUnavailable(Exception):
    """No usable champion models: the caller falls back to the rules, with this as the reason."""


def _unavailable(alias: str, err: Exception) -> ModelsUnavailable:
    """Why models could not be loaded, in words: a model pickled by an earlier tiercast, whose classes have
    since moved to other modules, says so and how to fix it."""
    cause: BaseException | None = err
    while cause is not None and not isinstance(cause, ModuleNotFoundError):
        cause = cause.__cause__ or cause.__context__
    if cause is not None and (cause.name or "").split(".")[0] in ("tiercast", "features", "training", "serving"):
        return ModelsUnavailable(f"models '{alias}' were trained by an earlier tiercast version (module "
                                 f"'{cause.name}' not found); retrain with tiercast train")
    return ModelsUnavailable(f"models '{alias}' could not be loaded: {type(err).__name__}: {err}")


@dataclass
class ModelBundle:
    """The value, churn and segment models behind one alias, with the feature builder they were trained with.

    ``horizon_days`` is the horizon the bundle predicts. Models trained on shorter label windows (too little
    history for the horizon) come with the ``extension`` that carries their predictions to it, made from
    their own classic model (:mod:`tiercast.training.extension`)."""

    value: object
    churn: object
    segments: object
    builder: FeatureBuilder
    tier_thresholds: list[float]
    horizon_days: int
    versions: dict[str, str]
    quality_card: dict[str, Any] | None = None  # plain-words model quality on the last holdout, when logged
    extension: HorizonExtension | None = None  # from the models' label windows to horizon_days, when shorter
    # This bundle's models for rows built at each as_of day scored so far (see :meth:`at`).
    _at_day: dict[pd.Timestamp, ModelBundle] = field(default_factory=dict, init=False, repr=False, compare=False)
    # Whether the churn model reads a table as the value model does: one preparation of it then serves both.
    _shared_inputs: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        reads_like = getattr(self.value, "reads_like", None)
        self._shared_inputs = bool(reads_like is not None and reads_like(self.churn))

    @classmethod
    def load(cls, registry: RegistryConfig, alias: str | None = None) -> "ModelBundle":
        alias = alias or registry.champion_alias
        try:
            found = alias_set(registry, alias)
            if found is None:
                raise ModelsUnavailable(f"no '{alias}' models in the registry; train some with tiercast train")
            value, meta = load_model_version(found["value"])
            churn, _ = load_model_version(found["churn"])
            segments, _ = load_model_version(found["segments"])
            builder = FeatureBuilder.from_dict(meta["feature_builder"])
            versions = {v.name: v.version for v in found.values()}
            horizon = int(meta["horizon_days"])
            bundle = cls(value, churn, segments, builder, list(meta["tier_thresholds"]), horizon, versions,
                         meta.get("quality_card"), _extension(value, int(meta.get("label_horizon_days", horizon)),
                                                              horizon))
            # The walks' tables built now rather than in the first request.
            value.path_attribution, churn.path_attribution  # noqa: B018
        except ModelsUnavailable:
            raise
        except Exception as err:  # unreachable store, incomplete set, unloadable artifact: all mean "no models"
            raise _unavailable(alias, err) from err
        return bundle

    @classmethod
    def from_trained(cls, trained: TrainedModels, policy: TierPolicy, horizon_days: int,
                     versions: dict[str, str]) -> "ModelBundle":
        """A bundle of models fitted in this process (a backtest), unregistered, with the tier thresholds
        fitted as training would freeze them."""
        if horizon_days != trained.horizon_days:
            raise ValueError(f"the models were trained for {trained.horizon_days} days, not {horizon_days}")
        return cls(trained.value, trained.churn, trained.segments, trained.builder, trained.tier_thresholds(policy),
                   horizon_days, versions, extension=trained.extension)

    def at(self, as_of: Any) -> ModelBundle:
        """The bundle scoring rows built at ``as_of``: its models' classic forecast (and its extension) on the
        seasonal clock anchored at ``as_of``'s day rather than at the training cutoff
        (:meth:`~tiercast.training.classic.forecast.ClassicFeatures.at`). Kept per day, as the service scores
        request after request at the same one; the last :data:`AS_OF_DAYS_KEPT` days are kept."""
        day = _naive_utc(as_of).normalize()  # its midnight: the day the clock is anchored at
        anchored = self._at_day.get(day)
        if anchored is None:
            anchored = replace(self, value=self.value.at(day), churn=self.churn.at(day),
                               extension=self.extension.at(day) if self.extension is not None else None)
            if len(self._at_day) >= AS_OF_DAYS_KEPT:
                self._at_day.pop(next(iter(self._at_day)), None)  # the oldest first
            self._at_day[day] = anchored
        return anchored

    def explain(self, features: FeatureColumns) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """The value and churn models' ``explain`` (prediction over ``horizon_days``, contributions) of a
        feature table. With an extension, the contributions stay those of the models over their label
        windows: the extension's factor comes from the classic model alone."""
        inputs = self.value.prepare(features)
        value, value_drivers = self.value.explain_inputs(inputs)
        churn_inputs = inputs if self._shared_inputs else self.churn.prepare(features)
        churn, churn_drivers = self.churn.explain_inputs(churn_inputs)
        if self.extension is not None:
            value, churn = self.extension.extend(features, value, churn)
        return (value, value_drivers), (churn, churn_drivers)

    @property
    def version_label(self) -> str:
        return ", ".join(f"{name} v{version}" for name, version in self.versions.items())


def _extension(value_model: Any, label_days: int, horizon_days: int) -> HorizonExtension | None:
    """The extension of logged models trained on ``label_days`` windows to ``horizon_days``, from the classic
    model they carry; None when the two agree."""
    if label_days == horizon_days:
        return None
    classic = value_model.classic_
    if classic.horizon_days != label_days:
        raise ValueError(f"the value model's classic forecast covers {classic.horizon_days} days, its metadata "
                         f"says label windows of {label_days}")
    return HorizonExtension.of(classic, horizon_days)


def _model_predictions(bundle: ModelBundle, features: FeatureColumns, m: Messages) -> dict[str, np.ndarray]:
    (value, value_drivers), (churn, churn_drivers) = bundle.explain(features)
    reasons = np.empty(len(features), dtype=object)
    phrased: dict[str, np.ndarray] = {}  # a feature both models pick is phrased once for a customer
    reasons[:] = reason_lists(top_reasons(value_drivers, bundle.value.feature_names_, features, "value", n=2, m=m,
                                          phrased=phrased),
                              top_reasons(churn_drivers, bundle.churn.feature_names_, features, "churn risk", n=1, m=m,
                                          phrased=phrased),
                              m=m)
    return {"predicted_value": np.asarray(value, dtype=float),
            "churn_probability": np.asarray(churn, dtype=float),
            "segment": np.asarray(bundle.segments.predict(features), dtype=object),
            "reasons": reasons}


def _naive_utc(as_of: Any) -> pd.Timestamp:
    ts = pd.Timestamp(as_of)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def trailing_spend(transactions: Table, as_of: Any, days: int, customer_ids: pd.Index) -> np.ndarray:
    """Net amount per customer of ``customer_ids`` in ``[as_of - days, as_of)`` (refunds included), 0 without
    lines there."""
    end = instant_ns(as_of)
    ns = instants_ns(transactions["timestamp"])
    code = lookup(transactions["customer_id"], customer_ids.to_numpy(dtype=object))
    inside = (ns >= end - days * NS_PER_DAY) & (ns < end) & (code >= 0)
    amount = np.asarray(transactions["amount"], dtype=float)[inside]
    return group_count(code[inside], len(customer_ids), amount)


def membership_spend(policy: TierPolicy) -> str:
    """The feature summing the spend of the membership window, which :func:`score` reads where the builder has
    it (else it sums the transactions itself: :func:`trailing_spend`)."""
    return f"spend_{policy.membership.window_days}d"


def feature_builder(bundle: ModelBundle | None, spec: FeatureSpec) -> FeatureBuilder:
    """The builder of the features :func:`score` reads: the bundle's, or without models an unfitted one of ``spec``
    (the rules read only features every spec has)."""
    return bundle.builder if bundle else FeatureBuilder(spec)


def score(transactions: Table, as_of: pd.Timestamp, policy: TierPolicy, spec: FeatureSpec,
          bundle: ModelBundle | None, fallback_rules: FallbackRules | None = None,
          customers: pd.DataFrame | None = None, interactions: pd.DataFrame | None = None,
          horizon_days: int = 180, unavailable_reason: str | None = None, language: str = "en",
          features: FeatureColumns | None = None) -> pd.DataFrame:
    """Score every customer with history before ``as_of``; one row each, in customer_id order.

    Columns: :data:`SCORE_COLUMNS` (the contract's, with ``fallback_reason``) then :data:`EXTRA_COLUMNS`
    (the value tier before the overlays, the membership level and the trailing spend it is based on, when the
    next order is expected, and the codes behind the labels). Words for people are in ``language``.
    ``features``, when the caller has them already, are the bundle's builder's (or, without a bundle, an
    unfitted builder's) table of these inputs at ``as_of``."""
    return pd.DataFrame(score_columns(transactions, as_of, policy, spec, bundle, fallback_rules, customers,
                                      interactions, horizon_days, unavailable_reason, language, features))


def score_columns(transactions: Table, as_of: pd.Timestamp, policy: TierPolicy, spec: FeatureSpec,
                  bundle: ModelBundle | None, fallback_rules: FallbackRules | None = None,
                  customers: pd.DataFrame | None = None, interactions: pd.DataFrame | None = None,
                  horizon_days: int = 180, unavailable_reason: str | None = None,
                  language: str = "en", features: FeatureColumns | None = None) -> dict[str, np.ndarray]:
    """:func:`score`'s table as its columns (name -> array, in order), for callers that need no frame (the
    service writes its answer straight from them)."""
    m = messages(language)
    policy = localised(policy, m)
    unavailable = (m["fallback.no_models"] if unavailable_reason is None
                   else m.text("fallback.models_unavailable", detail=unavailable_reason))
    rules = fallback_rules or FallbackRules()
    if features is None:
        features = feature_builder(bundle, spec).transform_columns(transactions, as_of, customers, interactions)
    horizon = bundle.horizon_days if bundle else horizon_days
    n = len(features)
    answer = {"predicted_value": np.full(n, np.nan), "churn_probability": np.full(n, np.nan),
              "segment": np.empty(n, dtype=object), "reasons": np.empty(n, dtype=object)}
    rank = np.full(n, np.nan)  # what the tier thresholds compare: predicted value, or the rules' RFM score
    source = np.full(n, "fallback", dtype=object)
    reason = np.full(n, unavailable, dtype=object)
    limits = np.tile(policy.rfm_thresholds(), (n, 1))
    if bundle is not None and n:
        try:
            thresholds = policy.model_thresholds(bundle.tier_thresholds)
            modelled = _model_predictions(bundle.at(as_of), features, m)
        except Exception as err:  # a model that fails at predict time must not take the answer down
            log.warning("models failed, every customer gets the rule fallback: %s", err)
            reason[:] = m.text("fallback.models_failed", detail=f"{type(err).__name__}: {err}")
        else:
            finite = np.isfinite(modelled["predicted_value"]) & np.isfinite(modelled["churn_probability"])
            # Too short a history of one's own gives confident-looking model numbers that mean little.
            tenure = features["tenure_days"]
            thin = tenure < rules.min_history_days
            ok = finite & ~thin
            for column, values in modelled.items():
                answer[column][ok] = values[ok]
            rank[ok] = modelled["predicted_value"][ok]
            source[ok] = "model"
            reason = np.full(n, None, dtype=object)
            reason[thin] = [m.text("fallback.too_little_history", days=f"{t:.0f}", need=rules.min_history_days)
                            for t in tenure[thin]]
            reason[~finite] = m["fallback.no_finite_prediction"]
            limits[ok] = thresholds
    fallback = source == "fallback"
    if fallback.any():  # the rules answer only for the customers the models did not
        table = features.frame()  # the rules read a frame; a fallback is the exception, not the hot path
        rules_say = rule_predictions(table if fallback.all() else table[fallback], horizon, rules, m)
        for column, values in answer.items():
            values[fallback] = rules_say[column].to_numpy()
        rank[fallback] = rules_say["rfm_score"].to_numpy(dtype=float)
    tiers = policy.assign(rank, limits, answer["churn_probability"], features["lifecycle_stage"])
    # The builder sums net spend over its own windows already; the membership window is usually one of them.
    window_spend = membership_spend(policy)
    spend = (features[window_spend] if window_spend in features
             else trailing_spend(transactions, as_of, policy.membership.window_days, pd.Index(features.ids)))
    timing = next_order(features, answer["churn_probability"], _naive_utc(as_of), horizon, policy.churn_risk_bands)
    return {  # SCORE_COLUMNS then EXTRA_COLUMNS
        "customer_id": features.ids,
        "as_of": np.full(n, _naive_utc(as_of).date().isoformat(), dtype=object),
        "predicted_value": answer["predicted_value"].astype(float),
        "churn_probability": answer["churn_probability"].astype(float),
        "segment": m.labels("segment", answer["segment"]),
        "lifecycle_stage": m.labels("stage", features["lifecycle_stage"]),
        "tier": tiers["tier"],
        "action": tiers["action"],
        "source": source,
        "fallback_reason": reason,
        "reasons": answer["reasons"],
        "value_tier": tiers["value_tier"],
        "membership": policy.membership.assign(spend),
        "trailing_spend": spend,
        **{column: timing[column] for column in NEXT_ORDER_COLUMNS},
        "churn_risk_band": m.labels("band", timing["churn_risk_band"]),
        "segment_code": answer["segment"],
        "lifecycle_stage_code": features["lifecycle_stage"],
        "churn_risk_band_code": timing["churn_risk_band"],
    }
