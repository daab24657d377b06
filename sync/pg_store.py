"""The PostgreSQL store: connecting with psycopg 3, migrating, reading and writing whole tables, verifying the audit.

The sync engine still runs on SQLite only; this is what ``relsync store copy`` uses to
fill a PostgreSQL store from a SQLite one and back. The URL never carries the password:
it comes from an environment variable (``sync.store_location``) and no message repeats it.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

from sync.audit import CHAIN_COLUMNS, Anchor, ChainReport, verify_rows
from sync.pg_migrations import IDENTITY_TABLES, MIGRATIONS_TABLE, PG_MIGRATIONS
from sync.store_location import PASSWORD_ENV, StoreConnectError, StoreDatabaseError, StoreMissing, check_postgres_url

MIGRATION_SET = "relsync"
"""The migration set's name, as ``sync.migrations.MIGRATIONS`` records it."""

Connection = psycopg.Connection[tuple[Any, ...]]


def connect(url: str, *, password_env: str = PASSWORD_ENV, env: Mapping[str, str] | None = None) -> Connection:
    """Connect to the PostgreSQL store at ``url``, the password taken from ``$password_env`` (if set).

    Errors name the URL and the server's reason, never the password.
    """
    check_postgres_url(url, password_env=password_env)
    password = (os.environ if env is None else env).get(password_env) or None
    try:
        # Autocommit: every transaction is an explicit block (connection.transaction()), none left open by a read.
        connection = psycopg.connect(url, password=password, connect_timeout=15, application_name="relsync",
                                     autocommit=True)
    except psycopg.Error as error:
        reason = " ".join(str(error).split())
        if password:
            reason = reason.replace(password, "***")
        if "password" in reason and not password:
            reason += f" (the password is read from the environment variable {password_env}, which is not set)"
        raise StoreConnectError(f"cannot open the PostgreSQL store {url}: {reason}") from None
    return connection


@contextlib.contextmanager
def database_errors(what: str) -> Iterator[None]:
    """psycopg's errors as StoreDatabaseError: ``what`` failed, and what the server said (the URL never has the password)."""
    try:
        yield
    except psycopg.Error as error:
        raise StoreDatabaseError(f"{what} failed in PostgreSQL: {' '.join(str(error).split())}") from error


def applied_migrations(connection: Connection) -> list[str]:
    """The names of the migrations applied to this store, in the order they were applied."""
    exists = connection.execute("select to_regclass(%s)", [MIGRATIONS_TABLE]).fetchone()
    if exists is None or exists[0] is None:
        return []
    rows = connection.execute(
        sql.SQL("select name from {} where migration_set = %s order by id").format(sql.Identifier(MIGRATIONS_TABLE)),
        [MIGRATION_SET],
    )
    return [name for (name,) in rows]


MIGRATE_LOCK = (0x72656C73, 0x6D696772)
"""The advisory lock (two keys) that runners opening a store at once take in turn to migrate it."""


def apply_migrations(connection: Connection) -> list[str]:
    """Apply the pending migrations, each in its own transaction with its record; returns the names applied.

    Runners started together on a new database would each create the migrations table and
    apply every step; one at a time (a blocking advisory lock, dropped with the session if
    its holder dies), the later ones find them applied.
    """
    if {name for name, _ in PG_MIGRATIONS} <= set(applied_migrations(connection)):
        return []  # the usual case: nothing to wait for
    connection.execute("select pg_advisory_lock(%s, %s)", MIGRATE_LOCK)
    try:
        return _apply_migrations(connection)
    finally:
        connection.execute("select pg_advisory_unlock(%s, %s)", MIGRATE_LOCK)


def _apply_migrations(connection: Connection) -> list[str]:
    table = sql.Identifier(MIGRATIONS_TABLE)
    with connection.transaction():
        connection.execute(sql.SQL(
            "create table if not exists {} (id bigint generated always as identity primary key, "
            "migration_set text not null, name text not null, applied_at text not null, unique (migration_set, name))"
        ).format(table))
    applied: list[str] = []
    for name, step in PG_MIGRATIONS:
        with connection.transaction():
            # One migrator at a time: a second waits here, then finds the step done.
            connection.execute(sql.SQL("lock table {} in exclusive mode").format(table))
            if name in applied_migrations(connection):
                continue
            step(connection)
            connection.execute(sql.SQL("insert into {} (migration_set, name, applied_at) values (%s, %s, %s)").format(table),
                               [MIGRATION_SET, name, str(dt.datetime.now(dt.UTC))])
            applied.append(name)
    return applied


def _stream(connection: Connection, query: sql.Composed) -> Generator[tuple[Any, ...], None, None]:
    """The rows of ``query`` one by one (memory does not grow with the table); close it to stop early."""
    yield from connection.cursor().stream(query)


