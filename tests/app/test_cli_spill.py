"""``features`` and ``score`` on a log spilled to disk in buckets of customer ids (issue #20), forced by a tiny
``engine.spill_above_rows`` and tiny buckets: the same bytes (CSV), the same table and schema (Parquet) and the
same data-quality report as the inputs loaded whole; a bad file exits 2 with the same message and leaves
nothing, neither an output nor a spill folder."""

from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from mlflow import MlflowClient

from tiercast.cli import main
from tiercast.outputs import write_table, write_table_parts

AS_OF = "2025-01-02"
WHOLE = {"engine": {"spill_above_rows": None, "workers": 1}}
RULES = {"fallback": {"allow_in_batch": True}}  # an empty store: the rules score everyone


def _spilled(spill: Path) -> dict:
    spill.mkdir(exist_ok=True)
    return {"engine": {"spill_above_rows": 1, "bucket_customers": 150, "workers": 2, "spill_folder": str(spill)}}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("world") / "w"
    assert main(["simulate", "--customers", "1200", "--format", "parquet", "--out", str(folder)]) == 0
    return folder


def _run(tmp_path: Path, config: dict, args: list[str], out: Path) -> int:
    path = tmp_path / f"{out.stem}.yaml"
    path.write_text(yaml.safe_dump(config))
    return main(["--config", str(path), *args, "--out", str(out)])


def _assert_same_table(spilled: Path, whole: Path) -> None:
    if spilled.suffix == ".csv":
        assert spilled.read_bytes() == whole.read_bytes()
    else:  # the same rows in row groups of the buckets: the same table, schema and pandas metadata
        pd.testing.assert_frame_equal(pd.read_parquet(spilled), pd.read_parquet(whole))
        assert pq.read_schema(spilled).equals(pq.read_schema(whole), check_metadata=True)
        assert pq.ParquetFile(spilled).metadata.num_row_groups > 1


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_spilled_features_are_the_features_of_the_whole_log(world, tmp_path, caplog, suffix) -> None:
    args = ["features", "--transactions", str(world / "transactions.parquet"), "--customers",
            str(world / "customers.parquet"), "--interactions", str(world / "interactions.parquet"), "--as-of", AS_OF]
    whole, spilled = tmp_path / f"whole{suffix}", tmp_path / f"spilled{suffix}"
    assert _run(tmp_path, WHOLE, args, whole) == 0
    with caplog.at_level("INFO"):
        assert _run(tmp_path, _spilled(tmp_path / "spill"), args, spilled) == 0
    assert "buckets of customers" in caplog.text and "building features: 8/8 buckets done" in caplog.text
    _assert_same_table(spilled, whole)
    reports = [json.loads(Path(f"{p}.quality.json").read_text()) for p in (whole, spilled)]
    assert reports[0] == reports[1] and reports[0]["customers_scored"] > 900
    assert not list((tmp_path / "spill").iterdir())


# A membership window of 45 days is no feature's window: the scores then read its spend from the transactions.
@pytest.mark.parametrize(("suffix", "language", "membership_days"),
                         [(".csv", "en", 365), (".parquet", "en", 365), (".csv", "zh", 365), (".csv", "en", 45)])
def test_spilled_scores_are_the_scores_of_the_whole_log(world, tmp_path, store, capsys, suffix, language,
                                                       membership_days) -> None:
    args = ["score", "--transactions", str(world / "transactions.parquet"), "--customers",
            str(world / "customers.parquet"), "--as-of", AS_OF]
    whole, spilled = tmp_path / f"whole{suffix}", tmp_path / f"spilled{suffix}"
    words = {"language": language, "policy": {"membership": {"window_days": membership_days}}}
    assert _run(tmp_path, {**WHOLE, **RULES, **words}, args, whole) == 0
    printed_whole = capsys.readouterr().out
    assert _run(tmp_path, {**_spilled(tmp_path / "spill"), **RULES, **words}, args, spilled) == 0
    assert capsys.readouterr().out.replace(str(spilled), str(whole)) == printed_whole  # by source and tier
    _assert_same_table(spilled, whole)
    assert pd.read_parquet(whole)["customer_id"].is_monotonic_increasing if suffix == ".parquet" else True
    if language == "zh":  # the labels are the configured language's on both paths
        assert not pd.read_csv(spilled)["lifecycle_stage"].str.contains("[A-Za-z]").any()
    assert not list((tmp_path / "spill").iterdir())


