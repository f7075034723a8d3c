"""Scoring from and to PostgreSQL against scoring files, on a real server (conftest.py): the same numbers to the
last digit, atomic table swaps, and bad tables refused like bad files, without the password anywhere."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import adbc_driver_postgresql.dbapi as adbc
import mlflow
import pandas as pd
import pytest

from tiercast.cli import main
from tiercast.database_output import DatabaseTarget
from tiercast.simulation.world import WorldConfig, simulate_world

from ..quick_store import run_with_quick_store
from .conftest import fetch, ingest

CUTOFF = "2025-01-01"
AS_OF = "2025-04-01"
LATER = "2025-06-01"  # more customers have bought by then


@dataclass(frozen=True)
class WorldInDatabase:
    folder: Path
    files: dict[str, Path]  # transactions, customers, interactions as CSV
    config: Path
    store: str  # the SQLite MLflow store holding a champion trained on the files


@pytest.fixture(scope="module")
def world(postgres, tmp_path_factory) -> WorldInDatabase:
    """A small simulated world as CSV files and as tables (transactions, customers, interactions) of the
    session's database, and a champion trained on the files."""
    folder = tmp_path_factory.mktemp("pg-world")
    simulated = simulate_world(WorldConfig(n_customers=1500, seed=5))
    files = {}
    for kind in ("transactions", "customers", "interactions"):
        frame = getattr(simulated, kind)
        files[kind] = folder / f"{kind}.csv"
        frame.to_csv(files[kind], index=False)
        ingest(postgres, kind, frame)
    config, store = run_with_quick_store(folder, "train", "--transactions", str(files["transactions"]),
                                         "--customers", str(files["customers"]), "--cutoff", CUTOFF,
                                         "--horizon-days", "90")
    return WorldInDatabase(folder, files, config, store)


@pytest.fixture
def in_world(world, monkeypatch, tmp_path) -> WorldInDatabase:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", world.store)
    monkeypatch.chdir(tmp_path)
    yield world
    mlflow.set_tracking_uri(None)


def score(world: WorldInDatabase, out: str, transactions: str, customers: str, *extra: str) -> int:
    return main(["--config", str(world.config), "score", "--transactions", transactions, "--customers", customers,
                 "--as-of", AS_OF, "--out", out, *extra])


def test_scoring_from_tables_and_queries_equals_scoring_from_files(in_world, postgres, tmp_path):
    files = in_world.files
    assert score(in_world, str(tmp_path / "files.csv"), str(files["transactions"]), str(files["customers"])) == 0
    assert score(in_world, str(tmp_path / "tables.csv"), postgres.url() + "?table=transactions",
                 postgres.url() + "?table=customers") == 0
    query = quote("SELECT customer_id, timestamp, amount, order_id, quantity, category, channel FROM transactions")
    assert score(in_world, str(tmp_path / "query.csv"), f"{postgres.url()}?query={query}",
                 postgres.url() + "?table=public.customers") == 0
    expected = (tmp_path / "files.csv").read_bytes()
    assert len(pd.read_csv(tmp_path / "files.csv")) > 1000
    assert (tmp_path / "tables.csv").read_bytes() == expected  # every digit of every number
    assert (tmp_path / "query.csv").read_bytes() == expected


def test_scores_written_to_a_table_equal_the_file(in_world, postgres, tmp_path):
    files = in_world.files
    assert score(in_world, str(tmp_path / "scores.csv"), str(files["transactions"]), str(files["customers"])) == 0
    out = postgres.url() + "?table=scores_out"
    assert score(in_world, out, str(files["transactions"]), str(files["customers"])) == 0
    from_file = pd.read_csv(tmp_path / "scores.csv", dtype={"customer_id": str}, keep_default_na=False,
                            float_precision="round_trip")
    from_table = fetch(postgres, "SELECT * FROM scores_out")
    assert list(from_table.columns) == list(from_file.columns)
    assert len(from_table) == len(from_file)
    for column in from_file.columns:
        written = from_table[column]
        if pd.api.types.is_numeric_dtype(from_file[column]):
            assert written.astype(float).tolist() == from_file[column].astype(float).tolist(), column
        else:  # text and dates: compared as the CSV writes them
            as_text = written.map(lambda v: "" if v is None or v is pd.NaT or v != v else str(v).removesuffix(" 00:00:00"))
            assert as_text.tolist() == from_file[column].astype(str).tolist(), column
    # written again (same shape): replaced, not appended
    assert score(in_world, out, str(files["transactions"]), str(files["customers"])) == 0
    assert fetch(postgres, "SELECT count(*) AS n FROM scores_out")["n"][0] == len(from_file)
    assert fetch(postgres, "SELECT count(*) AS n FROM pg_tables WHERE tablename LIKE '%tiercast_new'")["n"][0] == 0


