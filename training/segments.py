"""Named behavioural segments (k-means on scaled recency, frequency and value, k chosen by silhouette) and
the classic RFM rule segments beside them.

Clusters are ordered by their centre (most valuable first) and named from their profile against the
population ("active loyal high spenders", "lapsing one-timers"). Given the previous model (the champion),
a retrain keeps the names: each new cluster takes the name of the previous cluster whose centre it matches
(one to one, nearest first, within one standard deviation), so a segment near a naming threshold does not
flip between "cooling" and "lapsing" from one month to the next.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from tiercast.features.builder import FeatureColumns
from tiercast.training.config import SegmentConfig
from tiercast.training.rfm_segments import rfm_segments

# Behaviour the segments describe; each is log-scaled before standardising (long right tails).
SEGMENT_FEATURES = ("recency_days", "frequency", "monetary_total")
# Further medians shown in the profiles when the feature frame has them.
PROFILE_EXTRAS = ("monetary_mean", "tenure_days", "gap_mean_days")
# A new cluster inherits a previous name when the centres are closer than this (standardised units).
MATCH_DISTANCE = 1.0


def _matrix(X: pd.DataFrame | FeatureColumns) -> np.ndarray:
    """The segment features, log1p-scaled: below 0 and missing count as 0, infinity as the largest float."""
    values = np.column_stack([np.asarray(X[c], dtype=float) for c in SEGMENT_FEATURES])
    return np.log1p(np.clip(np.nan_to_num(values, nan=0.0), 0.0, None))


def _describe(recency: float, frequency: float, monetary: float, median_frequency: float) -> str:
    """A readable name from a cluster centre's standardised position (0 = population mean); "one-timers"
    only when the cluster's median customer has a single order."""
    activity = "lapsing" if recency > 0.5 else ("active" if recency < -0.5 else "cooling")
    spend = "high spenders" if monetary > 0.5 else ("low spenders" if monetary < -0.5 else "mid spenders")
    if median_frequency <= 1:
        return f"{activity} one-timers" + (", high spend" if monetary > 0.5 else "")
    return f"{activity} {'loyal' if frequency > 0.5 else 'occasional'} {spend}"


def _unique(names: list[str], centres: np.ndarray) -> list[str]:
    """Clusters that earn the same words are told apart by the dimension they differ on most."""
    words = {0: ("more recent", "less recent"), 1: ("more orders", "fewer orders"), 2: ("higher spend", "lower spend")}
    out = list(names)
    for name in set(names):
        same = [i for i, n in enumerate(names) if n == name]
        if len(same) < 2:
            continue
        spread = centres[same].max(axis=0) - centres[same].min(axis=0)
        dim = int(np.argmax(spread))
        sign = -1.0 if dim == 0 else 1.0  # recency: fewer days is "more"
        ranked = sorted(same, key=lambda i: -sign * centres[i, dim])
        for rank, i in enumerate(ranked):
            qualifier = words[dim][0] if rank == 0 else words[dim][1]
            out[i] = f"{name} ({qualifier}{'' if rank < 2 else f' {rank}'})"
    return out


