"""Tests for the evaluation metrics: hand-computed examples, and sklearn where they overlap."""

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss

from tiercast.training.metrics import (
    brier,
    calibration_curve_table,
    churn_report,
    decile_calibration_error,
    decile_table,
    mae,
    normalized_gini,
    pr_auc,
    roc_auc,
    spearman,
    top_share_captured,
    total_ratio,
    value_report,
)


def test_normalized_gini_hand_example() -> None:
    # Ranked by prediction: 30, 0, 10, 0 -> cumulative shares .75 .75 1 1 -> raw 2 * .875 - 1 = .75.
    # Perfect ranking: 30, 10, 0, 0 -> .75 1 1 1 -> raw .875. Normalised .75 / .875 = 6/7.
    assert normalized_gini([0, 10, 0, 30], [1, 2, 3, 4]) == pytest.approx(6 / 7)
    assert normalized_gini([0, 10, 0, 30], [0, 5, 0, 99]) == pytest.approx(1.0)


def test_normalized_gini_ties_follow_input_order() -> None:
    # Constant predictions keep input order: 0, 10, 0, 30 -> .0 .25 .25 1 -> raw -.25 -> -.25 / .875.
    assert normalized_gini([0, 10, 0, 30], [1, 1, 1, 1]) == pytest.approx(-2 / 7)


def test_normalized_gini_with_refunds() -> None:
    # Model order -10, 20, 30 (total 40): -.25 .25 1 -> raw -1/3; perfect 30, 20, -10: .75 1.25 1 -> raw 1.
    assert normalized_gini([-10, 20, 30], [3, 2, 1]) == pytest.approx(-1 / 3)
    assert np.isnan(normalized_gini([-10, 5, 0], [1, 2, 3]))  # no positive total value


