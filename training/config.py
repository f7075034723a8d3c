"""The training section of the configuration: windows, model and tuning settings, registry names."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tiercast.training.quality_card import QualityGrades
from tiercast.training.sufficiency import SufficiencyConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LightGBMParams(_Section):
    """Starting parameters of a LightGBM model; tuning searches around them."""

    learning_rate: float = Field(default=0.05, gt=0, le=1)
    num_leaves: int = Field(default=31, ge=2, le=1024)
    min_child_samples: int = Field(default=40, ge=1)
    feature_fraction: float = Field(default=0.9, gt=0, le=1)
    bagging_fraction: float = Field(default=0.9, gt=0, le=1)
    bagging_freq: int = Field(default=1, ge=0)
    lambda_l2: float = Field(default=1.0, ge=0)
    max_rounds: int = Field(default=600, ge=1)
    early_stopping_rounds: int = Field(default=50, ge=1)


class TuningConfig(_Section):
    trials: int = Field(default=10, ge=0, description="Optuna trials per model; 0 keeps the starting parameters")
    timeout_seconds: float | None = Field(
        default=None, gt=0, description="stop tuning a model after this long (makes the result time-dependent)")


class SegmentConfig(_Section):
    k_min: int = Field(default=3, ge=2)
    k_max: int = Field(default=7, ge=2)
    sample_size: int = Field(default=20_000, ge=100, description="customers used to choose k by silhouette")


class RegistryConfig(_Section):
    experiment: str = "tiercast"
    value_model: str = "tiercast-value"
    churn_model: str = "tiercast-churn"
    segment_model: str = "tiercast-segments"
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"


class TrainingConfig(_Section):
    horizon_days: int = Field(default=180, ge=1)
    n_windows: int = Field(default=4, ge=2, description="rolling-origin windows; the latest one validates")
    step_days: int = Field(default=30, ge=1)
    seasonal_windows: bool = Field(default=True, description="add a window a year before the cutoff (last year's "
                                   "same season) when the history holds it")
    extend_short_history: bool = Field(
        default=True, description="when the history before the cutoff cannot hold label windows of horizon_days, "
        "train on the longest ones it holds (n_windows or fewer, down to 2) and extend the predictions to "
        "horizon_days with BG/NBD x Gamma-Gamma; false stops with what would work instead")
    min_label_days: int = Field(default=30, ge=1,
                                description="the shortest label window extend_short_history trains on")
    folds: int = Field(default=4, ge=2, description="customer folds: each model is trained on the others and "
                       "early-stopped on its own customers in the latest window")
    threads: int = Field(default=1, ge=1, description="LightGBM threads; results are reproducible per thread count")
    seed: int = 42
    max_customers: int | None = Field(
        default=200_000, ge=1, description="above this many customers with history before the cutoff, train "
        "on a sample of them drawn with seed (logged, and recorded in the MLflow run); null: every customer")
    max_rows: int | None = Field(
        default=8_000_000, ge=1, description="above this many transaction rows of those customers, train on a "
        "sample of them whose rows fit in it, drawn as max_customers' is (a log of invoice lines holds a hundred "
        "or more rows a customer); null: no cap on rows")
    value_model: LightGBMParams = Field(default_factory=LightGBMParams)
    churn_model: LightGBMParams = Field(default_factory=LightGBMParams)
    tuning: TuningConfig = Field(default_factory=TuningConfig)
    segments: SegmentConfig = Field(default_factory=SegmentConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    sufficiency: SufficiencyConfig = Field(default_factory=SufficiencyConfig,
                                           description="minimum history to train on; training stops below it")
    quality: QualityGrades = Field(default_factory=QualityGrades,
                                   description="grades of the plain-words model-quality card logged with the models")