class SegmentModel(BaseEstimator):
    """k-means segments with readable, stable names; ``predict`` returns each customer's segment name."""

    def __init__(self, config: SegmentConfig | None = None, seed: int = 42, threads: int = 1):
        self.config = config
        self.seed = seed
        self.threads = threads

    def fit(self, X: pd.DataFrame, previous: "SegmentModel | None" = None) -> "SegmentModel":
        """Cluster the customers of ``X``; with ``previous`` (the last model), matching clusters keep its names."""
        config = self.config or SegmentConfig()
        raw = _matrix(X)
        self.mean_ = raw.mean(axis=0)
        self.scale_ = raw.std(axis=0) + 1e-9
        Z = (raw - self.mean_) / self.scale_
        rng = np.random.default_rng(self.seed)
        sample = Z[rng.choice(len(Z), size=min(len(Z), config.sample_size), replace=False)]
        scores: dict[int, float] = {}
        models: dict[int, KMeans] = {}
        with threadpool_limits(limits=self.threads):
            for k in range(config.k_min, min(config.k_max, len(sample) - 1) + 1):
                models[k] = KMeans(n_clusters=k, n_init=4, random_state=self.seed).fit(sample)
                scores[k] = float(silhouette_score(sample, models[k].labels_,
                                                   sample_size=min(len(sample), 5000), random_state=self.seed))
        self.k_ = max(scores, key=lambda k: (scores[k], -k))
        self.silhouette_ = scores
        # Most valuable first: frequency plus value, minus recency, at the centre.
        centres = models[self.k_].cluster_centers_
        order = np.argsort(-(centres[:, 1] + centres[:, 2] - centres[:, 0]), kind="stable")
        self.centres_ = centres[order]
        members = ((Z[:, None, :] - self.centres_[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
        frequency = X[SEGMENT_FEATURES[1]].to_numpy(dtype=float)
        medians = [float(np.nanmedian(frequency[members == i])) if (members == i).any() else 1.0
                   for i in range(self.k_)]
        names = _unique([_describe(*centre, m) for centre, m in zip(self.centres_, medians)], self.centres_)
        self.names_ = self._inherit(names, previous)
        return self

    def _inherit(self, names: list[str], previous: "SegmentModel | None") -> list[str]:
        """Names of ``previous`` for the clusters whose centres match one of its centres."""
        if previous is None:
            return names
        mine = self.centres_ * self.scale_ + self.mean_  # centres in the common (log) feature space
        theirs = previous.centres_ * previous.scale_ + previous.mean_
        distance = np.sqrt((((mine[:, None, :] - theirs[None, :, :]) / self.scale_) ** 2).sum(axis=2))
        out, inherited = list(names), set()
        for i, j in zip(*linear_sum_assignment(distance)):
            if distance[i, j] < MATCH_DISTANCE:
                out[i] = previous.names_[j]
                inherited.add(i)
        # A fresh name that collides with an inherited one is marked as a new segment.
        taken = {out[i] for i in inherited}
        return [f"{n} (new)" if i not in inherited and n in taken else n for i, n in enumerate(out)]

    def predict(self, X: pd.DataFrame | FeatureColumns) -> np.ndarray:
        check_is_fitted(self)
        Z = (_matrix(X) - self.mean_) / self.scale_
        distances = ((Z[:, None, :] - self.centres_[None, :, :]) ** 2).sum(axis=2)
        return np.asarray(self.names_, dtype=object)[distances.argmin(axis=1)]

    def profiles(self, X: pd.DataFrame) -> pd.DataFrame:
        """Size, share and median behaviour of each segment (for MLflow and the analysts' notebook)."""
        columns = list(SEGMENT_FEATURES) + [c for c in PROFILE_EXTRAS if c in X.columns]
        frame = X[columns].copy()
        frame["segment"] = self.predict(X)
        profile = frame.groupby("segment").median()
        sizes = frame.groupby("segment").size()
        profile.insert(0, "share", sizes / len(frame))
        profile.insert(0, "customers", sizes)
        return profile.reindex(self.names_).fillna({"customers": 0, "share": 0.0})


def rfm_profiles(X: pd.DataFrame, segments: SegmentModel) -> pd.DataFrame:
    """The RFM rule segments beside the clusters: per RFM segment, its size, median behaviour and how its
    customers spread over the cluster segments (counts)."""
    rfm = rfm_segments(X["r_score"], X["f_score"])
    frame = X[list(SEGMENT_FEATURES)].assign(rfm_segment=rfm.to_numpy())
    profile = frame.groupby("rfm_segment").median()
    sizes = frame.groupby("rfm_segment").size()
    profile.insert(0, "share", sizes / len(frame))
    profile.insert(0, "customers", sizes)
    clusters = pd.Series(segments.predict(X), index=X.index)
    spread = pd.crosstab(rfm, clusters).reindex(columns=segments.names_, fill_value=0)
    return profile.join(spread).sort_values("customers", ascending=False)
