"""LightGBM models for a customer's value over the horizon and their churn probability.

Both start from the classic forecast and learn how to improve on it:

* :class:`ClassicFeatures` fits BG/NBD (purchases) and Gamma-Gamma (spend) on one population's RFM
  columns and turns them into forecasts over the horizon. In training it is refitted at every window
  cutoff on the customers known then, so no window sees parameters learnt from its own future.
* **Seasonal clock.** With at least two full years of history before a cutoff, the population's
  purchase days per calendar month, over a centred 2x12 moving average, give a seasonal index
  (shrunk towards 1 by its sampling noise). BG/NBD then runs on operational time (days weighted by
  the index), as a Pareto/NBD world with seasonal intensity would: right after a December peak it no
  longer reads the peak as every customer's new normal. Shorter histories keep calendar time.
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
  stopping never stops). The prediction averages the folds on the raw score scale; ``oof_prediction_``
  holds each latest-window customer's prediction by the booster that did not train on them.

Value is a two-part (hurdle) model: P(value > 0) times E[value | value > 0] (gamma, log link). The point
mass at zero and the long right tail get a model each; the few negative (refund-only) values count as
zero. Churn is a binary booster whose probabilities are Platt-calibrated on the out-of-fold predictions.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from itertools import combinations
from math import factorial

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit, logit
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression

from tiercast.features.builder import FeatureColumns
from tiercast.training.attribution import PathAttribution, ordered_products
from tiercast.training.baseline import BetaGeoFitter, GammaGammaFitter
from tiercast.training.config import LightGBMParams

# Builder columns the classic model reads: repeat purchases, recency, age and net spend.
RFM_INPUTS = ["purchase_days", "recency_days", "tenure_days", "monetary_total"]
CLASSIC_COLUMNS = ["bgnbd_expected_purchases", "bgnbd_probability_alive", "bgnbd_expected_value",
                   "bgnbd_churn_probability"]
_EPS = 1e-6

Columns = Mapping[str, np.ndarray]  # classic columns by name, one value per customer


def _rfm(rfm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD inputs from the builder's :data:`RFM_INPUTS` (columns of ``rfm``): repeat purchase days x,
    time of last purchase t_x, age T (days) and net spend per purchase day m."""
    days, recency, tenure, total = rfm.T
    # np.maximum / np.minimum rather than np.clip, here and in the helpers below: the same bits, a quarter of
    # the cost per call on one customer's arrays (0.6 vs 2.5 us); one request made some twenty such calls.
    x = np.maximum(days - 1.0, 0.0)
    t_x = np.where(x > 0, np.maximum(tenure - recency, 0.0), 0.0)
    m = np.where(days > 0, total / np.maximum(days, 1.0), 0.0)
    return x, t_x, tenure, np.maximum(m, 0.0)


# Complete calendar months of purchase history needed to estimate all twelve seasonal indices.
SEASONAL_MONTHS = 24


class SeasonalClock:
    """Operational time around an anchor (the cutoff): each calendar day counts its month's seasonal index
    (twelve numbers with mean 1), or 1 without an index (calendar time)."""

    def __init__(self, anchor: pd.Timestamp, index: np.ndarray | None = None):
        self.anchor = pd.Timestamp(anchor).floor("D")
        self.index = None if index is None else np.asarray(index, dtype=np.float64)

    def _cumulative(self, days: float, forward: bool) -> np.ndarray:
        """Operational length of the first k whole days after (or before) the anchor, k = 0..days."""
        n = int(np.ceil(days)) + 1
        steps = np.arange(n) if forward else -np.arange(1, n + 1)
        months = (self.anchor + pd.to_timedelta(steps, unit="D")).month.to_numpy()
        return np.concatenate([[0.0], np.cumsum(self.index[months - 1])])

    def before(self, days: np.ndarray) -> np.ndarray:
        """Operational length of [anchor - days, anchor)."""
        days = np.asarray(days, dtype=np.float64)
        finite = days[np.isfinite(days)]
        if self.index is None or not len(finite):
            return days
        cumulative = self._cumulative(max(float(finite.max()), 0.0), forward=False)
        return np.interp(days, np.arange(len(cumulative)), cumulative)

    def after(self, days: float) -> float:
        """Operational length of [anchor, anchor + days)."""
        if self.index is None:
            return float(days)
        cumulative = self._cumulative(days, forward=True)
        return float(np.interp(days, np.arange(len(cumulative)), cumulative))


