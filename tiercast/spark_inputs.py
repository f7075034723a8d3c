"""The inputs of a Spark job: read from files, Parquet datasets, globs or any URI Spark reads, checked and
cleaned by the loader's own column rules, and split into customer buckets.

Each input is read raw (CSV cells as text, Parquet as stored), then every Arrow batch goes through the
loader's checks (:mod:`tiercast.features.loading`) in a pandas function on the executors, so both engines
clean a value the same way. A batch that breaks a rule yields, instead of its rows, the loader's
:class:`DataError`; the driver raises the first (by the table's column order), its row count summed over
the batches that broke the same rule, with sample rows named by their values (Spark knows no file lines). The
one rule about a whole column, a single currency sign in a number column, is checked over all batches.
Cleaned rows carry their customer's slot (a stable hash of the cleaned ``customer_id``; a job's buckets are
slots taken together) and their reading position, so that a bucket rebuilds exactly the frames the loader would
give for its customers (:func:`bucket_frames`): file order within a customer, identical rows counted (dropped
when ``data.drop_identical_rows``), sorted by customer and time.

Parquet timestamps in nanoseconds (what pandas and PyArrow write by default) reach Spark 4 as integers
(``spark.sql.legacy.parquet.nanosAsLong``); the files' footers, read with PyArrow, say which columns they
are, and the integers become the exact instants again. Where no footer can be read, such a column is refused
with a message saying how to write it.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tiercast.features.loading import (
    CleaningReport,
    apply_mapping,
    check_columns,
    identical_repeats,
    refuse_repeated_names,
)
from tiercast.features.number_text import read_formatted
from tiercast.features.privacy import PersonalData
from tiercast.features.schema import CUSTOMERS, INTERACTIONS, TRANSACTIONS, DataConfig, DataError, Table

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

TABLES: dict[str, Table] = {"transactions": TRANSACTIONS, "customers": CUSTOMERS, "interactions": INTERACTIONS}
PREFIX = {"transactions": "t__", "customers": "c__", "interactions": "i__"}
SLOT, BUCKET, POSITION, TABLE, META = "_slot", "_bucket", "_position", "_table", "_meta"
# A customer's slot is a hash of their id; a job's buckets are slots taken together (slot modulo the bucket
# count), so the count can follow the number of customers, known only once the inputs are cleaned.
SLOTS = 1 << 16
NANOS_AS_LONG = "spark.sql.legacy.parquet.nanosAsLong"

# The loader names a bad row by its place in the file; a batch on an executor has none, and a name with
# this suffix keeps the loader from reading any file to find one (the rows are shown by their values).
_BATCH = Path("spark-batch.parquet")
_CORRUPT = "_corrupt_record"
_CSV = (".csv", ".csv.gz")
_PARQUET = (".parquet", ".pq")


@dataclass
class SparkInput:
    """One cleaned input in Spark: its canonical columns (prefixed by table), bucket and position."""

    kind: str
    uri: str
    frame: DataFrame
    columns: list[str]  # the canonical columns present (customers: and the attributes that are not personal data)
    report: CleaningReport
    cached: DataFrame  # what ``frame`` is read from, kept until the rows are bucketed (``release``)

    def release(self) -> None:
        self.cached.unpersist()


@dataclass
class _Source:
    uri: str
    kind: str
    files: list[str]
    format: str  # csv or parquet
    nanos: dict[str, bool] = field(default_factory=dict)  # nanosecond instant columns -> stored with a zone


# ------------------------------------------------------------------------------------------ finding files
def hadoop_fs(spark: SparkSession, uri: str) -> tuple[Any, Any]:
    """(the Hadoop file system of ``uri``, its Hadoop path): what Spark itself reads and writes through."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path


