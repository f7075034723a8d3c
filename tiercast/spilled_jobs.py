"""``features`` and ``score`` on the local engine for a transactions log too large to hold: the log spilled
into bucket files of customer-id ranges (:mod:`tiercast.features.spill`), each bucket worked on by a forked
worker and its rows written to the output as soon as it is done, in bucket order, so that memory follows the
buckets and not the log. The outputs and the data-quality report are those :mod:`tiercast.jobs` writes of the
inputs loaded whole.

Each job answers None when the transactions file is not that large (config ``engine.spill_above_rows``) or the
fast path does not read it (bad input included): the caller then runs :mod:`tiercast.jobs`'s, which loads it
whole and reads it or words its DataError.

``score`` spills the log in a child process (:class:`SpillingAside`) while it loads the champion models.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tiercast.config import AppConfig
from tiercast.jobs import (
    ChampionLoading,
    InputFiles,
    ScoreSummary,
    flat_scores,
    require_first_before,
    write_quality_report,
)
from tiercast.outputs import TABLE_SUFFIXES, check_output_file, write_table_parts

if TYPE_CHECKING:
    from tiercast.features.spill import SpilledInputs

log = logging.getLogger("tiercast")


def spills(config: AppConfig, inputs: InputFiles) -> bool:
    """Whether the transactions file has more rows than config ``engine.spill_above_rows``."""
    from tiercast.features.spill import estimated_rows

    above = config.engine.spill_above_rows
    rows = None if above is None else estimated_rows(Path(inputs.transactions))
    return rows is not None and above is not None and rows > above


def _spill(config: AppConfig, inputs: InputFiles) -> SpilledInputs | None:
    from tiercast.features.spill import spill_inputs

    return spill_inputs(inputs.transactions, inputs.customers, inputs.interactions, config.data,
                        config.engine.bucket_customers, tuple(config.data.personal_data_columns),
                        Path(config.engine.spill_folder) if config.engine.spill_folder else None,
                        _workers(config), config.engine.bucket_rows)


def spilled_inputs(config: AppConfig, inputs: InputFiles, out: Path | None = None,
                   beside: Path | None = None) -> SpilledInputs | None:
    """The inputs spilled, when the transactions file is that large and the fast path reads it; else None.
    ``out``, a table file, and ``beside``, a file written next to it, are checked first."""
    if not spills(config, inputs):
        return None
    if out is not None:
        check_output_file(out, TABLE_SUFFIXES)
    if beside is not None:
        check_output_file(beside)
    return _spill(config, inputs)


class SpillingAside:
    """:func:`spilled_inputs` in a child process forked now, before the champion models start loading in this one
    (:class:`~tiercast.jobs.ChampionLoading`): both take seconds of CPU, and in one process the loading's Python
    held the interpreter's lock that the spill's threads wait for between Arrow's kernels. The child runs at a
    lower priority (nice :data:`SPILL_NICENESS`): the models are what scoring waits for longest; the spill takes
    the CPU they leave. Its log lines go where this process's go; what it raises is raised by :meth:`result`."""

    def __init__(self, config: AppConfig, inputs: InputFiles) -> None:
        context = multiprocessing.get_context("fork")
        self._answer, sender = context.Pipe(duplex=False)
        self._process = context.Process(target=_spill_into, args=(config, inputs, sender), name="tiercast-spill",
                                        daemon=True)
        self._process.start()
        sender.close()  # the child's copy is the one left: its answer, or its end, ends the wait

    def result(self) -> SpilledInputs | None:
        """What :func:`spilled_inputs` gave (None: the fast path does not read the log), once the child is done."""
        try:
            answer = self._answer.recv_bytes()
        except EOFError:
            self._process.join()
            raise RuntimeError(f"the process spilling the transactions ended without an answer (exit code "
                               f"{self._process.exitcode}); if the system stopped it for lack of memory, set "
                               "engine.workers or engine.bucket_rows lower in the config") from None
        except BaseException:  # interrupted (Ctrl-C reaches the child too): it removes its spill folder first
            self._process.join(_CHILD_CLEANUP_SECONDS)
            raise
        finally:
            self._answer.close()
        self._process.join()
        spilled, raised = pickle.loads(answer)  # noqa: S301 - pickled by this command's own child
        if raised is not None:
            raise raised
        return spilled


# The spilling child's niceness while the champion models load beside it (see SpillingAside), and how long an
# interrupted command waits for the interrupted child to remove its spill folder.
SPILL_NICENESS = 10
_CHILD_CLEANUP_SECONDS = 10


def spill_aside(config: AppConfig, inputs: InputFiles, out: Path) -> SpillingAside | None:
    """:class:`SpillingAside` of the inputs when the transactions file is large enough to spill (``out``
    checked first, here) and this system forks processes, else None (:func:`score` then spills them itself)."""
    if not spills(config, inputs) or "fork" not in multiprocessing.get_all_start_methods():
        return None
    check_output_file(out, TABLE_SUFFIXES)
    return SpillingAside(config, inputs)


def _spill_into(config: AppConfig, inputs: InputFiles, sender: Connection) -> None:
    """The child of :class:`SpillingAside`: the spilled inputs, or what was raised, sent back pickled (an error
    that does not rebuild from its pickle, or an answer that does not pickle, in words)."""
    os.nice(SPILL_NICENESS)
    answer: tuple[Any, BaseException | None]
    try:
        answer = (_spill(config, inputs), None)
    except BaseException as err:  # noqa: BLE001 - raised in the parent by result()
        answer = (None, err if _rebuilds(err) else _in_words(err))
    try:
        sent = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as err:  # noqa: BLE001
        sent = pickle.dumps((None, _in_words(answer[1] or err)))
    sender.send_bytes(sent)
    sender.close()


