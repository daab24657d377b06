"""Copy a whole store from SQLite to PostgreSQL or back: every table, in primary-key order, the audit chain verified on arrival.

The target is migrated to the current schema first and must be empty. Both stores must
have applied the same migrations, by name, and hold the same tables and columns; rows
travel by column name. The source is read as of one moment and the target is written in
one transaction, so a failed copy leaves the target as empty as it was.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sync.audit import ChainReport, verify_chain
from sync.migrations import MIGRATIONS
from sync.store import Store as SqliteDatabase
from sync.store import StoreMissing, open_store, store_problem
from sync.store_location import PASSWORD_ENV, ChainBroken, StoreCopyRefused, StoreLocationError, check_postgres_url, is_postgres

TABLES: tuple[str, ...] = (
    "change_requests", "releases", "release_phases", "assignments", "phase_signoffs", "sync_state", "outbox",
    "audit", "runs", "quarantine", "waiting", "imported_history", "source_cache",
)
"""Every table of the store, those referenced by foreign keys before those that reference them."""


class Store(Protocol):
    """One end of a copy: a SQLite or PostgreSQL store, migrated and open."""

    name: str

    def close(self) -> None: ...
    def migrations(self) -> list[str]: ...
    def tables(self) -> set[str]: ...
    def columns(self, table: str) -> list[str]: ...
    def count(self, table: str) -> int: ...
    def begin_snapshot(self) -> None: ...
    def end_snapshot(self) -> None: ...
    def rows(self, table: str, columns: Sequence[str]) -> Iterator[tuple[Any, ...]]: ...
    def audit_high_water(self) -> int: ...
    def fill(self, tables: Iterable[tuple[str, Sequence[str], Iterable[Sequence[Any]]]], audit_high_water: int) -> None: ...
    def verify(self) -> ChainReport: ...


class SqliteStore:
    """A SQLite store as a copy reads and fills it."""

    def __init__(self, path: str, db: SqliteDatabase) -> None:
        self.name = path
        self.db = db

    def close(self) -> None:
        self.db.close()

    def migrations(self) -> list[str]:
        return [migration.name for migration in MIGRATIONS.applied(self.db)]

    def tables(self) -> set[str]:
        return {name for name in self.db.table_names() if not name.startswith(("sqlite_", "_sqlite_"))}

    def columns(self, table: str) -> list[str]:
        return [column.name for column in self.db.table(table).columns]

    def count(self, table: str) -> int:
        return int(self.db.execute(f"select count(*) from [{table}]").fetchone()[0])

    def begin_snapshot(self) -> None:
        # A read transaction: in WAL mode every table is then read as of this moment.
        self.db.execute("begin")

    def end_snapshot(self) -> None:
        self.db.execute("rollback")

    def rows(self, table: str, columns: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        order = ", ".join(f"[{column}]" for column in self.db.table(table).pks)
        yield from self.db.execute(f"select {', '.join(f'[{column}]' for column in columns)} from [{table}] order by {order}")

    def audit_high_water(self) -> int:
        row = self.db.execute("select seq from sqlite_sequence where name = 'audit'").fetchone()
        return int(row[0]) if row else 0

    def fill(self, tables: Iterable[tuple[str, Sequence[str], Iterable[Sequence[Any]]]], audit_high_water: int) -> None:
        with self.db.atomic():
            for table, columns, rows in tables:
                names = ", ".join(f"[{column}]" for column in columns)
                self.db.conn.executemany(f"insert into [{table}] ({names}) values ({', '.join('?' * len(columns))})", rows)
            # AUTOINCREMENT kept the highest id inserted; a source that had written higher keeps saying so.
            if audit_high_water > self.audit_high_water():
                self.db.execute("delete from sqlite_sequence where name = 'audit'")
                self.db.execute("insert into sqlite_sequence (name, seq) values ('audit', ?)", [audit_high_water])

    def verify(self) -> ChainReport:
        return verify_chain(self.db)


def open_location(location: str, *, create: bool, password_env: str = PASSWORD_ENV,
                  env: Mapping[str, str] | None = None) -> Store:
    """Open the store at ``location`` (a SQLite path or a ``postgresql://`` URL), migrated to the current schema."""
    if is_postgres(location):
        try:
            from sync.pg_store import PostgresStore  # psycopg is loaded only for a PostgreSQL store
        except ImportError:
            raise StoreLocationError("a PostgreSQL store needs psycopg: pip install 'relsync[postgres]'") from None

        return PostgresStore.open(location, create=create, password_env=password_env, env=env)
    if not create and not Path(location).exists():
        raise StoreMissing(f"no SQLite store at {location}")
    problem = store_problem(location)
    if problem is not None:
        raise StoreLocationError(problem)
    return SqliteStore(location, open_store(location, create=create))


@dataclass(frozen=True)
class CopyReport:
    """What a copy moved, and the audit chain as the target verified it."""

    source: str
    target: str
    rows: dict[str, int]
    chain: ChainReport

    def summary(self) -> str:
        """One line: rows per table, and the verified chain's head."""
        counts = ", ".join(f"{table} {count}" for table, count in self.rows.items())
        return (f"copied {self.source} -> {self.target}: {counts}; audit chain verified to row {self.chain.head_id} "
                f"with hash {self.chain.head}")

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "rows": self.rows,
                "audit": {"verified": self.chain.ok, "rows": self.chain.checked, "anchor": str(self.chain.anchor)}}


