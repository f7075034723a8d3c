"""Inputs in a database: a URL naming a table or a query, read as Arrow for the loader to check and clean.

An input path may be ``postgresql://USER[:PASSWORD]@HOST:PORT/DB?table=NAME`` (``schema.name`` allowed) or
``...?query=SELECT...`` (URL-encoded). PostgreSQL is read with ADBC (its binary COPY, straight into Arrow);
other SQLAlchemy dialects (``sqlite:///file.db?table=...``, ``mysql+pymysql://...``) through SQLAlchemy and
pandas, where their driver is installed. The rows come in the table's (or the query's) order, which is what the
cleaning report's "row N" counts.

Credentials come from the URL or, for PostgreSQL, libpq's own environment (``PGPASSWORD``, ``~/.pgpass``,
``PGUSER``...). A :class:`DatabaseSource` prints as its URL with the password masked (``***``), so error messages,
the cleaning report, the log and MLflow never hold it; driver messages are scrubbed of it too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import pyarrow as pa

from tiercast.features.problems import phrase
from tiercast.features.schema import DataError

MASK = "***"
# SQLAlchemy's dialect names (the part of the scheme before any +driver) that tiercast reads as databases.
DIALECTS = ("postgresql", "postgres", "sqlite", "mysql", "mariadb", "mssql", "oracle", "duckdb")
_SCHEME = re.compile(r"^([a-z][a-z0-9]*)(?:\+([a-z0-9_]+))?://", re.IGNORECASE)
_SECRET_PARAMETERS = ("password", "passwd", "pwd")


def is_database_url(path: object) -> bool:
    """Whether an input or output path is a database URL (rather than a file, a folder or a Spark URI)."""
    found = _SCHEME.match(str(path)) if isinstance(path, str) else None
    return bool(found) and found.group(1).lower() in DIALECTS


@dataclass(frozen=True, repr=False)
class DatabaseURL:
    """A database URL split into where to connect (``connect_url``, password included) and what it names
    (``params``: table= or query=, taken out of the query string). Prints without the password."""

    connect_url: str = field(repr=False)
    dialect: str
    params: dict[str, str]
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> DatabaseURL:
        parts = urlsplit(url)
        dialect = _SCHEME.match(url).group(1).lower()
        dialect = "postgresql" if dialect == "postgres" else dialect
        own = {"table", "query"}
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        params = {key: value for key, value in pairs if key in own}
        kept = urlencode([(key, value) for key, value in pairs if key not in own], quote_via=quote)
        secret = parts.password or next((value for key, value in pairs if key in _SECRET_PARAMETERS), None)
        # by text, not urlunsplit, which folds sqlite:////abs/path into sqlite://abs/path
        connect = url.split("?", 1)[0].split("#", 1)[0] + (f"?{kept}" if kept else "")
        if dialect == "postgresql":  # libpq knows no +driver and no postgres+ scheme
            connect = "postgresql" + connect[connect.index("://"):]
        return cls(connect, dialect, params, unquote(secret) if secret else None)

    def masked(self) -> str:
        """The URL without its password (user, host, port, database and what it names kept)."""
        parts = urlsplit(self.connect_url)
        netloc = parts.netloc
        if parts.password is not None:
            netloc = f"{parts.username or ''}:{MASK}@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
        pairs = [(key, MASK if key in _SECRET_PARAMETERS else value)
                 for key, value in parse_qsl(parts.query, keep_blank_values=True)]
        query = urlencode(pairs, safe="*")
        return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")

    def scrub(self, text: str) -> str:
        """``text`` (a driver's message) without the password, in either its plain or its URL-encoded form."""
        if self.password:
            for form in {self.password, quote(self.password, safe="")}:
                text = text.replace(form, MASK)
        return text

    def __str__(self) -> str:
        return self.masked()

    __repr__ = __str__


@dataclass(frozen=True, repr=False)
class DatabaseSource:
    """An input read from a database: a table or a query. Prints as the masked URL and what it reads, which is
    how error messages and cleaning reports name it (``... table orders``, ``... query``)."""

    url: DatabaseURL
    table: str | None
    query: str | None

    @classmethod
    def parse(cls, url: str) -> DatabaseSource:
        parsed = DatabaseURL.parse(url)
        table, query = parsed.params.get("table"), parsed.params.get("query")
        if bool(table) == bool(query):
            raise DataError(parsed, "a database input names a table (?table=NAME) or a query (?query=SELECT..., "
                            "URL-encoded), one of the two")
        if table:
            quoted_name(table, parsed)  # a name it cannot quote is refused before anything is read
        return cls(parsed, table, query)

    def statement(self) -> str:
        return self.query if self.query else f"SELECT * FROM {quoted_name(self.table, self.url)}"

    def __str__(self) -> str:
        return f"{self.url} " + (f"table {self.table}" if self.table else "query")

    __repr__ = __str__

    def read(self) -> pa.Table:
        """Every row of the table or query, as Arrow; a DataError (naming this source, never the password)
        when the database cannot be reached or the statement fails."""
        try:
            if self.url.dialect == "postgresql":
                table = _read_postgresql(self.url.connect_url, self.statement())
            else:
                table = _read_sqlalchemy(self.url.connect_url, self.statement())
        except ImportError as err:
            raise DataError(self, f"no driver for {self.url.dialect} is installed ({err.name})") from None
        except Exception as err:  # the driver's own errors: connection refused, no such table, a bad query
            raise DataError(self, f"cannot be read: {self.url.scrub(_first_line(err))}") from None
        if table.num_rows == 0:
            raise DataError.of(self, phrase("table_empty" if self.table else "query_empty"))
        return table


def _first_line(err: Exception) -> str:
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


_IDENTIFIER = re.compile(r'^[^\x00"]+$')


def quoted_name(name: str, where: object) -> str:
    """A table name, plain or ``schema.name``, quoted as an SQL identifier (its case kept)."""
    parts = name.split(".")
    if len(parts) > 2 or not all(_IDENTIFIER.match(part) for part in parts):
        raise DataError(where, f"'{name}' is not a table name tiercast takes: NAME or SCHEMA.NAME, without "
                        "double quotes")
    return ".".join(f'"{part}"' for part in parts)


def _read_postgresql(url: str, statement: str) -> pa.Table:
    import adbc_driver_postgresql.dbapi as adbc

    with adbc.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(statement)
        return cursor.fetch_arrow_table()


def _read_sqlalchemy(url: str, statement: str) -> pa.Table:
    import pandas as pd
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            return pa.Table.from_pandas(pd.read_sql_query(sqlalchemy.text(statement), connection),
                                        preserve_index=False)
    finally:
        engine.dispose()


def canonical_columns(table: pa.Table, mapping: dict[str, str], spec, keep_others: bool
                      ) -> dict[str, pa.ChunkedArray]:
    """The columns of ``spec`` a read table has (with ``keep_others``, every column), under the canonical names
    ``mapping`` (``data.columns``) gives, for :func:`tiercast.features.columnar.clean`. A column without a
    name, named twice, missing, or kept as read but of a type other than text, number or boolean is left to
    the pandas path (:class:`~tiercast.features.columnar.NotFast`), which words what is wrong, if anything."""
    from tiercast.features.columnar import NotFast

    renamed = {name: canonical for canonical, name in mapping.items()}
    names = [renamed.get(name, name) for name in table.schema.names]
    folded = [name.strip().casefold() for name in names]
    if "" in folded or len(set(folded)) < len(folded) or any(name not in names for name in spec.required):
        raise NotFast("a column without a name, named twice, or missing")
    columns = {}
    for name, values in zip(names, table.columns, strict=True):
        if name in spec.names:
            columns[name] = values
        elif keep_others:
            kind = values.type
            if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind)
                    or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
                raise NotFast(f"a {kind} column kept as read")
            columns[name] = values
    return columns if keep_others else {name: columns[name] for name in spec.names if name in columns}
