"""The customers a training learns from: all of them, or, above ``training.max_customers`` customers or
``training.max_rows`` transaction rows, a seeded sample.

Models learn as well from a few hundred thousand customers as from millions, while the examples (several
windows of features per customer) and LightGBM's memory grow with every one, and the rows the training holds
with every row of theirs (a log of invoice lines has a hundred or more a customer); so above either cap a
uniform sample of the customers with history before the cutoff is kept, with all their rows. Same inputs and
seed, same sample; the training says so in its log and its MLflow run.
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


def sample_customers(data: InputData, cutoff: pd.Timestamp, max_customers: int | None, seed: int,
                     max_rows: int | None = None) -> tuple[InputData, CustomerSample]:
    """``data`` restricted to at most ``max_customers`` customers with history before ``cutoff`` holding at
    most ``max_rows`` transaction rows (drawn with ``seed``; every row of a kept customer stays), and what was
    kept. Under both caps, ``data`` itself."""
    tx = data.transactions
    ids = ids_before(tx, cutoff)
    if data.sampled_from is not None:  # drawn already where the rows were read, by draw_customers
        return data, CustomerSample(data.sampled_from, len(ids))
    kept = draw_customers(ids, rows_per_customer(tx, ids), cutoff, max_customers, max_rows, seed)
    if kept is None:
        return data, CustomerSample(len(ids), len(ids))
    return (InputData(rows_of(tx, kept), rows_of(data.customers, kept), rows_of(data.interactions, kept),
                      data.reports), CustomerSample(len(ids), len(kept)))


def ids_before(transactions: pd.DataFrame, cutoff: pd.Timestamp) -> np.ndarray:
    """The distinct ids of the customers with history before ``cutoff``, sorted: those a training counts."""
    before = (transactions["timestamp"] < cutoff).to_numpy() & transactions["customer_id"].notna().to_numpy()
    return sorted_codes(transactions["customer_id"], before)[1]


def rows_per_customer(transactions: pd.DataFrame, ids: np.ndarray) -> np.ndarray:
    """How many rows of ``transactions`` each of ``ids`` has, at any time."""
    position = lookup(transactions["customer_id"], ids)
    return np.bincount(position[position >= 0], minlength=len(ids))


def rows_of(frame: pd.DataFrame | None, kept: np.ndarray) -> pd.DataFrame | None:
    """The rows of ``frame`` (None: None) whose customer is one of ``kept``."""
    return None if frame is None else frame.loc[lookup(frame["customer_id"], kept) >= 0]


def draw_customers(ids: np.ndarray, rows: np.ndarray, cutoff: pd.Timestamp, max_customers: int | None,
                   max_rows: int | None, seed: int) -> np.ndarray | None:
    """The seeded sample of ``ids`` (the distinct ids with history before ``cutoff``, in sorted order, each with
    ``rows`` transaction rows) a training keeps, in sorted order, logged; None when they are within both caps.
    The one draw of every engine, so all learn from the same customers.

    ``max_customers`` of them in a seeded random order, then the longest start of that order whose rows fit in
    ``max_rows``: any start of a random order is a uniform sample, and only the rows' cap needs the order."""
    over_customers = max_customers is not None and len(ids) > max_customers
    over_rows = max_rows is not None and int(rows.sum()) > max_rows
    if not (over_customers or over_rows):
        return None
    count = min(len(ids), max_customers or len(ids))
    drawn = np.random.default_rng(seed).choice(len(ids), count, replace=False)
    if max_rows is not None:
        drawn = drawn[:np.searchsorted(np.cumsum(rows[drawn]), max_rows, side="right")]
    kept = np.sort(drawn)
    binding = {"training.max_customers": over_customers, "training.max_rows": len(kept) < count}
    log.warning("training on %s of the %s customers with history before %s (%s of their %s transaction rows): "
                "a sample drawn with seed %s (%s)", f"{len(kept):,}", f"{len(ids):,}", cutoff.date(),
                f"{int(rows[kept].sum()):,}", f"{int(rows.sum()):,}", seed,
                ", ".join(cap for cap, binds in binding.items() if binds))
    return ids[kept]