def test_spearman_hand_example_and_constant_input() -> None:
    # Ranks of predictions 1 2 4 3 vs 1 2 3 4: sum d^2 = 2, rho = 1 - 6 * 2 / (4 * 15) = 0.8.
    assert spearman([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(0.8)
    assert np.isnan(spearman([1, 2, 3], [5, 5, 5]))


def test_top_share_captured() -> None:
    y_true, y_pred = [5, 0, 3, 2, 10], [0.1, 0.9, 0.5, 0.2, 0.8]
    assert top_share_captured(y_true, y_pred, share=0.2) == pytest.approx(0.0)  # top 1 bought nothing
    assert top_share_captured(y_true, y_pred, share=0.4) == pytest.approx(10 / 20)
    assert top_share_captured(y_true, y_pred, share=0.5) == pytest.approx(13 / 20)  # ceil(2.5) = 3
    assert top_share_captured([1, 9], [7, 7], share=0.5) == pytest.approx(0.1)  # tie: first index first
    with pytest.raises(ValueError, match="share"):
        top_share_captured(y_true, y_pred, share=0)


def test_decile_table_counts_means_and_shares() -> None:
    y_pred = np.arange(20, dtype=float)
    y_true = 10 * y_pred
    table = decile_table(y_true, y_pred)
    assert list(table.columns) == ["decile", "count", "mean_predicted", "mean_actual", "share_of_actual"]
    assert table["decile"].tolist() == list(range(1, 11))
    assert table["count"].tolist() == [2] * 10
    assert table.loc[0, "mean_predicted"] == pytest.approx(18.5)  # decile 1 = predictions 19 and 18
    assert table.loc[0, "mean_actual"] == pytest.approx(185.0)
    assert table.loc[0, "share_of_actual"] == pytest.approx(370 / 1900)
    assert table["share_of_actual"].sum() == pytest.approx(1.0)
    uneven = decile_table(np.ones(23), np.arange(23.0))
    assert uneven["count"].tolist() == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]


def test_decile_calibration_error() -> None:
    y_true = np.arange(1.0, 11.0)
    assert decile_calibration_error(y_true, 1.1 * y_true) == pytest.approx(0.1)
    # Refunds: |mean actual| in the denominator keeps every term non-negative.
    y_true = np.array([-2.0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    y_pred = y_true + np.array([1.0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    assert decile_calibration_error(y_true, y_pred) == pytest.approx(0.5 / 10)
    # A decile with zero actual value: exact prediction counts 0; a miss is measured against the mean
    # |actual| of everyone (0.9 here), so sorting the lapsed customers together is not an infinite error.
    assert decile_calibration_error(np.r_[0.0, np.ones(9)], np.r_[0.0, np.ones(9)]) == 0.0
    assert decile_calibration_error(np.r_[0.0, np.ones(9)], np.r_[0.45, np.ones(9)]) == pytest.approx(0.5 / 10)
    assert decile_calibration_error(np.zeros(10), np.full(10, 0.5)) == np.inf  # nothing to measure against


def test_total_ratio_and_mae() -> None:
    assert total_ratio([10, 20, -5], [12, 18, 0]) == pytest.approx(30 / 25)
    assert np.isnan(total_ratio([5, -5], [1, 1]))
    assert mae([10, 20, -5], [12, 18, 0]) == pytest.approx((2 + 2 + 5) / 3)


def test_churn_metrics_hand_examples() -> None:
    y, p = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    assert roc_auc(y, p) == pytest.approx(0.75)  # 3 of 4 positive/negative pairs ordered correctly
    # Positives ranked 1st (precision 1) and 3rd (precision 2/3): average precision (1 + 2/3) / 2.
    assert pr_auc(y, p) == pytest.approx(5 / 6)
    assert brier([0, 1, 1, 0], [0.1, 0.9, 0.8, 0.3]) == pytest.approx((0.01 + 0.01 + 0.04 + 0.09) / 4)
    assert np.isnan(roc_auc([1, 1], [0.2, 0.3]))
    assert np.isnan(pr_auc([0, 0], [0.2, 0.3]))


def test_brier_and_calibration_table_agree_with_sklearn() -> None:
    rng = np.random.default_rng(3)
    p = np.r_[rng.uniform(size=500), 0.0, 0.3, 0.7, 1.0]
    y = (rng.uniform(size=p.size) < p).astype(int)
    assert brier(y, p) == pytest.approx(brier_score_loss(y, p))
    table = calibration_curve_table(y, p, bins=10)
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="uniform")
    np.testing.assert_allclose(table["observed_rate"], observed)
    np.testing.assert_allclose(table["mean_predicted"], predicted)
    assert table["count"].sum() == p.size
    assert ((table["mean_predicted"] >= table["lower"]) & (table["mean_predicted"] <= table["upper"])).all()


def test_calibration_table_skips_empty_bins() -> None:
    table = calibration_curve_table([0, 1, 1], [0.05, 0.95, 0.91], bins=10)
    assert table["bin"].tolist() == [0, 9]
    assert table["count"].tolist() == [1, 2]
    assert table["observed_rate"].tolist() == [0.0, 1.0]


def test_reports_have_stable_keys_and_match_the_functions() -> None:
    y_true, y_pred = np.array([0.0, 5, 20, 0, 3, 40, 1, 0, 8, 2]), np.linspace(1, 10, 10)
    values = value_report(y_true, y_pred)
    assert list(values) == ["gini", "spearman", "top20_capture", "decile_error", "total_ratio", "mae"]
    assert values["gini"] == normalized_gini(y_true, y_pred)
    assert values["top20_capture"] == top_share_captured(y_true, y_pred, 0.2)
    churn = churn_report([0, 1, 1, 0], [0.2, 0.7, 0.4, 0.5])
    assert list(churn) == ["auc", "pr_auc", "brier"]
    assert churn["auc"] == roc_auc([0, 1, 1, 0], [0.2, 0.7, 0.4, 0.5])


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [([1.0, 2.0], [1.0], "equal length"), ([], [], "at least one"), ([1.0, np.nan], [1.0, 2.0], "finite")],
)
def test_value_metrics_reject_bad_input(y_true, y_pred, message) -> None:
    with pytest.raises(ValueError, match=message):
        normalized_gini(y_true, y_pred)


def test_churn_metrics_reject_non_binary_outcomes_and_bad_probabilities() -> None:
    with pytest.raises(ValueError, match="0/1"):
        roc_auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        brier([0, 1], [0.1, 1.2])


def test_metrics_accept_pandas_series() -> None:
    index = [9, 7, 5, 3]
    y_true, y_pred = pd.Series([0.0, 10, 0, 30], index=index), pd.Series([1.0, 2, 3, 4], index=index)
    assert normalized_gini(y_true, y_pred) == pytest.approx(6 / 7)  # positional, not index-aligned