# Whitespace around ids, a UTC offset, rows identical to an earlier one (kept or dropped), a refund, ids of
# several lengths and a non-ASCII one: the spilled buckets clean and count them as the whole file's load.
ODD_CSV = ("customer_id,timestamp,amount,order_id\n"
           " A1 ,2024-01-02T10:00:00+02:00,10.5,o1\n"
           "B,2024-02-03,20,o2\n"
           "A1,2024-01-02T08:00:00Z,10.5,o1\n"
           "é9,2024-03-04,5,o3\n"
           "B,2024-02-03,20,o2\n"
           "C10,2024-05-06 12:30,-4,o4\n"
           "C2,2024-06-07,0,o5\n"
           "B,2024-07-08,7.25,\n")


@pytest.mark.parametrize("drop", [False, True])
def test_a_csv_of_odd_rows_spills_as_it_loads_whole(tmp_path, caplog, monkeypatch, drop) -> None:
    monkeypatch.setattr("tiercast.features.spill.BATCH_BYTES", 100)  # batches of a few rows each
    path = tmp_path / "tx.csv"
    path.write_text(ODD_CSV, encoding="utf-8")
    args = ["features", "--transactions", str(path), "--as-of", AS_OF]
    data = {"data": {"drop_identical_rows": drop}}
    whole, spilled = tmp_path / "whole.csv", tmp_path / "spilled.csv"
    assert _run(tmp_path, {**WHOLE, **data}, args, whole) == 0
    spilled_config = _spilled(tmp_path / "spill")
    spilled_config["engine"]["bucket_customers"] = 2
    with caplog.at_level("INFO"):
        assert _run(tmp_path, {**spilled_config, **data}, args, spilled) == 0
    assert "8 rows spilled into 3 buckets" in caplog.text
    assert spilled.read_bytes() == whole.read_bytes()
    reports = [json.loads(Path(f"{p}.quality.json").read_text()) for p in (whole, spilled)]
    assert reports[0] == reports[1]
    assert reports[0]["transactions"]["summary"]["identical_rows"] == 2
    assert reports[0]["transactions"]["rows_kept"] == (6 if drop else 8)


def test_a_csv_the_fast_path_refuses_is_loaded_whole(tmp_path, caplog) -> None:
    """Trailing commas (a column without a name) and a formatted amount: read the pandas way, as before."""
    path = tmp_path / "tx.csv"
    path.write_text('customer_id,timestamp,amount,\nA,2024-01-02,"1,234.50",\nB,2024-02-03,20,\n')
    args = ["features", "--transactions", str(path), "--as-of", AS_OF]
    whole, spilled = tmp_path / "whole.csv", tmp_path / "spilled.csv"
    assert _run(tmp_path, WHOLE, args, whole) == 0
    with caplog.at_level("INFO"):
        assert _run(tmp_path, _spilled(tmp_path / "spill"), args, spilled) == 0
    assert "loaded whole, as the fast path does not read it" in caplog.text
    assert spilled.read_bytes() == whole.read_bytes()
    assert not list((tmp_path / "spill").iterdir())


@pytest.mark.parametrize("command", ["features", "score"])
@pytest.mark.parametrize("bad", ["amount\nA,2024-01-02,ten\n", "amount\nA,2024-01-02,5\n,2024-01-03,6\n",
                                 "amount\nA,2024-01-02,5\nA,2024-02-31,6\n"])
def test_a_bad_file_says_what_it_said_and_leaves_nothing(tmp_path, store, capsys, command, bad) -> None:
    path = tmp_path / "tx.csv"
    path.write_text("customer_id,timestamp," + bad)
    args = [command, "--transactions", str(path), "--as-of", AS_OF]
    errors = []
    for name, config in (("whole", WHOLE), ("spilled", _spilled(tmp_path / "spill"))):
        out = tmp_path / "out" / f"{name}.csv"
        assert _run(tmp_path, {**config, **RULES}, args, out) == 2
        errors.append(capsys.readouterr().err)
        assert not (tmp_path / "out").exists()
    assert errors[0] == errors[1] and str(path) in errors[0]
    assert not list((tmp_path / "spill").iterdir())


