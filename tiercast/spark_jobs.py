"""The jobs of ``--engine spark``: the per-customer work of ``features``, ``score``, ``train`` and ``backtest``
run over customer buckets on a Spark session (``engine:`` in the config), with the same code and the same
numbers as the local engine.

The inputs are cleaned by the loader's rules on the executors (:mod:`tiercast.spark_inputs`). ``features``
then asks every bucket for its share of the population state (``FeatureBuilder.fit_parts``, pickled into a
binary column), combines the parts on the driver (``FitParts.combine``, ``fit_from_parts``: the builder
``fit`` would give) and transforms each bucket with that builder, broadcast once. ``score`` transforms and
scores each bucket with the champion :class:`~tiercast.serving.scorer.ModelBundle`, broadcast once, through
:func:`tiercast.serving.scorer.score`. ``train`` collects the customers it learns from (above
``training.max_customers`` or ``training.max_rows``, the seeded sample the local engine would draw, of the ids
and row counts found in Spark) to the driver and
trains there with the local code (LightGBM trains on one machine); ``backtest`` collects every cleaned row.

Outputs of ``features`` and ``score`` are Parquet datasets (a folder of part files, rows in customer_id
order), written into a hidden sibling folder and renamed into place when complete. This module imports
PySpark; only ``--engine spark`` imports it.
"""

from __future__ import annotations

import json
import logging
import pickle
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tiercast.config import AppConfig
from tiercast.features.buckets import bucket_count
from tiercast.features.builder import FeatureBuilder
from tiercast.features.loading import InputData
from tiercast.features.population import FitParts
from tiercast.features.schema import DataError
from tiercast.jobs import ScoreSummary
from tiercast.outputs import OutputError
from tiercast.spark import spark_session
from tiercast.spark_inputs import (
    BUCKET,
    NANOS_AS_LONG,
    PREFIX,
    TABLE,
    SparkInput,
    bucket_frames,
    bucketed,
    clean,
    finish_reports,
    hadoop_fs,
    timestamp_range,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from tiercast import jobs

log = logging.getLogger("tiercast")

# Spark's and Hadoop's own files in a dataset folder: a folder holding only these (and part files) is a
# dataset tiercast may replace.
_DATASET_FILES = ("part-", "_SUCCESS", "_committed_", "_started_", ".part-", "._SUCCESS")


def session(config: AppConfig) -> SparkSession:
    spark = spark_session(config.engine)
    # Nanosecond Parquet timestamps (pandas' and PyArrow's default) reach us as integers, made instants again
    # by tiercast.spark_inputs, instead of failing to read.
    spark.conf.set(NANOS_AS_LONG, "true")
    return spark


# -------------------------------------------------------------------------------------------- outputs
def check_output_dataset(spark: SparkSession, out: str) -> str:
    """``out`` as a Parquet dataset a job may write: new, or a folder holding only a dataset's files (which the
    job replaces). An existing file or another folder is refused with an :class:`OutputError`."""
    if out.lower().rstrip("/").endswith((".csv", ".csv.gz")):
        raise OutputError(out, "the Spark engine writes a Parquet dataset (a folder of part files), not CSV: give "
                          "a name without .csv")
    fs, path = hadoop_fs(spark, out)
    if fs.exists(path):
        if not fs.getFileStatus(path).isDirectory():
            raise OutputError(out, "it is a file; the Spark engine writes a Parquet dataset (a folder of part "
                              "files): give a new path")
        others = [status.getPath().getName() for status in fs.listStatus(path)
                  if not status.getPath().getName().startswith(_DATASET_FILES)]
        if others:
            raise OutputError(out, f"it is a folder holding other files than a Parquet dataset's "
                              f"({', '.join(sorted(others)[:5])}); give a new path or remove the folder")
    _, _, probe = _sibling(spark, out)
    try:  # tried for real before the work: a folder the job may not write in is found now, not at the end
        fs.mkdirs(probe)
        fs.delete(probe, True)
    except Exception as err:
        java = getattr(err, "java_exception", None)
        why = java.toString() if java is not None else str(err).splitlines()[0]
        raise OutputError(out, f"cannot create a folder beside it ({why})") from None
    return out


def check_output_file(spark: SparkSession, out: str) -> str:
    fs, path = hadoop_fs(spark, out)
    if fs.exists(path) and fs.getFileStatus(path).isDirectory():
        raise OutputError(out, "it is a folder; give a file name")
    return out


def _sibling(spark: SparkSession, out: str) -> tuple[Any, Any, Any]:
    """(file system, the output's path, a new hidden path beside it)."""
    fs, path = hadoop_fs(spark, out)
    hidden = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path.getParent(),
                                                               f".{path.getName()}.tmp-{uuid.uuid4().hex[:8]}")
    return fs, path, hidden


