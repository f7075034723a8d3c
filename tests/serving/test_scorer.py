"""The one scorer with real (small) LightGBM models: contract columns, batch/alone parity, no look-ahead,
membership, and the fallback when the models cannot be used or cannot score one customer."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tiercast.config import load_config
from tiercast.features.builder import FeatureBuilder
from tiercast.features.loading import InputData, read_scores
from tiercast.features.spec import FeatureSpec
from tiercast.serving.fallback import FallbackRules, rule_predictions
from tiercast.serving.scorer import (
    EXTRA_COLUMNS,
    SCORE_COLUMNS,
    ModelBundle,
    ModelsUnavailable,
    score,
    trailing_spend,
)
from tiercast.training.config import LightGBMParams, RegistryConfig, SegmentConfig, TrainingConfig, TuningConfig
from tiercast.training.boosters import ModelInputs, ValueModel
from tiercast.training.pipeline import fit_models
from tiercast.training.policy import TierPolicy

ROOT = Path(__file__).resolve().parents[2]
CUTOFF = pd.Timestamp("1998-01-01")
CONTRACT = ["customer_id", "as_of", "predicted_value", "churn_probability", "segment", "lifecycle_stage",
            "tier", "action", "source", "reasons"]


@pytest.fixture(scope="module")
def cdnow(cdnow_first) -> pd.DataFrame:
    return cdnow_first(1200)


@pytest.fixture(scope="module")
def bundle(cdnow) -> ModelBundle:
    """Real value, churn and segment models trained before the cutoff (small, for speed)."""
    quick = LightGBMParams(max_rounds=40)
    config = TrainingConfig(value_model=quick, churn_model=quick, tuning=TuningConfig(trials=0), folds=2,
                            segments=SegmentConfig(k_min=3, k_max=3, sample_size=500))
    trained = fit_models(InputData(cdnow, None, None, []), CUTOFF, 181, config, FeatureSpec(), [])
    return ModelBundle.from_trained(trained, TierPolicy(), 181, {"tiercast-value": "1"})


@pytest.fixture(scope="module")
def scored(cdnow, bundle) -> pd.DataFrame:
    return score(cdnow, CUTOFF, TierPolicy(), FeatureSpec(), bundle)


def test_models_score_every_customer_with_the_contract_columns(cdnow, scored):
    assert scored.columns.tolist() == SCORE_COLUMNS + EXTRA_COLUMNS
    assert set(CONTRACT) <= set(scored.columns)
    history = cdnow.loc[cdnow["timestamp"] < CUTOFF, "customer_id"]
    assert scored["customer_id"].tolist() == sorted(history.unique())
    assert set(scored["source"]) == {"model"} and scored["fallback_reason"].isna().all()
    assert scored["churn_probability"].between(0, 1).all() and (scored["predicted_value"] >= 0).all()
    assert set(scored["tier"]) <= set(TierPolicy().tier_names)
    assert (scored["as_of"] == "1998-01-01").all()
    for reasons in scored["reasons"]:
        assert 1 <= len(reasons) <= 3
        assert all(r.endswith(")") and ("value" in r or "churn risk" in r) for r in reasons)


def test_the_value_and_churn_models_of_one_training_share_one_preparation_of_the_features(cdnow, bundle):
    features = bundle.builder.transform_columns(cdnow, CUTOFF)
    # as the registry keeps them: each model pickled on its own
    loaded = dataclasses.replace(bundle, value=pickle.loads(pickle.dumps(bundle.value)),
                                 churn=pickle.loads(pickle.dumps(bundle.churn)))
    assert loaded._shared_inputs
    shared = loaded.explain(features)
    alone = (bundle.value.explain(features), bundle.churn.explain(features))
    for (prediction, drivers), (prediction_alone, drivers_alone) in zip(shared, alone, strict=True):
        assert np.array_equal(prediction, prediction_alone) and np.array_equal(drivers, drivers_alone)
    churn_elsewhere = pickle.loads(pickle.dumps(bundle.churn))
    churn_elsewhere.classic_ = bundle.churn.classic_.at_horizon(90)  # another classic forecast: its own inputs
    assert not dataclasses.replace(bundle, churn=churn_elsewhere)._shared_inputs


def test_share_thresholds_give_each_tier_about_its_share_on_the_training_population(scored):
    # The thresholds were frozen on these customers' predictions, so the value tiers hold the policy's shares.
    shares = scored["value_tier"].value_counts(normalize=True)
    policy = TierPolicy()
    expected = np.diff([0.0] + [t.top_share for t in policy.value_tiers])
    assert np.allclose(shares.reindex(policy.tier_order).to_numpy(), expected, atol=0.01)


def test_one_customer_alone_gets_the_answer_of_the_batch(cdnow, bundle, scored):
    batch = scored.set_index("customer_id")
    for customer in ["00001", "00005", "00042", "00777", "01200"]:
        alone = score(cdnow[cdnow["customer_id"] == customer], CUTOFF, TierPolicy(), FeatureSpec(), bundle)
        row = alone.set_index("customer_id").loc[customer]
        expected = batch.loc[customer]
        for column in ("tier", "value_tier", "action", "segment", "membership", "reasons", "source"):
            assert row[column] == expected[column], column
        # Exactly: every sum runs per customer in a fixed order, whatever else is in the batch.
        assert row["predicted_value"] == expected["predicted_value"]
        assert row["churn_probability"] == expected["churn_probability"]


def test_nothing_at_or_after_as_of_changes_the_answer(cdnow, bundle, scored):
    future = pd.DataFrame({"customer_id": ["00005", "00005", "99999"],
                           "timestamp": [CUTOFF, CUTOFF + pd.Timedelta(days=3), CUTOFF],
                           "amount": [5000.0, -20.0, 10.0], "quantity": [1.0, 1.0, 1.0]})
    again = score(pd.concat([cdnow, future], ignore_index=True), CUTOFF, TierPolicy(), FeatureSpec(), bundle)
    pd.testing.assert_frame_equal(again, scored)


def test_membership_follows_net_spend_over_the_trailing_window(cdnow, scored):
    window = cdnow[(cdnow["timestamp"] >= CUTOFF - pd.Timedelta(days=365)) & (cdnow["timestamp"] < CUTOFF)]
    expected = window.groupby("customer_id")["amount"].sum()
    spend = scored.set_index("customer_id")["trailing_spend"]
    assert np.allclose(spend.to_numpy(), expected.reindex(spend.index, fill_value=0.0).to_numpy())
    policy = TierPolicy.model_validate({"membership": {"window_days": 90, "levels": [
        {"name": "basic", "min_spend": 0}, {"name": "plus", "min_spend": 100}]}})
    short = score(cdnow, CUTOFF, policy, FeatureSpec(), None).set_index("customer_id")
    recent = cdnow[(cdnow["timestamp"] >= CUTOFF - pd.Timedelta(days=90)) & (cdnow["timestamp"] < CUTOFF)]
    plus = set(recent.groupby("customer_id")["amount"].sum().loc[lambda s: s >= 100].index)
    assert set(short.index[short["membership"] == "plus"]) == plus and plus
    # A window that is none of the builder's own is summed from the transactions; both ways agree.
    assert np.array_equal(trailing_spend(cdnow, CUTOFF, 365, spend.index), spend.to_numpy())
    odd = TierPolicy.model_validate({"membership": {"window_days": 100, "levels": [
        {"name": "basic", "min_spend": 0}, {"name": "plus", "min_spend": 100}]}})
    hundred = score(cdnow, CUTOFF, odd, FeatureSpec(), None).set_index("customer_id")["trailing_spend"]
    recent = cdnow[(cdnow["timestamp"] >= CUTOFF - pd.Timedelta(days=100)) & (cdnow["timestamp"] < CUTOFF)]
    expected = recent.groupby("customer_id")["amount"].sum().reindex(hundred.index, fill_value=0.0)
    assert np.allclose(hundred.to_numpy(), expected.to_numpy())


def test_frozen_thresholds_that_do_not_fit_the_policy_send_everyone_to_the_rules(cdnow, bundle):
    three_tiers = TierPolicy.model_validate({"value_tiers": [
        {"name": "top", "action": "a", "top_share": 0.2, "min_rfm_score": 12},
        {"name": "middle", "action": "b", "top_share": 0.5, "min_rfm_score": 8},
        {"name": "bottom", "action": "c", "top_share": 1.0, "min_rfm_score": 3}],
        "at_risk": {"name": "at risk", "action": "d", "applies_to": ["top"]}})
    out = score(cdnow, CUTOFF, three_tiers, FeatureSpec(), bundle)
    assert set(out["source"]) == {"fallback"}
    assert out["fallback_reason"].str.contains("retrain").all()
    assert set(out["tier"]) <= set(three_tiers.tier_names)


def test_models_that_fail_send_everyone_to_the_rules_with_the_reason(cdnow, bundle):
    # Models trained on one feature set, paired with a builder of another: predicting fails on missing columns.
    other = FeatureBuilder(FeatureSpec(windows_days=[30])).fit(cdnow, CUTOFF)
    broken = dataclasses.replace(bundle, builder=other)
    out = score(cdnow, CUTOFF, TierPolicy(), FeatureSpec(), broken)
    assert set(out["source"]) == {"fallback"}
    assert out["fallback_reason"].str.startswith("models failed: KeyError").all()
    rules = rule_predictions(other.transform(cdnow, CUTOFF), bundle.horizon_days, FallbackRules())
    for column in ("predicted_value", "churn_probability", "segment", "reasons"):
        assert out[column].tolist() == rules[column].tolist()


class _ValueModelWithGaps(ValueModel):
    """A real trained value model whose answer is missing for big spenders. LightGBM itself always answers,
    but a future model or a damaged artifact may not; the scorer must then fall back for those alone."""

    @classmethod
    def of(cls, model: ValueModel) -> "_ValueModelWithGaps":
        gappy = cls(**model.get_params(deep=False))
        gappy.__dict__.update(model.__dict__)  # the fitted boosters and classic model
        return gappy

    def _explained(self, inputs: ModelInputs, raw: np.ndarray, boosted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        value, contributions = super()._explained(inputs, raw, boosted)
        spent = inputs.matrix[:, inputs.feature_names.index("monetary_total")]
        return np.where(spent > 500, np.nan, value), contributions


def test_a_customer_the_models_cannot_score_alone_gets_the_rules(cdnow, bundle, scored):
    out = score(cdnow, CUTOFF, TierPolicy(), FeatureSpec(), dataclasses.replace(bundle, value=_ValueModelWithGaps.of(
        bundle.value)))
    rules = score(cdnow, CUTOFF, TierPolicy(), FeatureSpec(), dataclasses.replace(bundle, tier_thresholds=[]))
    big = out["customer_id"].isin(cdnow[cdnow["timestamp"] < CUTOFF].groupby("customer_id")["amount"].sum()
                                  .loc[lambda s: s > 500].index).to_numpy()
    assert big.any() and (~big).any()
    assert (out.loc[big, "source"] == "fallback").all() and (out.loc[~big, "source"] == "model").all()
    assert out.loc[big, "fallback_reason"].str.contains("no finite prediction").all()
    for column in ("predicted_value", "tier", "reasons", "segment"):
        assert out.loc[big, column].tolist() == rules.loc[big, column].tolist()
        assert out.loc[~big, column].tolist() == scored.loc[~big, column].tolist()


def test_no_customer_with_history_gives_an_empty_table_with_the_columns(cdnow, bundle):
    out = score(cdnow, pd.Timestamp("1990-01-01"), TierPolicy(), FeatureSpec(), bundle)
    assert out.empty and out.columns.tolist() == SCORE_COLUMNS + EXTRA_COLUMNS


def test_chinese_tiers_survive_a_scored_csv_round_trip(cdnow, tmp_path):
    config = load_config(ROOT / "configs" / "zh.yaml")
    out = score(cdnow, CUTOFF, config.policy, config.features, None, config.fallback, horizon_days=181)
    assert set(out["tier"]) <= set(config.policy.tier_names) and len(set(out["tier"])) >= 4
    path = tmp_path / "scores.csv"
    out.assign(reasons=out["reasons"].map("; ".join)).to_csv(path, index=False)
    back = read_scores(path, ("customer_id", "tier", "predicted_value"))
    assert back["customer_id"].tolist() == out["customer_id"].tolist()  # '00001' stays '00001'
    assert back["tier"].tolist() == out["tier"].tolist()
    assert np.allclose(back["predicted_value"], out["predicted_value"])
    assert back["fallback_reason"].eq("no champion models").all()


def test_the_rules_use_the_fallback_settings(cdnow):
    rules = FallbackRules(churn_probability_by_stage={"new": 0.1, "active": 0.1, "dormant": 0.1, "lost": 0.1})
    out = score(cdnow, CUTOFF, TierPolicy(), FeatureSpec(), None, rules)
    assert (out["churn_probability"] == 0.1).all() and "at risk" not in set(out["tier"])


def test_a_customer_with_too_little_history_gets_the_rules_with_that_reason(cdnow, bundle):
    as_of = pd.Timestamp("1998-01-01")
    newcomer = pd.DataFrame({"customer_id": ["NEW1"], "timestamp": [as_of - pd.Timedelta(days=3)],
                             "amount": [25.0], "quantity": [1.0]})
    scored = score(pd.concat([cdnow, newcomer], ignore_index=True), as_of, TierPolicy(), FeatureSpec(), bundle,
                   FallbackRules(min_history_days=7)).set_index("customer_id")
    assert scored.loc["NEW1", "source"] == "fallback"
    assert "too little history" in scored.loc["NEW1", "fallback_reason"]
    assert (scored.drop(index="NEW1")["source"] == "model").all()


def test_models_pickled_by_an_earlier_tiercast_say_so_and_how_to_fix_it(monkeypatch):
    # A model pickled when its class lived in a module that has since moved (here the old top-level
    # 'training' package) no longer unpickles: the reason names the version change and the fix.
    old_pickle = b"ctraining.models\nValueModel\n."
    monkeypatch.setattr("tiercast.serving.scorer.alias_set", lambda names, alias: pickle.loads(old_pickle))
    with pytest.raises(ModelsUnavailable, match=r"models 'champion' were trained by an earlier tiercast version "
                                                r"\(module 'training.models' not found\); retrain with tiercast train"):
        ModelBundle.load(RegistryConfig())
    # Any other failure keeps its own words.
    monkeypatch.setattr("tiercast.serving.scorer.alias_set", lambda names, alias: {}["missing"])
    with pytest.raises(ModelsUnavailable, match="could not be loaded: KeyError"):
        ModelBundle.load(RegistryConfig())