@pytest.mark.parametrize("command", ["features", "score"])
@pytest.mark.parametrize("case", ["as_of before every transaction", "a bad profiles file"])
def test_a_refusal_after_spilling_is_worded_alike_and_removes_the_spill(tmp_path, store, capsys, command, case
                                                                        ) -> None:
    # score spills in a child process (spilled_jobs.SpillingAside): the bad profiles file's DataError, raised
    # there, reaches the command whole.
    path = tmp_path / "tx.csv"
    path.write_text("customer_id,timestamp,amount\nA,2024-01-02,5\nB,2024-02-03,6\n")
    args = [command, "--transactions", str(path), "--as-of", "2023-06-01" if case.startswith("as_of") else AS_OF]
    if case == "a bad profiles file":
        profiles = tmp_path / "profiles.csv"
        profiles.write_text("customer_id,segment\nA,x\nA,y\n")  # a customer twice
        args += ["--customers", str(profiles)]
    errors = []
    for name, config in (("whole", WHOLE), ("spilled", _spilled(tmp_path / "spill"))):
        assert _run(tmp_path, {**config, **RULES}, args, tmp_path / "out" / f"{name}.csv") == 2
        errors.append(capsys.readouterr().err)
    assert errors[0] == errors[1] and ("no customer has a transaction before" in errors[0]
                                       or "repeat a customer_id" in errors[0])
    assert not (tmp_path / "out").exists() and not list((tmp_path / "spill").iterdir())
    assert not multiprocessing.active_children()  # no spilling child left running


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a file every write to fails as a full disk")
@pytest.mark.parametrize("command", ["features", "score"])
def test_a_spill_folder_without_room_is_said_and_nothing_is_loaded_whole(world, tmp_path, store, capsys,
                                                                         monkeypatch, command) -> None:
    # A full disk cannot be made here: the bucket files are written to /dev/full, which answers "no space left".
    monkeypatch.setattr("tiercast.features.spill.bucket_path", lambda folder, b: Path("/dev/full"))
    out = tmp_path / "out" / f"{command}.parquet"
    args = [command, "--transactions", str(world / "transactions.parquet"), "--as-of", AS_OF]
    assert _run(tmp_path, {**_spilled(tmp_path / "spill"), **RULES}, args, out) == 2
    error = capsys.readouterr().err
    assert f"cannot write {tmp_path / 'spill'}: no space left" in error and "engine.spill_folder" in error
    assert not out.parent.exists() and not list((tmp_path / "spill").iterdir())


def test_a_column_all_missing_in_the_first_parts_takes_its_type_from_a_later_one(tmp_path) -> None:
    parts = [pd.DataFrame({"customer_id": ["a", "b"], "reason": [None, None], "none": [None, None]}),
             pd.DataFrame({"customer_id": ["c"], "reason": [None], "none": [None]}),
             pd.DataFrame({"customer_id": ["d", "e"], "reason": ["thin", None], "none": [None, None]})]
    write_table(pd.concat(parts, ignore_index=True), tmp_path / "whole.parquet")
    write_table_parts(iter(parts), tmp_path / "parts.parquet")
    whole, in_parts = (pq.read_table(tmp_path / f"{name}.parquet") for name in ("whole", "parts"))
    assert in_parts.schema.equals(whole.schema, check_metadata=True) and in_parts.equals(whole)
    assert pq.ParquetFile(tmp_path / "parts.parquet").metadata.num_row_groups == 3


def test_parquet_outputs_keep_a_dictionary_for_text_and_whole_numbers_not_for_floats(tmp_path) -> None:
    frame = pd.DataFrame({"customer_id": ["a", "b", "c", "d"], "tier": ["high", "low", "low", "high"],
                          "r_score": [1, 5, 5, 2], "predicted_value": [1.5, 2.25, np.nan, 0.0]})
    write_table(frame, tmp_path / "whole.parquet")
    write_table_parts(iter([frame.iloc[:2], frame.iloc[2:]]), tmp_path / "parts.parquet")
    for name in ("whole", "parts"):
        path = tmp_path / f"{name}.parquet"
        row_group = pq.ParquetFile(path).metadata.row_group(0)
        encodings = {row_group.column(i).path_in_schema: row_group.column(i).encodings
                     for i in range(row_group.num_columns)}
        assert all("RLE_DICTIONARY" in encodings[c] for c in ("customer_id", "tier", "r_score"))
        assert "RLE_DICTIONARY" not in encodings["predicted_value"]
        pd.testing.assert_frame_equal(pd.read_parquet(path), frame)


