"""The cross-fitting base of the value and churn boosters: classic start, period levels, customer folds.

Both models start from the classic forecast (:class:`~tiercast.training.classic.forecast.ClassicFeatures`,
fitted at the training cutoff and passed in as ``classic``) and learn how to improve on it:

* The boosters take the classic forecast as their starting score (``init_score``, on the link scale)
  and the classic columns as extra features, so boosting learns a per-customer correction of a model
  that already handles ageing (recency and tenure beyond what the training windows cover).
* **Period level.** Each training window gets its own intercept: the constant that makes the classic
  forecast match that window's actual total (or rate). Boosting therefore learns corrections *relative
  to the period*, not the period's own level (a season, or a young cohort buying more than it later
  will), which does not carry over to the future; at scoring time the level is the classic model's.
* **Customer folds.** Customers are split into ``folds`` groups by a seeded hash of their id. Fold k's
  booster trains on the earlier windows of the other customers and early-stops on fold k's customers in
  the latest window: validation is later in time *and* on customers whose overlapping label windows the
  booster never saw (with the same customers, overlapping windows let trees memorise customers and early
  stopping never stops). ``oof_prediction_`` holds each latest-window customer's prediction by the booster
  that did not train on them: the tuning, calibration and evaluation read it.
* **Refit.** What the model predicts with afterwards (``refit``, once the parameters are chosen) is one booster
  trained on the earlier windows of every customer, for the median of the rounds the folds' boosters stopped at
  (the median: where one fold finds a correction the others do not, as small data sets give, the mean would
  train it in unchecked): a quarter of the folds' trees to walk for each prediction, for the same accuracy
  (measured on every data set of ``benchmarks/model_comparison.py``). A model not refitted (or saved before
  refitting existed) averages its folds' boosters on the raw score scale.

Each model's ``explain`` gives its prediction and per-feature contributions in one pass: the boosters'
along each row's decision paths (:class:`~tiercast.training.attribution.PathAttribution`), the classic
starting score's as exact Shapley values over its RFM inputs.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit, logit
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from tiercast.features.buckets import map_buckets, release_freed_memory, worker_lock
from tiercast.features.builder import FeatureColumns
from tiercast.training.attribution import PathAttribution
from tiercast.training.classic.forecast import CLASSIC_COLUMNS, ClassicFeatures, Columns, shapley_values
from tiercast.training.classic.rfm import RFM_INPUTS
from tiercast.training.config import LightGBMParams

_EPS = 1e-6


def _log(values: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(values, _EPS))


def _logit(values: np.ndarray) -> np.ndarray:
    return logit(np.clip(values, _EPS, 1.0 - _EPS))


def _binary_level(offset: np.ndarray, y: np.ndarray) -> float:
    """The intercept b with mean(sigmoid(offset + b)) == mean(y) (clipped when y is all 0 or all 1)."""
    rate = float(np.mean(y))
    bound = 20.0
    if rate <= 0.0 or rate >= 1.0:
        return -bound if rate <= 0.0 else bound
    return float(brentq(lambda b: expit(offset + b).mean() - rate, -bound, bound, xtol=1e-10))


def _log_level(offset: np.ndarray, y: np.ndarray) -> float:
    """The intercept b with sum(exp(offset + b)) == sum(y) (y > 0 here)."""
    return float(np.log(np.sum(y)) - np.log(np.sum(np.exp(offset))))


def _period_levels(objective: str, offset: np.ndarray, y: np.ndarray, window: np.ndarray, rows: np.ndarray
                   ) -> np.ndarray:
    """Each of ``rows``' window's period level (see the module's docstring), 0 for other rows."""
    find_level = _binary_level if objective == "binary" else _log_level
    level = np.zeros(len(y))
    for w in np.unique(window[rows]):
        here = rows & (window == w)
        level[here] = find_level(offset[here], y[here])
    return level


def customer_folds(customer: pd.Series | np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold 0..folds-1 of each customer id: a seeded hash, so a customer keeps their fold in every window."""
    key = f"tiercast{seed:08d}"[-16:]
    return (pd.util.hash_array(np.asarray(customer, dtype=object), hash_key=key) % folds).astype(np.int64)


def _lgb_params(params: LightGBMParams, seed: int, threads: int, objective: str) -> dict[str, object]:
    return {
        "objective": objective,
        "learning_rate": params.learning_rate,
        "num_leaves": params.num_leaves,
        "min_data_in_leaf": params.min_child_samples,
        "feature_fraction": params.feature_fraction,
        "bagging_fraction": params.bagging_fraction,
        "bagging_freq": params.bagging_freq,
        "lambda_l2": params.lambda_l2,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": threads,
        "verbosity": -1,
    }


@dataclass(frozen=True)
class ModelInputs:
    """A feature table as a model's ``explain`` reads it (:meth:`CrossFitted.prepare`): the input matrix in
    ``feature_names`` order and the classic columns of every RFM coalition (for the classic starting score's
    attributions)."""

    feature_names: list[str]
    matrix: np.ndarray
    coalitions: np.ndarray


def _training_codes(values: pd.Series | pd.Categorical, known: list[str]) -> np.ndarray:
    """A categorical column as LightGBM reads it: float codes of the training levels ``known``, NaN for others."""
    codes = pd.Categorical(values, categories=known).codes.astype(np.float64)
    return np.where(codes == -1.0, np.nan, codes)


class CrossFitted(BaseEstimator):
    """Shared machinery of :class:`~tiercast.training.boosters.value.ValueModel` and
    :class:`~tiercast.training.boosters.churn.ChurnModel`: classic inputs, period levels, customer-fold
    boosters, contributions.

    ``classic``: the :class:`ClassicFeatures` fitted at the training cutoff (a pre-fitted sub-model, as
    scikit-learn's ``prefit``); it gives rows without classic columns theirs. ``fit(X, y, window)`` keeps it
    as ``classic_``; :meth:`at` gives the model for rows built at a later date. ``threads``: LightGBM's threads
    per booster (the boosters are the same for a given count); ``workers``: how many folds' boosters are trained
    side by side, each in a forked process (the same boosters for any number).
    """

    # Models pickled before ``workers`` existed read this default.
    workers = 1

    def __init__(self, params: LightGBMParams | None = None, seed: int = 42, folds: int = 4, threads: int = 1,
                 classic: ClassicFeatures | None = None, workers: int = 1):
        self.params = params
        self.seed = seed
        self.folds = folds
        self.threads = threads
        self.classic = classic
        self.workers = workers

    # ------------------------------------------------------------------------------------------ inputs
    def _inputs(self, X: pd.DataFrame | FeatureColumns) -> np.ndarray:
        """Model inputs as a float matrix in ``feature_names_`` order: the builder columns, then the classic
        columns. Rows of past windows arrive with their own window's classic columns; new rows get them
        from the classic model of the training cutoff."""
        if all(c in X for c in CLASSIC_COLUMNS):
            return self._numeric(X, self.feature_names_)
        names = self.feature_names_[:-len(CLASSIC_COLUMNS)]
        own = self._numeric(X, names)
        return np.hstack([own, self.classic_.forecast(own[:, [names.index(c) for c in RFM_INPUTS]])])

    def prepare(self, X: pd.DataFrame | FeatureColumns) -> ModelInputs:
        """``X`` as :meth:`explain` reads it (see :meth:`_inputs`; other columns of ``X`` are ignored)."""
        check_is_fitted(self)
        rfm = [self.feature_names_.index(c) for c in RFM_INPUTS]  # builder columns: the same place in both
        if all(c in X for c in CLASSIC_COLUMNS):
            matrix = self._numeric(X, self.feature_names_)
            coalitions = self.classic_.coalitions(matrix[:, rfm])
        else:
            names = self.feature_names_[:-len(CLASSIC_COLUMNS)]
            own = self._numeric(X, names)
            coalitions = self.classic_.coalitions(own[:, rfm])
            matrix = np.hstack([own, coalitions[-1]])  # the last coalition is the rows' own forecast
        return ModelInputs(self.feature_names_, matrix, coalitions)

    def at(self, as_of: pd.Timestamp) -> "CrossFitted":
        """This model scoring rows built at ``as_of``: the same boosters, and new rows' classic columns from
        ``classic_.at(as_of)`` (the seasonal clock anchored at ``as_of``, not at the training cutoff). Itself
        when that changes nothing (calendar time, or ``as_of`` on the training cutoff's day)."""
        check_is_fitted(self)
        classic = self.classic_.at(as_of)
        if classic is self.classic_:
            return self
        other = copy.copy(self)
        other.classic_ = classic
        if "path_attribution" in self.__dict__:  # the copy drops it (see __getstate__); it reads the boosters only
            other.path_attribution = self.path_attribution
        return other

    def _numeric(self, frame: pd.DataFrame | FeatureColumns, names: list[str]) -> np.ndarray:
        """Columns ``names`` of ``frame`` as LightGBM reads a data frame: categorical columns as codes of the
        levels seen in training (unknown levels as missing), in a float matrix the boosters can take directly.
        """
        levels = iter(self._boosters()[0].pandas_categorical or [])  # the training levels, in column order
        columns = []
        for name in names:
            column = frame[name]
            if isinstance(column.dtype, pd.CategoricalDtype):
                column = _training_codes(column, next(levels))
            columns.append(np.asarray(column, dtype=np.float64))
        return np.column_stack(columns)

    @staticmethod
    def _classic(inputs: np.ndarray) -> Columns:
        """The classic columns of an input matrix, by name."""
        return dict(zip(CLASSIC_COLUMNS, inputs[:, -len(CLASSIC_COLUMNS):].T, strict=True))

    # ---------------------------------------------------------------------------------------- training
    def _fit_task(self, objective: str, X: pd.DataFrame, y: np.ndarray, offset: np.ndarray,
                  window: np.ndarray, fold: np.ndarray, rows: np.ndarray
                  ) -> tuple[list[lgb.Booster], np.ndarray, float]:
        """Fold boosters of one objective ("binary" or "gamma", both on a link scale) trained on ``rows``.

        Returns the boosters, the out-of-fold raw scores of every latest-window row (NaN elsewhere) and
        the latest window's period level."""
        params = self.params or LightGBMParams()
        latest = window == window.max()
        level = _period_levels(objective, offset, y, window, rows)
        for k in range(self.folds):
            train, valid = rows & ~latest & (fold != k), rows & latest & (fold == k)
            if not train.any() or not valid.any():
                raise ValueError(f"customer fold {k} has no {'training' if not train.any() else 'validation'} "
                                 "rows: too few customers for the configured folds")
        # The folds train side by side in forked processes (LightGBM is not safe to call from several threads at
        # once). One at a time takes its rows of X and bins them into its datasets, which then drop the rows.
        # Every LightGBM call of a fold runs self.threads OpenMP threads, and only one-thread folds are forked: a
        # forked process that starts more OpenMP threads than one, after this process used OpenMP, hangs (libgomp).
        binning = worker_lock()
        workers = self.workers if self.threads == 1 else 1

        def fold_booster(k: int) -> tuple[lgb.Booster, np.ndarray]:
            train, valid, mine = rows & ~latest & (fold != k), rows & latest & (fold == k), latest & (fold == k)
            lgb_params = _lgb_params(params, self.seed + k, self.threads, objective)
            with binning:
                data = lgb.Dataset(X[train], y[train], init_score=offset[train] + level[train],
                                   params=lgb_params).construct()
                check = lgb.Dataset(X[valid], y[valid], init_score=offset[valid] + level[valid], reference=data,
                                    params=lgb_params).construct()
            booster = lgb.train(lgb_params, data, num_boost_round=params.max_rounds, valid_sets=[check],
                                callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)])
            booster.free_dataset()
            del data, check
            release_freed_memory()  # what the datasets held, before the next fold of this process
            return booster, booster.predict(X[mine], raw_score=True, num_iteration=booster.best_iteration,
                                            num_threads=self.threads)

        boosters, oof = [], np.full(len(y), np.nan)
        for k, (booster, raw) in enumerate(map_buckets(fold_booster, self.folds, workers, "training folds")):
            boosters.append(booster)
            oof[latest & (fold == k)] = raw
        latest_level = level[rows & latest]
        return boosters, oof, float(latest_level[0]) if len(latest_level) else 0.0

    def _refit_tasks(self, X: pd.DataFrame, window: np.ndarray,
                     tasks: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, list[lgb.Booster]]]
                     ) -> list[lgb.Booster]:
        """The booster each task's prediction is made with, (objective, y, offset, rows, fold boosters) as for
        :meth:`_fit_task`: trained on the earlier windows of every customer of ``rows`` for as many rounds as its
        folds' boosters stopped at (their median). Tasks train side by side, as the folds do."""
        params = self.params or LightGBMParams()
        latest = window == window.max()
        binning = worker_lock()
        self.__dict__.pop("path_attribution", None)  # the walk of the boosters that predicted until now

        def refit(t: int) -> lgb.Booster:
            objective, y, offset, rows, folds = tasks[t]
            rounds = max(1, round(float(np.median([b.best_iteration or b.current_iteration() for b in folds]))))
            level = _period_levels(objective, offset, y, window, rows)
            train = rows & ~latest
            lgb_params = _lgb_params(params, self.seed + self.folds, self.threads, objective)
            with binning:
                data = lgb.Dataset(X[train], y[train], init_score=offset[train] + level[train],
                                   params=lgb_params).construct()
            booster = lgb.train(lgb_params, data, num_boost_round=rounds)
            booster.free_dataset()
            del data
            release_freed_memory()
            return booster

        return list(map_buckets(refit, len(tasks), self.workers if self.threads == 1 else 1, "refitting"))

    def _setup(self, X: pd.DataFrame, window: pd.Series) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """Record the inputs and the classic model for new rows; return inputs, windows and folds."""
        if self.classic is None:
            raise ValueError(f"{type(self).__name__} needs classic: a ClassicFeatures fitted at the training cutoff")
        check_is_fitted(self.classic)
        self.classic_ = self.classic
        self.feature_names_ = [c for c in X.columns if c not in CLASSIC_COLUMNS] + CLASSIC_COLUMNS
        return X[self.feature_names_], np.asarray(window), customer_folds(X.index, self.folds, self.seed)

    @staticmethod
    def _predicting(folds: list[lgb.Booster], refit: lgb.Booster | None) -> list[lgb.Booster]:
        """The boosters a prediction averages: the refitted one (models saved before it existed: the folds')."""
        return folds if refit is None else [refit]

    @staticmethod
    def _raw(boosters: list[lgb.Booster], inputs: np.ndarray) -> np.ndarray:
        """Mean over folds of the raw (link-scale) score."""
        return np.mean([b.predict(inputs, raw_score=True, num_iteration=b.best_iteration) for b in boosters],
                       axis=0)

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("path_attribution", None)  # tables derived from the boosters, rebuilt on first use
        return state

    def _importance(self, boosters: list[lgb.Booster]) -> pd.Series:
        gain = np.mean([b.feature_importance(importance_type="gain", iteration=b.best_iteration)
                        for b in boosters], axis=0)
        return pd.Series(gain, index=self.feature_names_).sort_values(ascending=False)

    def _add_classic_start(self, inputs: ModelInputs, contributions: np.ndarray,
                           link: Callable[[Columns], np.ndarray]) -> np.ndarray:
        """Boosters' contributions plus the classic starting score (``link`` of the classic columns) split
        over the RFM inputs it is computed from."""
        rfm = [self.feature_names_.index(c) for c in RFM_INPUTS]
        contributions[:, rfm] += shapley_values(inputs.coalitions, link)
        return contributions

    def _trees(self) -> tuple[list[lgb.Booster], list[float], list[int]]:
        """The boosters this model adds up, their weights and output parts (see :class:`PathAttribution`)."""
        raise NotImplementedError

    @staticmethod
    def _means(*parts: list[lgb.Booster], scale: float = 1.0) -> tuple[list[lgb.Booster], list[float], list[int]]:
        """:meth:`_trees` for ``scale`` x the mean raw score of each part's fold boosters."""
        return ([b for boosters in parts for b in boosters],
                [scale / len(boosters) for boosters in parts for _ in boosters],
                [p for p, boosters in enumerate(parts) for _ in boosters])

    @cached_property
    def path_attribution(self) -> PathAttribution:
        """The walk of this model's boosters (:meth:`_trees`), built on first use."""
        boosters, weights, parts = self._trees()
        return PathAttribution(boosters, weights, len(self.feature_names_), parts)

    def _explained(self, inputs: ModelInputs, raw: np.ndarray, boosted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The prediction and contributions from the walk's raw scores per part and contributions (see
        :meth:`explain`)."""
        raise NotImplementedError

    def explain(self, X: pd.DataFrame | FeatureColumns) -> tuple[np.ndarray, np.ndarray]:
        """The prediction for each row of ``X`` and the per-feature contributions behind it, (rows,
        ``feature_names_``), from one pass: the boosters' along each row's decision paths
        (:mod:`tiercast.training.attribution`), the classic starting score's as exact Shapley values over its
        RFM inputs. They add up to the prediction on its link scale, less a constant."""
        return self.explain_inputs(self.prepare(X))

    def explain_inputs(self, inputs: ModelInputs) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`explain` of a table prepared already, by this model or by one it :meth:`reads_like`."""
        return self._explained(inputs, *self.path_attribution.explain(inputs.matrix))

    def reads_like(self, other: object) -> bool:
        """Whether ``other`` prepares every table as this model does (the same inputs, training levels and
        classic forecast), so that one preparation serves both: the value and churn models of one training."""
        return (isinstance(other, CrossFitted) and self.feature_names_ == other.feature_names_
                and self._boosters()[0].pandas_categorical == other._boosters()[0].pandas_categorical
                and pickle.dumps(self.classic_) == pickle.dumps(other.classic_))

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """``explain``'s contributions as a frame (rows of ``X``, columns ``feature_names_``)."""
        return pd.DataFrame(self.explain(X)[1], index=X.index, columns=self.feature_names_)

    @property
    def best_iterations_(self) -> list[int]:
        return [b.best_iteration for b in self._boosters()]
