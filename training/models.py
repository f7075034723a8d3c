"""LightGBM models for a customer's value over the horizon and their churn probability.

Both follow scikit-learn's estimator API and take an explicit, time-based validation set for early
stopping (the latest rolling window), never a random split.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from training.config import LightGBMParams


def _lgb_params(params: LightGBMParams, seed: int, **objective: object) -> dict[str, object]:
    return {
        "learning_rate": params.learning_rate,
        "num_leaves": params.num_leaves,
        "min_child_samples": params.min_child_samples,
        "colsample_bytree": params.feature_fraction,
        "subsample": params.bagging_fraction,
        "subsample_freq": params.bagging_freq,
        "reg_lambda": params.lambda_l2,
        "n_estimators": params.max_rounds,
        "random_state": seed,
        "deterministic": True,
        "force_row_wise": True,
        "n_jobs": 2,
        "verbose": -1,
        **objective,
    }


class _LightGBMModel(BaseEstimator):
    def __init__(self, params: LightGBMParams | None = None, seed: int = 42):
        self.params = params
        self.seed = seed

    def _fit(self, model: lgb.LGBMModel, X: pd.DataFrame, y: np.ndarray, X_val: pd.DataFrame,
             y_val: np.ndarray) -> None:
        params = self.params or LightGBMParams()
        model.fit(X, y, eval_X=(X_val,), eval_y=(y_val,),
                  callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)])
        self.model_ = model
        self.feature_names_ = list(X.columns)
        self.best_iteration_ = int(model.best_iteration_ or params.max_rounds)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-feature contributions to each prediction (on the model's raw score scale)."""
        raw = self.model_.predict(X[self.feature_names_], pred_contrib=True)
        return pd.DataFrame(raw[:, :-1], index=X.index, columns=self.feature_names_)

    def feature_importance(self) -> pd.Series:
        gain = self.model_.booster_.feature_importance(importance_type="gain")
        return pd.Series(gain, index=self.feature_names_).sort_values(ascending=False)


class ValueModel(_LightGBMModel):
    """Net value over the horizon: Tweedie regression on the value clipped at zero.

    Most customers have zero next-period value and a few are negative (refunds): Tweedie handles the
    point mass at zero and the long right tail; clipping loses only the refund-only customers' small
    negative values.
    """

    def fit(self, X: pd.DataFrame, y: np.ndarray, X_val: pd.DataFrame, y_val: np.ndarray) -> "ValueModel":
        params = self.params or LightGBMParams()
        model = lgb.LGBMRegressor(**_lgb_params(params, self.seed, objective="tweedie",
                                                tweedie_variance_power=1.5))
        self._fit(model, X, np.clip(y, 0, None), X_val, np.clip(y_val, 0, None))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.model_.predict(X[self.feature_names_])


class ChurnModel(_LightGBMModel):
    """Probability of no positive order in the horizon: a LightGBM binary classifier."""

    def fit(self, X: pd.DataFrame, y: np.ndarray, X_val: pd.DataFrame, y_val: np.ndarray) -> "ChurnModel":
        params = self.params or LightGBMParams()
        model = lgb.LGBMClassifier(**_lgb_params(params, self.seed, objective="binary"))
        self._fit(model, X, np.asarray(y, dtype=int), X_val, np.asarray(y_val, dtype=int))
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.model_.predict_proba(X[self.feature_names_])[:, 1]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(X)
