"""Evaluation metrics for customer value and churn predictions.

Pure functions: 1-D arrays in, floats or small DataFrames out. Value metrics follow Wang, Liu & Miao
(2019), "A Deep Probabilistic Model for Customer Lifetime Value Prediction" (ZILN paper):
normalised Gini for discrimination and decile charts for calibration. Actual values may be negative
(refunds). Rankings use a stable sort on the prediction, highest first, ties kept in input order, so
every result is deterministic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def _pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate two equally long, non-empty, finite 1-D arrays and return them as float64."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.ndim != 1 or t.shape != p.shape:
        raise ValueError(f"expected two 1-D arrays of equal length, got shapes {t.shape} and {p.shape}")
    if t.size == 0:
        raise ValueError("metrics need at least one observation")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise ValueError("metrics need finite values (no NaN or inf)")
    return t, p


def _rank_order(y_pred: FloatArray) -> NDArray[np.intp]:
    """Indices from highest to lowest prediction; ties keep their input order."""
    return np.argsort(-y_pred, kind="stable")


def _raw_gini(values_in_rank_order: FloatArray) -> float:
    """2 x mean cumulative share of total value along the ranking - 1 (ZILN gain-chart Gini)."""
    cumulative_share = np.cumsum(values_in_rank_order) / values_in_rank_order.sum()
    return float(2.0 * cumulative_share.mean() - 1.0)


def normalized_gini(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Gini of the ranking by prediction over the Gini of the perfect ranking (by actual value).

    1 = perfect ordering, about 0 = random. NaN when total actual value is not positive or the perfect
    ranking has zero Gini (all actuals equal).
    """
    t, p = _pair(y_true, y_pred)
    if t.sum() <= 0:
        return float("nan")
    perfect = _raw_gini(t[_rank_order(t)])
    if perfect == 0:
        return float("nan")
    return _raw_gini(t[_rank_order(p)]) / perfect


