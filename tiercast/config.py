"""The application's configuration: one YAML file composed of the typed sections each layer defines.

Only this module reads YAML; the layers below receive their section as an argument. Unknown keys and bad
values are errors that name the key (for example ``training.tuning.trials``).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tiercast.analysis.monitor import MonitorConfig
from tiercast.analysis.plan import PlanConfig
from tiercast.database_output import OutputConfig
from tiercast.features.schema import DataConfig
from tiercast.features.spec import FeatureSpec
from tiercast.serving.config import ServiceConfig
from tiercast.serving.fallback import FallbackRules
from tiercast.serving.i18n import Language
from tiercast.spark import EngineConfig
from tiercast.training.config import TrainingConfig
from tiercast.training.policy import TierPolicy

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "default.yaml"


class DemoConfig(BaseModel):
    """The demo job: bundled CDNOW data, trained at the end of its history and scored there."""

    model_config = ConfigDict(extra="forbid")

    # Relative paths are taken from the project folder, so the demo runs from any working directory.
    transactions: Path = Path("data") / "cdnow" / "CDNOW_master.txt.gz"
    cutoff: date = date(1998, 7, 1)
    horizon_days: int = Field(default=181, ge=1)
    trials: int = Field(default=5, ge=0)
    out: Path = Path("outputs") / "demo_scores.csv"

    def transactions_path(self) -> Path:
        return self.transactions if self.transactions.is_absolute() else PROJECT_ROOT / self.transactions


class AppConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The language of every word tiercast writes for people (scored labels and reasons, the service's answers,
    # the report, the command line's summaries); codes for programs stay the same in every language.
    language: Language = "en"
    data: DataConfig = Field(default_factory=DataConfig)
    features: FeatureSpec = Field(default_factory=FeatureSpec)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    policy: TierPolicy = Field(default_factory=TierPolicy)
    fallback: FallbackRules = Field(default_factory=FallbackRules)
    plan: PlanConfig = Field(default_factory=PlanConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    demo: DemoConfig = Field(default_factory=DemoConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names the file and the key."""


def load_config(path: Path | str | None = None) -> AppConfig:
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: config file not found") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    try:
        return AppConfig.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"{path}: {problems}") from err
