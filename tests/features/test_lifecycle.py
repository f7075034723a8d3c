"""Lifecycle rules: boundaries of each stage and the precedence between them."""

from __future__ import annotations

import numpy as np

from tiercast.features.lifecycle import lifecycle_stage
from tiercast.features.spec import LifecycleThresholds

T = LifecycleThresholds(new_days=30, dormant_gap_multiple=3.0, dormant_days=90, lost_days=365)


def stage(recency: float, first_age: float, gap: float) -> str:
    return str(lifecycle_stage([recency], [first_age], [gap], T)[0])


def test_new_is_first_purchase_younger_than_new_days() -> None:
    assert stage(5, 29.9, np.nan) == "new"
    assert stage(5, 30.0, np.nan) == "active"


def test_lost_after_lost_days_without_purchase() -> None:
    assert stage(365, 400, 10) == "lost"
    assert stage(364.9, 400, 200) == "active"  # 3 x 200 = 600 days before dormant


def test_dormant_threshold_is_the_larger_of_gap_multiple_and_dormant_days() -> None:
    assert stage(91, 500, 10) == "dormant"  # max(30, 90) = 90
    assert stage(90, 500, 10) == "active"
    assert stage(149, 500, 50) == "active"  # max(150, 90) = 150
    assert stage(151, 500, 50) == "dormant"
    assert stage(91, 500, np.nan) == "dormant"  # single purchase day: dormant_days alone


def test_vectorised_and_precedence() -> None:
    out = lifecycle_stage([5, 400, 100, 10], [10, 400, 500, 500], [np.nan, 1, 10, 10], T)
    assert out.tolist() == ["new", "lost", "dormant", "active"]