# Training above training.max_customers learns from a sample: 400 of the world's 924 customers before the cutoff.
SAMPLED = {"training": {"max_customers": 400, "tuning": {"trials": 0}}}
CUTOFF_ARGS = ["--cutoff", AS_OF, "--horizon-days", "90"]


def _world_args(world: Path) -> list[str]:
    return ["--transactions", str(world / "transactions.parquet"), "--customers", str(world / "customers.parquet"),
            "--interactions", str(world / "interactions.parquet")]


def _row_cap(transactions: Path) -> dict:
    """A training sample capped by rows, half the log's: about half the customers."""
    return {"training": {"max_customers": None, "max_rows": pq.read_metadata(transactions).num_rows // 2,
                         "tuning": {"trials": 0}}}


@pytest.mark.parametrize("cap", ["customers", "rows"])
def test_spilled_train_learns_from_the_sample_loading_whole_learns_from(world, tmp_path, monkeypatch, cap) -> None:
    """The spilled log's ids (and rows per id) give the local engine's draw; only the sample's rows are read from
    the buckets, and the run records the same sample, parameters, metrics and data-quality report as loading the
    file whole."""
    sampled = SAMPLED if cap == "customers" else _row_cap(world / "transactions.parquet")
    runs = {}
    for name, config in (("whole", WHOLE), ("spilled", _spilled(tmp_path / "spill"))):
        uri = f"sqlite:///{tmp_path / name}.db"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**config, **sampled}))
        assert main(["--config", str(path), "train", *_world_args(world), *CUTOFF_ARGS]) == 0
        client = MlflowClient(uri)
        run = client.get_run(client.get_model_version_by_alias("tiercast-value", "champion").run_id)
        quality = json.loads(Path(client.download_artifacts(run.info.run_id, "data_quality.json", str(tmp_path)))
                             .read_text())
        runs[name] = run.data, quality
    (whole, whole_quality), (spilled, spilled_quality) = runs["whole"], runs["spilled"]
    assert spilled.params["customers_before_cutoff"] == "924" and spilled.params["customers_sampled"] == "True"
    kept = int(spilled.params["training_customers"])
    assert kept == 400 if cap == "customers" else 300 < kept < 624
    assert {k: v for k, v in spilled.params.items() if not k.startswith("engine")} == \
        {k: v for k, v in whole.params.items() if not k.startswith("engine")}
    assert spilled.metrics and spilled.metrics == whole.metrics
    assert spilled_quality == whole_quality and spilled_quality["transactions"]["summary"]["customers"] > 1000
    assert not list((tmp_path / "spill").iterdir())


@pytest.mark.parametrize("drop_identical_rows", [False, True])
def test_a_spilled_log_with_identical_rows_gives_the_sample_by_rows_of_the_whole_log(world, tmp_path,
                                                                                   drop_identical_rows) -> None:
    """Rows are counted as the training gets them, identical repeats dropped or not, so the cap on rows draws the
    same customers from the buckets as from the log loaded whole."""
    from tiercast.config import load_config
    from tiercast.jobs import InputFiles
    from tiercast.spilled_jobs import spilled_inputs
    from tiercast.spilled_training import training_inputs
    from tiercast.training.customer_sample import sample_customers

    tx = pd.read_parquet(world / "transactions.parquet")
    repeated = tmp_path / "transactions.parquet"
    pd.concat([tx, tx.iloc[::3]]).to_parquet(repeated)  # a third of the rows twice: the caps' rows differ
    inputs = InputFiles(repeated)
    sets = {}
    for name, engine in (("whole", WHOLE), ("spilled", _spilled(tmp_path / "spill"))):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**engine, **_row_cap(world / "transactions.parquet"),
                                        "data": {"drop_identical_rows": drop_identical_rows}}))
        config = load_config(path)
        if name == "whole":
            data, sample = sample_customers(inputs.load(config), pd.Timestamp(AS_OF), None, config.training.seed,
                                            config.training.max_rows)
        else:
            spilled = spilled_inputs(config, inputs)
            assert spilled is not None
            with spilled:
                data = training_inputs(config, spilled, pd.Timestamp(AS_OF))
        sets[name] = set(data.transactions["customer_id"]), len(data.transactions)
    (whole, rows), (spilled, spilled_rows) = sets["whole"], sets["spilled"]
    assert spilled == whole and spilled_rows == rows <= len(tx) // 2 and 200 < len(whole) < 800


