"""The database tests' fixtures: a throwaway PostgreSQL server once per session (:mod:`throwaway_postgres`), a
fresh database per test, and helpers that load and read tables.

Without the server's binaries the tests that need it are skipped, saying how to get them; under ``CI=true`` they
fail instead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import adbc_driver_postgresql.dbapi as adbc
import pandas as pd
import pytest

from .throwaway_postgres import PostgresServer, free_port, server_binaries, throwaway_postgres

__all__ = ["PostgresServer", "fetch", "free_port", "ingest"]


def ingest(server: PostgresServer, name: str, frame: pd.DataFrame) -> None:
    """``frame`` as the table ``name`` (replaced), with the column types ADBC gives its Arrow types."""
    with adbc.connect(server.url()) as connection, connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE IF EXISTS "{name}"')
        cursor.adbc_ingest(name, frame, mode="create")
        connection.commit()


def fetch(server: PostgresServer, statement: str) -> pd.DataFrame:
    with adbc.connect(server.url()) as connection, connection.cursor() as cursor:
        cursor.execute(statement)
        return cursor.fetch_arrow_table().to_pandas()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server: skipped without its binaries, saying how to get them; failed in CI."""
    binaries = server_binaries()
    if binaries is None:
        message = ("no PostgreSQL server binaries (initdb, pg_ctl): install them to run the database tests "
                   "(Debian: apt-get install -y postgresql; or set TIERCAST_PG_BIN to their folder)")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with throwaway_postgres(binaries) as server:
        yield server


@pytest.fixture
def database(postgres: PostgresServer) -> Iterator[PostgresServer]:
    """A fresh, empty database on the session's server for one test, dropped after it."""
    name = f"t{os.getpid()}_{time.monotonic_ns()}"
    with postgres.connect("postgres") as connection:
        connection.execute(f"CREATE DATABASE {name}")
    yield PostgresServer(postgres.host, postgres.port, postgres.user, postgres.password, name)
    with postgres.connect("postgres") as connection:
        connection.execute(f"DROP DATABASE {name} WITH (FORCE)")
