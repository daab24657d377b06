"""The PostgreSQL store as a ``sync.db.Database``: what the engine, the commands and the reports use.

One psycopg 3 connection in autocommit mode: a statement outside ``atomic`` commits on
its own, as sqlite-utils' ``execute`` does; ``atomic`` is an explicit transaction
(savepoints inside). Write transactions are serialized by a transaction-level advisory
lock, taken first, as SQLite's ``BEGIN IMMEDIATE`` serializes them: each sees the one
before it committed, so the audit chain's head is read and extended by one writer at a
time. The SQL relsync writes with ``?`` placeholders is given to psycopg with ``%s``.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from sync.db import Params
from sync.pg_store import Connection, open_connection
from sync.store_location import PASSWORD_ENV

SCAN_BATCH = 2000
"""Rows a ``scan`` fetches at a time."""
_scans = itertools.count()

WRITER_LOCK = 0x72656C73
"""The advisory lock key every write transaction takes first ("rels")."""


@functools.lru_cache(maxsize=2048)
def postgres_sql(sql: str, named: bool = False) -> str:
    """``sql`` with ``?`` placeholders (``:name`` ones when ``named``) as psycopg's ``%s`` (``%(name)s``).

    A literal ``%`` is doubled; quoted text and identifiers are left alone, and so is ``::``.
    """
    out: list[str] = []
    quote: str | None = None
    index = 0
    while index < len(sql):
        char = sql[index]
        index += 1
        if char == "%":
            out.append("%%")  # psycopg reads % as a placeholder's start wherever it stands
        elif quote is not None:
            quote = None if char == quote else quote
            out.append(char)
        elif char in ("'", '"'):
            quote = char
            out.append(char)
        elif char == "?":
            out.append("%s")
        elif named and char == ":" and sql[index:index + 1].isidentifier() and sql[index - 2:index - 1] != ":":
            end = index
            while end < len(sql) and (sql[end].isalnum() or sql[end] == "_"):
                end += 1
            out.append(f"%({sql[index:end]})s")
            index = end
        else:
            out.append(char)
    return "".join(out)


class PostgresDatabase:
    """A PostgreSQL store's connection (``sync.db.Database``)."""

    dialect = "postgresql"
    json_values = "select value from jsonb_array_elements_text(cast(? as jsonb)) as t(value)"

    def json_rows(self, array: str, alias: str) -> str:
        return f"jsonb_array_elements_text(cast({array} as jsonb)) as {alias}(value)"

    def __init__(self, url: str, connection: Connection) -> None:
        self.name = url
        self.connection = connection

    @classmethod
    def open(cls, url: str, *, create: bool = True, password_env: str = PASSWORD_ENV,
             env: Mapping[str, str] | None = None) -> PostgresDatabase:
        """Connect and migrate to the current schema; unless ``create``, a database without a store is StoreMissing."""
        return cls(url, open_connection(url, create=create, password_env=password_env, env=env))

    @property
    def in_transaction(self) -> bool:
        return self.connection.info.transaction_status != TransactionStatus.IDLE

    def query(self, sql: str, params: Params = None) -> Generator[dict[str, Any], None, None]:
        cursor = self.connection.cursor(row_factory=dict_row)
        cursor.execute(postgres_sql(sql, isinstance(params, Mapping)), _params(params))
        yield from cursor

    def scan(self, sql: str, params: Params = None) -> Generator[dict[str, Any], None, None]:
        """Rows fetched ``SCAN_BATCH`` at a time from a server-side cursor (held past the
        statement's end outside a transaction, as a cursor must be then)."""
        name = f"relsync_scan_{next(_scans)}"
        with self.connection.cursor(name, row_factory=dict_row, withhold=not self.in_transaction) as cursor:
            cursor.itersize = SCAN_BATCH
            cursor.execute(postgres_sql(sql, isinstance(params, Mapping)), _params(params))
            yield from cursor

    def execute(self, sql: str, parameters: Params = None) -> psycopg.Cursor[tuple[Any, ...]]:
        return self.connection.execute(postgres_sql(sql, isinstance(parameters, Mapping)), _params(parameters))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        with self.atomic():
            self.connection.cursor().executemany(postgres_sql(sql), rows)

    @contextlib.contextmanager
    def atomic(self, *, durable: bool = True) -> Iterator[PostgresDatabase]:
        """A transaction (a savepoint inside one); the outermost waits its turn behind other writers.

        ``durable=False`` (a pulled page, which can be pulled again) commits without
        waiting for the server's disk (``synchronous_commit = off`` for that transaction):
        a server crash can take it back with its watermark, never half of it.
        """
        if self.in_transaction:
            with self.connection.transaction():
                yield self
            return
        with self.connection.transaction():
            self.connection.execute("select pg_advisory_xact_lock(%s)", [WRITER_LOCK])
            if not durable:
                self.connection.execute("set local synchronous_commit = off")
            yield self

    def close(self) -> None:
        self.connection.close()


def _params(params: Params) -> Sequence[Any] | Mapping[str, Any]:
    if params is None:
        return ()
    return params if isinstance(params, Mapping) else list(params)
