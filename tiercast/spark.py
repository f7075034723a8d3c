"""The compute engine setting and a Spark session started the way tiercast needs it.

``engine:`` in the config names the engine (``local``: this process; ``spark``: a Spark cluster or
``local[N]``) and, for Spark, the master and any extra Spark options. :func:`spark_session` starts (or
returns the running) session with the settings every tiercast Spark job relies on:

* the Python workers run this interpreter (``sys.executable``): otherwise Spark starts ``python3`` from PATH,
  which may be another Python without tiercast and its pinned libraries;
* Arrow for pandas conversion and pandas UDFs;
* session time zone UTC, as tiercast takes every timestamp (naive values are UTC);
* Parquet timestamps written as microseconds (not INT96), so pandas and PyArrow read back the same instants;
* quiet logs: warnings and errors only, from the JVM's start on.

Parquet files written by pandas or PyArrow hold nanosecond timestamps by default, which Spark 4 refuses
(``PARQUET_TYPE_ILLEGAL``; its nanosecond types are a preview PySpark cannot read back, and
``spark.sql.legacy.parquet.nanosAsLong`` turns the instants into bare integers). tiercast's own Spark jobs read
them as those integers and make them instants again (:mod:`tiercast.spark_inputs`); files meant for other Spark
code are written with :func:`write_parquet_for_spark`, which stores microseconds and refuses to drop finer
digits silently.

PySpark is an optional dependency: ``pip install 'tiercast[spark]'`` (``make test`` installs it).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

INSTALL_HINT = "PySpark is not installed: pip install 'tiercast[spark]' (make test installs it)"

# Warnings and errors only, set before the JVM starts (SparkContext.setLogLevel comes too late for the
# start-up messages). Errors only from loggers whose warnings are notices, not problems: the host name
# resolving to a loopback address, no native Hadoop library, a long query plan shortened in a message, a CSV
# header whose names differ from the schema tiercast reads the file with (by position, on purpose).
LOG4J2_PROPERTIES = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n
logger.hostname.name = org.apache.spark.util.Utils
logger.hostname.level = error
logger.hadoop.name = org.apache.hadoop.util.NativeCodeLoader
logger.hadoop.level = error
logger.plans.name = org.apache.spark.util.SparkStringUtils
logger.plans.level = error
logger.csvheader.name = org.apache.spark.sql.catalyst.csv.CSVHeaderChecker
logger.csvheader.level = error
"""


LOCAL_DRIVER_MEMORY = "4g"


class EngineConfig(BaseModel):
    """Where the per-customer work runs: ``local`` (this process) or ``spark`` (``master``, ``options``)."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["local", "spark"] = "local"
    # A Spark master URL: local[N] (N worker threads on this machine), spark://HOST:PORT, yarn, ...
    master: str = "local[2]"
    # Any Spark option (spark.executor.memory, spark.sql.shuffle.partitions, ...); they override tiercast's.
    options: dict[str, str] = Field(default_factory=dict)
    # The local engine's worker processes (unset: every core this process may use), and both engines' customers
    # per bucket, which bounds the memory the work takes beyond the loaded inputs.
    workers: int | None = Field(default=None, ge=1)
    bucket_customers: int = Field(default=25_000, ge=1)
    # ... and at most about this many transaction rows per bucket (a log of line items has a hundred a customer).
    bucket_rows: int = Field(default=500_000, ge=1)
    # The local engine's features and score on a transactions file of more rows than this (a Parquet footer's
    # count, a CSV's estimate; null: never) split it into bucket files on disk first, in spill_folder (null: the
    # system's temporary folder), and hold one bucket per worker instead of the whole log.
    spill_above_rows: int | None = Field(default=5_000_000, ge=1)
    spill_folder: str | None = None


def session_options(config: EngineConfig) -> dict[str, str]:
    """The Spark options tiercast starts its session with: its own settings, then ``config.options``."""
    return {
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # A conversion Arrow cannot do fails loudly rather than falling back to a slow row-by-row path.
        "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # In local mode every task runs in the driver's JVM, whose default 1 GB heap ran out finding the identical
        # rows of a 10M-row log (java.lang.OutOfMemoryError); a cluster's executors set their own.
        **({"spark.driver.memory": LOCAL_DRIVER_MEMORY} if config.master.startswith("local") else {}),
        **config.options,
    }


def _log_config() -> Path:
    path = Path(tempfile.gettempdir()) / "tiercast-spark-log4j2.properties"
    if not path.exists() or path.read_text(encoding="utf-8") != LOG4J2_PROPERTIES:
        path.write_text(LOG4J2_PROPERTIES, encoding="utf-8")
    return path


def spark_session(config: EngineConfig | None = None, app_name: str = "tiercast") -> SparkSession:
    """The Spark session of ``config`` (the running one when there is one: Spark allows one per process)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as err:
        raise RuntimeError(INSTALL_HINT) from err
    config = config or EngineConfig(name="spark")
    builder = SparkSession.builder.master(config.master).appName(app_name)
    options = session_options(config)
    java_options = f"-Dlog4j2.configurationFile={_log_config().as_uri()}"
    options["spark.driver.extraJavaOptions"] = " ".join(
        filter(None, [java_options, options.get("spark.driver.extraJavaOptions")]))
    for key, value in options.items():
        builder = builder.config(key, value)
    # A driver started from Python (not spark-submit) takes its workers' Python from this variable alone and
    # ships that path with every Python function; the two spark.pyspark options serve spark-submit.
    os.environ["PYSPARK_PYTHON"] = options["spark.pyspark.python"]
    os.environ["PYSPARK_DRIVER_PYTHON"] = options["spark.pyspark.driver.python"]
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


def write_parquet_for_spark(frame: pd.DataFrame, path: Path | str) -> Path:
    """Write ``frame`` (index dropped) as Parquet that Spark 4 reads: timestamps as microseconds. A timestamp
    with nanoseconds would lose them, so it raises rather than truncating."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path, coerce_timestamps="us", allow_truncated_timestamps=False)
    return path