def verify_chain(connection: Connection, anchor: Anchor | None = None) -> ChainReport:
    """``sync.audit.verify_chain`` for a PostgreSQL store: the same rows, the same hashing."""
    with connection.transaction():
        # One snapshot: the high-water mark and the rows as of the same moment.
        connection.execute("set transaction isolation level repeatable read, read only")
        row = connection.execute("select seq from audit_high_water").fetchone()
        query = sql.SQL("select {} from audit order by id").format(sql.SQL(", ").join(map(sql.Identifier, CHAIN_COLUMNS)))
        # Closed when verification stops at a broken row: an unfinished stream keeps the connection busy.
        with contextlib.closing(_stream(connection, query)) as rows:
            return verify_rows(rows, int(row[0]) if row else 0, anchor)


def open_connection(url: str, *, create: bool = True, password_env: str = PASSWORD_ENV,
                    env: Mapping[str, str] | None = None) -> Connection:
    """A connection to the store at ``url``, migrated to the current schema; unless ``create``, a database
    without a store is StoreMissing."""
    connection = connect(url, password_env=password_env, env=env)
    try:
        with database_errors(f"opening the store {url}"):
            if not create and not applied_migrations(connection):
                raise StoreMissing(f"no relsync store in the PostgreSQL database {url}")
            apply_migrations(connection)
    except BaseException:
        connection.close()
        raise
    return connection


class PostgresStore:
    """A PostgreSQL store as ``sync.store_copy`` reads and fills it, table by table."""

    def __init__(self, url: str, connection: Connection) -> None:
        self.name = url
        self.connection = connection

    @classmethod
    def open(cls, url: str, *, create: bool = True, password_env: str = PASSWORD_ENV,
             env: Mapping[str, str] | None = None) -> PostgresStore:
        """Connect and migrate to the current schema; unless ``create``, a database without a store is StoreMissing."""
        return cls(url, open_connection(url, create=create, password_env=password_env, env=env))

    def close(self) -> None:
        self.connection.close()

    def migrations(self) -> list[str]:
        return applied_migrations(self.connection)

    def tables(self) -> set[str]:
        rows = self.connection.execute(
            "select table_name from information_schema.tables where table_schema = current_schema() "
            "and table_type = 'BASE TABLE'")
        return {name for (name,) in rows} - {MIGRATIONS_TABLE, "audit_high_water"}

    def columns(self, table: str) -> list[str]:
        rows = self.connection.execute(
            "select column_name from information_schema.columns where table_schema = current_schema() "
            "and table_name = %s order by ordinal_position", [table])
        return [name for (name,) in rows]

    def primary_key(self, table: str) -> list[str]:
        rows = self.connection.execute(
            "select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid "
            "and a.attnum = any(i.indkey) where i.indrelid = %s::regclass and i.indisprimary "
            "order by array_position(i.indkey::int2[], a.attnum)", [table])
        return [name for (name,) in rows]

    def count(self, table: str) -> int:
        row = self.connection.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(table))).fetchone()
        return int(row[0]) if row else 0

    def begin_snapshot(self) -> None:
        """Read every table as of one moment (the copy's source)."""
        self.connection.execute("begin isolation level repeatable read, read only")

    def end_snapshot(self) -> None:
        self.connection.execute("rollback")

    def rows(self, table: str, columns: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """Every row of ``table`` as ``columns``, in primary-key order (text compared byte by byte, as SQLite does)."""
        order = sql.SQL(", ").join(
            sql.SQL("{} collate \"C\"").format(sql.Identifier(column)) if self._is_text(table, column)
            else sql.Identifier(column)
            for column in self.primary_key(table))
        query = sql.SQL("select {} from {} order by {}").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table), order)
        yield from _stream(self.connection, query)

    def _is_text(self, table: str, column: str) -> bool:
        row = self.connection.execute(
            "select data_type from information_schema.columns where table_schema = current_schema() "
            "and table_name = %s and column_name = %s", [table, column]).fetchone()
        return row is not None and row[0] == "text"

    def audit_high_water(self) -> int:
        row = self.connection.execute("select seq from audit_high_water").fetchone()
        return int(row[0]) if row else 0

    def fill(self, tables: Iterable[tuple[str, Sequence[str], Iterable[Sequence[Any]]]], audit_high_water: int) -> None:
        """Write every table's rows with COPY in one transaction, then move the id sequences past them."""
        with self.connection.transaction():
            for table, columns, rows in tables:
                query = sql.SQL("copy {} ({}) from stdin").format(
                    sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)))
                with self.connection.cursor().copy(query) as copy:
                    for row in rows:
                        copy.write_row(row)
            for table in IDENTITY_TABLES:
                # The next id the database assigns comes after the copied ones, as SQLite's rowid would.
                self.connection.execute(sql.SQL(
                    "select setval(pg_get_serial_sequence(%s, 'id'), coalesce(max(id), 0) + 1, false) from {}"
                ).format(sql.Identifier(table)), [table])
            self.connection.execute("update audit_high_water set seq = greatest(seq, %s)", [audit_high_water])

    def verify(self) -> ChainReport:
        return verify_chain(self.connection)
