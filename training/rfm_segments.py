"""The classic RFM rule segments: named from 1-5 recency and frequency scores by fixed rules.

Kept apart from the clustering (`tiercast.training.segments`) so that the rule fallback, which needs only these
rules, does not import scikit-learn.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


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
