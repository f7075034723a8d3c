"""Drift: the compact reference of a training population, stored with the models, and the population
stability index (PSI) of a later population against it.

The reference is a histogram, not the rows: per numeric feature the edges of ``bins`` quantile bins of
the training population and the share of customers in each bin, plus the share missing; per categorical
feature the share of each level (and of missing and unseen ones); the same for the predicted value; and
the tier shares. It is small enough for the model's metadata and holds no customer's values.

PSI is computed here rather than with a drift library (Evidently, for one): those compare two raw
samples, so the training rows would have to be kept with the model; PSI against a stored histogram is
a few lines, and the bins are frozen at training, so every later population is measured on the same bins.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

# A bin empty on one side would make PSI infinite; shares are floored at this (the usual practice).
SHARE_FLOOR = 1e-4
MISSING = "(missing)"
OTHER = "(other)"


def _numeric_reference(values: np.ndarray, bins: int) -> dict[str, Any]:
    present = values[np.isfinite(values)]
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])) if present.size else np.array([])
    return {"kind": "numeric", "edges": edges.tolist(), "shares": _numeric_shares(values, edges.tolist())}


def _numeric_shares(values: np.ndarray, edges: list[float]) -> list[float]:
    """Shares of ``values`` in the bins cut at ``edges`` (a value on an edge goes to the upper bin), then
    the missing share last."""
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    counts = np.bincount(np.searchsorted(np.asarray(edges, dtype=float), values[finite], side="right"),
                         minlength=len(edges) + 1)
    return [*(counts / max(values.size, 1)).tolist(), float((~finite).sum() / max(values.size, 1))]


def _level_shares(values: pd.Series, levels: list[str]) -> list[float]:
    """Shares of each of ``levels``, then of any other level, then of missing values."""
    text = values.astype(object)
    missing = text.isna().to_numpy()
    known = text.isin(levels).to_numpy()
    counts = text[known].value_counts()
    n = max(len(text), 1)
    return [*(float(counts.get(level, 0)) / n for level in levels), float((~known & ~missing).sum() / n),
            float(missing.sum() / n)]


def feature_reference(features: pd.DataFrame, bins: int = 10) -> dict[str, dict[str, Any]]:
    """The histogram of each column of ``features`` (numeric: quantile bins; categorical: level shares)."""
    reference: dict[str, dict[str, Any]] = {}
    for name in features.columns:
        column = features[name]
        if isinstance(column.dtype, pd.CategoricalDtype) or column.dtype == object:
            levels = sorted(str(v) for v in column.dropna().unique())
            reference[name] = {"kind": "categorical", "levels": levels, "shares": _level_shares(column, levels)}
        else:
            reference[name] = _numeric_reference(column.to_numpy(dtype=float), bins)
    return reference


def shares_now(entry: dict[str, Any], values: pd.Series | np.ndarray) -> list[float]:
    """The shares of a later population on the bins (or levels) of a reference entry."""
    if entry["kind"] == "categorical":
        return _level_shares(pd.Series(values).astype(object).map(lambda v: v if pd.isna(v) else str(v)),
                             entry["levels"])
    return _numeric_shares(np.asarray(values, dtype=float), entry["edges"])


def psi(expected: list[float] | np.ndarray, actual: list[float] | np.ndarray) -> float:
    """Population stability index: sum over bins of (actual - expected) x ln(actual / expected), shares
    floored at :data:`SHARE_FLOOR`. Under 0.1 is usually read as stable, over 0.25 as a major shift."""
    e = np.maximum(np.asarray(expected, dtype=float), SHARE_FLOOR)
    a = np.maximum(np.asarray(actual, dtype=float), SHARE_FLOOR)
    if e.shape != a.shape:
        raise ValueError(f"PSI needs shares over the same bins, got {e.size} and {a.size}")
    return float(np.sum((a - e) * np.log(a / e)))


def training_reference(features: pd.DataFrame, predicted_value: np.ndarray, tiers: pd.Series,
                       bins: int = 10) -> dict[str, Any]:
    """What a training stores with its models for monitoring: the features' histograms, the predicted
    value's, and the tier shares of the training population (all customers at the training cutoff)."""
    shares = tiers.value_counts(normalize=True, sort=False)
    return {"customers": len(features), "bins": bins, "features": feature_reference(features, bins),
            "predicted_value": _numeric_reference(np.asarray(predicted_value, dtype=float), bins),
            "tier_shares": {str(tier): float(share) for tier, share in shares.items()}}


def feature_drift(reference: dict[str, dict[str, Any]], features: pd.DataFrame) -> dict[str, float]:
    """PSI of each referenced feature between the reference and ``features``, largest first; a feature the
    later population lacks gets none (it is left out)."""
    drift = {name: psi(entry["shares"], shares_now(entry, features[name]))
             for name, entry in reference.items() if name in features.columns}
    return dict(sorted(drift.items(), key=lambda item: -item[1]))