def input_files(spark: SparkSession, uri: str) -> list[str]:
    """The data files a path, directory or glob names (hidden and ``_`` files skipped, as Spark does)."""
    fs, path = hadoop_fs(spark, uri)
    statuses = fs.globStatus(path) or []
    files: list[str] = []
    for status in statuses:
        if status.isDirectory():
            listing = fs.listFiles(status.getPath(), True)
            while listing.hasNext():
                found = listing.next().getPath()
                if not _hidden(found.toString(), status.getPath().toString()):
                    files.append(found.toString())
        elif not _hidden(status.getPath().getName(), ""):
            files.append(status.getPath().toString())
    return sorted(files)


def _hidden(path: str, root: str) -> bool:
    relative = path[len(root):] if root and path.startswith(root) else path
    return any(part.startswith(("_", ".")) for part in relative.split("/") if part and "=" not in part)


def _format(uri: str, files: list[str]) -> str:
    kinds = set()
    for name in (f.lower() for f in files):
        if name.endswith(_CSV):
            kinds.add("csv")
        elif name.endswith(_PARQUET) or re.search(r"part-[^/]*$", name):
            kinds.add("parquet")
        elif name.endswith((".txt", ".txt.gz")):
            raise DataError(uri, "CDNOW's whitespace-separated text is read by the local engine only (--engine "
                            "local); convert it to CSV or Parquet for Spark")
        else:
            raise DataError(uri, f"unsupported file type of {name.rsplit('/', 1)[-1]}: the Spark engine reads "
                            ".csv, .csv.gz, .parquet and .pq files (and Parquet datasets' part files)")
    if len(kinds) > 1:
        raise DataError(uri, "holds both CSV and Parquet files: give one format per input")
    return kinds.pop()


# --------------------------------------------------------------------------------------------- reading
def _nanosecond_columns(source: _Source, names: list[str]) -> dict[str, bool]:
    """The columns of ``names`` a Parquet footer stores as nanosecond timestamps (-> whether with a zone);
    raises DataError when a column reaches Spark as integers and no footer can say what they are."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    first = source.files[0]
    try:
        if first.startswith("file:"):
            schema = pq.read_schema(first.removeprefix("file:"))
        else:
            from pyarrow import fs

            filesystem, path = fs.FileSystem.from_uri(first)
            with filesystem.open_input_file(path) as handle:
                schema = pq.read_schema(handle)
    except Exception:  # no PyArrow filesystem for this URI: integers in an instant column cannot be trusted
        raise DataError(source.uri, "holds integers in a date column and its Parquet footer cannot be read here to "
                        "tell whether they are nanosecond timestamps (which Spark 4 reads as integers): write "
                        "timestamps in microseconds (tiercast.spark.write_parquet_for_spark, or PyArrow's "
                        "coerce_timestamps='us')", names[0]) from None
    found = {}
    for name in names:
        index = schema.get_field_index(name)
        kind = schema.field(index).type if index >= 0 else None
        if kind is not None and pa.types.is_timestamp(kind) and kind.unit == "ns":
            found[name] = kind.tz is not None
    return found


def _read_csv(spark: SparkSession, source: _Source, config: DataConfig) -> DataFrame:
    """CSV cells as text under the header's names, and ``_corrupt_record``: the text of a row that does not fit
    the header (refused when the batches are cleaned)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    reader = spark.read.option("escape", '"').option("encoding", config.encoding)
    header = reader.csv(source.files[0]).first()
    if header is None:
        raise DataError(source.uri, "the file is empty")
    names = [(value or "").strip() for value in header]
    if names:
        names[0] = names[0].lstrip("\ufeff").strip()
    refuse_repeated_names(source.uri, [n for n in names if n])
    fields = [f"_c{i}" for i in range(len(names))]
    schema = StructType([StructField(f, StringType()) for f in [*fields, _CORRUPT]])
    raw = (reader.schema(schema).option("header", True).option("mode", "PERMISSIVE")
           .option("columnNameOfCorruptRecord", _CORRUPT).csv(source.uri))
    for position, name in enumerate(names):
        if name == "":
            filled = raw.filter(F.trim(F.col(fields[position])) != "").count()
            if filled:
                raise DataError(source.uri, f"column {position + 1} has no name in the header, yet {filled:,} rows "
                                "have a value in it: name it in the header, or remove it (a table saved with its "
                                "index has such a first column)")
    return raw.select(*[F.col(f).alias(n) for f, n in zip(fields, names, strict=True) if n], _CORRUPT)