class Readers:
    """Threads counting a table's rows as fast as they can until stopped; what they saw and any error."""

    def __init__(self, server, table: str, threads: int = 2) -> None:
        self.server, self.table = server, table
        self.seen: list[int] = []
        self.errors: list[BaseException] = []
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._poll) for _ in range(threads)]

    def _poll(self) -> None:
        try:
            with adbc.connect(self.server.url(), autocommit=True) as connection, connection.cursor() as cursor:
                while not self.done.is_set():
                    cursor.execute(f"SELECT count(*) FROM {self.table}")
                    self.seen.append(cursor.fetchone()[0])
        except BaseException as err:  # noqa: BLE001 - reported by the tests
            self.errors.append(err)

    def until_seen(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while count not in self.seen and not self.errors and time.monotonic() < deadline:
            time.sleep(0.05)

    def __enter__(self) -> Readers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join(60)


def test_a_reader_sees_the_old_scores_or_the_new_ones_never_half(in_world, postgres):
    """Readers polling a scores table while ``score --out`` replaces it (scored at a later date: more
    customers) and back again only ever count the old rows or the new ones."""
    out = postgres.url() + "?table=polled"

    def score_at(as_of: str) -> int:
        assert main(["--config", str(in_world.config), "score", "--transactions", str(in_world.files["transactions"]),
                     "--as-of", as_of, "--out", out]) == 0
        return int(fetch(postgres, "SELECT count(*) AS n FROM polled")["n"][0])

    old = score_at(AS_OF)
    with Readers(postgres, "polled") as readers:
        readers.until_seen(old)
        new = score_at(LATER)
        readers.until_seen(new)
        assert score_at(AS_OF) == old
    assert not readers.errors, readers.errors
    assert new > old > 1000
    assert set(readers.seen) == {old, new}, sorted(set(readers.seen))


def test_repeated_replacements_never_show_a_reader_an_empty_or_partial_table(database):
    """Many quick replacements under readers: a reader waiting on a table swap would find it empty."""
    target = DatabaseTarget.parse(database.url() + "?table=flipping")
    sizes = (10, 20_000)
    target.write(pd.DataFrame({"n": range(sizes[0])}))
    with Readers(database, "flipping", threads=3) as readers:
        readers.until_seen(sizes[0])
        for round in range(20):
            target.write(pd.DataFrame({"n": range(sizes[(round + 1) % 2])}))
    assert not readers.errors, readers.errors
    assert set(readers.seen) == set(sizes), sorted(set(readers.seen))


def test_another_shape_is_refused_by_name_and_left_as_it_is(in_world, postgres, capsys):
    ingest(postgres, "crm_scores", pd.DataFrame({"customer_id": ["A", "B"], "tier": ["gold", "silver"]}))
    assert score(in_world, postgres.url() + "?table=crm_scores", str(in_world.files["transactions"]),
                 str(in_world.files["customers"])) == 2
    err = capsys.readouterr().err
    assert "table crm_scores" in err and "replace_other_shape" in err and "predicted_value" in err
    assert postgres.password not in err and "***" in err
    assert fetch(postgres, "SELECT * FROM crm_scores")["tier"].tolist() == ["gold", "silver"]


def test_a_bad_column_in_a_table_names_table_column_and_rows_never_the_password(in_world, postgres, tmp_path,
                                                                                capsys, caplog):
    bad = pd.read_csv(in_world.files["transactions"], dtype=str).head(200)
    bad.loc[[3, 17], "timestamp"] = ["not a date", "2025-13-45"]
    ingest(postgres, "bad_transactions", bad)
    out = tmp_path / "never.csv"
    with caplog.at_level(logging.DEBUG):
        assert score(in_world, str(out), postgres.url() + "?table=bad_transactions",
                     postgres.url() + "?table=customers") == 2
    err = capsys.readouterr().err
    assert "table bad_transactions" in err and "column 'timestamp'" in err
    assert "row 4" in err and "row 18" in err and "not a date" in err
    assert f"{postgres.user}:***@" in err
    assert postgres.password not in err + caplog.text
    assert not out.exists()


def test_credentials_from_the_environment_and_masked_failures(in_world, postgres, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PGPASSWORD", postgres.password)
    no_password = postgres.url(password=False)
    assert score(in_world, str(tmp_path / "env.csv"), no_password + "?table=transactions",
                 no_password + "?table=customers") == 0
    monkeypatch.delenv("PGPASSWORD")
    wrong = postgres.url().replace(postgres.password, "Wrong-Secret-9")
    assert score(in_world, str(tmp_path / "never.csv"), wrong + "?table=transactions",
                 postgres.url() + "?table=customers") == 2
    err = capsys.readouterr().err
    assert "password authentication failed" in err and "Wrong-Secret-9" not in err
    assert score(in_world, str(tmp_path / "never.csv"), postgres.url() + "?table=no_such_table",
                 postgres.url() + "?table=customers") == 2
    err = capsys.readouterr().err
    assert "table no_such_table" in err and "does not exist" in err and postgres.password not in err
    assert not (tmp_path / "never.csv").exists()


def test_features_written_to_a_table_equal_the_file(in_world, postgres, tmp_path):
    files = in_world.files
    assert main(["--config", str(in_world.config), "features", "--transactions", postgres.url() + "?table=transactions",
                 "--interactions", postgres.url() + "?table=interactions", "--as-of", AS_OF,
                 "--out", postgres.url() + "?table=features_out"]) == 0
    assert main(["--config", str(in_world.config), "features", "--transactions", str(files["transactions"]),
                 "--interactions", str(files["interactions"]), "--as-of", AS_OF, "--out", str(tmp_path / "f.csv")]) == 0
    from_file = pd.read_csv(tmp_path / "f.csv", dtype={"customer_id": str}, float_precision="round_trip")
    from_table = fetch(postgres, "SELECT * FROM features_out")
    assert list(from_table.columns) == list(from_file.columns) and len(from_table) == len(from_file)
    numbers = from_file.select_dtypes("number").columns
    pd.testing.assert_frame_equal(from_table[numbers].astype(float), from_file[numbers].astype(float))


def test_another_sqlalchemy_dialect_sqlite_reads_and_writes_alike(in_world, tmp_path):
    """SQLite through SQLAlchemy (its driver is Python's own): scoring from its tables equals scoring from files,
    and --out writes a table of the same rows."""
    import sqlalchemy

    database = tmp_path / "crm.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{database}")
    for kind in ("transactions", "customers"):
        pd.read_csv(in_world.files[kind], dtype=str).to_sql(kind, engine, index=False)
    engine.dispose()
    url = f"sqlite:///{database}"
    assert score(in_world, str(tmp_path / "files.csv"), str(in_world.files["transactions"]),
                 str(in_world.files["customers"])) == 0
    assert score(in_world, url + "?table=scores", url + "?table=transactions", url + "?table=customers") == 0
    assert score(in_world, str(tmp_path / "sqlite.csv"), url + "?table=transactions", url + "?table=customers") == 0
    assert (tmp_path / "sqlite.csv").read_bytes() == (tmp_path / "files.csv").read_bytes()
    written = pd.read_sql_table("scores", sqlalchemy.create_engine(url))
    expected = pd.read_csv(tmp_path / "files.csv", float_precision="round_trip", dtype={"customer_id": str})
    assert written["customer_id"].tolist() == expected["customer_id"].tolist()
    assert written["predicted_value"].tolist() == expected["predicted_value"].tolist()
