"""The value model: net value over the horizon, P(value > 0) x E[value | value > 0].

A two-part (hurdle) model: the point mass at zero and the long right tail get a classic-started booster
each (binary, and gamma with a log link); the few negative (refund-only) values count as zero.

**Stretch.** Both parts learn per-customer corrections with a loss in which every customer weighs alike, so
a correction that a few heavy buyers share (wholesale buyers, whom BG/NBD's purchase-bound dropout expects to
slow down) is too small to win a split, and the customer totals it makes up go missing. The prediction is
therefore raised to a power fitted on the latest window's out-of-fold predictions (the Poisson likelihood of
actual = a x prediction^power, which weighs customers by their value), keeping that window's predicted
total: one monotone parameter, so the ranking is untouched and only the spread between light and heavy
buyers moves.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import expit
from sklearn.utils.validation import check_is_fitted

from tiercast.features.builder import FeatureColumns
from tiercast.training.boosters.cross_fitted import _EPS, CrossFitted, ModelInputs, _log, _logit
from tiercast.training.classic.forecast import Columns


class ValueModel(CrossFitted):
    """Net value over the horizon: P(value > 0) x E[value | value > 0], each a classic-started booster."""

    # Models saved before the refitted boosters existed predict with their folds' boosters.
    purchase_booster_: lgb.Booster | None = None
    spend_booster_: lgb.Booster | None = None

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
        raw = expit(buy_oof[latest] + buy_offset[latest]) * np.exp(spend_oof[latest] + spend_offset[latest])
        self.stretch_, self.stretch_scale_ = fit_stretch(y[latest], raw)
        self.oof_prediction_ = pd.Series(self._stretched(raw), index=X.index[latest], name="predicted_value")
        return self

    def refit(self, X: pd.DataFrame, y: np.ndarray, window: pd.Series) -> "ValueModel":
        """Add the boosters this model predicts with, one per part in place of its folds' four: each trained on
        every customer's earlier windows of the examples :meth:`fit` took, for the median of its folds' rounds.
        Until then (and in models saved before it existed) the folds' boosters predict."""
        check_is_fitted(self)
        inputs, win = X[self.feature_names_], np.asarray(window)
        y = np.asarray(y, dtype=np.float64)
        buy_offset, spend_offset = self._offsets(inputs)
        self.purchase_booster_, self.spend_booster_ = self._refit_tasks(inputs, win, [
            ("binary", (y > 0).astype(np.float64), buy_offset, np.ones(len(y), dtype=bool), self.purchase_boosters_),
            ("gamma", np.where(y > 0, y, 1.0), spend_offset, y > 0, self.spend_boosters_)])
        return self

    def _stretched(self, raw: np.ndarray) -> np.ndarray:
        # Models saved before the stretch existed predict as they did.
        return getattr(self, "stretch_scale_", 1.0) * raw ** getattr(self, "stretch_", 1.0)

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
        purchase, spend = self._predicting_parts()
        return self._stretched(expit(self._raw(purchase, inputs) + buy_offset)
                               * np.exp(self._raw(spend, inputs) + spend_offset))

    def _trees(self) -> tuple[list[lgb.Booster], list[float], list[int]]:
        return self._means(*self._predicting_parts())  # part 0: purchase, part 1: spend

    def _predicting_parts(self) -> tuple[list[lgb.Booster], list[lgb.Booster]]:
        return (self._predicting(self.purchase_boosters_, self.purchase_booster_),
                self._predicting(self.spend_boosters_, self.spend_booster_))

    def _explained(self, inputs: ModelInputs, raw: np.ndarray, boosted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted value and contributions to log value (purchase log-odds plus log spend)."""
        buy_offset, spend_offset = self._offsets(self._classic(inputs.matrix))
        prediction = self._stretched(expit(raw[:, 0] + buy_offset) * np.exp(raw[:, 1] + spend_offset))
        # The stretch multiplies log value by a positive constant: the drivers' order and signs stay.
        return prediction, self._add_classic_start(inputs, boosted,
                                                   lambda classic: np.sum(self._offsets(classic), axis=0))

    def feature_importance(self) -> pd.Series:
        return self._importance(self._boosters())


def fit_stretch(actual: np.ndarray, predicted: np.ndarray, bounds: tuple[float, float] = (0.5, 2.0)
                ) -> tuple[float, float]:
    """(power, scale) with scale x predicted^power the stretched prediction: the power maximises the Poisson
    likelihood of ``actual`` (refunds counted as 0) given a x predicted^power (a at its best for each power),
    and the scale keeps the total of ``predicted``. (1, 1) when nothing is bought or predicted."""
    y = np.maximum(np.asarray(actual, dtype=np.float64), 0.0)
    p = np.asarray(predicted, dtype=np.float64)
    keep = p > 0
    y, log_p = y[keep], np.log(p[keep])
    if y.sum() <= 0 or len(y) < 2 or np.ptp(log_p) == 0:
        return 1.0, 1.0
    centre = log_p.mean()  # powers of predictions around their geometric mean: no overflow

    def negative_log_likelihood(power: float) -> float:
        scaled = np.exp(power * (log_p - centre))
        return -(y.sum() * np.log(y.sum() / scaled.sum()) + power * np.dot(y, log_p - centre))

    power = float(minimize_scalar(negative_log_likelihood, bounds=bounds, method="bounded",
                                  options={"xatol": 1e-6}).x)
    return power, float(p[keep].sum() / np.exp(power * log_p).sum())