def _read(spark: SparkSession, source: _Source, config: DataConfig) -> DataFrame:
    if source.format == "csv":
        return _read_csv(spark, source, config)
    frame = spark.read.parquet(source.uri)
    refuse_repeated_names(source.uri, list(frame.columns))
    return frame


# ------------------------------------------------------------------------------------------- cleaning
def slot_of(ids: pd.Series) -> np.ndarray:
    """Each customer's slot: a hash of the id's text that is the same in every process and on every run."""
    hashes = pd.util.hash_pandas_object(ids.astype(object), index=False).to_numpy()
    return (hashes % np.uint64(SLOTS)).astype(np.int32)


def _instant_ns(values: pd.Series) -> pd.Series:
    """Naive datetimes as nullable nanoseconds since the epoch: how instants travel through Spark exactly."""
    ns = pd.Series(values.to_numpy(dtype="datetime64[ns]").view("int64"), index=values.index)
    return ns.where(values.notna()).astype("Int64")


def _canonical(frame: pd.DataFrame, kind: str, columns: list[str]) -> pd.DataFrame:
    """A cleaned batch in the types it travels in: text as text, instants as nanoseconds, numbers as floats."""
    table = TABLES[kind]
    out = {}
    for name in columns:
        declared = next((c for c in table.columns if c.name == name), None)
        values = frame[name]
        if declared is not None and declared.kind == "instant":
            values = _instant_ns(values)
        elif declared is not None and declared.kind == "number":
            values = values.astype("float64")
        out[PREFIX[kind] + name] = values
    return pd.DataFrame(out, index=frame.index)


def _error_row(err: DataError, columns: list[str], kind: str) -> pd.DataFrame:
    count, _, problem = err.problem.partition(" ")
    sample = None if err.sample is None else err.sample.reset_index(drop=True).to_json(orient="split")
    meta = {"error": problem if count.replace(",", "").isdigit() else err.problem,
            "count": int(count.replace(",", "")) if count.replace(",", "").isdigit() else None,
            "column": err.column, "sample": sample}
    return _meta_row(meta, columns, kind)


def _meta_row(meta: dict, columns: list[str], kind: str) -> pd.DataFrame:
    row = pd.DataFrame({PREFIX[kind] + c: [None] for c in columns})
    row[SLOT], row[POSITION], row[META] = -1, -1, json.dumps(meta, default=str)
    return row


