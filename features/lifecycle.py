"""Lifecycle stage of each customer at a cutoff, from day counts only (vectorised).

Rules, first match wins (all day counts measured back from as_of):
1. ``new``: the first purchase is less than ``new_days`` days old.
2. ``lost``: the last purchase is at least ``lost_days`` days old.
3. ``dormant``: days since the last purchase > max(``dormant_gap_multiple`` x usual gap, ``dormant_days``),
   where the usual gap is the mean number of days between the customer's purchase days; with fewer than
   two purchase days (no gap yet) the threshold is ``dormant_days``.
4. ``active``: everyone else.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tiercast.features.spec import LifecycleThresholds

STAGES: tuple[str, ...] = ("new", "active", "dormant", "lost")
_STAGE_NAMES = np.array(STAGES, dtype=object)
_NEW, _ACTIVE, _DORMANT, _LOST = range(len(STAGES))


def lifecycle_stage(
    recency_days: npt.ArrayLike,
    first_purchase_age_days: npt.ArrayLike,
    usual_gap_days: npt.ArrayLike,
    thresholds: LifecycleThresholds,
) -> npt.NDArray[np.object_]:
    """Stage per customer (object array of str) from aligned day-count arrays; NaN gap = no gap yet."""
    recency = np.asarray(recency_days, dtype=float)
    first_age = np.asarray(first_purchase_age_days, dtype=float)
    gap = np.asarray(usual_gap_days, dtype=float)
    dormant_after = np.fmax(thresholds.dormant_gap_multiple * gap, float(thresholds.dormant_days))
    # The first rule that holds names the stage: set in reverse order, so that earlier rules overwrite later ones.
    stage = np.full(len(recency), _ACTIVE, dtype=np.intp)
    stage[recency > dormant_after] = _DORMANT
    stage[recency >= thresholds.lost_days] = _LOST
    stage[first_age < thresholds.new_days] = _NEW
    return _STAGE_NAMES[stage]