def test_spilled_scores_by_the_champion_are_the_scores_of_the_whole_log(world, tmp_path, monkeypatch) -> None:
    """The champion, loaded while the log is spilled, scores every bucket in the forked workers as it scores the
    log loaded whole: the same bytes, reasons included."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'models.db'}")
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({**WHOLE, **SAMPLED}))
    assert main(["--config", str(path), "train", *_world_args(world), *CUTOFF_ARGS]) == 0
    args = ["score", *_world_args(world), "--as-of", AS_OF]
    whole, spilled = tmp_path / "whole.csv", tmp_path / "spilled.csv"
    assert _run(tmp_path, WHOLE, args, whole) == 0
    assert _run(tmp_path, _spilled(tmp_path / "spill"), args, spilled) == 0
    assert spilled.read_bytes() == whole.read_bytes()
    scores = pd.read_csv(spilled)
    assert (scores["source"] == "model").mean() > 0.9 and scores["reasons"].notna().all()
    assert not list((tmp_path / "spill").iterdir())


def test_a_spilled_score_without_champion_stops_as_loading_whole_and_removes_the_spill(world, tmp_path, store,
                                                                                      capsys) -> None:
    args = ["score", "--transactions", str(world / "transactions.parquet"), "--as-of", AS_OF]
    out = tmp_path / "out" / "scores.csv"
    assert _run(tmp_path, _spilled(tmp_path / "spill"), args, out) == 3
    assert "no 'champion' models" in capsys.readouterr().err
    assert not out.parent.exists() and not list((tmp_path / "spill").iterdir())


@pytest.mark.parametrize("spilled", [False, True])
def test_a_bad_file_to_score_by_the_rules_says_nothing_of_the_rules(tmp_path, store, caplog, capsys, spilled
                                                                    ) -> None:
    # The champion loads while the log is read or spilled; that there is none is said only once the log is read.
    path = tmp_path / "tx.csv"
    path.write_text("customer_id,timestamp,amount\nA,2024-01-02,ten\n")
    args = ["score", "--transactions", str(path), "--as-of", AS_OF]
    engine = _spilled(tmp_path / "spill") if spilled else WHOLE
    with caplog.at_level("WARNING"):
        assert _run(tmp_path, {**engine, **RULES}, args, tmp_path / "scores.csv") == 2
    assert "'amount'" in capsys.readouterr().err and "rule-based fallback" not in caplog.text


@pytest.mark.parametrize("spilled", [False, True])
def test_a_bad_file_is_said_without_waiting_for_a_model_store_that_does_not_answer(tmp_path, monkeypatch, capsys,
                                                                                  spilled) -> None:
    # The champion loads on a thread while the log is read; a refused file does not wait for it.
    answer, loaded = threading.Event(), []

    def not_answering(config):
        answer.wait(60)
        loaded.append(config)

    monkeypatch.setattr("tiercast.jobs.load_champion", not_answering)
    path = tmp_path / "tx.csv"
    path.write_text("customer_id,timestamp,amount\nA,2024-01-02,ten\n")
    engine = _spilled(tmp_path / "spill") if spilled else WHOLE
    try:
        assert _run(tmp_path, engine, ["score", "--transactions", str(path), "--as-of", AS_OF],
                    tmp_path / "scores.csv") == 2
        assert not loaded and "'amount'" in capsys.readouterr().err  # said while the store still says nothing
    finally:
        answer.set()


def test_spilled_backtest_writes_and_compares_as_loading_whole(world, tmp_path) -> None:
    """Trained on the same sample, every bucket scored and labelled in turn: the same bytes, and the same
    comparison with BG/NBD x Gamma-Gamma fitted on every customer's summary, gathered from the buckets."""
    from tiercast.config import load_config
    from tiercast.jobs import InputFiles, backtest
    from tiercast.spilled_training import backtest as spilled_backtest

    inputs = InputFiles(*(world / f"{kind}.parquet" for kind in ("transactions", "customers", "interactions")))
    done = {}
    for name, config, run in (("whole", WHOLE, backtest), ("spilled", _spilled(tmp_path / "spill"), spilled_backtest)):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**config, **SAMPLED}))
        done[name] = run(load_config(path), inputs, pd.Timestamp(AS_OF), 90, tmp_path / f"{name}.csv")
    whole, spilled = done["whole"], done["spilled"]
    assert spilled is not None and spilled.customers == whole.customers == 924
    assert spilled.out.read_bytes() == whole.out.read_bytes()
    pd.testing.assert_frame_equal(spilled.comparison, whole.comparison, check_exact=True)
    assert whole.comparison.loc["bgnbd_gamma_gamma", "churn_auc"] > 0.8
    assert pd.read_csv(whole.out)["actual_value"].notna().all()
    assert not list((tmp_path / "spill").iterdir())