@dataclass(frozen=True)
class _Cleaning:
    """What the executors need to clean one input's Arrow batches (the loader's rules, batch by batch)."""

    kind: str
    columns: list[str]
    csv: bool
    nanos: dict[str, bool]  # instant columns Spark read as integer nanoseconds -> stored with a zone
    config: DataConfig
    schema: Any  # the Arrow schema of the output

    def _frame(self, batch: Any) -> pd.DataFrame:
        """A raw batch as the loader's reader gives it: a blank CSV cell is '', a Parquet column as PyArrow
        converts it (what pandas.read_parquet gives), nanosecond instants as the instants they are."""
        import pyarrow as pa

        for name, zoned in self.nanos.items():
            index = batch.schema.get_field_index(name)
            instants = batch.column(index).cast(pa.timestamp("ns", "UTC" if zoned else None))
            batch = batch.set_column(index, name, instants)
        frame = batch.to_pandas()
        return frame.fillna("") if self.csv else frame

    def _batch(self, frame: pd.DataFrame) -> Any:
        import pyarrow as pa

        return pa.RecordBatch.from_pandas(frame, schema=self.schema, preserve_index=False)

    def _misfits(self, batch: Any) -> dict | None:
        """The error of a CSV batch's rows that do not fit the header, if any."""
        texts = batch.column(_CORRUPT).drop_null().to_pylist()
        if not texts:
            return None
        names = [name for name in batch.schema.names if name not in (_CORRUPT, POSITION)]
        problem = (f"rows do not have the header's {len(names)} fields ({', '.join(names)}); a value holding a "
                   "comma must be in double quotes, and on the Spark engine a value cannot hold a line break (the "
                   "local engine reads those)")
        sample = None
        if any(name in PersonalData(self.config.personal_data_columns) for name in names):
            problem += " (the rows' text is not shown: the file has personal-data columns)"
        else:
            sample = pd.DataFrame({"text": texts[:self.config.error_sample_rows]}).to_json(orient="split")
        return {"error": problem, "count": len(texts), "column": None, "sample": sample}

    def _undecodable(self, frame: pd.DataFrame) -> dict | None:
        """The error of CSV rows holding text Spark could not decode (it puts U+FFFD in its place), if any."""
        bad = np.zeros(len(frame), dtype=bool)
        for name in frame.columns:
            bad |= frame[name].astype(str).str.contains("\ufffd", regex=False).to_numpy()
        if not bad.any():
            return None
        personal = PersonalData(self.config.personal_data_columns)
        shown = [name for name in frame.columns if name not in personal]
        return {"error": f"rows hold bytes that are not {self.config.encoding} text (shown as \ufffd); if the file "
                "has another encoding, say which in data.encoding (e.g. gb18030 for what Excel writes in China)",
                "count": int(bad.sum()), "column": None,
                "sample": frame.loc[bad, shown].head(self.config.error_sample_rows).to_json(orient="split")}

    def _currencies(self, frame: pd.DataFrame) -> dict[str, dict[str, list]]:
        """Per text number column, each currency sign its cells are written with: [cells, sample rows]. The
        loader refuses a column of several signs, which the batches of one file can only see together."""
        found: dict[str, dict[str, list]] = {}
        for column in TABLES[self.kind].columns:
            name = column.name
            if column.kind != "number" or name not in frame.columns or pd.api.types.is_numeric_dtype(frame[name]):
                continue
            text = frame[name].astype(object).where(frame[name].notna(), "").astype(str).str.strip()
            unread = pd.to_numeric(text, errors="coerce").isna() & text.ne("")
            if not unread.any():
                continue
            signs = pd.Series(read_formatted(text[unread]).currency, index=text[unread].index)
            for sign, rows in signs[signs != ""].groupby(signs[signs != ""]):
                shown = frame.loc[rows.index[:self.config.error_sample_rows], [name, "customer_id"]]
                found.setdefault(name, {})[sign] = [len(rows), shown.to_json(orient="split")]
        return found

    def __call__(self, batches: Iterator[Any]) -> Iterator[Any]:
        changes: dict[str, int] = {}
        currencies: list[dict] = []
        for batch in batches:
            position = batch.column(POSITION).to_numpy()
            if self.csv:
                misfits = self._misfits(batch)
                if misfits:
                    yield self._batch(_meta_row(misfits, self.columns, self.kind))
                    continue
                batch = batch.drop_columns([_CORRUPT])
            frame = self._frame(batch.drop_columns([POSITION]))
            undecodable = self._undecodable(frame) if self.csv else None
            if undecodable:
                yield self._batch(_meta_row(undecodable, self.columns, self.kind))
                continue
            frame = frame[[name for name in self.columns if name in frame.columns]]
            report = CleaningReport(str(_BATCH), self.kind, rows_read=len(frame))
            signs = self._currencies(frame)
            try:
                check_columns(frame, TABLES[self.kind], _BATCH, report, self.config)
            except DataError as err:
                yield self._batch(_error_row(err, self.columns, self.kind))
                continue
            if self.kind == "interactions" and "score" not in frame.columns:
                frame["score"] = np.nan
            for what, count in report.changes.items():
                changes[what] = changes.get(what, 0) + count
            if signs:
                currencies.append(signs)
            out = _canonical(frame, self.kind, self.columns)
            out[SLOT] = slot_of(frame["customer_id"])
            out[POSITION] = position
            out[META] = None
            yield self._batch(out)
        if changes or currencies:
            yield self._batch(_meta_row({"changes": changes, "currencies": currencies}, self.columns, self.kind))


