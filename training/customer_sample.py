"""The customers a training learns from: all of them, or, above ``training.max_customers``, a seeded sample.

Models learn as well from a few hundred thousand customers as from millions, while the examples (several
windows of features per customer) and LightGBM's memory grow with every one; so above the cap a uniform
sample of the customers with history before the cutoff is kept, with all their rows. Same inputs and seed,
same sample; the training says so in its log and its MLflow run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tiercast.features.encoding import lookup, sorted_codes
from tiercast.features.loading import InputData

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CustomerSample:
    """How many customers had history before the cutoff, and how many the training kept."""

    customers: int
    kept: int

    @property
    def sampled(self) -> bool:
        return self.kept < self.customers

    def params(self) -> dict[str, int | bool]:
        """What an MLflow run records of it."""
        return {"training_customers": self.kept, "customers_before_cutoff": self.customers,
                "customers_sampled": self.sampled}


def sample_customers(data: InputData, cutoff: pd.Timestamp, max_customers: int | None, seed: int
                     ) -> tuple[InputData, CustomerSample]:
    """``data`` restricted to at most ``max_customers`` customers with history before ``cutoff`` (drawn with
    ``seed``; every row of a kept customer stays), and what was kept. Under the cap, ``data`` itself."""
    tx = data.transactions
    ids = ids_before(tx, cutoff)
    if data.sampled_from is not None:  # drawn already where the rows were read, by draw_customers
        return data, CustomerSample(data.sampled_from, len(ids))
    if max_customers is None or len(ids) <= max_customers:
        return data, CustomerSample(len(ids), len(ids))
    kept = draw_customers(ids, cutoff, max_customers, seed)
    return (InputData(rows_of(tx, kept), rows_of(data.customers, kept), rows_of(data.interactions, kept),
                      data.reports), CustomerSample(len(ids), len(kept)))


def ids_before(transactions: pd.DataFrame, cutoff: pd.Timestamp) -> np.ndarray:
    """The distinct ids of the customers with history before ``cutoff``, sorted: those a training counts."""
    before = (transactions["timestamp"] < cutoff).to_numpy() & transactions["customer_id"].notna().to_numpy()
    return sorted_codes(transactions["customer_id"], before)[1]


def rows_of(frame: pd.DataFrame | None, kept: np.ndarray) -> pd.DataFrame | None:
    """The rows of ``frame`` (None: None) whose customer is one of ``kept``."""
    return None if frame is None else frame.loc[lookup(frame["customer_id"], kept) >= 0]


def draw_customers(ids: np.ndarray, cutoff: pd.Timestamp, max_customers: int, seed: int) -> np.ndarray:
    """The seeded sample of ``max_customers`` of ``ids`` (the distinct ids with history before ``cutoff``, in
    sorted order), in sorted order, logged. The one draw of both engines, so both learn from the same customers."""
    kept = ids[np.sort(np.random.default_rng(seed).choice(len(ids), max_customers, replace=False))]
    log.warning("training on %s of the %s customers with history before %s: a sample drawn with seed %s "
                "(training.max_customers)", f"{len(kept):,}", f"{len(ids):,}", cutoff.date(), seed)
    return kept
