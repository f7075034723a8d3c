"""The Spark session tiercast starts, ``--engine spark`` giving exactly the local engine's features and scores
on simulated worlds (through the command line, in-process, on one ``local[2]`` session), its refusals of bad
input, and docs/spark.md's example run for real: registered models scoring feature rows in Spark through
``mlflow.pyfunc.spark_udf``, giving the models' own predictions.

Needs PySpark (``pip install 'tiercast[spark]'``; ``make test`` installs it) and Java 17+; without PySpark the
Spark tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from mlflow import MlflowClient

from tiercast.cli import main
from tiercast.config import AppConfig, ConfigError, load_config
from tiercast.features.builder import FeatureBuilder
from tiercast.features.loading import load_transactions
from tiercast.spark import INSTALL_HINT, EngineConfig, session_options, write_parquet_for_spark
from tiercast.spark_inputs import NANOS_AS_LONG

ROOT = Path(__file__).resolve().parents[2]
CDNOW = ROOT / "data" / "cdnow" / "CDNOW_master.txt.gz"
CUTOFF = "1998-01-01"


@pytest.fixture(scope="session")
def spark():
    """One local[2] session for the test run (the jobs run by ``main`` find it running); the tests that need one
    skip without PySpark, except in CI, which installs it."""
    if os.environ.get("CI") != "true":
        pytest.importorskip("pyspark", reason=INSTALL_HINT)
    from tiercast.spark import spark_session

    session = spark_session(EngineConfig(name="spark", master="local[2]",
                                         options={"spark.sql.shuffle.partitions": "2"}))
    yield session
    session.stop()


@pytest.fixture(scope="module")
def registered(tmp_path_factory) -> tuple[Path, Path]:
    """Models trained on 600 CDNOW customers into a fresh SQLite store, and their feature rows at the cutoff
    written by ``tiercast features``: (features file, store folder)."""
    folder = tmp_path_factory.mktemp("spark_udf")
    tx = pd.read_csv(CDNOW, sep=r"\s+", dtype=str)
    tx.columns = ["customer_id", "date", "quantity", "amount"]
    tx = tx[tx["customer_id"].astype(int) <= 600]
    log = folder / "cdnow_600.csv"
    pd.DataFrame({"customer_id": tx["customer_id"], "timestamp": pd.to_datetime(tx["date"]).dt.date.astype(str),
                  "amount": tx["amount"], "quantity": tx["quantity"]}).to_csv(log, index=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        patch.chdir(folder)
        assert main(["train", "--transactions", str(log), "--cutoff", CUTOFF, "--horizon-days", "90",
                     "--trials", "0"]) == 0
        features = folder / "features.parquet"
        assert main(["features", "--transactions", str(log), "--as-of", CUTOFF, "--out", str(features)]) == 0
        assert main(["score", "--transactions", str(log), "--as-of", CUTOFF, "--out",
                     str(folder / "scores.parquet")]) == 0
    return features, folder


def test_engine_section_is_typed_and_documented(tmp_path):
    assert load_config().engine == EngineConfig(name="local", master="local[2]", options={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("engine: {name: dask}\n")
    with pytest.raises(ConfigError, match="engine.name"):
        load_config(bad)
    bad.write_text("engine: {masters: 'local[4]'}\n")
    with pytest.raises(ConfigError, match="engine.masters"):
        load_config(bad)
    assert AppConfig.model_validate({"engine": {"options": {"spark.executor.memory": "4g"}}}).engine.options


def test_options_put_the_workers_on_this_python_and_let_the_config_override():
    options = session_options(EngineConfig(options={"spark.sql.session.timeZone": "Europe/Paris"}))
    assert options["spark.pyspark.python"] == options["spark.pyspark.driver.python"] == sys.executable
    assert options["spark.sql.session.timeZone"] == "Europe/Paris"
    # local[N] runs every task in the driver's JVM: its heap is raised from Spark's 1 GB, unless set
    assert options["spark.driver.memory"] == "4g"
    assert session_options(EngineConfig(options={"spark.driver.memory": "2g"}))["spark.driver.memory"] == "2g"
    assert "spark.driver.memory" not in session_options(EngineConfig(master="spark://host:7077"))


def test_session_runs_python_workers_on_this_interpreter_in_utc(spark):
    assert spark.sparkContext.master == "local[2]"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    # A Python worker (not the driver) reports which interpreter runs it.
    workers = spark.sparkContext.parallelize(range(2), 2).map(lambda _: __import__("sys").executable).collect()
    assert set(workers) == {sys.executable}


def test_timestamps_reach_spark_to_the_microsecond_and_nanoseconds_are_refused(spark, tmp_path):
    frame = pd.DataFrame({"customer_id": ["00042", "7"],
                          "timestamp": pd.to_datetime(["1997-01-01 00:00:00", "1998-06-30 23:59:59.999999"], format="ISO8601")})
    back = spark.read.parquet(str(write_parquet_for_spark(frame, tmp_path / "us.parquet"))).toPandas()
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert back["timestamp"].dt.tz is None  # naive UTC in, naive UTC out: the session's zone is UTC
    # An instant Spark writes (a UTC-aware column), pandas reads back as the same instant in UTC: microseconds,
    # where Spark's default INT96 would come back as a naive time without its zone.
    aware = frame.assign(timestamp=frame["timestamp"].dt.tz_localize("UTC"))
    spark.createDataFrame(aware).coalesce(1).write.parquet(str(tmp_path / "from_spark"))
    assert pq.read_schema(next((tmp_path / "from_spark").glob("*.parquet"))).field("timestamp").type == \
        pa.timestamp("us", tz="UTC")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "from_spark"), aware, check_dtype=False)
    # What pandas writes by default (nanoseconds), Spark 4 refuses: the reason the writer above exists. (tiercast's
    # own jobs read such files as integers and turn them back into instants: tiercast.spark_inputs.)
    spark.conf.set(NANOS_AS_LONG, "false")
    frame.to_parquet(tmp_path / "ns.parquet")
    with pytest.raises(Exception, match="PARQUET_TYPE_ILLEGAL|Illegal Parquet type"):
        spark.read.parquet(str(tmp_path / "ns.parquet")).collect()
    # Finer than a microsecond cannot be written for Spark without losing digits: refused, not truncated.
    with pytest.raises(Exception, match="would lose data"):
        write_parquet_for_spark(frame.assign(timestamp=pd.Timestamp("1998-01-01 00:00:00.000000001")),
                                tmp_path / "lossy.parquet")


def test_spark_udf_scores_feature_rows_as_the_models_do(spark, registered):
    """docs/spark.md's example, step by step."""
    features_path, folder = registered
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
        mlflow.set_registry_uri(f"sqlite:///{folder / 'mlflow.db'}")

        # The set behind the champion alias: the value version it names, the churn version that one's tags name.
        value_version = MlflowClient().get_model_version_by_alias("tiercast-value", "champion")
        value_uri = f"models:/tiercast-value/{value_version.version}"
        churn_uri = f"models:/tiercast-churn/{value_version.tags['tiercast.churn_version']}"
        assert mlflow.models.get_model_info("models:/tiercast-value@champion").run_id == value_version.run_id

        # The models' inputs are the feature columns their signature names, in that order.
        inputs = mlflow.models.get_model_info(value_uri).signature.inputs.input_names()
        assert mlflow.models.get_model_info(churn_uri).signature.inputs.input_names() == inputs
        rows = spark.read.parquet(str(features_path))
        assert set(inputs) <= set(rows.columns), sorted(set(inputs) - set(rows.columns))
        # tiercast features fits its own feature builder; at the training cutoff on the training data it gives
        # the model inputs the champion's builder (logged with the value model) gives.
        metadata = mlflow.models.get_model_info(value_uri).metadata
        champion_rows = FeatureBuilder.from_dict(metadata["feature_builder"]).transform(
            load_transactions(folder / "cdnow_600.csv")[0], CUTOFF)

        value_udf = mlflow.pyfunc.spark_udf(spark, value_uri, result_type="double", env_manager="local")
        churn_udf = mlflow.pyfunc.spark_udf(spark, churn_uri, result_type="double", env_manager="local")
        # The alias form scores with the value model the alias names: the same numbers.
        champion_udf = mlflow.pyfunc.spark_udf(spark, "models:/tiercast-value@champion", result_type="double",
                                               env_manager="local")
        scored = rows.select("customer_id", value_udf(*inputs).alias("predicted_value"),
                             churn_udf(*inputs).alias("churn_probability"),
                             champion_udf(*inputs).alias("champion_value")).toPandas()

        # The same rows through the same models in pandas, in this process.
        frame = pd.read_parquet(features_path)
        expected_value = mlflow.pyfunc.load_model(value_uri).predict(frame[inputs])
        expected_churn = mlflow.pyfunc.load_model(churn_uri).predict(frame[inputs])
    pd.testing.assert_frame_equal(frame.set_index("customer_id")[inputs], champion_rows[inputs])
    scored = scored.set_index("customer_id").loc[frame["customer_id"]]
    assert len(scored) == len(frame) == 600
    np.testing.assert_allclose(scored["predicted_value"], np.asarray(expected_value, dtype=float), rtol=0, atol=1e-9)
    np.testing.assert_allclose(scored["churn_probability"], np.asarray(expected_churn, dtype=float), rtol=0, atol=1e-9)
    assert scored["churn_probability"].between(0, 1).all() and scored["predicted_value"].std() > 0
    assert scored["champion_value"].equals(scored["predicted_value"])

    # At the training cutoff, with label windows as long as the horizon, they are tiercast score's numbers too.
    assert metadata["label_horizon_days"] == metadata["horizon_days"] == 90
    tiercast_scores = pd.read_parquet(folder / "scores.parquet").set_index("customer_id").loc[scored.index]
    np.testing.assert_allclose(scored["predicted_value"], tiercast_scores["predicted_value"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(scored["churn_probability"], tiercast_scores["churn_probability"], rtol=0, atol=1e-9)


# ------------------------------------------------------------------------------------ --engine spark = local
AS_OF = "2025-01-01"


@pytest.fixture(scope="module")
def worlds(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """Two simulated worlds of 600 customers with customers and interactions files: invoice lines without a
    product column in CSV (identical lines included), and orders in Parquet as PyArrow writes them
    (nanosecond timestamps), its transactions also as a dataset folder of two part files."""
    folder = tmp_path_factory.mktemp("worlds")
    assert main(["simulate", "--customers", "600", "--out", str(folder / "lines"), "--line-items",
                 "--no-product-id"]) == 0
    assert main(["simulate", "--customers", "600", "--seed", "1", "--out", str(folder / "orders"), "--format",
                 "parquet"]) == 0
    dataset = folder / "orders" / "transactions_dataset"
    dataset.mkdir()
    orders = pq.read_table(folder / "orders" / "transactions.parquet")
    assert orders.schema.field("timestamp").type == pa.timestamp("ns")
    half = orders.num_rows // 2
    pq.write_table(orders.slice(0, half), dataset / "part-0.parquet")
    pq.write_table(orders.slice(half), dataset / "part-1.parquet")
    return {world: {kind: folder / world / f"{kind}.{suffix}" for kind in ("transactions", "customers", "interactions")}
            for world, suffix in (("lines", "csv"), ("orders", "parquet"))}


def _inputs(files: dict[str, Path], transactions: Path | str | None = None) -> list[str]:
    return ["--transactions", str(transactions or files["transactions"]), "--customers", str(files["customers"]),
            "--interactions", str(files["interactions"])]


def _same_as_local(local: pd.DataFrame, on_spark: pd.DataFrame) -> None:
    """Exactly equal; pandas' categorical columns come back from Spark's Parquet as text (None where missing)."""
    for column in local.columns[local.dtypes == "category"]:
        local[column] = local[column].astype(object).where(local[column].notna(), None)
    pd.testing.assert_frame_equal(local, on_spark)


def _report(path: Path) -> dict:
    report = json.loads(path.read_text())
    for kind in ("transactions", "customers", "interactions"):
        report[kind].pop("path")
    return report


@pytest.mark.parametrize("world", ["lines", "orders"])
def test_features_on_spark_equal_the_local_engines(spark, worlds, world, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="tiercast")
    files = worlds[world]
    # Spark reads the Parquet world's transactions as a dataset folder, the CSV world's through a glob.
    spark_transactions = (files["transactions"].with_name("transactions_dataset") if world == "orders"
                          else files["transactions"].with_name("transact*.csv"))
    # The Parquet world in buckets of at most 40 customers (both engines split its customers in more than 10);
    # the invoice lines with their identical rows dropped (data.drop_identical_rows).
    config = tmp_path / "engine.yaml"
    config.write_text("engine: {bucket_customers: 40}\n" if world == "orders"
                      else "data: {drop_identical_rows: true}\n")
    local, on_spark = tmp_path / "local.parquet", tmp_path / "spark_features"
    assert main(["--config", str(config), "features", *_inputs(files), "--as-of", AS_OF, "--out", str(local)]) == 0
    assert main(["--config", str(config), "features", "--engine", "spark", *_inputs(files, spark_transactions),
                 "--as-of", AS_OF, "--out", str(on_spark)]) == 0
    expected = pd.read_parquet(local)
    assert len(expected) > 300
    buckets = int(re.search(r"in (\d+) customer buckets", caplog.text).group(1))
    assert buckets > 10 if world == "orders" else buckets == 8  # 4 per core of local[2]
    assert expected.filter(like="profile_").shape[1] and expected.filter(like="survey").shape[1]
    _same_as_local(expected, pd.read_parquet(on_spark))
    assert _report(Path(f"{on_spark}.quality.json")) == _report(Path(f"{local}.quality.json"))
    if world == "lines":  # identical invoice lines are counted and dropped the same way
        report = _report(Path(f"{local}.quality.json"))["transactions"]
        assert report["summary"]["identical_rows"] > 0 and report["rows_kept"] < report["rows_read"]


def test_score_on_spark_equals_the_local_engines(spark, worlds, tmp_path, monkeypatch):
    files = worlds["lines"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    # Trained on the inputs Spark checked and cleaned, collected to the driver: the champion both engines score with.
    assert main(["train", "--engine", "spark", *_inputs(files), "--cutoff", AS_OF, "--horizon-days", "90",
                 "--trials", "0"]) == 0
    local, on_spark = tmp_path / "local.parquet", tmp_path / "spark_scores"
    assert main(["score", *_inputs(files), "--as-of", AS_OF, "--out", str(local)]) == 0
    assert main(["score", "--engine", "spark", *_inputs(files), "--as-of", AS_OF, "--out", str(on_spark)]) == 0
    expected = pd.read_parquet(local)
    assert (expected["source"] == "model").mean() > 0.9
    _same_as_local(expected, pd.read_parquet(on_spark))


def _run_of_the_champion(store: Path) -> mlflow.entities.Run:
    client = MlflowClient(f"sqlite:///{store}")
    version = client.get_model_version_by_alias("tiercast-value", "champion")
    return client.get_run(version.run_id)


@pytest.mark.parametrize("cap", ["customers", "rows"])
def test_train_on_spark_samples_the_customers_the_local_engine_samples(spark, worlds, tmp_path, monkeypatch, caplog,
                                                                       cap):
    """Above training.max_customers (orders), or training.max_rows (invoice lines, identical ones dropped), only
    the sample leaves the executors: the same draw as the local engine's, so the same models, and the run records
    the sample the same way. The sample reaches the driver with its text in Arrow, as the local loader gives it,
    so that the training's bucket work runs in forked workers there too."""
    caplog.set_level(logging.INFO, logger="tiercast")
    files = worlds["orders" if cap == "customers" else "lines"]
    config = tmp_path / "cap.yaml"
    lines = len(pd.read_csv(worlds["lines"]["transactions"]))
    by_rows = {"training": {"max_customers": None, "max_rows": lines // 2}, "data": {"drop_identical_rows": True}}
    config.write_text(yaml.safe_dump({**({"training": {"max_customers": 250}} if cap == "customers" else by_rows),
                                      "engine": {"workers": 2, "bucket_customers": 100}}))
    monkeypatch.chdir(tmp_path)
    runs = {}
    for engine in ("local", "spark"):
        store = tmp_path / f"{engine}.db"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
        assert main(["--config", str(config), "train", "--engine", engine, *_inputs(files), "--cutoff", AS_OF,
                     "--horizon-days", "90", "--trials", "0"]) == 0
        runs[engine] = _run_of_the_champion(store)
    local, on_spark = runs["local"].data, runs["spark"].data
    assert on_spark.params["customers_sampled"] == "True" and int(on_spark.params["customers_before_cutoff"]) > 400
    kept = int(on_spark.params["training_customers"])
    assert kept == 250 if cap == "customers" else 150 < kept < int(on_spark.params["customers_before_cutoff"]) - 100
    assert {k: v for k, v in on_spark.params.items() if k.startswith(("training_", "customers_"))} == \
        {k: v for k, v in local.params.items() if k.startswith(("training_", "customers_"))}
    assert on_spark.metrics and on_spark.metrics == local.metrics
    assert "building training examples: 2/" in caplog.text  # bucket work ran, in workers: no object columns
    assert "Python-object columns" not in caplog.text


def test_backtest_on_spark_equals_the_local_engines(spark, worlds, tmp_path):
    files = worlds["lines"]
    local, on_spark = tmp_path / "local.csv", tmp_path / "spark.csv"
    for engine, out in (("local", local), ("spark", on_spark)):
        assert main(["backtest", "--engine", engine, *_inputs(files), "--cutoff", AS_OF, "--horizon-days", "90",
                     "--out", str(out)]) == 0
    expected = pd.read_csv(local)
    assert len(expected) > 300 and expected["actual_value"].notna().all()
    pd.testing.assert_frame_equal(expected, pd.read_csv(on_spark))


def test_bad_input_on_spark_exits_2_naming_file_column_and_rows_and_writes_nothing(spark, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,timestamp,amount\nA,2024-01-01,5\nB,2024-01-02 25:00,3\nC,2024-01-03,1\n")
    out = tmp_path / "features"
    assert main(["features", "--engine", "spark", "--transactions", str(bad), "--as-of", AS_OF, "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert f"{bad}, column 'timestamp': 1 values are not ISO 8601" in error and "2024-01-02 25:00" in error
    assert not out.exists() and not Path(f"{out}.quality.json").exists()

    bad.write_text("customer_id,timestamp\nA,2024-01-01\n")
    assert main(["features", "--engine", "spark", "--transactions", str(bad), "--as-of", AS_OF, "--out", str(out)]) == 2
    assert "column 'amount': required column missing" in capsys.readouterr().err

    bad.write_text("customer_id,timestamp,amount\nA,2024-01-01,5\nB,2024-01-02\n")
    assert main(["features", "--engine", "spark", "--transactions", str(bad), "--as-of", AS_OF, "--out", str(out)]) == 2
    assert "1 rows do not have the header's 3 fields" in capsys.readouterr().err and not out.exists()

    # Spark decodes what it cannot with U+FFFD, silently; the job refuses such rows, in any column, as the loader does.
    bad.write_bytes(b"customer_id,timestamp,amount,note\nA,2024-01-01,5,J\xe9r\xf4me\nB,2024-01-02,3,ok\n")
    assert main(["features", "--engine", "spark", "--transactions", str(bad), "--as-of", AS_OF, "--out", str(out)]) == 2
    assert "1 rows hold bytes that are not utf-8 text" in capsys.readouterr().err and not out.exists()


def test_a_column_of_two_currencies_is_refused_even_when_each_batch_holds_one(spark, tmp_path, capsys):
    money = tmp_path / "money.csv"
    money.write_text('customer_id,timestamp,amount\nA,2024-01-01,"¥1,200.00"\nB,2024-01-02,¥5.00\n'
                     'C,2024-01-03,"$1,300.00"\nD,2024-01-04,$7.00\nE,2024-01-05,¥9.00\n')
    config = tmp_path / "two_rows_a_batch.yaml"
    config.write_text("engine: {options: {spark.sql.execution.arrow.maxRecordsPerBatch: '2'}}\n")
    try:
        assert main(["--config", str(config), "features", "--engine", "spark", "--transactions", str(money),
                     "--as-of", AS_OF, "--out", str(tmp_path / "features")]) == 2
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    error = capsys.readouterr().err
    assert "column 'amount': 2 values have another currency sign than the column's usual '¥' (signs found: $ ¥)" \
        in error and "$1,300.00" in error


def test_spark_refuses_to_replace_what_is_not_a_dataset(spark, worlds, tmp_path, capsys):
    taken = tmp_path / "notes"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    args = ["features", "--engine", "spark", *_inputs(worlds["lines"]), "--as-of", AS_OF]
    assert main([*args, "--out", str(taken)]) == 2
    assert "holding other files than a Parquet dataset's (keep.txt)" in capsys.readouterr().err
    assert (taken / "keep.txt").read_text() == "mine"
    assert main([*args, "--out", str(tmp_path / "features.csv")]) == 2
    assert "writes a Parquet dataset (a folder of part files), not CSV" in capsys.readouterr().err
    # Under a file: found before the work, not when writing at the end.
    assert main([*args, "--out", str(taken / "keep.txt" / "features")]) == 2
    assert "cannot create a folder beside it" in capsys.readouterr().err


def test_the_local_engine_and_help_never_import_pyspark(tmp_path):
    log = tmp_path / "tx.csv"
    log.write_text("customer_id,timestamp,amount\nA,2024-01-01,5\nB,2024-06-02,3\n")
    probe = ("import sys; from tiercast.cli import main; "
             f"code = main(['features', '--transactions', {str(log)!r}, '--as-of', '2025-01-01', '--out', "
             f"{str(tmp_path / 'f.csv')!r}]); "
             "assert code == 0 and 'pyspark' not in sys.modules, sorted(m for m in sys.modules if 'spark' in m)")
    subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True)