def spearman(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Spearman rank correlation (ties get average ranks); NaN if either input is constant."""
    t, p = _pair(y_true, y_pred)
    if np.ptp(t) == 0 or np.ptp(p) == 0:
        return float("nan")
    from scipy.stats import spearmanr  # here, not at the top: scipy.stats adds 0.7 s to every command's start

    return float(spearmanr(t, p).statistic)


def top_share_captured(y_true: ArrayLike, y_pred: ArrayLike, share: float = 0.2) -> float:
    """Share of total actual value held by the top ``share`` of customers by prediction.

    The top group has ceil(share x n) customers. NaN when total actual value is not positive.
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    t, p = _pair(y_true, y_pred)
    total = t.sum()
    if total <= 0:
        return float("nan")
    k = int(np.ceil(share * t.size))
    return float(t[_rank_order(p)[:k]].sum() / total)


def decile_table(y_true: ArrayLike, y_pred: ArrayLike, bins: int = 10) -> pd.DataFrame:
    """Customers split by prediction rank into ``bins`` equal-count groups, decile 1 = highest.

    Group sizes differ by at most one (the first groups take the remainder); with fewer customers
    than bins only the non-empty groups appear. Columns: decile, count, mean_predicted, mean_actual,
    share_of_actual (group's actual value over the total; NaN if the total is 0).
    """
    t, p = _pair(y_true, y_pred)
    order = _rank_order(p)
    sizes = [len(chunk) for chunk in np.array_split(order, bins)]
    decile = np.empty(t.size, dtype=np.int64)
    decile[order] = np.repeat(np.arange(1, bins + 1), sizes)
    frame = pd.DataFrame({"decile": decile, "predicted": p, "actual": t})
    table = frame.groupby("decile", sort=True).agg(
        count=("actual", "size"),
        mean_predicted=("predicted", "mean"),
        mean_actual=("actual", "mean"),
        sum_actual=("actual", "sum"),
    )
    total = t.sum()
    table["share_of_actual"] = table["sum_actual"] / total if total != 0 else np.nan
    return table.drop(columns="sum_actual").reset_index()


def decile_calibration_error(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean over prediction deciles of |mean predicted - mean actual| / |mean actual| (ZILN paper).

    Absolute value in the denominator so refunds cannot turn an error negative. A decile whose mean actual
    is exactly 0 (a model that sorts every lapsed customer together) has no relative error; its gap is
    measured against the mean |actual| of all customers instead, so that finding the lapsed customers is
    not scored as an infinite error. Only when every actual is 0 is the result inf.
    """
    table = decile_table(y_true, y_pred)
    gap = (table["mean_predicted"] - table["mean_actual"]).abs().to_numpy()
    scale = table["mean_actual"].abs().to_numpy()
    scale = np.where(scale == 0, np.abs(np.asarray(y_true, dtype=np.float64)).mean(), scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(gap == 0, 0.0, gap / scale)
    return float(ratios.mean())


def total_ratio(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Sum of predictions over sum of actuals (1 = unbiased in total); NaN if the actual sum is 0."""
    t, p = _pair(y_true, y_pred)
    total = t.sum()
    return float(p.sum() / total) if total != 0 else float("nan")


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error."""
    t, p = _pair(y_true, y_pred)
    return float(np.abs(t - p).mean())


def _binary(y: ArrayLike, p: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate 0/1 outcomes and probabilities in [0, 1]."""
    labels, prob = _pair(y, p)
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError("churn outcomes must be 0/1 (or bool)")
    if (prob < 0).any() or (prob > 1).any():
        raise ValueError("churn probabilities must lie in [0, 1]")
    return labels, prob


def roc_auc(y: ArrayLike, p: ArrayLike) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    labels, prob = _binary(y, p)
    if labels.min() == labels.max():
        return float("nan")
    from sklearn.metrics import roc_auc_score  # here: sklearn is slow to import and most commands never need it

    return float(roc_auc_score(labels, prob))


def pr_auc(y: ArrayLike, p: ArrayLike) -> float:
    """Area under the precision-recall curve as average precision (step-wise, no interpolation).

    NaN when there is no positive outcome.
    """
    labels, prob = _binary(y, p)
    if labels.max() == 0:
        return float("nan")
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(labels, prob))


def brier(y: ArrayLike, p: ArrayLike) -> float:
    """Brier score: mean squared difference between probability and 0/1 outcome."""
    labels, prob = _binary(y, p)
    return float(np.mean((prob - labels) ** 2))


def calibration_curve_table(y: ArrayLike, p: ArrayLike, bins: int = 10) -> pd.DataFrame:
    """Reliability table over ``bins`` equal-width probability bins on [0, 1] (non-empty bins only).

    Columns: bin (0-based), lower, upper, count, mean_predicted, observed_rate. Bin edges and the
    assignment of edge values match ``sklearn.calibration.calibration_curve(strategy="uniform")``.
    """
    labels, prob = _binary(y, p)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.searchsorted(edges[1:-1], prob, side="right")
    frame = pd.DataFrame({"bin": which, "predicted": prob, "observed": labels})
    table = frame.groupby("bin", sort=True).agg(
        count=("observed", "size"),
        mean_predicted=("predicted", "mean"),
        observed_rate=("observed", "mean"),
    )
    table.insert(0, "upper", edges[table.index + 1])
    table.insert(0, "lower", edges[table.index])
    return table.reset_index()


def value_report(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """All value metrics under stable keys, for logging and champion comparisons."""
    return {
        "gini": normalized_gini(y_true, y_pred),
        "spearman": spearman(y_true, y_pred),
        "top20_capture": top_share_captured(y_true, y_pred, 0.2),
        "decile_error": decile_calibration_error(y_true, y_pred),
        "total_ratio": total_ratio(y_true, y_pred),
        "mae": mae(y_true, y_pred),
    }


def churn_report(y: ArrayLike, p: ArrayLike) -> dict[str, float]:
    """All churn metrics under stable keys, for logging and champion comparisons."""
    return {"auc": roc_auc(y, p), "pr_auc": pr_auc(y, p), "brier": brier(y, p)}
