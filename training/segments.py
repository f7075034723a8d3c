"""Named behavioural segments: k-means on scaled recency, frequency and value, k chosen by silhouette.

Clusters are renumbered by their centre (most valuable first) and named from their profile against the
population, so a retrain on similar data gives the same names in the same order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

from training.config import SegmentConfig

# Behaviour the segments describe; each is log-scaled before standardising (long right tails).
SEGMENT_FEATURES = ("recency_days", "frequency", "monetary_total")


def _matrix(X: pd.DataFrame) -> np.ndarray:
    values = X[list(SEGMENT_FEATURES)].to_numpy(dtype=float)
    return np.log1p(np.clip(np.nan_to_num(values, nan=0.0), 0, None))


def _describe(recency: float, frequency: float, monetary: float) -> str:
    """A readable name from a cluster centre's standardised position (0 = population mean)."""
    activity = "lapsing" if recency > 0.5 else ("active" if recency < -0.5 else "cooling")
    if frequency > 0.5:
        habit = "loyal"
    elif frequency < -0.3:
        habit = "one-timer"
    else:
        habit = "occasional"
    spend = "high spenders" if monetary > 0.5 else ("low spenders" if monetary < -0.5 else "mid spenders")
    if habit == "one-timer":
        return f"{activity} one-timers" + (", high spend" if monetary > 0.5 else "")
    return f"{activity} {habit} {spend}"


class SegmentModel(BaseEstimator):
    def __init__(self, config: SegmentConfig | None = None, seed: int = 42):
        self.config = config
        self.seed = seed

    def fit(self, X: pd.DataFrame) -> "SegmentModel":
        config = self.config or SegmentConfig()
        raw = _matrix(X)
        self.mean_ = raw.mean(axis=0)
        self.scale_ = raw.std(axis=0) + 1e-9
        Z = (raw - self.mean_) / self.scale_
        rng = np.random.default_rng(self.seed)
        sample = Z[rng.choice(len(Z), size=min(len(Z), config.sample_size), replace=False)]
        scores: dict[int, float] = {}
        models: dict[int, KMeans] = {}
        for k in range(config.k_min, config.k_max + 1):
            models[k] = KMeans(n_clusters=k, n_init=4, random_state=self.seed).fit(sample)
            scores[k] = float(silhouette_score(sample, models[k].labels_,
                                               sample_size=min(len(sample), 5000), random_state=self.seed))
        self.k_ = max(scores, key=lambda k: (scores[k], -k))
        self.silhouette_ = scores
        # Most valuable first: frequency plus value, minus recency, at the centre.
        centres = models[self.k_].cluster_centers_
        order = np.argsort(-(centres[:, 1] + centres[:, 2] - centres[:, 0]), kind="stable")
        self.centres_ = centres[order]
        names = [_describe(*centre) for centre in self.centres_]
        # Two clusters may earn the same words: number the repeats so names stay unique.
        self.names_ = [name if names[:i].count(name) == 0 else f"{name} {names[:i].count(name) + 1}"
                       for i, name in enumerate(names)]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        Z = (_matrix(X) - self.mean_) / self.scale_
        distances = ((Z[:, None, :] - self.centres_[None, :, :]) ** 2).sum(axis=2)
        return np.asarray(self.names_, dtype=object)[distances.argmin(axis=1)]

    def profiles(self, X: pd.DataFrame) -> pd.DataFrame:
        """Size and median behaviour of each segment (for MLflow and the analysts' notebook)."""
        frame = X[list(SEGMENT_FEATURES)].copy()
        frame["segment"] = self.predict(X)
        profile = frame.groupby("segment").median()
        profile.insert(0, "customers", frame.groupby("segment").size())
        return profile.reindex(self.names_)


def rfm_segments(r_score: pd.Series, f_score: pd.Series) -> pd.Series:
    """The classic RFM rule segments from 1-5 recency and frequency scores (first matching rule wins)."""
    r, f = r_score.to_numpy(), f_score.to_numpy()
    rules = [
        ("Champions", (r >= 4) & (f >= 4)),
        ("Loyal", (r >= 3) & (f >= 4)),
        ("New", (r >= 4) & (f <= 1)),
        ("Potential loyalists", (r >= 4) & (f <= 3)),
        ("Can't lose them", (r <= 2) & (f >= 4)),
        ("At risk", (r <= 2) & (f >= 3)),
        ("Lost", (r <= 1) & (f <= 2)),
        ("Hibernating", r <= 2),
    ]
    names = np.select([mask for _, mask in rules], [name for name, _ in rules], default="Need attention")
    return pd.Series(names, index=r_score.index, dtype=object)
