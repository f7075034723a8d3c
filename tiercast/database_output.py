"""Outputs to a database table: ``--out postgresql://...?table=NAME`` replaces the table in one transaction.

The rows go to a new table beside the named one (``NAME__tiercast_new``, loaded with COPY through ADBC for
PostgreSQL, with pandas' ``to_sql`` for the other SQLAlchemy dialects), all in one transaction that ends by
putting them in place: into the existing table (its rows deleted, the new ones inserted), so that a reader (a
CRM) sees the old rows or the new ones, never half and never none; a table that did not exist is the new one
renamed. An existing table whose columns or types differ from the new one is refused by name, nothing changed,
unless ``output.replace_other_shape`` allows replacing it: it is then dropped and the new one renamed in the
same transaction, and a reader whose query waited for that swap may find the table empty (PostgreSQL reads the
new table in the snapshot its query started with).

A target prints as its URL with the password masked (:class:`tiercast.features.database.DatabaseURL`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from tiercast.features.database import DatabaseURL, is_database_url, quoted_name
from tiercast.features.schema import DataError
from tiercast.outputs import OutputError

NEW_SUFFIX = "__tiercast_new"


class OutputConfig(BaseModel):
    """Config ``output``: what a database ``--out`` may replace."""

    model_config = ConfigDict(extra="forbid")

    # An existing table of another shape (other columns or types) than the one written is refused unless true:
    # it is likely someone else's table, or one a reader depends on in its old shape.
    replace_other_shape: bool = False


@dataclass(frozen=True, repr=False)
class DatabaseTarget:
    """A table to write (replace), named by a database URL with ``?table=NAME`` (``SCHEMA.NAME`` allowed)."""

    url: DatabaseURL
    table: str
    replace_other_shape: bool = field(default=False)

    @classmethod
    def parse(cls, url: str, config: OutputConfig | None = None) -> DatabaseTarget:
        parsed = DatabaseURL.parse(url)
        table = parsed.params.get("table")
        if not table or "query" in parsed.params:
            raise OutputError(parsed, "a database output names the table to write: ?table=NAME")
        try:
            quoted_name(table, parsed)
        except DataError as err:
            raise OutputError(parsed, err.problem) from None
        return cls(parsed, table, (config or OutputConfig()).replace_other_shape)

    def __str__(self) -> str:
        return f"{self.url} table {self.table}"

    __repr__ = __str__

    @property
    def _names(self) -> tuple[str | None, str]:
        schema, _, name = self.table.rpartition(".")
        return schema or None, name

    def _quoted(self, name: str) -> str:
        schema, _ = self._names
        return quoted_name(f"{schema}.{name}" if schema else name, self)

    def check(self) -> None:
        """Connect and try creating the new table (rolled back): a database that cannot be reached, a schema
        that does not exist or a user who may not create tables is found before the work starts."""
        _, name = self._names
        with _Connection(self) as connection:
            connection.execute(f"CREATE TABLE {self._quoted(name + NEW_SUFFIX)} (probe integer)")
            connection.rollback()

    def write(self, frame: pd.DataFrame) -> DatabaseTarget:
        """Replace the table with ``frame``'s rows in one transaction (see the module's docstring)."""
        _, name = self._names
        new, target = self._quoted(name + NEW_SUFFIX), self._quoted(name)
        with _Connection(self) as connection:
            connection.execute(f"DROP TABLE IF EXISTS {new}")
            connection.load(self._names[0], name + NEW_SUFFIX, _as_arrow(frame))
            old, written = connection.shape(target), connection.shape(new)
            if old is not None and old != written and not self.replace_other_shape:
                connection.rollback()
                raise OutputError(self, f"the existing table {self.table} has another shape than the one "
                                       f"written ({_difference(old, written)}), so it is left as it is; drop "
                                       "it, write to another table, or set output.replace_other_shape: true")
            if old == written:
                # Rows replaced in place: a reader's statement sees the rows of its own snapshot, old or new. A
                # swap of tables would not do: a reader waiting on the DROP reads the new table in its older
                # snapshot, which holds none of its rows.
                connection.execute(f"DELETE FROM {target}")
                connection.execute(f"INSERT INTO {target} SELECT * FROM {new}")
                connection.execute(f"DROP TABLE {new}")
            else:
                if old is not None:
                    connection.execute(f"DROP TABLE {target}")
                connection.execute(f"ALTER TABLE {new} RENAME TO {quoted_name(name, self)}")
            connection.commit()
        return self


def database_target(out: object, config: OutputConfig | None = None) -> object:
    """``out`` as a :class:`DatabaseTarget` when it is a database URL, else as given."""
    return DatabaseTarget.parse(out, config) if is_database_url(out) else out


def _as_arrow(frame: pd.DataFrame) -> pa.Table:
    """The frame as Arrow, with columns of nothing but missing values typed as text (a database column needs a
    type; an empty fallback_reason column has none)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for position, column in enumerate(table.schema):
        if pa.types.is_null(column.type):
            table = table.set_column(position, column.name, table.column(position).cast(pa.string()))
    return table


