"""The service section of the configuration: where it listens, which models it loads, and its limits."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

from tiercast.features.spec import FeatureSpec
from tiercast.serving.fallback import FallbackRules
from tiercast.serving.i18n import Language
from tiercast.training.policy import TierPolicy
from tiercast.training.config import RegistryConfig


class ServiceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=1, le=65535)
    model_alias: str = Field(default="champion", description="registry alias the service loads at start-up")
    reload_interval_seconds: float | None = Field(
        default=60.0, gt=0, description="check the alias this often and load a newly promoted champion "
        "(null: only on POST /reload)")
    workers: int = Field(default=1, ge=1, le=64, description="worker processes, each answering one request at a "
                         "time: more answer concurrent requests in parallel, up to one per core")
    max_customers_per_request: int = Field(default=1000, ge=1)
    max_transactions_per_customer: int = Field(default=5000, ge=1)
    max_request_bytes: int = Field(default=20_000_000, ge=1024)
    token_env_var: str = Field(default="TIERCAST_API_TOKEN",
                               description="when this environment variable is set, requests need "
                               "'Authorization: Bearer <token>'")


class ServingSettings(BaseModel):
    """Everything the service needs, handed to it as JSON by ``tiercast serve`` (BentoML builds the service
    class itself, so settings travel through the environment variable named by ``SETTINGS_ENV_VAR``)."""

    model_config = ConfigDict(extra="forbid")

    service: ServiceConfig = Field(default_factory=ServiceConfig)
    policy: TierPolicy = Field(default_factory=TierPolicy)
    features: FeatureSpec = Field(default_factory=FeatureSpec)
    fallback: FallbackRules = Field(default_factory=FallbackRules)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    horizon_days: int = Field(default=180, ge=1, description="fallback horizon when no model says its own")
    personal_data_columns: list[str] = Field(default_factory=list)
    drop_identical_rows: bool = Field(default=False, description="config data.drop_identical_rows, as the loader")
    language: Language = Field(default="en", description="config language: the language of the words in answers")


SETTINGS_ENV_VAR = "TIERCAST_SERVING_SETTINGS"


def settings_from_env() -> ServingSettings:
    """The settings ``tiercast serve`` handed over in ``SETTINGS_ENV_VAR``, or the defaults when the service is
    started by hand."""
    raw = os.environ.get(SETTINGS_ENV_VAR)
    return ServingSettings.model_validate_json(raw) if raw else ServingSettings()
