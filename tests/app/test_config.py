"""Configuration: the shipped YAML is valid and complete; unknown keys and bad values name the key."""

from __future__ import annotations

import pytest
import yaml

from tiercast.config import DEFAULT_CONFIG, AppConfig, ConfigError, load_config


def test_shipped_default_matches_the_documented_defaults():
    # Every section is spelled out in the YAML so users can read and edit it; it must not drift from the code.
    assert load_config(DEFAULT_CONFIG) == AppConfig()
    assert set(yaml.safe_load(DEFAULT_CONFIG.read_text())) == set(AppConfig.model_fields)


@pytest.mark.parametrize(("content", "named"), [
    ({"training": {"tuning": {"trails": 3}}}, "training.tuning.trails"),
    ({"training": {"horizon_days": -5}}, "training.horizon_days"),
    ({"policy": {"value_tiers": [{"name": "VIP", "action": "x", "top_share": 0.5, "min_rfm_score": 9}]}},
     "policy"),
    ({"features": {"windows_days": [90, 30]}}, "features.windows_days"),
    ({"servce": {}}, "servce"),
])
def test_bad_keys_and_values_are_named(tmp_path, content, named):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert named in str(caught.value) and str(path) in str(caught.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("training: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


def test_partial_file_keeps_other_defaults(tmp_path):
    path = tmp_path / "partial.yaml"
    path.write_text("training:\n  horizon_days: 90\n")
    config = load_config(path)
    assert config.training.horizon_days == 90
    assert config.policy == AppConfig().policy