def _difference(old: list[tuple[str, str]], new: list[tuple[str, str]]) -> str:
    gone = [f"{name} {kind}" for name, kind in old if (name, kind) not in new]
    added = [f"{name} {kind}" for name, kind in new if (name, kind) not in old]
    parts = ([f"it has {', '.join(gone)}"] if gone else []) + ([f"the new one has {', '.join(added)}"] if added else [])
    return "; ".join(parts) or "the same columns in another order"


class _Connection:
    """One transaction on the target's database: ADBC for PostgreSQL, SQLAlchemy for the other dialects.
    Every driver error becomes an OutputError naming the target, without the password."""

    def __init__(self, target: DatabaseTarget) -> None:
        self.target = target
        self.postgresql = target.url.dialect == "postgresql"

    def __enter__(self) -> _Connection:
        try:
            if self.postgresql:
                import adbc_driver_postgresql.dbapi as adbc

                self.connection = adbc.connect(self.target.url.connect_url)
                self.cursor = self.connection.cursor()
            else:
                import sqlalchemy

                self.engine = sqlalchemy.create_engine(self.target.url.connect_url)
                self.connection = self.engine.connect()
                self.connection.begin()
        except ImportError as err:
            raise OutputError(self.target, f"no driver for {self.target.url.dialect} is installed "
                                   f"({err.name})") from None
        except Exception as err:
            raise self._error(err) from None
        return self

    def _error(self, err: Exception) -> OutputError:
        lines = [line for line in str(err).strip().splitlines() if line.strip()]
        return OutputError(self.target, self.target.url.scrub(lines[0] if lines else type(err).__name__))

    def __exit__(self, kind, value, traceback) -> None:
        try:
            self.rollback()  # nothing left uncommitted: after commit() this does nothing
        finally:
            if self.postgresql:
                self.cursor.close()
                self.connection.close()
            else:
                self.connection.close()
                self.engine.dispose()
        if value is not None and not isinstance(value, OutputError):
            raise self._error(value) from None

    def execute(self, statement: str) -> None:
        if self.postgresql:
            self.cursor.execute(statement)
        else:
            import sqlalchemy

            self.connection.execute(sqlalchemy.text(statement))

    def rows(self, statement: str) -> list[tuple]:
        if self.postgresql:
            self.cursor.execute(statement)
            return [tuple(row) for row in self.cursor.fetchall()]
        import sqlalchemy

        return [tuple(row) for row in self.connection.execute(sqlalchemy.text(statement)).fetchall()]

    def load(self, schema: str | None, name: str, table: pa.Table) -> None:
        if self.postgresql:
            self.cursor.adbc_ingest(name, table, mode="create", db_schema_name=schema)
        else:
            table.to_pandas().to_sql(name, self.connection, schema=schema, index=False)

    def shape(self, quoted: str) -> list[tuple[str, str]] | None:
        """The columns and types of a table, in order; None when there is no such table."""
        if self.postgresql:
            literal = quoted.replace("'", "''")
            found = self.rows(f"SELECT to_regclass('{literal}') IS NOT NULL")
            if not found[0][0]:
                return None
            return [(str(name), str(kind)) for name, kind in self.rows(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                f"to_regclass('{literal}') AND attnum > 0 AND NOT attisdropped ORDER BY attnum")]
        import sqlalchemy

        schema, _, name = quoted.replace('"', "").rpartition(".")
        inspector = sqlalchemy.inspect(self.connection)
        if not inspector.has_table(name, schema=schema or None):
            return None
        return [(column["name"], str(column["type"])) for column in inspector.get_columns(name, schema=schema or None)]

    def commit(self) -> None:
        self.connection.commit()

    def rollback(self) -> None:
        self.connection.rollback()
