"""``train`` and ``backtest`` on the local engine for a transactions log too large to hold, spilled into bucket
files of customer-id ranges as :mod:`tiercast.spilled_jobs` spills it.

The training reads from the buckets only the rows it learns from: every customer's, or above
``training.max_customers`` customers or ``training.max_rows`` rows those of the seeded sample the local engine
draws of the whole log (:func:`~tiercast.training.customer_sample.draw_customers`), so memory follows the
sample. A backtest then scores every bucket with the unregistered models, labels it and writes its rows in turn;
the comparison with the baselines is computed from what each bucket's customers give (BG/NBD and Gamma-Gamma
fitted on all of them), so it, the models and the output are those of :mod:`tiercast.jobs` of the inputs loaded
whole.

Each job answers None when :mod:`tiercast.spilled_jobs` would not spill: the caller then runs
:mod:`tiercast.jobs`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tiercast.config import AppConfig
from tiercast.jobs import (Backtest, BacktestPart, InputFiles, Training, _train, backtest_comparison,
                           backtest_part, bucket_engine)
from tiercast.outputs import write_table_parts
from tiercast.spilled_jobs import _workers, spilled_inputs

if TYPE_CHECKING:
    from tiercast.features.loading import InputData
    from tiercast.features.spill import SpilledInputs

log = logging.getLogger("tiercast")


def training_inputs(config: AppConfig, spilled: SpilledInputs, cutoff: pd.Timestamp) -> InputData:
    """The inputs the training learns from, read a bucket at a time: every customer's rows, or, above
    ``training.max_customers`` customers with history before ``cutoff`` or ``training.max_rows`` rows of
    theirs, the seeded sample's, marked as drawn (``sampled_from``); with the inputs' cleaning reports."""
    from tiercast.features.buckets import each_bucket
    from tiercast.features.loading import InputData
    from tiercast.training.customer_sample import draw_customers, ids_before, rows_of, rows_per_customer

    workers = _workers(config)

    def ids(b: int) -> tuple[np.ndarray, np.ndarray]:
        # The rows as the training gets them: without identical repeats when the cleaning drops them.
        rows = (spilled.bucket(b)[0].transactions if config.data.drop_identical_rows
                else spilled.read(b, ["customer_id", "timestamp"]).to_pandas())
        found = ids_before(rows, cutoff)
        return found, rows_per_customer(rows, found)

    # The buckets are ranges of ids in sorted order: their sorted ids, one after another, are the log's.
    found = list(each_bucket(ids, spilled.count, workers, "finding the customers", log.info))
    before = np.concatenate([bucket_ids for bucket_ids, _ in found])
    rows_each = np.concatenate([bucket_rows for _, bucket_rows in found])
    training = config.training
    kept = draw_customers(before, rows_each, cutoff, training.max_customers, training.max_rows, training.seed)
    # The sample's ids in each bucket: those from its first id on, up to the next bucket's.
    firsts = np.asarray(spilled.ranges.firsts.to_pylist()[1:], dtype=object)
    bounds = [0, *np.searchsorted(kept, firsts).tolist(), len(kept)] if kept is not None else []

    def rows(b: int) -> tuple[list[pd.DataFrame | None], object]:
        bucket, summary = spilled.bucket(b)
        frames = [bucket.transactions, bucket.customers, bucket.interactions]
        if kept is not None:
            mine = kept[bounds[b]:bounds[b + 1]]
            frames = [rows_of(frame, mine) for frame in frames]
        return frames, summary

    parts = list(each_bucket(rows, spilled.count, workers, "reading the training rows", log.info))
    spilled.quality_report([summary for _, summary in parts])  # type: ignore[misc]

    def gathered(kind: int) -> pd.DataFrame | None:
        frames = [frames[kind] for frames, _ in parts]
        return None if frames[0] is None else pd.concat(frames, ignore_index=True)

    return InputData(gathered(0), gathered(1), gathered(2), [spilled.report, *spilled.other_reports],
                     sampled_from=len(before) if kept is not None else None)


def train(config: AppConfig, inputs: InputFiles, cutoff: pd.Timestamp, horizon_days: int,
          trials: int | None = None) -> Training | None:
    """:func:`tiercast.jobs.train` on the training's rows read from the spilled log."""
    spilled = spilled_inputs(config, inputs)
    if spilled is None:
        return None
    with spilled:
        data = training_inputs(config, spilled, cutoff)
    return _train(config, data, cutoff, horizon_days, trials)


def backtest(config: AppConfig, inputs: InputFiles, cutoff: pd.Timestamp, horizon_days: int, out: Path
             ) -> Backtest | None:
    """:func:`tiercast.jobs.backtest` on the spilled log: trained on the training's rows, then every bucket
    scored, labelled and written in turn."""
    from tiercast.features.buckets import each_bucket
    from tiercast.serving.scorer import ModelBundle
    from tiercast.training.pipeline import fit_models

    spilled = spilled_inputs(config, inputs, out)
    if spilled is None:
        return None
    with spilled:
        trained = fit_models(training_inputs(config, spilled, cutoff), cutoff, horizon_days, config.training,
                             config.features, config.data.personal_data_columns, progress=log.info,
                             engine=bucket_engine(config))
        bundle = ModelBundle.from_trained(trained, config.policy, horizon_days, {"backtest": "unregistered"})
        rule_rows = trained.validation
        del trained  # and the training's rows with it, before the workers fork

        def part(b: int) -> BacktestPart:
            return backtest_part(config, spilled.bucket(b)[0], cutoff, horizon_days, bundle)

        parts: list[BacktestPart] = []

        def rows() -> Iterator[pd.DataFrame]:
            for done in each_bucket(part, spilled.count, _workers(config), "backtesting", log.info):
                yield done.rows
                parts.append(BacktestPart(done.rows.iloc[:0], done.scored, done.baselines))

        written = write_table_parts(rows(), out)
        customers = sum(len(p.scored) for p in parts)
        return Backtest(customers, backtest_comparison(parts, cutoff, horizon_days, rule_rows), written)