def _agree(source: Store, target: Store) -> None:
    """Refuse unless both stores have the same migration history, tables and columns, and the target is empty."""
    if source.migrations() != target.migrations():
        missing = [name for name in source.migrations() if name not in target.migrations()]
        extra = [name for name in target.migrations() if name not in source.migrations()]
        raise StoreCopyRefused(
            f"{source.name} and {target.name} have applied different migrations (only in the source: "
            f"{', '.join(missing) or 'none'}; only in the target: {', '.join(extra) or 'none'}): "
            "copy with the relsync release that made the newer one")
    for store in (source, target):
        if store.tables() != set(TABLES):
            unknown = sorted(store.tables() - set(TABLES))
            raise StoreCopyRefused(f"{store.name} has tables this relsync does not copy: {', '.join(unknown) or 'none'} "
                                   f"(or lacks some of {', '.join(TABLES)})")
    for table in TABLES:
        if set(source.columns(table)) != set(target.columns(table)):
            differ = sorted(set(source.columns(table)) ^ set(target.columns(table)))
            raise StoreCopyRefused(f"table {table} has different columns in {source.name} and {target.name}: "
                                   f"{', '.join(differ)}")
    filled = {table: count for table in TABLES if (count := target.count(table))}
    if filled:
        held = ", ".join(f"{table} {count}" for table, count in filled.items())
        raise StoreCopyRefused(f"the target store {target.name} is not empty ({held} rows): "
                               "copy into a new SQLite file or an empty PostgreSQL database")


def copy_store(source: Store, target: Store) -> CopyReport:
    """Copy every row of ``source`` into the empty ``target``, then verify the audit chain there."""
    _agree(source, target)
    rows: dict[str, int] = {}

    def counted(table: str, found: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
        rows[table] = 0
        for row in found:
            rows[table] += 1
            yield row

    source.begin_snapshot()
    try:
        high_water = source.audit_high_water()
        plan = ((table, cols, counted(table, source.rows(table, cols))) for table in TABLES
                for cols in [source.columns(table)])
        target.fill(plan, high_water)
    finally:
        source.end_snapshot()
    chain = target.verify()
    if not chain.ok:
        raise ChainBroken(f"the rows were copied, but the audit chain does not verify on {target.name}: {chain.reason}")
    return CopyReport(source.name, target.name, rows, chain)


def copy_between(source: str, target: str, *, password_env: str = PASSWORD_ENV,
                 env: Mapping[str, str] | None = None) -> CopyReport:
    """Copy the store at ``source`` into the one at ``target`` (each a SQLite path or a ``postgresql://`` URL)."""
    for location in (source, target):
        if is_postgres(location):
            check_postgres_url(location, password_env=password_env)  # before any message could repeat it
    if source == target:
        raise StoreCopyRefused(f"the source and the target are the same store: {source}")
    with contextlib.ExitStack() as stack:
        opened = open_location(source, create=False, password_env=password_env, env=env)
        stack.callback(opened.close)
        into = open_location(target, create=True, password_env=password_env, env=env)
        stack.callback(into.close)
        if is_postgres(source) or is_postgres(target):
            from sync.pg_store import database_errors

            stack.enter_context(database_errors(f"copying {source} -> {target}"))
        return copy_store(opened, into)