def _output_schema(raw: DataFrame, kind: str, columns: list[str]) -> Any:
    from pyspark.sql.types import DoubleType, IntegerType, LongType, StringType, StructField, StructType

    table = TABLES[kind]
    fields = []
    for name in columns:
        declared = next((c for c in table.columns if c.name == name), None)
        if declared is None:  # a customer attribute, as read
            kind_of = raw.schema[name].dataType
        else:
            kind_of = {"instant": LongType(), "number": DoubleType()}.get(declared.kind, StringType())
        fields.append(StructField(PREFIX[kind] + name, kind_of))
    return StructType([*fields, StructField(SLOT, IntegerType()), StructField(POSITION, LongType()),
                       StructField(META, StringType())])


def _raise_first_error(errors: list[dict], source: _Source, table: Table) -> None:
    """The batch errors as one DataError, the one the loader meets first: rows that do not fit the header, else
    the first column's (table order); counted over every batch."""
    order = {name: position for position, name in enumerate(table.names)}
    first = min(errors, key=lambda e: -1 if e["column"] is None else order.get(e["column"], len(order)))
    same = [e for e in errors if e["column"] == first["column"] and e["error"] == first["error"]]
    samples = [pd.read_json(io.StringIO(e["sample"]), orient="split", dtype=False) for e in same if e["sample"]]
    sample = pd.concat(samples, ignore_index=True).head(5) if samples else None
    if sample is not None:
        sample.index = [""] * len(sample)
    counted = [e["count"] for e in same if e["count"] is not None]
    problem = f"{sum(counted):,} {first['error']}" if counted else first["error"]
    raise DataError(source.uri, problem, first["column"], sample)


def _refuse_currency_mix(batches: list[dict], source: _Source, config: DataConfig) -> None:
    """The loader's refusal of a number column written in several currencies, over all of a file's batches."""
    for name in dict.fromkeys(name for found in batches for name in found):
        counts: dict[str, int] = {}
        samples: dict[str, list[pd.DataFrame]] = {}
        for found in batches:
            for sign, (count, sample) in found.get(name, {}).items():
                counts[sign] = counts.get(sign, 0) + count
                samples.setdefault(sign, []).append(pd.read_json(io.StringIO(sample), orient="split", dtype=False))
        if len(counts) < 2:
            continue
        usual = max(counts, key=lambda sign: counts[sign])  # the first of the most frequent, as the loader's
        others = [sign for sign in counts if sign != usual]
        sample = pd.concat([part for sign in others for part in samples[sign]], ignore_index=True)
        sample = sample.head(config.error_sample_rows)
        sample.index = [""] * len(sample)
        raise DataError(source.uri, f"{sum(counts[sign] for sign in others):,} values have another currency sign "
                        f"than the column's usual '{usual}' (signs found: {' '.join(sorted(counts))}): amounts in "
                        "different currencies cannot be added up; convert them to one currency first", name, sample)


