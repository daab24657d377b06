"""The store's database, SQLite or PostgreSQL, behind one small interface.

Every module that reads or writes the store does it through a :class:`Database`:
``query`` (rows as dicts; ``scan`` for a result of every request), ``execute`` (a cursor: ``fetchone``, ``fetchall``,
``rowcount``, iteration), ``executemany``, ``atomic`` (a transaction, savepoints
inside) and ``in_transaction``. SQL is written once, in what both engines read alike:
``?`` placeholders, ``insert ... on conflict``, ``returning``, ``coalesce``, text
compared and ordered byte by byte. The few places they differ have a name here:

- ``db.json_values``: a one-column subquery (``value``) over a JSON array of texts
  passed as one parameter, for ``where key in (<json_values>)`` with many keys, and
  ``db.json_rows(column, alias)`` for a JSON array held in a column;
- :func:`upsert`, :func:`update` and :func:`insert`: rows as dicts.

``sync.store.Store`` is the SQLite implementation (sqlite-utils underneath) and
``sync.pg_database.PostgresDatabase`` the PostgreSQL one (psycopg 3). Which one a
command gets is the config's ``store``: a path or a ``postgresql://`` URL
(``sync.store.open_database``).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any, Protocol

__all__ = ["Cursor", "Database", "insert", "insert_all", "update", "upsert"]

Params = Sequence[Any] | dict[str, Any] | None


class Cursor(Protocol):
    """What a statement gives back, as sqlite3 and psycopg cursors both do."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Database(Protocol):
    """A store's database connection (see the module docstring)."""

    dialect: str
    """``sqlite`` or ``postgresql``."""
    json_values: str
    """SQL of a subquery with one column ``value``: the texts of the JSON array given as its one ``?``."""

    def json_rows(self, array: str, alias: str) -> str:
        """SQL of a table ``alias`` with one column ``value``: the texts of the JSON array that SQL ``array`` gives."""

    @property
    def in_transaction(self) -> bool: ...

    def query(self, sql: str, params: Params = None) -> Iterator[dict[str, Any]]: ...

    def scan(self, sql: str, params: Params = None) -> Iterator[dict[str, Any]]:
        """``query`` for a result too large to hold: its rows come in batches as they are read, and
        other statements may run on the connection meanwhile (``query`` may read the whole result first)."""

    def execute(self, sql: str, parameters: Params = None) -> Any: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    def atomic(self, *, durable: bool = True) -> contextlib.AbstractContextManager[Any]: ...

    def close(self) -> None: ...


def _quoted(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a table or column name: {name!r}")
    return f'"{name}"'


def upsert(db: Database, table: str, rows: Sequence[Mapping[str, Any]], *, key: str | Sequence[str]) -> None:
    """Insert ``rows`` into ``table``, or update the row with the same ``key``: one statement run for all of them.

    Every row has the first row's columns. Values go in as they are (text, numbers,
    None); JSON columns already hold their text.
    """
    if not rows:
        return
    keys = [key] if isinstance(key, str) else list(key)
    columns = list(rows[0])
    names = ", ".join(map(_quoted, columns))
    others = [column for column in columns if column not in keys]
    action = (f"do update set {', '.join(f'{_quoted(c)} = excluded.{_quoted(c)}' for c in others)}" if others
              else "do nothing")
    db.executemany(
        f"insert into {_quoted(table)} ({names}) values ({', '.join('?' * len(columns))}) "
        f"on conflict ({', '.join(map(_quoted, keys))}) {action}",
        _values(rows, columns),
    )


def update(db: Database, table: str, where: Mapping[str, Any], values: Mapping[str, Any]) -> int:
    """Set ``values`` in the rows of ``table`` matching every column = value of ``where``; the rows changed."""
    sets = ", ".join(f"{_quoted(column)} = ?" for column in values)
    condition = " and ".join(f"{_quoted(column)} = ?" for column in where)
    cursor = db.execute(f"update {_quoted(table)} set {sets} where {condition}", [*values.values(), *where.values()])
    return int(cursor.rowcount)


def insert_all(db: Database, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (each with the first row's columns) into ``table``: one statement run for all of them."""
    if rows:
        columns = list(rows[0])
        db.executemany(f"insert into {_quoted(table)} ({', '.join(map(_quoted, columns))}) "
                       f"values ({', '.join('?' * len(columns))})",
                       _values(rows, columns))


def insert(db: Database, table: str, row: Mapping[str, Any]) -> None:
    """Insert one row."""
    insert_all(db, table, [row])


def _values(rows: Sequence[Mapping[str, Any]], columns: list[str]) -> list[Sequence[Any]]:
    """Each row's values in ``columns`` order, for ``executemany``."""
    if len(columns) == 1:
        return [[row[columns[0]]] for row in rows]
    return list(map(itemgetter(*columns), rows))