def _aside(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, spill) -> "object":
    """spilled_jobs.SpillingAside of a log that spills, its child running ``spill(config, inputs)`` (set here and
    forked with the child) instead of the spill."""
    from tiercast import spilled_jobs
    from tiercast.config import load_config
    from tiercast.jobs import InputFiles

    monkeypatch.setattr(spilled_jobs, "_spill", spill)
    path = tmp_path / "tx.csv"
    path.write_text("customer_id,timestamp,amount\nA,2024-01-02,5\nB,2024-02-03,6\n")
    config_path = tmp_path / "spilled.yaml"
    config_path.write_text(yaml.safe_dump(_spilled(tmp_path / "spill")))
    aside = spilled_jobs.spill_aside(load_config(config_path), InputFiles(path), tmp_path / "scores.csv")
    assert aside is not None
    return aside


def test_the_log_is_spilled_aside_in_a_child_process_of_lower_priority(tmp_path, monkeypatch) -> None:
    import os

    from tiercast.spilled_jobs import SPILL_NICENESS

    here = os.getpid(), os.nice(0)
    pid, niceness = _aside(monkeypatch, tmp_path, lambda config, inputs: (os.getpid(), os.nice(0))).result()
    assert pid != here[0] and niceness == min(19, here[1] + SPILL_NICENESS)


def test_a_spilling_child_that_dies_is_said_not_waited_for(tmp_path, monkeypatch) -> None:
    import os
    import signal

    aside = _aside(monkeypatch, tmp_path, lambda config, inputs: os.kill(os.getpid(), signal.SIGKILL))
    with pytest.raises(RuntimeError, match=r"spilling the transactions ended without an answer \(exit code -9\)"):
        aside.result()
    assert not multiprocessing.active_children()


class _Unpicklable(Exception):
    def __init__(self, what: str, why: str) -> None:
        super().__init__(f"{what}: {why}")  # its pickle rebuilds it from one argument: it does not rebuild


def test_an_error_of_the_spilling_child_reaches_the_command_in_words_when_it_does_not_pickle(tmp_path, monkeypatch
                                                                                          ) -> None:
    def refused(config, inputs):
        raise _Unpicklable("the log", "refused")

    with pytest.raises(RuntimeError, match=r"^_Unpicklable: the log: refused$"):
        _aside(monkeypatch, tmp_path, refused).result()


def test_errors_of_the_spill_rebuild_from_their_pickles_whole(tmp_path) -> None:
    # What a spilling child or a bucket's worker raises reaches the command's process through a pickle.
    import pickle

    from tiercast.features.schema import DataError
    from tiercast.features.spill import SpillFolderFull
    from tiercast.outputs import OutputError

    sample = pd.DataFrame({"customer_id": ["A"], "amount": ["ten"]})
    for err in (DataError(tmp_path / "tx.csv", "not a number", "amount", sample), SpillFolderFull(tmp_path),
                OutputError(tmp_path / "out.csv", "a folder")):
        rebuilt = pickle.loads(pickle.dumps(err))
        assert type(rebuilt) is type(err) and str(rebuilt) == str(err) and vars(rebuilt).keys() == vars(err).keys()
