"""A throwaway PostgreSQL server for the database tests, started once per session on loopback.

The server comes from Debian's ``postgresql`` package (``apt-get install -y postgresql``; its binaries live in
``/usr/lib/postgresql/<version>/bin``, not on the PATH; ``TIERCAST_PG_BIN`` names another folder). It runs in a
temporary folder on a free port, listening on 127.0.0.1 only, with password authentication for a user made here.
``initdb`` refuses to run as root, so under root (CI) the server runs as the unprivileged ``postgres`` user (or
``nobody``) through ``runuser``. Without a server binary the tests that need it are skipped, saying how to get one;
under ``CI=true`` they fail instead.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import adbc_driver_postgresql.dbapi as adbc
import pandas as pd
import pytest

USER = "tiercast"
PASSWORD = "s3cret-Pa55word"  # the tests check this never reaches an error, a log or MLflow
DATABASE = "tiercast"
START_TIMEOUT_S = 60


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    database: str

    def url(self, database: str | None = None, password: bool = True, driver: str = "") -> str:
        """The server's URL, with the password unless ``password`` is False; ``driver`` as in postgresql+psycopg."""
        secret = f":{self.password}" if password else ""
        scheme = "postgresql" + (f"+{driver}" if driver else "")
        return f"{scheme}://{self.user}{secret}@{self.host}:{self.port}/{database or self.database}"

    def connect(self, database: str | None = None):
        import psycopg

        return psycopg.connect(self.url(database), autocommit=True)


def server_binaries() -> Path | None:
    """The folder of initdb and pg_ctl: TIERCAST_PG_BIN, the PATH, or Debian's newest /usr/lib/postgresql/*/bin."""
    given = os.environ.get("TIERCAST_PG_BIN")
    if given:
        return Path(given) if (Path(given) / "initdb").exists() else None
    if found := shutil.which("initdb"):
        return Path(found).parent
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return debian[-1].parent if debian else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user() -> tuple[list[str], int | None]:
    """The command prefix that runs the server as an unprivileged user when we are root, and that user's uid."""
    if os.geteuid() != 0:
        return [], None
    for name in ("postgres", "nobody"):
        try:
            uid = pwd.getpwnam(name).pw_uid
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"], uid
    pytest.fail("running as root and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL as")


def _unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


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
    """A running PostgreSQL server with a database and a password user of its own, stopped at the end."""
    binaries = server_binaries()
    if binaries is None:
        _unavailable("no PostgreSQL server binaries (initdb, pg_ctl): install them to run the database tests "
                     "(Debian: apt-get install -y postgresql; or set TIERCAST_PG_BIN to their folder)")
    prefix, uid = _as_server_user()
    folder = Path(tempfile.mkdtemp(prefix="tiercast-pg-"))
    data = folder / "data"
    password_file = folder / "password"
    password_file.write_text(PASSWORD + "\n")
    if uid is not None:
        os.chmod(folder, 0o700)
        os.chown(folder, uid, -1)
        os.chown(password_file, uid, -1)
    port = free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"{args[0]} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}"

    # Password (scram) authentication over TCP on 127.0.0.1 only; no Unix socket in a shared folder.
    run(str(binaries / "initdb"), "-D", str(data), "-U", USER, "--pwfile", str(password_file), "-A", "scram-sha-256",
        "-E", "UTF8", "--locale", "C", "--no-sync")
    options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='{folder}' -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off -c shared_buffers=64MB -c max_connections=50")
    run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-o", options, "-w", "-t",
        str(START_TIMEOUT_S), "start")
    server = PostgresServer("127.0.0.1", port, USER, PASSWORD, DATABASE)
    try:
        with server.connect("postgres") as connection:
            connection.execute(f"CREATE DATABASE {DATABASE}")
        yield server
    finally:
        subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=120, check=False)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def database(postgres: PostgresServer) -> Iterator[PostgresServer]:
    """A fresh, empty database on the session's server for one test, dropped after it."""
    name = f"t{os.getpid()}_{time.monotonic_ns()}"
    with postgres.connect("postgres") as connection:
        connection.execute(f"CREATE DATABASE {name}")
    yield PostgresServer(postgres.host, postgres.port, postgres.user, postgres.password, name)
    with postgres.connect("postgres") as connection:
        connection.execute(f"DROP DATABASE {name} WITH (FORCE)")