def _rebuilds(err: BaseException) -> bool:
    """Whether ``err`` comes back from its pickle (a class whose arguments are not its ``args`` may not)."""
    try:
        pickle.loads(pickle.dumps(err, protocol=pickle.HIGHEST_PROTOCOL))  # noqa: S301 - pickled just now
    except Exception:  # noqa: BLE001
        return False
    return True


def _in_words(err: BaseException) -> RuntimeError:
    return RuntimeError(f"{type(err).__name__}: {err}")


def _workers(config: AppConfig) -> int:
    from tiercast.features.buckets import default_workers

    return config.engine.workers or default_workers()


@dataclass(frozen=True)
class SpilledFeatures:
    customers: int
    out: Path
    quality_report: Path


def features(config: AppConfig, inputs: InputFiles, as_of: pd.Timestamp, out: Path) -> SpilledFeatures | None:
    """:func:`tiercast.jobs.features` a bucket at a time: the builder fitted from every bucket's parts, then
    each bucket's features written in turn."""
    from tiercast.features.buckets import each_bucket
    from tiercast.features.builder import FeatureBuilder, FitParts
    from tiercast.jobs import quality_report_path

    spilled = spilled_inputs(config, inputs, out, quality_report_path(out))
    if spilled is None:
        return None
    with spilled:
        require_first_before(spilled.first_timestamp, as_of, inputs.transactions)
        builder = FeatureBuilder(config.features, config.data.personal_data_columns)

        # Each bucket's history is computed once, when fitting, and kept on disk for building its features.
        def parts(b: int) -> tuple[FitParts, object]:
            history, summary = spilled.history(b, as_of)
            spilled.release(b)
            fit_parts = builder.fit_parts_of(history, spilled.profiles(b)[0])
            spilled.keep(b, "history", history)  # kept with the RFM that fitting computed
            return fit_parts, summary

        fitted = list(each_bucket(parts, spilled.count, _workers(config), "fitting features", log.info))
        builder.fit_from_parts(FitParts.combine(p for p, _ in fitted))

        def features_of(b: int) -> pd.DataFrame:
            customers, interactions = spilled.profiles(b)
            history = spilled.kept(b, "history")
            spilled.release(b, "history")
            return builder.transform_history(history, customers, interactions).frame().reset_index()

        customers = 0

        def counted() -> Iterator[pd.DataFrame]:
            nonlocal customers
            for part in each_bucket(features_of, spilled.count, _workers(config), "building features", log.info):
                customers += len(part)
                yield part

        written = write_table_parts(counted(), out)
        quality = spilled.quality_report([summary for _, summary in fitted])  # type: ignore[misc]
        return SpilledFeatures(customers, written, write_quality_report(quality, written, customers, as_of))


def score(config: AppConfig, inputs: InputFiles, as_of: pd.Timestamp, out: Path,
          champion: ChampionLoading | None = None, spilling: SpillingAside | None = None) -> ScoreSummary | None:
    """:func:`tiercast.jobs.score` a bucket at a time, each bucket's scores written in turn; ``champion``: the
    champion loading already (else it starts here, once the log is found large enough to spill); ``spilling``:
    the inputs spilling already (:func:`spill_aside`), else spilled here."""
    from tiercast.features.buckets import each_bucket
    from tiercast.jobs import _champion_bundle, score_with_config
    from tiercast.serving.scorer import feature_builder, membership_spend

    if champion is None:  # started only for a log that spills (else the caller's whole load starts its own)
        if not spills(config, inputs):
            return None
        champion = ChampionLoading(config)
    spilled = spilled_inputs(config, inputs, out) if spilling is None else spilling.result()
    if spilled is None:
        return None
    with spilled:
        require_first_before(spilled.first_timestamp, as_of, inputs.transactions)
        bundle, reason = _champion_bundle(config, champion.result())

        builder = feature_builder(bundle, config.features)
        spend = membership_spend(config.policy)

        def scores(b: int) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int], object]:
            customers, interactions = spilled.profiles(b)
            history, summary = spilled.history(b, as_of)
            features = builder.transform_history(history, customers, interactions)
            # The scores read the transactions themselves only for a membership window the features do not sum.
            transactions = {} if spend in features else spilled.bucket(b)[0].transactions
            spilled.release(b)
            scored = score_with_config(config, transactions, customers, interactions, as_of, bundle,
                                       config.training.horizon_days, reason, features)
            tiers = scored.groupby("tier").agg(customers=("customer_id", "size"),
                                               predicted_value=("predicted_value", "sum"))
            return flat_scores(scored), tiers, scored["source"].value_counts().to_dict(), summary

        tiers: list[pd.DataFrame] = []
        sources: Counter[str] = Counter()
        summaries = []

        def written_parts() -> Iterator[pd.DataFrame]:
            for part, part_tiers, part_sources, summary in each_bucket(scores, spilled.count, _workers(config),
                                                                       "scoring", log.info):
                tiers.append(part_tiers)
                sources.update(part_sources)
                summaries.append(summary)
                yield part

        written = write_table_parts(written_parts(), out)
        spilled.quality_report(summaries)  # logged, as loading the file whole logs it
        by_tier = pd.concat(tiers).groupby(level=0).sum()
        return ScoreSummary(int(by_tier["customers"].sum()), written, dict(sources.most_common()), by_tier, reason)
