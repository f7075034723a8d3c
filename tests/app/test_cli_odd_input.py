"""The command line on odd options (issue #19): dates outside the supported range, an --as-of before all data,
and output paths a command cannot write. Each exits 2 with one message, and leaves nothing behind: no output,
no temporary file. Output paths are checked before the inputs are even read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tiercast.cli import main

ROOT = Path(__file__).resolve().parents[2]
RANGE = "outside the supported dates, 1900-01-01 to 2199-12-31"


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def transactions(workdir) -> Path:
    path = workdir / "tx.csv"
    path.write_text("customer_id,timestamp,amount\nA,1998-01-02,10\nB,1998-02-03,20\nA,1998-03-04,5\n")
    return path


def _with_rules(folder: Path) -> list[str]:
    """The config option that lets ``score`` use the rule fallback: these tests have no trained models."""
    config = folder / "rules.yaml"
    config.write_text(yaml.safe_dump({"fallback": {"allow_in_batch": True}}))
    return ["--config", str(config)]


@pytest.fixture
def scores(transactions, workdir) -> Path:
    out = workdir / "scores.csv"
    assert main([*_with_rules(workdir), "score", "--transactions", str(transactions), "--as-of", "1998-06-01",
                 "--out", str(out)]) == 0
    return out


def _left_behind(folder: Path) -> list[str]:
    """Temporary files anywhere under ``folder``."""
    return [str(p) for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".tiercast-")]


def _date_commands(transactions: Path, plan: Path, out: Path) -> dict[str, list[str]]:
    """Every command with a date option, with that option last."""
    tx = str(transactions)
    return {
        "score --as-of": ["score", "--transactions", tx, "--out", str(out), "--as-of"],
        "features --as-of": ["features", "--transactions", tx, "--out", str(out), "--as-of"],
        "train --cutoff": ["train", "--transactions", tx, "--horizon-days", "30", "--cutoff"],
        "backtest --cutoff": ["backtest", "--transactions", tx, "--horizon-days", "30", "--out", str(out),
                              "--cutoff"],
        "simulate --cutoff": ["simulate", "--customers", "20", "--out", str(out.parent / "world"), "--cutoff"],
        "evaluate-plan --start": ["evaluate-plan", "--plan", str(plan), "--transactions", tx, "--start"],
    }


DATE_COMMANDS = ["score --as-of", "features --as-of", "train --cutoff", "backtest --cutoff", "simulate --cutoff",
                 "evaluate-plan --start"]


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "1899-12-31", "2200-01-01"])
@pytest.mark.parametrize("command", DATE_COMMANDS)
def test_dates_outside_the_supported_range_exit_2_with_a_message(transactions, workdir, capsys, command, day):
    out = workdir / "out.csv"
    args = _date_commands(transactions, workdir / "plan.csv", out)[command]
    with pytest.raises(SystemExit) as exited:
        main([*args, day])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {command.split()[1]}: {day} is {RANGE}" in err
    assert "Traceback" not in err
    assert not out.exists() and not (workdir / "world").exists() and not _left_behind(workdir)


@pytest.mark.parametrize("command", DATE_COMMANDS)
def test_a_date_option_that_is_not_a_date_exits_2(transactions, workdir, capsys, command):
    args = _date_commands(transactions, workdir / "plan.csv", workdir / "out.csv")[command]
    with pytest.raises(SystemExit) as exited:
        main([*args, "2025-02-30"])
    assert exited.value.code == 2
    assert "'2025-02-30' is not a date in YYYY-MM-DD form" in capsys.readouterr().err


def test_the_ends_of_the_supported_range_are_accepted(transactions, workdir, capsys):
    early = workdir / "early.csv"
    assert main(["score", "--transactions", str(transactions), "--as-of", "1900-01-01", "--out", str(early)]) == 2
    assert "no customer has a transaction before 1900-01-01" in capsys.readouterr().err  # parsed, then refused
    late = workdir / "late.csv"
    assert main([*_with_rules(workdir), "score", "--transactions", str(transactions), "--as-of", "2199-12-31",
                 "--out", str(late)]) == 0
    assert sorted(pd.read_csv(late, dtype={"customer_id": str})["customer_id"]) == ["A", "B"]


def test_simulate_refuses_a_cutoff_outside_the_simulated_period(workdir, capsys):
    assert main(["simulate", "--customers", "20", "--cutoff", "2199-12-31", "--out", str(workdir / "w")]) == 2
    err = capsys.readouterr().err
    assert "the ground-truth window from 2199-12-31 over 180 days must start after 2023-01-01 and end by " \
           "2025-07-01, the 'default' world's period" in err
    assert not (workdir / "w").exists()


# ------------------------------------------------------------------------------ --as-of before all data
@pytest.mark.parametrize("command", ["score", "features"])
def test_as_of_before_all_data_exits_2_saying_when_the_first_transaction_is(transactions, workdir, capsys,
                                                                            command):
    out = workdir / "out.csv"
    code = main([command, "--transactions", str(transactions), "--as-of", "1998-01-02", "--out", str(out)])
    assert code == 2  # the first transaction is on 1998-01-02: nothing before it
    err = capsys.readouterr().err
    assert (f"tiercast {command}: error: {transactions}, column 'timestamp': no customer has a transaction "
            "before 1998-01-02: the first one is on 1998-01-02") in err
    assert not out.exists() and not (workdir / "out.csv.quality.json").exists() and not _left_behind(workdir)


def test_as_of_just_after_the_first_transaction_scores_that_customer(transactions, workdir):
    out = workdir / "scores.csv"
    assert main([*_with_rules(workdir), "score", "--transactions", str(transactions), "--as-of", "1998-01-03",
                 "--out", str(out)]) == 0
    assert pd.read_csv(out, dtype={"customer_id": str})["customer_id"].tolist() == ["A"]


# ------------------------------------------------------------------------------ output paths
def _writing_commands(workdir: Path) -> dict[str, tuple[list[str], str]]:
    """Every command that writes, with its --out last, and whether that is a file or a folder. The inputs
    do not exist: the output path must be refused before they are read."""
    missing = str(workdir / "missing.csv")
    return {
        "score": (["score", "--transactions", missing, "--as-of", "1998-06-01", "--out"], "file"),
        "features": (["features", "--transactions", missing, "--as-of", "1998-06-01", "--out"], "file"),
        "backtest": (["backtest", "--transactions", missing, "--cutoff", "1998-06-01", "--horizon-days", "30",
                      "--out"], "file"),
        "plan": (["plan", "--scores", missing, "--budget", "10", "--cost-per-contact", "1", "--out"], "file"),
        "evaluate-plan": (["evaluate-plan", "--plan", missing, "--transactions", missing, "--out"], "file"),
        "report": (["report", "--scores", missing, "--out"], "folder"),
        "simulate": (["simulate", "--customers", "20", "--out"], "folder"),
    }


WRITING = ["score", "features", "backtest", "plan", "evaluate-plan", "report", "simulate"]


@pytest.mark.parametrize("command", WRITING)
def test_out_under_a_file_exits_2_before_reading_the_inputs(workdir, capsys, command):
    args, _ = _writing_commands(workdir)[command]
    blocker = workdir / "existing_file.csv"
    blocker.write_text("keep me\n")
    target = blocker / "sub" / "out.csv"
    assert main([*args, str(target)]) == 2
    err = capsys.readouterr().err
    assert f"tiercast {command}: error: cannot write {target}: {blocker} is a file, not a folder" in err
    assert blocker.read_text() == "keep me\n" and not _left_behind(workdir)


@pytest.mark.parametrize("command", [c for c in WRITING if c not in ("report", "simulate")])
def test_out_onto_an_existing_folder_exits_2_before_reading_the_inputs(workdir, capsys, command):
    args, _ = _writing_commands(workdir)[command]
    folder = workdir / "taken.csv"
    folder.mkdir()
    (folder / "inside.txt").write_text("x")
    assert main([*args, str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"tiercast {command}: error: cannot write {folder}: it is a folder; give a file name inside it" in err
    assert [p.name for p in folder.iterdir()] == ["inside.txt"] and not _left_behind(workdir)


@pytest.mark.parametrize("command", ["report", "simulate"])
def test_folder_out_onto_an_existing_file_exits_2(workdir, capsys, command):
    args, _ = _writing_commands(workdir)[command]
    blocker = workdir / "existing_file"
    blocker.write_text("keep me\n")
    assert main([*args, str(blocker)]) == 2
    assert f"cannot write {blocker}: it is a file, not a folder" in capsys.readouterr().err
    assert blocker.read_text() == "keep me\n"


def test_features_refuses_a_folder_where_its_quality_report_goes(workdir, transactions, capsys):
    out = workdir / "features.csv"
    (workdir / "features.csv.quality.json").mkdir()
    assert main(["features", "--transactions", str(transactions), "--as-of", "1998-06-01", "--out", str(out)]) == 2
    assert "features.csv.quality.json: it is a folder" in capsys.readouterr().err
    assert not out.exists() and not _left_behind(workdir)


def test_demo_checks_its_out_before_training(workdir, capsys):
    folder = workdir / "demo_scores.csv"
    folder.mkdir()
    config = workdir / "demo.yaml"
    config.write_text(yaml.safe_dump({"demo": {"transactions": str(workdir / "missing.csv"), "out": str(folder)}}))
    assert main(["--config", str(config), "demo"]) == 2
    assert f"cannot write {folder}: it is a folder" in capsys.readouterr().err


def test_unsupported_out_type_is_refused_before_the_work(workdir, capsys):
    out = workdir / "scores.txt"
    assert main(["score", "--transactions", str(workdir / "missing.csv"), "--as-of", "1998-06-01",
                 "--out", str(out)]) == 2
    assert f"cannot write {out}: unsupported output type '.txt'" in capsys.readouterr().err


def _as_a_user_bound_by_permissions() -> list[str]:
    """The command prefix under which file permissions hold: as root (tests and CI run as root, whom a folder's
    mode does not stop) the capabilities that override them are dropped with setpriv."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: no way to make a folder this process cannot write")
    dropped = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={dropped}", f"--bounding-set={dropped}"]


