"""The local SQLite store: opening it safely (migrated by sync.migrations) and a few accessors.

Every timestamp the store holds is TEXT, UTC ISO-8601 ending in ``Z``. JSON columns
hold JSON text. Transactions are the caller's: ``with db.atomic(): ...``.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import stat
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlite_utils

from mapping import clock
from sync.db import Database, Params
from sync.migrations import GENESIS_HASH, MIGRATIONS, ORIGINS, OUTBOX_STATES, RELEASE_STATES, RUN_KINDS, RUN_STATUSES
from sync.store_location import StoreLocationError, StoreMissing, is_postgres

__all__ = [
    "GENESIS_HASH", "MIGRATIONS", "ORIGINS", "OUTBOX_STATES", "RELEASE_STATES", "RUN_KINDS", "RUN_STATUSES",
    "StoreMissing", "finish_run", "get_watermark", "open_store", "set_watermark", "start_run", "store_problem",
]


def _private_file(path: Path) -> None:
    """Create ``path`` readable by its owner only, or tighten it if it is wider."""
    # Created before SQLite opens it, so the file never exists with umask-wide
    # permissions; SQLite gives its -wal and -shm files the database file's mode.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        sidecar = Path(f"{path}{suffix}")
        if sidecar.exists() and stat.S_IMODE(sidecar.stat().st_mode) & 0o077:
            sidecar.chmod(0o600)


class Store(sqlite_utils.Database):
    """The SQLite store's database (``sync.db.Database``): sqlite-utils' whose outermost transaction begins IMMEDIATE.

    Runners of different sources write to one store at once. A deferred transaction
    that reads (the audit chain's head) and then writes fails at its first write when
    another runner committed in between (SQLite's stale snapshot: no busy wait helps);
    beginning IMMEDIATE takes the write lock first, so writers queue behind each other
    for up to the busy timeout and each sees the other's commits.
    """

    dialect = "sqlite"
    json_values = "select value from json_each(?)"

    def json_rows(self, array: str, alias: str) -> str:
        return f"json_each({array}) {alias}"

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def scan(self, sql: str, params: Params = None) -> Iterator[dict[str, Any]]:
        """``query``: SQLite's cursor already reads rows as they are asked for."""
        return self.query(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run ``sql`` once per row, in the caller's transaction if there is one (else in one of its own)."""
        if self.conn.in_transaction:
            self.conn.executemany(sql, rows)
            return
        with self.atomic():
            self.conn.executemany(sql, rows)

    @contextlib.contextmanager
    def atomic(self, *, durable: bool = True) -> Generator[Store, None, None]:
        """A transaction (a savepoint inside one); the outermost begins IMMEDIATE.

        ``durable=False`` is for what can be read again from its source (a pulled page
        with the watermark it reached): its commit does not wait for the disk. SQLite
        keeps it atomic and safe from a killed process either way; only a power loss
        or an OS crash can take back such commits, together with their watermarks, so
        the next run pulls those pages again. A durable commit (the default: pushes,
        plans, manual commands) flushes the log with every commit before it.
        """
        if self.conn.in_transaction:
            with super().atomic():
                yield self
            return
        if not durable:
            self.conn.execute("pragma synchronous = normal")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                self.conn.rollback()
                raise
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.rollback()
                raise
        finally:
            if not durable:
                self.conn.execute("pragma synchronous = full")


def store_problem(path: str | Path) -> str | None:
    """Why relsync could not keep its store at ``path`` (a missing folder, no permission), or None."""
    if str(path) == ":memory:" or is_postgres(str(path)):
        return None  # a PostgreSQL store's problems are the server's to tell, when it is opened
    store = Path(path)
    if not store.parent.is_dir():
        return f"the folder {store.parent} does not exist: create it, or point `store` elsewhere"
    if store.is_dir():
        return f"{store} is a folder; `store` names the SQLite file inside one"
    writable = store if store.exists() else store.parent
    if not os.access(writable, os.W_OK):
        return f"relsync cannot write to {writable} (permission denied)"
    return None


def open_database(location: str | Path, *, busy_timeout_ms: int = 10_000, create: bool = True,
                  env: Mapping[str, str] | None = None) -> Database:
    """The store at ``location``: a SQLite file (``open_store``) or a ``postgresql://`` URL, migrated to the current schema.

    A PostgreSQL store's password is read from ``RELSYNC_STORE_PASSWORD`` (``sync.store_location``).
    """
    if is_postgres(str(location)):
        try:
            from sync.pg_database import PostgresDatabase  # psycopg is loaded only for a PostgreSQL store
        except ImportError:
            raise StoreLocationError("a PostgreSQL store needs psycopg: pip install 'relsync[postgres]'") from None
        return PostgresDatabase.open(str(location), create=create, env=env)
    return open_store(location, busy_timeout_ms=busy_timeout_ms, create=create)


def open_store(path: str | Path, *, busy_timeout_ms: int = 10_000, create: bool = True) -> Store:
    """Open (creating if needed, unless ``create`` is False) the store at ``path``, migrated to the current schema.

    Commands that only read (status, audit, release plans) pass ``create=False``: a
    mistyped path is then an error naming it, not an empty store that says "none".

    The file is mode 0600, in WAL mode, with foreign keys enforced and a busy timeout
    so that a reader (``relsync audit``) and a sync run wait for each other instead of
    failing. ``":memory:"`` gives a throwaway in-memory store (tests).
    """
    if str(path) != ":memory:" and not create and not Path(path).exists():
        raise StoreMissing(f"no store at {path} (the config's `store`): check the path, or run `relsync sync` to create it")
    if str(path) == ":memory:":
        db = Store(memory=True)
    else:
        _private_file(Path(path))
        db = Store(Path(path))
    db.execute(f"pragma busy_timeout = {int(busy_timeout_ms)}")
    # Must be set outside a transaction; SQLite ignores it inside one.
    db.execute("pragma foreign_keys = on")
    # Every commit reaches the disk before it returns, unless a transaction says otherwise (Store.atomic).
    db.execute("pragma synchronous = full")
    if not db.memory:
        db.enable_wal()
    if db.memory:
        MIGRATIONS.apply(db)
    else:
        # Runners started together on a new store would each apply the migrations; one at a time,
        # the later ones find them applied. A blocking flock, dropped by the kernel if its holder dies.
        with open(f"{path}.migrate.lock", "a") as lock:
            os.chmod(lock.name, 0o600)
            fcntl.flock(lock, fcntl.LOCK_EX)
            MIGRATIONS.apply(db)
    return db


def _require_transaction(db: Database, what: str) -> None:
    # Writing outside the caller's transaction would commit on its own, splitting
    # what must be atomic (a page's rows and the watermark that page reached).
    if not db.in_transaction:
        raise RuntimeError(f"{what} must be called inside the caller's transaction (with db.atomic())")


def get_watermark(db: Database, source: str, stream: str) -> str | None:
    """The stored watermark for ``source``/``stream``, or None before the first page."""
    row = db.execute(
        "select watermark from sync_state where source = ? and stream = ?", [source, stream]
    ).fetchone()
    return row[0] if row else None


def set_watermark(
    db: Database, source: str, stream: str, value: str, *, now: dt.datetime | None = None
) -> None:
    """Record ``value`` as the watermark, inside the caller's transaction (it does not commit)."""
    _require_transaction(db, "set_watermark")
    db.execute(
        "insert into sync_state (source, stream, watermark, updated_at) values (?, ?, ?, ?) "
        "on conflict (source, stream) do update set "
        "watermark = excluded.watermark, updated_at = excluded.updated_at",
        [source, stream, value, clock.stamp(now)],
    )


def start_run(
    db: Database, *, now: dt.datetime | None = None, kind: str = "sync", sources: Iterable[str] | None = None,
) -> int:
    """Insert a ``running`` runs row of ``kind`` (sync, or a plan's dry run) for ``sources`` (None: all) and return its id."""
    with db.atomic():  # a statement that returns rows is not committed on its own
        row = db.execute(
            "insert into runs (kind, started_at, status, sources) values (?, ?, 'running', ?) returning id",
            [kind, clock.stamp(now), json.dumps(sorted(sources)) if sources is not None else None],
        ).fetchone()
    return int(row[0])


def finish_run(
    db: Database,
    run_id: int,
    *,
    status: str,
    exit_code: int,
    counts: Mapping[str, Any],
    api_calls: Mapping[str, Any],
    message: str | None,
    now: dt.datetime | None = None,
) -> None:
    """Close the run: end time, final status, exit code, counts and API calls per system."""
    if status not in RUN_STATUSES:
        raise ValueError(f"run status {status!r} is not one of {', '.join(RUN_STATUSES)}")
    cursor = db.execute(
        "update runs set ended_at = ?, status = ?, exit_code = ?, counts = ?, api_calls = ?, "
        "message = ? where id = ?",
        [
            clock.stamp(now),
            status,
            exit_code,
            json.dumps(dict(counts), sort_keys=True),
            json.dumps(dict(api_calls), sort_keys=True),
            message,
            run_id,
        ],
    )
    if cursor.rowcount != 1:
        raise LookupError(f"no run with id {run_id}")