def seasonal_clock(transactions: pd.DataFrame, cutoff: pd.Timestamp) -> SeasonalClock:
    """The seasonal clock at ``cutoff`` from the purchase days (customer-days with an amount > 0) before it.

    Needs :data:`SEASONAL_MONTHS` complete months; each month's count over the centred 2x12 moving
    average is one seasonal ratio, averaged per calendar month. Each average is shrunk towards 1 by the
    share of its spread that Poisson noise cannot explain (empirical Bayes), then scaled to mean 1.
    """
    cutoff = pd.Timestamp(cutoff)
    ts = transactions["timestamp"]
    bought = ((ts < cutoff) & (transactions["amount"] > 0)).to_numpy()
    if not bought.any():
        return SeasonalClock(cutoff)
    days = pd.DataFrame({"customer_id": transactions["customer_id"].to_numpy()[bought],
                         "day": ts.to_numpy()[bought].astype("datetime64[D]")}).drop_duplicates()
    month = pd.PeriodIndex(days["day"], freq="M")
    first = ts.min().floor("D")
    complete = (month.start_time >= first) & (month.end_time < cutoff)
    counts = pd.Series(1, index=month[complete]).groupby(level=0).sum().sort_index()
    counts = counts.reindex(pd.period_range(counts.index.min(), counts.index.max(), freq="M"), fill_value=0) \
        if len(counts) else counts
    if len(counts) < SEASONAL_MONTHS:
        return SeasonalClock(cutoff)
    trend = counts.rolling(12, center=True).mean()
    trend = (trend + trend.shift(-1)) / 2  # 2x12: centred on the month itself
    ratio = (counts / trend).dropna()
    noise = ratio**2 / counts.reindex(ratio.index).clip(lower=1)  # Poisson variance of each ratio
    by_month = ratio.groupby(ratio.index.month)
    mean = by_month.mean().reindex(range(1, 13))
    if mean.isna().any():
        return SeasonalClock(cutoff)
    error = noise.groupby(noise.index.month).sum().reindex(range(1, 13)) / by_month.size().reindex(range(1, 13)) ** 2
    signal = max(float(mean.var(ddof=0) - error.mean()), 0.0)
    shrunk = 1.0 + signal / (signal + error) * (mean - 1.0)
    return SeasonalClock(cutoff, (shrunk / shrunk.mean()).to_numpy())