def clean(spark: SparkSession, uri: str, kind: str, config: DataConfig) -> SparkInput:
    """Read one input and clean it on the executors; raises DataError (naming ``uri``) for a bad input."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import LongType

    files = input_files(spark, uri)
    if not files:
        raise DataError(uri, "file not found (no data files at this path or pattern)")
    source = _Source(uri, kind, files, _format(uri, files))
    mapping = getattr(config.columns, kind)
    raw = _read(spark, source, config)
    renamed = apply_mapping(pd.DataFrame(columns=raw.columns), mapping, uri).columns
    raw = raw.toDF(*[str(name) for name in renamed])
    table = TABLES[kind]
    for column in table.required:
        if column not in raw.columns:
            found = [c for c in raw.columns if c != _CORRUPT]
            raise DataError(uri, f"required column missing; columns found: {found}",
                            column=mapping.get(column, column))
    present = [c for c in table.names if c in raw.columns]
    columns = present
    if kind == "customers":  # profile attributes too, but no personal data: no batch work reads it
        attributes = [c for c in raw.columns if c not in (_CORRUPT, "customer_id")]
        personal = PersonalData(config.personal_data_columns)
        columns = ["customer_id", *(c for c in attributes if c not in personal)]
    # Every column of a CSV file reaches the executors, where each is checked to decode (as the local loader
    # reads the whole file); Parquet columns are typed, so only the table's are read.
    raw = raw if source.format == "csv" else raw.select(*columns)
    instants = [c.name for c in table.columns if c.kind == "instant" and c.name in raw.columns]
    if source.format == "parquet":
        longs = [n for n in instants if isinstance(raw.schema[n].dataType, LongType)]
        source.nanos = _nanosecond_columns(source, longs) if longs else {}
    if kind == "interactions" and "score" not in columns:
        columns = [*columns, "score"]
    schema = _output_schema(raw.select(*[c for c in columns if c != "score"]).withColumn("score", F.lit(0.0)), kind,
                            columns)
    cleaning = _Cleaning(kind, columns, source.format == "csv", source.nanos, config, to_arrow_schema(schema))
    cleaned = raw.withColumn(POSITION, F.monotonically_increasing_id()).mapInArrow(cleaning, schema)
    cleaned = cleaned.persist()
    meta = [json.loads(row[META]) for row in cleaned.filter(F.col(META).isNotNull()).select(META).collect()]
    errors = [m for m in meta if "error" in m]
    if errors:
        cleaned.unpersist()
        _raise_first_error(errors, source, table)
    _refuse_currency_mix([c for m in meta for c in m.get("currencies", [])], source, config)
    report = CleaningReport(uri, kind, rows_read=0)
    if kind == "customers":
        report.summary = {"attributes": attributes}
    for m in meta:
        for what, count in m.get("changes", {}).items():
            report.changes[what] = report.changes.get(what, 0) + count
    data = cleaned.filter(F.col(META).isNull()).drop(META)
    return SparkInput(kind, uri, data, columns, report, cleaned)


# -------------------------------------------------------------------------------------- checks, reports
def finish_reports(inputs: dict[str, SparkInput], config: DataConfig) -> None:
    """The checks across rows (a customer profile given twice) and each input's cleaning report, as the
    loader writes it; identical transaction rows are counted here (dropped per bucket)."""
    from pyspark.sql import functions as F

    for kind, item in inputs.items():
        p = PREFIX[kind]
        rows = item.frame.count()
        if not rows:
            raise DataError(item.uri, "the file has no data rows")
        item.report.rows_read = rows
        if kind == "transactions":
            canonical = [p + c for c in item.columns]
            distinct = item.frame.select(*canonical).distinct()
            repeats = rows - distinct.count()
            kept = distinct if config.drop_identical_rows else item.frame  # what the summary describes
            if config.drop_identical_rows:
                item.report.note_dropped("rows identical to an earlier row (data.drop_identical_rows: true)",
                                         repeats)
            else:
                item.report.note_counted("rows identical to an earlier row, kept (data.drop_identical_rows: "
                                         "false)", repeats)
            stats = kept.agg(
                F.countDistinct(p + "customer_id").alias("customers"), F.min(p + "timestamp").alias("first"),
                F.max(p + "timestamp").alias("last"), F.sum((F.col(p + "amount") < 0).cast("long")).alias("refunds"),
                F.sum((F.col(p + "amount") == 0).cast("long")).alias("zeros"), F.min(p + "amount").alias("low"),
                F.max(p + "amount").alias("high")).first()
            item.report.finish(rows - (repeats if config.drop_identical_rows else 0))
            item.report.summary = {
                "customers": int(stats["customers"]),
                "first_timestamp": str(pd.Timestamp(stats["first"], unit="ns")),
                "last_timestamp": str(pd.Timestamp(stats["last"], unit="ns")),
                "refund_rows": int(stats["refunds"] or 0), "zero_amount_rows": int(stats["zeros"] or 0),
                "identical_rows": int(repeats), "amount_min": float(stats["low"]), "amount_max": float(stats["high"]),
            }
        elif kind == "customers":
            repeated = (item.frame.groupBy(p + "customer_id").count().filter(F.col("count") > 1))
            found = repeated.limit(config.error_sample_rows).collect()
            if found:
                total = repeated.agg(F.sum("count")).first()[0]
                sample = pd.DataFrame({"customer_id": [r[p + "customer_id"] for r in found]}, index=[""] * len(found))
                raise DataError(item.uri, f"{int(total):,} rows repeat a customer_id", "customer_id", sample)
            item.report.finish(rows)
            item.report.summary = {"customers": rows, "attributes": item.report.summary["attributes"]}
        else:
            kinds = item.frame.groupBy(p + "kind").count().orderBy(F.desc("count"), p + "kind").collect()
            item.report.finish(rows)
            item.report.summary = {
                "customers": item.frame.select(p + "customer_id").distinct().count(),
                "kinds": {row[p + "kind"]: int(row["count"]) for row in kinds}}


def timestamp_range(item: SparkInput) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    first, last = item.report.summary.get("first_timestamp"), item.report.summary.get("last_timestamp")
    return (pd.Timestamp(first) if first else None, pd.Timestamp(last) if last else None)


# ------------------------------------------------------------------------------------------- buckets
def bucketed(inputs: dict[str, SparkInput], buckets: int) -> DataFrame:
    """Every input's rows in one frame (columns prefixed by table, ``_table`` naming it) with their bucket, one
    of ``buckets``, ready to group by: all of a customer's rows, in every input, share a bucket."""
    from pyspark.sql import functions as F

    frames = [item.frame.withColumn(TABLE, F.lit(kind)) for kind, item in inputs.items()]
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame, allowMissingColumns=True)
    return union.withColumn(BUCKET, F.col(SLOT) % buckets).drop(SLOT)


