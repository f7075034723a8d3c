"""The scorer with models trained on label windows shorter than their horizon (too little history): every
number it gives is over the horizon, and a champion loaded from the registry scores exactly as the models
in memory."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from tiercast.features.loading import InputData
from tiercast.features.spec import FeatureSpec
from tiercast.serving.next_order import next_order
from tiercast.serving.scorer import ModelBundle, score
from tiercast.training.config import LightGBMParams, RegistryConfig, SegmentConfig, TrainingConfig, TuningConfig
from tiercast.training.pipeline import fit_models, train_and_register
from tiercast.training.policy import TierPolicy
from tiercast.training.registry import configure_mlflow

CUTOFF = pd.Timestamp("1997-09-01")  # 8 months of CDNOW: 4 windows of at most 123 days
HORIZON = 181
QUICK = LightGBMParams(learning_rate=0.1, max_rounds=60)
CONFIG = TrainingConfig(value_model=QUICK, churn_model=QUICK, tuning=TuningConfig(trials=0), folds=2,
                        segments=SegmentConfig(k_min=3, k_max=3, sample_size=500))


@pytest.fixture(scope="module")
def data(cdnow_first) -> InputData:
    return InputData(cdnow_first(1200), None, None, [])


@pytest.fixture(scope="module")
def trained(data):
    return fit_models(data, CUTOFF, HORIZON, CONFIG, FeatureSpec(), [])


@pytest.fixture(scope="module")
def bundle(trained) -> ModelBundle:
    return ModelBundle.from_trained(trained, TierPolicy(), HORIZON, {"backtest": "unregistered"})


@pytest.fixture(scope="module")
def scored(data, bundle) -> pd.DataFrame:
    return score(data.transactions, CUTOFF, TierPolicy(), FeatureSpec(), bundle)


def test_every_number_is_over_the_horizon(trained, bundle, scored):
    assert trained.windows.label_days == 123 and bundle.horizon_days == HORIZON
    assert bundle.extension is trained.extension
    features = trained.features_at_cutoff.loc[scored["customer_id"]]
    X = features[trained.builder.feature_names_]
    value, churn = trained.extension.extend(features, trained.value.predict(X), trained.churn.predict_proba(X))
    assert set(scored["source"]) == {"model"}
    np.testing.assert_allclose(scored["predicted_value"], value, rtol=1e-9)
    np.testing.assert_allclose(scored["churn_probability"], churn, rtol=1e-9)
    np.testing.assert_allclose(scored["next_order_probability"], 1 - churn, rtol=1e-9)
    timing = next_order(features, scored["churn_probability"].to_numpy(), CUTOFF, HORIZON,
                        TierPolicy().churn_risk_bands)
    assert scored["expected_next_order_date"].tolist() == timing["expected_next_order_date"].tolist()
    # The tier thresholds were frozen on the extended values: the tiers hold the policy's shares.
    shares = scored["value_tier"].value_counts(normalize=True)
    expected = np.diff([0.0] + [t.top_share for t in TierPolicy().value_tiers])
    assert np.allclose(shares.reindex(TierPolicy().tier_order).to_numpy(), expected, atol=0.01)


def test_a_bundle_for_another_horizon_than_the_models_is_refused(trained):
    with pytest.raises(ValueError, match="trained for 181 days, not 123"):
        ModelBundle.from_trained(trained, TierPolicy(), 123, {})


def test_a_loaded_champion_scores_exactly_as_the_models_in_memory(data, scored, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    try:
        result = train_and_register(data, CUTOFF, HORIZON, CONFIG, FeatureSpec(), TierPolicy(), [], {})
        assert result.promoted
        configure_mlflow()
        loaded = ModelBundle.load(RegistryConfig())
    finally:
        mlflow.set_tracking_uri(None)
    assert loaded.horizon_days == HORIZON and loaded.extension.label_days == 123
    again = score(data.transactions, CUTOFF, TierPolicy(), FeatureSpec(), loaded)
    pd.testing.assert_frame_equal(again, scored)
