"""The churn model: the probability of no purchase (no order with amount > 0) over the horizon.

A classic-started binary booster whose probabilities are Platt-calibrated on the latest window's
out-of-fold predictions. ``predict_proba`` gives the churn probability, ``predict`` the churn label.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from tiercast.features.builder import FeatureColumns
from tiercast.training.boosters.cross_fitted import CrossFitted, ModelInputs, _logit
from tiercast.training.classic.forecast import Columns


class ChurnModel(CrossFitted):
    """Probability of no purchase (no order with amount > 0) in the horizon: a classic-started binary
    booster, Platt-calibrated on the latest window's out-of-fold predictions."""

    # Models saved before the refitted booster existed predict with their folds' boosters.
    booster_: lgb.Booster | None = None

    def fit(self, X: pd.DataFrame, y: np.ndarray, window: pd.Series) -> "ChurnModel":
        """Arguments as :meth:`ValueModel.fit <tiercast.training.boosters.value.ValueModel.fit>`, with y the
        churned flag (0/1)."""
        inputs, win, fold = self._setup(X, window)
        y = np.asarray(y, dtype=np.float64)
        offset = self._offset(inputs)
        self.boosters_, oof, level = self._fit_task("binary", inputs, y, offset, win, fold, np.ones(len(y), dtype=bool))
        latest = win == win.max()
        # Platt scaling of the shape: fitted with the latest window's level, applied without one (at
        # scoring time the level is the classic model's), so it corrects over- or under-confidence only.
        score = oof[latest] + offset[latest]
        platt = LogisticRegression(C=1e6).fit((score + level)[:, None], y[latest].astype(int))
        self.calibration_ = (float(platt.coef_[0, 0]), float(platt.intercept_[0]))
        self.oof_prediction_ = pd.Series(self._calibrate(score), index=X.index[latest], name="churn_probability")
        return self

    def refit(self, X: pd.DataFrame, y: np.ndarray, window: pd.Series) -> "ChurnModel":
        """As :meth:`ValueModel.refit <tiercast.training.boosters.value.ValueModel.refit>`: the one booster this
        model predicts with, in place of its folds' four."""
        check_is_fitted(self)
        inputs, y = X[self.feature_names_], np.asarray(y, dtype=np.float64)
        [self.booster_] = self._refit_tasks(inputs, np.asarray(window), [
            ("binary", y, self._offset(inputs), np.ones(len(y), dtype=bool), self.boosters_)])
        return self

    @staticmethod
    def _offset(classic: Columns) -> np.ndarray:
        return _logit(np.asarray(classic["bgnbd_churn_probability"], dtype=np.float64))

    def _calibrate(self, score: np.ndarray) -> np.ndarray:
        slope, intercept = self.calibration_
        return expit(slope * score + intercept)

    def _boosters(self) -> list[lgb.Booster]:
        return self.boosters_

    def predict_proba(self, X: pd.DataFrame | FeatureColumns) -> np.ndarray:
        """The churn probability of each row of ``X`` (one number per row)."""
        check_is_fitted(self)
        inputs = self._inputs(X)
        boosters = self._predicting(self.boosters_, self.booster_)
        return self._calibrate(self._raw(boosters, inputs) + self._offset(self._classic(inputs)))

    def predict(self, X: pd.DataFrame | FeatureColumns) -> np.ndarray:
        """The churn label of each row of ``X``: 1 where the churn probability is at least 0.5, else 0."""
        return (self.predict_proba(X) >= 0.5).astype(np.int64)

    def _trees(self) -> tuple[list[lgb.Booster], list[float], list[int]]:
        # the mean raw score x the Platt slope
        return self._means(self._predicting(self.boosters_, self.booster_), scale=self.calibration_[0])

    def _explained(self, inputs: ModelInputs, raw: np.ndarray, boosted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Churn probability and contributions to its calibrated log-odds."""
        slope, intercept = self.calibration_
        probability = expit(raw[:, 0] + slope * self._offset(self._classic(inputs.matrix)) + intercept)
        return probability, self._add_classic_start(inputs, boosted, lambda classic: slope * self._offset(classic))

    def feature_importance(self) -> pd.Series:
        return self._importance(self.boosters_)