class ClassicFeatures(BaseEstimator):
    """BG/NBD x Gamma-Gamma fitted on one population's feature rows; their horizon forecasts as columns.

    Reads the builder's ``purchase_days``, ``recency_days``, ``tenure_days`` and ``monetary_total``:
    repeat purchases x = purchase days - 1, t_x = tenure - recency, T = tenure, spend m = net amount per
    purchase day (close to :func:`tiercast.training.baseline.rfm_summary`'s customer-day convention). So it needs
    nothing but the feature frame and scores one customer exactly as in a batch. Times run on ``clock``
    (the seasonal clock of the cutoff the rows were built at; calendar days without one). When
    Gamma-Gamma cannot be fitted (fewer than two repeat buyers, or an infinite mean), spend is the mean
    spend per purchase day.
    """

    def __init__(self, horizon_days: int = 180, clock: SeasonalClock | None = None):
        self.horizon_days = horizon_days
        self.clock = clock

    def _inputs(self, rfm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        x, t_x, T, m = _rfm(rfm)
        if self.clock is None:
            return x, t_x, T, m
        T_op = self.clock.before(T)
        recency_op = self.clock.before(rfm[:, RFM_INPUTS.index("recency_days")])
        return x, np.where(x > 0, np.maximum(T_op - recency_op, 0.0), 0.0), T_op, m

    def fit(self, X: pd.DataFrame) -> "ClassicFeatures":
        x, t_x, T, m = self._inputs(X[RFM_INPUTS].to_numpy(dtype=np.float64))
        self.horizon_ = self.clock.after(self.horizon_days) if self.clock is not None else float(self.horizon_days)
        self.bgnbd_ = BetaGeoFitter().fit(x, t_x, T)
        buyers = m > 0
        self.mean_spend_ = float(m[buyers].mean()) if buyers.any() else 0.0
        repeat = (x > 0) & buyers
        self.gamma_gamma_ = None
        if repeat.sum() >= 2:
            gamma_gamma = GammaGammaFitter().fit(x[repeat], m[repeat])
            if gamma_gamma.params_.q > 1.0:
                self.gamma_gamma_ = gamma_gamma
        # The reference customer of the attributions: the population's median RFM.
        self.reference_ = X[RFM_INPUTS].median().to_numpy(dtype=np.float64)
        return self

    def _purchases(self, rfm: np.ndarray, tail: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """BG/NBD's P(alive), expected purchases and P(no purchase) over the horizon; they read purchase days,
        recency and tenure. ``tail`` as in :meth:`BetaGeoFitter.forecast`."""
        x, t_x, T, _ = self._inputs(rfm)
        return self.bgnbd_.forecast(self.horizon_, x, t_x, T, tail)

    def _spend(self, rfm: np.ndarray) -> np.ndarray:
        """Expected spend per purchase day (Gamma-Gamma, else the mean); reads purchase days and spend."""
        x, _, _, m = _rfm(rfm)
        return (self.gamma_gamma_.conditional_expected_spend(x, m) if self.gamma_gamma_ is not None
                else np.full(len(x), self.mean_spend_))

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(self.forecast(X[RFM_INPUTS].to_numpy(dtype=np.float64)), index=X.index,
                            columns=CLASSIC_COLUMNS)

    def forecast(self, rfm: np.ndarray) -> np.ndarray:
        """The classic columns as a (rows, 4) matrix in :data:`CLASSIC_COLUMNS` order, from the rows'
        :data:`RFM_INPUTS` (columns of ``rfm``)."""
        alive, purchases, no_purchase = self._purchases(rfm)
        return _classic_matrix(alive, purchases, no_purchase, self._spend(rfm))

    def coalitions(self, rfm: np.ndarray) -> np.ndarray:
        """The classic columns of every coalition of the four RFM inputs (columns of ``rfm``, in
        :data:`RFM_INPUTS` order): shape (16, rows, 4), :data:`CLASSIC_COLUMNS` last. Coalition ``mask``
        takes input i from the row where bit i of ``mask`` is set, else from the reference (median)
        customer; the last one is the rows' own forecast.

        Each part of the forecast is worked out once per combination of the inputs it reads, and shared by
        the coalitions that mix those inputs alike: BG/NBD (purchase days, recency, tenure) for 8, its
        costly hypergeometric term (:meth:`BetaGeoFitter.purchase_tail`: purchase days, tenure) for 4, the
        spend (purchase days, spend) for 4. Every coalition still gets exactly its own forecast."""
        values = np.asarray(rfm, dtype=np.float64)
        n, n_inputs = values.shape
        mixed = np.where(_COALITIONS[:, None, :], values[None, :, :], self.reference_[None, None, :])

        def rows_of(combos: np.ndarray) -> np.ndarray:
            return mixed[combos].reshape(-1, n_inputs)

        tails, tail_of = _shared(_TAIL_BITS)
        x, _, T, _ = self._inputs(rows_of(tails))
        tail = self.bgnbd_.purchase_tail(self.horizon_, x, T).reshape(len(tails), n)
        bgnbd, bgnbd_of = _shared(_BGNBD_BITS)
        alive, purchases, no_purchase = (part.reshape(len(bgnbd), n)[bgnbd_of] for part in
                                         self._purchases(rows_of(bgnbd), tail[tail_of[bgnbd]].reshape(-1)))
        spenders, spend_of = _shared(_SPEND_BITS)
        spend = self._spend(rows_of(spenders)).reshape(len(spenders), n)[spend_of]
        return _classic_matrix(alive, purchases, no_purchase, spend)

    def shapley(self, rfm: np.ndarray, link: Callable[[Columns], np.ndarray]) -> np.ndarray:
        """Exact Shapley values of ``link(classic columns)`` over the four RFM inputs (columns of ``rfm``,
        in :data:`RFM_INPUTS` order), against the reference (median) customer: how much each input moves
        this customer's classic forecast. Same shape as ``rfm``."""
        return shapley_values(self.coalitions(rfm), link)


# Coalition k of the RFM inputs holds input i when bit i of k is set.
_COALITIONS = np.array([[(k >> i) & 1 for i in range(len(RFM_INPUTS))] for k in range(2 ** len(RFM_INPUTS))],
                       dtype=bool)


def _bits(*inputs: str) -> int:
    return sum(1 << RFM_INPUTS.index(name) for name in inputs)


# The inputs each part of the classic forecast reads, as coalition bits.
_BGNBD_BITS = _bits("purchase_days", "recency_days", "tenure_days")
_TAIL_BITS = _bits("purchase_days", "tenure_days")
_SPEND_BITS = _bits("purchase_days", "monetary_total")


@cache
def _shared(bits: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct coalitions of the inputs in ``bits`` (those inputs own or the reference's, the others the
    reference's), and for every coalition the position among them of the one that mixes those inputs alike."""
    alike = np.arange(len(_COALITIONS)) & bits
    combos = np.unique(alike)
    return combos, np.searchsorted(combos, alike)


def _classic_matrix(alive: np.ndarray, purchases: np.ndarray, no_purchase: np.ndarray, spend: np.ndarray
                    ) -> np.ndarray:
    """The classic columns, in :data:`CLASSIC_COLUMNS` order, stacked on a new last axis."""
    columns = {"bgnbd_expected_purchases": purchases, "bgnbd_probability_alive": alive,
               "bgnbd_expected_value": purchases * spend, "bgnbd_churn_probability": no_purchase}
    return np.stack([columns[name] for name in CLASSIC_COLUMNS], axis=-1)


def _shapley_weights(n_inputs: int) -> np.ndarray:
    """(inputs, coalitions) weights W: input i's Shapley value is sum_k W[i, k] x (outcome of coalition k)."""
    weights = np.zeros((n_inputs, 2 ** n_inputs))
    for i in range(n_inputs):
        others = [j for j in range(n_inputs) if j != i]
        for size in range(n_inputs):
            weight = factorial(size) * factorial(n_inputs - size - 1) / factorial(n_inputs)
            for subset in combinations(others, size):
                without = sum(1 << j for j in subset)
                weights[i, without | (1 << i)] += weight
                weights[i, without] -= weight
    return weights


_SHAPLEY_WEIGHTS = np.ascontiguousarray(_shapley_weights(len(RFM_INPUTS)).T)  # (coalitions, inputs)


def shapley_values(coalitions: np.ndarray, link: Callable[[Columns], np.ndarray]) -> np.ndarray:
    """Shapley values (rows, 4) of ``link`` over the RFM inputs, from :meth:`ClassicFeatures.coalitions`."""
    n_coalitions, n, n_columns = coalitions.shape
    columns = dict(zip(CLASSIC_COLUMNS, coalitions.reshape(-1, n_columns).T, strict=True))
    outcome = np.asarray(link(columns), dtype=np.float64).reshape(n_coalitions, n)
    # Coalition by coalition, in a fixed order: a customer gets exactly the same values alone as in any
    # batch (a matrix product, or a sum over the coalition axis, may order the sum by the number of rows).
    return ordered_products(outcome, _SHAPLEY_WEIGHTS)


def add_classic_columns(examples: pd.DataFrame, window: pd.Series, horizon_days: int,
                        clocks: dict[pd.Timestamp, SeasonalClock] | None = None) -> pd.DataFrame:
    """``examples`` with the classic columns, each window's from a :class:`ClassicFeatures` fitted on
    that window's rows (the customers known at its cutoff) on that window's seasonal clock."""
    win = np.asarray(window)
    values = np.empty((len(examples), len(CLASSIC_COLUMNS)))
    for w in np.unique(win):
        rows = win == w
        part = examples[rows]
        clock = (clocks or {}).get(pd.Timestamp(w))
        values[rows] = ClassicFeatures(horizon_days, clock).fit(part).transform(part).to_numpy()
    return examples.assign(**{c: values[:, i] for i, c in enumerate(CLASSIC_COLUMNS)})


def _log(values: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(values, _EPS))


def _logit(values: np.ndarray) -> np.ndarray:
    return logit(np.minimum(np.maximum(values, _EPS), 1.0 - _EPS))


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
    """A feature frame as ``explain`` reads it, computed once for all models sharing one classic model
    (:meth:`_CrossFitted.prepare`, :func:`share_classic`): the input matrix in ``feature_names`` order and
    the classic columns of every RFM coalition (for the classic starting score's attributions)."""

    classic: ClassicFeatures
    feature_names: list[str]
    matrix: np.ndarray
    coalitions: np.ndarray


def share_classic(*models: "_CrossFitted") -> bool:
    """Let ``models`` hold one classic model when theirs are equal and their inputs the same (models of one
    training run, each pickled on its own), so that inputs prepared by one serve them all. Returns whether
    they share it now; nothing changes when they cannot."""
    first = models[0]
    fitted = pickle.dumps(first.classic_)
    if any(m.feature_names_ != first.feature_names_ or
           (m.classic_ is not first.classic_ and pickle.dumps(m.classic_) != fitted) for m in models[1:]):
        return False
    for model in models[1:]:
        model.classic_ = first.classic_
    return True


def _training_codes(values: pd.Series | pd.Categorical, known: list[str]) -> np.ndarray:
    """A categorical column as LightGBM reads it: float codes of the training levels ``known``, NaN for others."""
    codes = pd.Categorical(values, categories=known).codes.astype(np.float64)
    return np.where(codes == -1.0, np.nan, codes)


class _CrossFitted(BaseEstimator):
    """Shared machinery: classic inputs, period levels, customer-fold boosters, contributions."""

    def __init__(self, params: LightGBMParams | None = None, seed: int = 42, folds: int = 4, threads: int = 1):
        self.params = params
        self.seed = seed
        self.folds = folds
        self.threads = threads

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
        """``X`` as :meth:`explain` reads it (see :meth:`_inputs`; other columns of ``X`` are ignored);
        computed once, it serves every model sharing this one's classic model."""
        rfm = [self.feature_names_.index(c) for c in RFM_INPUTS]  # builder columns: the same place in both
        if all(c in X for c in CLASSIC_COLUMNS):
            matrix = self._numeric(X, self.feature_names_)
            coalitions = self.classic_.coalitions(matrix[:, rfm])
        else:
            names = self.feature_names_[:-len(CLASSIC_COLUMNS)]
            own = self._numeric(X, names)
            coalitions = self.classic_.coalitions(own[:, rfm])
            matrix = np.hstack([own, coalitions[-1]])  # the last coalition is the rows' own forecast
        return ModelInputs(self.classic_, self.feature_names_, matrix, coalitions)

    def _prepared(self, X: pd.DataFrame | FeatureColumns | ModelInputs) -> ModelInputs:
        if not isinstance(X, ModelInputs):
            return self.prepare(X)
        if X.classic is not self.classic_ or X.feature_names != self.feature_names_:
            raise ValueError("inputs prepared by a model with another classic model or other features; "
                             "see share_classic")
        return X

    def _numeric(self, frame: pd.DataFrame | FeatureColumns, names: list[str]) -> np.ndarray:
        """Columns ``names`` of ``frame`` as LightGBM reads a data frame: categorical columns as codes of the
        levels seen in training (unknown levels as missing), in a float matrix the boosters can take directly.
        """
        if isinstance(frame, FeatureColumns):
            columns = [frame[c] for c in names]
            categorical = [j for j, column in enumerate(columns) if isinstance(column, pd.Categorical)]
            if categorical:
                levels = self._boosters()[0].pandas_categorical
                for j, known in zip(categorical, levels, strict=True):
                    columns[j] = _training_codes(columns[j], known)
            # One (features, rows) array turned round: a fifth of np.column_stack's time for one customer.
            return np.ascontiguousarray(np.array(columns, dtype=np.float64).T)
        # The feature builder puts the model inputs first: a slice of its frame costs a fourth of selecting
        # the columns by name, which costs a fourth of reading them one by one (each becomes a Series).
        if list(frame.columns[:len(names)]) == names:
            frame = frame.iloc[:, :len(names)]
        else:
            frame = frame[names]
        categorical = [c for c, dtype in frame.dtypes.items() if isinstance(dtype, pd.CategoricalDtype)]
        if categorical:
            # LightGBM keeps the training levels of each categorical column, in column order.
            levels = self._boosters()[0].pandas_categorical
            frame = frame.assign(**{c: _training_codes(frame[c], known)
                                    for c, known in zip(categorical, levels, strict=True)})
        return frame.to_numpy(dtype=np.float64)

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
        find_level = _binary_level if objective == "binary" else _log_level
        latest = window == window.max()
        level = np.zeros(len(y))
        for w in np.unique(window[rows]):
            here = rows & (window == w)
            level[here] = find_level(offset[here], y[here])
        boosters, oof = [], np.full(len(y), np.nan)
        for k in range(self.folds):
            train = rows & ~latest & (fold != k)
            valid = rows & latest & (fold == k)
            if not train.any() or not valid.any():
                raise ValueError(f"customer fold {k} has no {'training' if not train.any() else 'validation'} "
                                 "rows: too few customers for the configured folds")
            data = lgb.Dataset(X[train], y[train], init_score=offset[train] + level[train])
            check = lgb.Dataset(X[valid], y[valid], init_score=offset[valid] + level[valid], reference=data)
            booster = lgb.train(_lgb_params(params, self.seed + k, self.threads, objective), data,
                                num_boost_round=params.max_rounds, valid_sets=[check],
                                callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)])
            booster.free_dataset()
            boosters.append(booster)
            mine = latest & (fold == k)
            oof[mine] = booster.predict(X[mine], raw_score=True, num_iteration=booster.best_iteration)
        latest_level = level[rows & latest]
        return boosters, oof, float(latest_level[0]) if len(latest_level) else 0.0

    def _setup(self, X: pd.DataFrame, window: pd.Series, classic: ClassicFeatures
               ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """Record the inputs and the classic model for new rows; return inputs, windows and folds."""
        self.classic_ = classic
        self.feature_names_ = [c for c in X.columns if c not in CLASSIC_COLUMNS] + CLASSIC_COLUMNS
        return X[self.feature_names_], np.asarray(window), customer_folds(X.index, self.folds, self.seed)

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

    # Each model's ``explain(X)`` gives the prediction for each row of ``X`` (a frame, or its
    # ``prepare``d inputs) and the per-feature contributions behind it, (rows, ``feature_names_``), from
    # one pass: the boosters' along each row's decision paths (:mod:`tiercast.training.attribution`), the classic
    # starting score's as exact Shapley values over its RFM inputs. They add up to the prediction on its
    # link scale, less a constant.
    def explain(self, X: pd.DataFrame | FeatureColumns | ModelInputs) -> tuple[np.ndarray, np.ndarray]:
        inputs = self._prepared(X)
        return self._explained(inputs, *self.path_attribution.explain(inputs.matrix))

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """``explain``'s contributions as a frame (rows of ``X``, columns ``feature_names_``)."""
        return pd.DataFrame(self.explain(X)[1], index=X.index, columns=self.feature_names_)

    @property
    def best_iterations_(self) -> list[int]:
        return [b.best_iteration for b in self._boosters()]


class ValueModel(_CrossFitted):
    """Net value over the horizon: P(value > 0) x E[value | value > 0], each a classic-started booster."""

    def fit(self, X: pd.DataFrame, y: np.ndarray, window: pd.Series, classic: ClassicFeatures) -> "ValueModel":
        """Fit on stacked examples.

        X: one row per customer and window (index customer_id): builder features and the classic columns
        of the row's own window; y: value over the horizon after the window cutoff; window: each row's
        cutoff (the latest one validates); classic: fitted at the training cutoff, used for new rows.
        """
        inputs, win, fold = self._setup(X, window, classic)
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

    def predict(self, X: pd.DataFrame) -> np.ndarray:
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


class ChurnModel(_CrossFitted):
    """Probability of no purchase (no order with amount > 0) in the horizon: a classic-started binary
    booster, Platt-calibrated on the latest window's out-of-fold predictions."""

    def fit(self, X: pd.DataFrame, y: np.ndarray, window: pd.Series, classic: ClassicFeatures) -> "ChurnModel":
        """Arguments as :meth:`ValueModel.fit`, with y the churned flag (0/1)."""
        inputs, win, fold = self._setup(X, window, classic)
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

    @staticmethod
    def _offset(classic: Columns) -> np.ndarray:
        return _logit(np.asarray(classic["bgnbd_churn_probability"], dtype=np.float64))

    def _calibrate(self, score: np.ndarray) -> np.ndarray:
        slope, intercept = self.calibration_
        return expit(slope * score + intercept)

    def _boosters(self) -> list[lgb.Booster]:
        return self.boosters_

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        inputs = self._inputs(X)
        return self._calibrate(self._raw(self.boosters_, inputs) + self._offset(self._classic(inputs)))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(X)

    def _trees(self) -> tuple[list[lgb.Booster], list[float], list[int]]:
        return self._means(self.boosters_, scale=self.calibration_[0])  # the mean raw score x the Platt slope

    def _explained(self, inputs: ModelInputs, raw: np.ndarray, boosted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Churn probability and contributions to its calibrated log-odds."""
        slope, intercept = self.calibration_
        probability = expit(raw[:, 0] + slope * self._offset(self._classic(inputs.matrix)) + intercept)
        return probability, self._add_classic_start(inputs, boosted, lambda classic: slope * self._offset(classic))

    def feature_importance(self) -> pd.Series:
        return self._importance(self.boosters_)


class SharedExplainer:
    """``explain`` of models that read the same prepared inputs (:func:`share_classic`), all their boosters
    walked in one pass (one :class:`PathAttribution`, a contribution block per model): one pair of halves on two
    threads instead of one per model. Each model gets exactly what its own ``explain`` gives."""

    def __init__(self, models: Sequence[_CrossFitted]):
        self.models = list(models)
        boosters, weights, parts, blocks = [], [], [], []
        self.parts_: list[list[int]] = []  # each model's output parts among the walk's
        for block, model in enumerate(self.models):
            own_boosters, own_weights, own_parts = model._trees()
            first = max(parts, default=-1) + 1
            boosters += own_boosters
            weights += own_weights
            parts += [first + p for p in own_parts]
            blocks += [block] * len(own_boosters)
            self.parts_.append(sorted({first + p for p in own_parts}))
        self.n_features = len(self.models[0].feature_names_)
        self.path_attribution = PathAttribution(boosters, weights, self.n_features, parts, blocks)

    def explain(self, inputs: ModelInputs) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each model's ``explain(inputs)``, in order."""
        for model in self.models:
            model._prepared(inputs)  # refuses inputs prepared for other models
        raw, boosted = self.path_attribution.explain(inputs.matrix)
        n = self.n_features
        return [model._explained(inputs, raw[:, parts], boosted[:, block * n:(block + 1) * n])
                for block, (model, parts) in enumerate(zip(self.models, self.parts_, strict=True))]