def _replace(fs: Any, path: Any, written: Any) -> None:
    if fs.exists(path):
        fs.delete(path, True)
    if not fs.rename(written, path):
        raise OutputError(str(path), f"could not move the written {written} into place")


def write_dataset(spark: SparkSession, frame: DataFrame, out: str) -> str:
    """``frame`` as a Parquet dataset at ``out``, rows in customer_id order, moved into place when complete."""
    fs, path, hidden = _sibling(spark, out)
    try:
        frame.orderBy("customer_id").write.parquet(hidden.toString())
        _replace(fs, path, hidden)
    finally:
        if fs.exists(hidden):
            fs.delete(hidden, True)
    return out


def write_text(spark: SparkSession, text: str, out: str) -> str:
    """A small text file at ``out`` (any file system Spark writes to), moved into place when complete."""
    fs, path, hidden = _sibling(spark, out)
    try:
        stream = fs.create(hidden, True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()
        _replace(fs, path, hidden)
    finally:
        if fs.exists(hidden):
            fs.delete(hidden, True)
    return out


# --------------------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class _Layout:
    """How a bucket's Arrow rows become the loader's frames; small and picklable, for the executors."""

    columns: dict[str, list[str]]
    drop_identical_rows: bool

    def frames(self, table: Any) -> dict[str, pd.DataFrame | None]:
        return bucket_frames(table, self.columns, self.drop_identical_rows)


@dataclass
class SparkData:
    """The cleaned inputs of one job in Spark: every row with its bucket, grouped by bucket on demand."""

    inputs: dict[str, SparkInput]
    rows: DataFrame  # bucketed (tiercast.spark_inputs.bucketed), persisted
    layout: _Layout

    def frames(self, table: Any) -> dict[str, pd.DataFrame | None]:
        return self.layout.frames(table)

    def quality_report(self) -> dict[str, object]:
        return {item.kind: item.report.to_dict() for item in self.inputs.values()}

    def collect(self) -> InputData:
        """Every cleaned row on the driver, as the local loader gives them."""
        frames = self.frames(self.rows.toArrow())
        return InputData(frames["transactions"], frames["customers"], frames["interactions"],
                         [item.report for item in self.inputs.values()])


def load(spark: SparkSession, config: AppConfig, inputs: jobs.InputFiles) -> SparkData:
    """Read, check and clean the inputs in Spark; raises DataError before anything is written."""
    uris = {"transactions": inputs.transactions, "customers": inputs.customers, "interactions": inputs.interactions}
    items = {kind: clean(spark, str(uri), kind, config.data) for kind, uri in uris.items() if uri}
    finish_reports(items, config.data)
    for item in items.values():
        for line in item.report.lines():
            log.info(line)
    # Buckets of at most engine.bucket_customers customers and about engine.bucket_rows rows (a Python worker
    # holds one at a time), and a few per core so that every core stays busy.
    report = items["transactions"].report
    buckets = max(2, 4 * spark.sparkContext.defaultParallelism,
                  bucket_count(int(report.summary["customers"]), report.rows_kept, config.engine.bucket_customers,
                               config.engine.bucket_rows))
    rows = bucketed(items, buckets).repartition(buckets, BUCKET).persist()
    rows.count()  # bucketed and kept: the cleaned inputs need not be kept beside them
    for item in items.values():
        item.release()
    log.info("inputs checked and cleaned on Spark (%s), in %d customer buckets", spark.sparkContext.master, buckets)
    layout = _Layout({kind: item.columns for kind, item in items.items()}, config.data.drop_identical_rows)
    return SparkData(items, rows, layout)


def require_history(data: SparkData, as_of: pd.Timestamp) -> None:
    """As the local engine: refuse an ``as_of`` before every transaction."""
    item = data.inputs["transactions"]
    first, _ = timestamp_range(item)
    if first is None or not first < as_of:
        raise DataError(item.uri, f"no customer has a transaction before {as_of.date()}"
                        + (f": the first one is on {first.date()}" if first is not None else ""), "timestamp")


def _spark_schema(frame: pd.DataFrame) -> Any:
    """The Spark schema of a result frame; a column of nothing but missing values is text."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_schema

    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    fields = [f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in schema]
    return from_arrow_schema(pa.schema(fields))


def _per_bucket(data: SparkData, work: Any, sample: pd.DataFrame) -> DataFrame:
    """``work(frames) -> frame`` on every bucket, as one Spark frame of ``sample``'s schema."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = _spark_schema(sample)
    arrow = to_arrow_schema(schema)
    layout = data.layout

    def run(table: Any) -> Any:
        result = work(layout.frames(table))
        return pa.Table.from_pandas(result, schema=arrow, preserve_index=False)

    return data.rows.groupBy(BUCKET).applyInArrow(run, schema)


def _sample_frames(data: SparkData, as_of: pd.Timestamp) -> dict[str, pd.DataFrame | None]:
    """The frames of one customer with a transaction before ``as_of``: what a result's schema is learned on."""
    from pyspark.sql import functions as F

    ids = [F.col(PREFIX[kind] + "customer_id") for kind in data.inputs]
    before = (F.col(TABLE) == "transactions") & (F.col(PREFIX["transactions"] + "timestamp") < as_of.value)
    first = data.rows.filter(before).select(PREFIX["transactions"] + "customer_id").first()
    return data.frames(data.rows.filter(F.coalesce(*ids) == first[0]).toArrow())


def _with_history(frames: dict[str, pd.DataFrame | None], as_of: pd.Timestamp) -> bool:
    transactions = frames["transactions"]
    return transactions is not None and bool((transactions["timestamp"] < as_of).any())


# ------------------------------------------------------------------------------------------------ jobs
@dataclass(frozen=True)
class SparkFeatures:
    customers: int
    out: str
    quality_report: str


def features(config: AppConfig, inputs: jobs.InputFiles, as_of: pd.Timestamp, out: str) -> SparkFeatures:
    """Point-in-time features of every customer as a Parquet dataset, and the data-quality report beside it."""
    spark = session(config)
    out = check_output_dataset(spark, str(out))
    report_path = check_output_file(spark, out.rstrip("/") + ".quality.json")
    data = load(spark, config, inputs)
    require_history(data, as_of)
    builder = FeatureBuilder(config.features, config.data.personal_data_columns)
    layout = data.layout

    def parts_of(table: Any) -> Any:
        import pyarrow as pa

        frames = layout.frames(table)
        parts = builder.fit_parts(frames["transactions"], as_of, frames["customers"], frames["interactions"])
        return pa.table({"parts": [pickle.dumps(parts)]})

    parts = data.rows.groupBy(BUCKET).applyInArrow(parts_of, "parts binary").collect()
    builder.fit_from_parts(FitParts.combine(pickle.loads(row["parts"]) for row in parts))
    log.info("features fitted on %d buckets of customers; transforming and writing %s", len(parts), out)
    fitted = spark.sparkContext.broadcast(builder)

    def transform(frames: dict[str, pd.DataFrame | None]) -> pd.DataFrame:
        if not _with_history(frames, as_of):
            return sample.iloc[:0]
        return fitted.value.transform(frames["transactions"], as_of, frames["customers"],
                                      frames["interactions"]).reset_index()

    sample_frames = _sample_frames(data, as_of)
    sample = builder.transform(sample_frames["transactions"], as_of, sample_frames["customers"],
                               sample_frames["interactions"]).reset_index()
    result = _per_bucket(data, transform, sample).persist()
    customers = result.count()
    write_dataset(spark, result, out)
    quality = {**data.quality_report(), "customers_scored": customers, "as_of": str(as_of.date())}
    write_text(spark, json.dumps(quality, indent=2, default=str), report_path)
    return SparkFeatures(customers, out, report_path)


SparkScoring = ScoreSummary


def score(config: AppConfig, inputs: jobs.InputFiles, as_of: pd.Timestamp, out: str) -> SparkScoring:
    """Score every customer with the champion models (or the rules without them) into a Parquet dataset."""
    from pyspark.sql import functions as F

    from tiercast.jobs import _champion_bundle, flat_scores, score_with_config

    spark = session(config)
    out = check_output_dataset(spark, str(out))
    data = load(spark, config, inputs)
    require_history(data, as_of)
    bundle, reason = _champion_bundle(config)
    shipped = spark.sparkContext.broadcast(bundle)
    horizon_days = config.training.horizon_days

    def scored(frames: dict[str, pd.DataFrame | None], models: Any) -> pd.DataFrame:
        return flat_scores(score_with_config(config, frames["transactions"], frames["customers"],
                                             frames["interactions"], as_of, models, horizon_days, reason))

    def work(frames: dict[str, pd.DataFrame | None]) -> pd.DataFrame:
        return scored(frames, shipped.value) if _with_history(frames, as_of) else sample.iloc[:0]

    sample = scored(_sample_frames(data, as_of), bundle)
    log.info("scoring every bucket with %s; writing %s", bundle.version_label if bundle else "the rules", out)
    result = _per_bucket(data, work, sample).persist()
    write_dataset(spark, result, out)
    sources = {row["source"]: int(row["count"]) for row in result.groupBy("source").count().collect()}
    tiers = result.groupBy("tier").agg(F.count("*").alias("customers"),
                                       F.sum("predicted_value").alias("predicted_value")).toPandas()
    return SparkScoring(int(sum(sources.values())), out, sources, tiers.set_index("tier"), reason)


class _Collected:
    """Inputs cleaned in Spark and collected to the driver, for the local training code (``load``): every
    customer, or, given a ``cutoff``, the training sample of them (``training.max_customers``, ``max_rows``)."""

    def __init__(self, spark: SparkSession, inputs: jobs.InputFiles, cutoff: pd.Timestamp | None = None) -> None:
        self.spark, self.inputs, self.cutoff = spark, inputs, cutoff

    def load(self, config: AppConfig) -> InputData:
        data = load(self.spark, config, self.inputs)
        training = config.training
        if self.cutoff is None or (training.max_customers is None and training.max_rows is None):
            return data.collect()
        return _training_sample(self.spark, data, self.cutoff, training.max_customers, training.max_rows,
                                training.seed)


def _training_sample(spark: SparkSession, data: SparkData, cutoff: pd.Timestamp, max_customers: int | None,
                     max_rows: int | None, seed: int) -> InputData:
    """The rows of the customers the local training would sample (the same draw), collected to the driver:
    above either cap, only the sample leaves the executors."""
    from pyspark.sql import functions as F

    from tiercast.training.customer_sample import draw_customers

    p = PREFIX["transactions"]
    customer = p + "customer_id"
    before = (F.col(p + "timestamp") < cutoff.value).cast("int")
    transactions = data.rows.filter((F.col(TABLE) == "transactions") & F.col(customer).isNotNull())
    if data.layout.drop_identical_rows:  # the rows counted as each bucket's frames hold them
        transactions = transactions.select(*(p + c for c in data.layout.columns["transactions"])).distinct()
    counts = (transactions.groupBy(customer).agg(F.count("*").alias("rows"), F.max(before).alias("before"))
              .filter(F.col("before") == 1).select(customer, "rows").toPandas().sort_values(customer))
    ids = counts[customer].to_numpy(dtype=object)
    kept = draw_customers(ids, counts["rows"].to_numpy(), cutoff, max_customers, max_rows, seed)
    if kept is None:
        return data.collect()
    kept_ids = spark.createDataFrame(pd.DataFrame({"_kept": kept.astype(str)}))
    of_row = F.coalesce(*(F.col(PREFIX[kind] + "customer_id") for kind in data.inputs))
    rows = data.rows.join(F.broadcast(kept_ids), of_row == F.col("_kept"), "left_semi")
    frames = data.frames(rows.toArrow())
    return InputData(frames["transactions"], frames["customers"], frames["interactions"],
                     [item.report for item in data.inputs.values()], sampled_from=len(ids))


def train(config: AppConfig, inputs: jobs.InputFiles, cutoff: pd.Timestamp, horizon_days: int,
          trials: int | None = None) -> jobs.Training:
    """Train on the inputs cleaned in Spark, the training's customers (all, or the sample above
    ``training.max_customers`` or ``training.max_rows``) collected to the driver: LightGBM trains on one machine."""
    from tiercast import jobs

    collected = _Collected(session(config), inputs, cutoff)
    return jobs.train(config, collected, cutoff, horizon_days, trials)  # type: ignore[arg-type]


def backtest(config: AppConfig, inputs: jobs.InputFiles, cutoff: pd.Timestamp, horizon_days: int, out: Any
             ) -> jobs.Backtest:
    """The local backtest on the inputs cleaned in Spark and collected to the driver."""
    from tiercast import jobs

    collected = _Collected(session(config), inputs)
    return jobs.backtest(config, collected, cutoff, horizon_days, out)  # type: ignore[arg-type]
