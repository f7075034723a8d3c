"""Reading transactions from PostgreSQL into the loader, against COPY ... TO STDOUT of the same table as the floor.

    python benchmarks/bench_database.py [--rows 10000000] [--runs 3] [--only NAME ...]

Starts a throwaway PostgreSQL server (the tests' one: tests/database/throwaway_postgres.py; Debian's `postgresql`
package), fills a table of ``--rows`` transactions by SQL (customer_id, timestamp, amount, order_id; a million
customers), then times, each ``--runs`` times in this process:
  psql_copy     psql running COPY (SELECT * FROM t) TO STDOUT (FORMAT binary), output to /dev/null: the floor,
                what the server takes to produce the rows and a C client to receive them;
  copy_binary   the same COPY through psycopg 3's copy, blocks received in Python and discarded;
  adbc          ADBC's fetch of the table as an Arrow table (the reader tiercast uses);
  copy_csv      the psycopg alternative: COPY ... (FORMAT csv) into memory, parsed by pyarrow.csv into Arrow;
  loader        tiercast's load_transactions of the table's URL: the ADBC read, the checks and cleaning, the
                sort by customer and time, the pandas frame;
  parquet       the same load_transactions of a Parquet file of the same rows (written once, beforehand), for
                what the cleaning costs whatever the source.
Each run is a fresh process that imports, then times the read alone; prints each run's wall time and the process's
peak RSS, then the range (min-max) over the runs.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "database"))

from throwaway_postgres import server_binaries, throwaway_postgres  # noqa: E402

FILL = """
CREATE TABLE transactions AS
SELECT 'C' || lpad((i % 1000000)::text, 7, '0') AS customer_id,
       timestamp '2023-01-01' + ((i::bigint * 7919) % 78840000) * interval '1 second' AS timestamp,
       ((i::bigint * 2654435761) % 20000) / 100.0::double precision AS amount,
       'O' || i AS order_id
FROM generate_series(1, {rows}) AS i
"""


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def psql_copy(url: str) -> int:
    psql = shutil.which("psql") or "/usr/bin/psql"
    with open("/dev/null", "wb") as sink:
        subprocess.run([psql, url, "-X", "-q", "-c", "COPY (SELECT * FROM transactions) TO STDOUT (FORMAT binary)"],
                       stdout=sink, check=True)
    return 0


def copy_binary(url: str) -> int:
    import psycopg

    received = 0
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        with cursor.copy("COPY (SELECT * FROM transactions) TO STDOUT (FORMAT binary)") as copy:
            for block in copy:
                received += len(block)
    return received


def adbc(url: str) -> int:
    import adbc_driver_postgresql.dbapi as dbapi

    with dbapi.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT * FROM transactions")
        return cursor.fetch_arrow_table().num_rows


def copy_csv(url: str) -> int:
    import psycopg
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    buffer = io.BytesIO()
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        with cursor.copy("COPY (SELECT * FROM transactions) TO STDOUT (FORMAT csv, HEADER)") as copy:
            for block in copy:
                buffer.write(block)
    buffer.seek(0)
    table = pa_csv.read_csv(buffer, convert_options=pa_csv.ConvertOptions(
        column_types={"customer_id": pa.string(), "order_id": pa.string()}))
    return table.num_rows


def loader(url: str) -> int:
    from tiercast.features.loading import load_transactions

    frame, _ = load_transactions(url + "?table=transactions")
    return len(frame)


def parquet(url: str) -> int:
    from tiercast.features.loading import load_transactions

    frame, _ = load_transactions(os.environ["BENCH_PARQUET"])
    return len(frame)


WAYS = {"psql_copy": psql_copy, "copy_binary": copy_binary, "adbc": adbc, "copy_csv": copy_csv, "loader": loader, "parquet": parquet}


def one_run(name: str, url: str) -> None:
    """In a fresh process: time one way of reading, after the imports; print wall seconds, rows, peak MB."""
    import adbc_driver_postgresql.dbapi  # noqa: F401 - imports are not what is measured
    import psycopg  # noqa: F401
    import pyarrow.csv  # noqa: F401

    import tiercast.features.loading  # noqa: F401

    started = time.perf_counter()
    rows = WAYS[name](url)
    print(f"{time.perf_counter() - started} {rows} {peak_mb()}")


def main() -> None:
    if sys.argv[1:2] == ["--one-run"]:
        return one_run(sys.argv[2], sys.argv[3])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=list(WAYS))
    args = parser.parse_args()
    binaries = server_binaries()
    if binaries is None:
        sys.exit("no PostgreSQL server binaries: apt-get install -y postgresql (or set TIERCAST_PG_BIN)")
    with throwaway_postgres(binaries, shared_buffers="256MB") as server:
        url = server.url()
        started = time.perf_counter()
        with server.connect() as connection:
            connection.execute(FILL.format(rows=args.rows))
            connection.execute("VACUUM ANALYZE transactions")
            size = connection.execute("SELECT pg_size_pretty(pg_table_size('transactions'))").fetchone()[0]
        print(f"{args.rows:,} rows filled in {time.perf_counter() - started:.0f} s ({size})", flush=True)
        folder = tempfile.mkdtemp(prefix="bench-database-")
        os.environ["BENCH_PARQUET"] = str(Path(folder) / "transactions.parquet")
        if "parquet" in (args.only or WAYS):
            import adbc_driver_postgresql.dbapi as dbapi
            import pyarrow.parquet as pq

            with dbapi.connect(url) as connection, connection.cursor() as cursor:
                cursor.execute("SELECT * FROM transactions")
                pq.write_table(cursor.fetch_arrow_table(), os.environ["BENCH_PARQUET"])
        for name in args.only or list(WAYS):
            walls, peaks = [], []
            for _ in range(args.runs):
                done = subprocess.run([sys.executable, __file__, "--one-run", name, url], capture_output=True,
                                      text=True, check=True)
                wall, rows, peak = done.stdout.split()[-3:]
                walls.append(float(wall))
                peaks.append(float(peak))
                unit = {"copy_binary": "bytes", "psql_copy": "-"}.get(name, "rows")
                print(f"{name}: {walls[-1]:.2f} s ({int(rows):,} {unit}), peak RSS {peaks[-1]:,.0f} MB", flush=True)
            print(f"{name}: {min(walls):.2f}-{max(walls):.2f} s, peak RSS {min(peaks):,.0f}-{max(peaks):,.0f} MB "
                  f"over {len(walls)} runs", flush=True)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
