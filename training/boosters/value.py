"""The value model: net value over the horizon, P(value > 0) x E[value | value > 0].

A two-part (hurdle) model: the point mass at zero and the long right tail get a classic-started booster
each (binary, and gamma with a log link); the few negative (refund-only) values count as zero.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.utils.validation import check_is_fitted

from tiercast.features.builder import FeatureColumns
from tiercast.training.boosters.cross_fitted import _EPS, CrossFitted, ModelInputs, _log, _logit
from tiercast.training.classic.forecast import Columns


class ValueModel(CrossFitted):
    """Net value over the horizon: P(value > 0) x E[value | value > 0], each a classic-started booster."""

    def fit(self, X: pd.DataFrame, y: np.ndarray, window: pd.Series) -> "ValueModel":
        """Fit on stacked examples.

        X: one row per customer and window (index customer_id): builder features and the classic columns
        of the row's own window; y: value over the horizon after the window cutoff; window: each row's
        cutoff (the latest one validates).
        """
        inputs, win, fold = self._setup(X, window)
        y = np.asarray(y, dtype=np.float64)
        buy_offset, spend_offset = self._offsets(inputs)
        self.purchase_boosters_, buy_oof, _ = self._fit_task(
            "binary", inputs, (y > 0).astype(np.float64), buy_offset, win, fold, np.ones(len(y), dtype=bool))
        self.spend_boosters_, spend_oof, _ = self._fit_task(
            "gamma", inputs, np.where(y > 0, y, 1.0), spend_offset, win, fold, y > 0)
        latest = win == win.max()
        self.oof_prediction_ = pd.Series(expit(buy_oof[latest] + buy_offset[latest])
                                         * np.exp(spend_oof[latest] + spend_offset[latest]),
                                         index=X.index[latest], name="predicted_value")
        return self

    @staticmethod
    def _offsets(classic: Columns) -> tuple[np.ndarray, np.ndarray]:
        """Classic starting scores: logit P(any purchase) and log E[value | a purchase]."""
        buy = 1.0 - np.asarray(classic["bgnbd_churn_probability"], dtype=np.float64)
        value = np.asarray(classic["bgnbd_expected_value"], dtype=np.float64)
        return _logit(buy), _log(value / np.maximum(buy, _EPS))

    def _boosters(self) -> list[lgb.Booster]:
        return self.purchase_boosters_ + self.spend_boosters_

    def predict(self, X: pd.DataFrame | FeatureColumns) -> np.ndarray:
        """Predicted net value over the horizon per row of ``X``."""
        check_is_fitted(self)
        inputs = self._inputs(X)
        buy_offset, spend_offset = self._offsets(self._classic(inputs))
        return (expit(self._raw(self.purchase_boosters_, inputs) + buy_offset)
                * np.exp(self._raw(self.spend_boosters_, inputs) + spend_offset))

    def _trees(self) -> tuple[list[lgb.Booster], list[float], list[int]]:
        return self._means(self.purchase_boosters_, self.spend_boosters_)  # part 0: purchase, part 1: spend

    def _explained(self, inputs: ModelInputs, raw: np.ndarray, boosted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted value and contributions to log value (purchase log-odds plus log spend)."""
        buy_offset, spend_offset = self._offsets(self._classic(inputs.matrix))
        prediction = expit(raw[:, 0] + buy_offset) * np.exp(raw[:, 1] + spend_offset)
        return prediction, self._add_classic_start(inputs, boosted,
                                                   lambda classic: np.sum(self._offsets(classic), axis=0))

    def feature_importance(self) -> pd.Series:
        return self._importance(self._boosters())
