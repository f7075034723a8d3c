"""A throwaway PostgreSQL server on loopback, for the database tests and the database benchmark.

The server comes from Debian's ``postgresql`` package (``apt-get install -y postgresql``; its binaries live in
``/usr/lib/postgresql/<version>/bin``, not on the PATH; ``TIERCAST_PG_BIN`` names another folder). It runs in a
temporary folder on a free port, listening on 127.0.0.1 only, with password authentication for a user made here.
``initdb`` refuses to run as root, so under root (CI) the server runs as the unprivileged ``postgres`` user (or
``nobody``) through ``runuser``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL as")


@contextmanager
def throwaway_postgres(binaries: Path, shared_buffers: str = "64MB") -> Iterator[PostgresServer]:
    """A running PostgreSQL server with a database and a password user of its own, stopped and removed at the
    end; ``binaries`` is the folder of initdb and pg_ctl (:func:`server_binaries`)."""
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

    # Password (scram) authentication over TCP on 127.0.0.1 only; the Unix socket stays in the private folder.
    run(str(binaries / "initdb"), "-D", str(data), "-U", USER, "--pwfile", str(password_file), "-A", "scram-sha-256",
        "-E", "UTF8", "--locale", "C", "--no-sync")
    options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='{folder}' -c fsync=off "
               f"-c synchronous_commit=off -c full_page_writes=off -c shared_buffers={shared_buffers} "
               "-c max_connections=50")
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