@pytest.mark.parametrize(("command", "name"), [("score", "scores.csv"), ("report", "report")])
def test_out_in_a_read_only_folder_exits_2_naming_the_folder(workdir, scores, command, name):
    read_only = workdir / "read_only"
    read_only.mkdir()
    read_only.chmod(0o555)
    target = read_only / "sub" / name
    args = {"score": ["score", "--transactions", str(workdir / "tx.csv"), "--as-of", "1998-06-01"],
            "report": ["report", "--scores", str(scores)]}[command]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run([*_as_a_user_bound_by_permissions(), sys.executable, "-m", "tiercast.cli", *args,
                               "--out", str(target)], cwd=workdir, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 2, done.stderr[-2000:]
        assert (f"tiercast {command}: error: cannot write {target}: cannot create files in {read_only} "
                "(Permission denied)") in done.stderr
        assert "Traceback" not in done.stderr
        assert list(read_only.iterdir()) == [] and not _left_behind(workdir)
    finally:
        read_only.chmod(0o755)


def test_a_failed_write_leaves_neither_a_temporary_file_nor_a_changed_output(tmp_path):
    """What the checks before the work cannot foresee (the folder appears between the check and the write, the
    writer fails): the write is refused with the path, and nothing is left."""
    from tiercast.outputs import OutputError, write_atomically

    taken = tmp_path / "out.csv"
    taken.mkdir()
    with pytest.raises(OutputError, match=f"cannot write {taken}: Is a directory"):
        write_atomically(taken, lambda tmp: tmp.write_text("a,b\n"))
    existing = tmp_path / "kept.csv"
    existing.write_text("old\n")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError):
        write_atomically(existing, half_then_fail)
    assert existing.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.csv", "out.csv"]