def bucket_frames(rows: Any, columns: dict[str, list[str]], drop_identical_rows: bool
                  ) -> dict[str, pd.DataFrame | None]:
    """A bucket's rows (an Arrow table of :func:`bucketed`) as the frames the loader gives for its customers:
    file order, identical transaction rows dropped when configured, then (transactions and interactions) a
    stable sort by customer and time; None for an input not given. Text stays in Arrow, as the fast loader
    keeps it (:func:`~tiercast.features.columnar.to_frame`): the driver's training sample of millions of rows
    then holds no Python string per row, and its bucket work may run in forked workers."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from tiercast.features.columnar import to_frame

    frames: dict[str, pd.DataFrame | None] = {kind: None for kind in TABLES}
    for kind, names in columns.items():
        part = rows.filter(pc.equal(rows.column(TABLE), kind)).sort_by(POSITION)
        instants = {c.name for c in TABLES[kind].columns if c.kind == "instant"}
        read = {name: part.column(PREFIX[kind] + name) for name in names}
        frame = to_frame({name: values.cast(pa.timestamp("ns")) if name in instants else values
                          for name, values in read.items()})
        if kind == "transactions" and drop_identical_rows:
            frame = frame.loc[~identical_repeats(frame)]
        if kind != "customers":
            frame = frame.sort_values(["customer_id", "timestamp"], kind="stable")
        frames[kind] = frame.reset_index(drop=True)
    return frames
