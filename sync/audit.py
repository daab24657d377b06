"""The audit trail: append-only events, each chained to the one before by a sha256 hash.

Row ``n`` stores ``prev_hash`` (row ``n-1``'s ``hash``; 64 zeros for the first row) and
``hash = sha256((prev_hash + canonical).encode("utf-8")).hexdigest()``, where
``canonical`` is ``json.dumps(content, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` and ``content`` is the row's ``id``, ``at``, ``run``, ``actor``,
``origin``, ``request``, ``system``, ``field``, ``old`` and ``new`` exactly as stored
(``old`` and ``new`` are JSON text, so they enter the hash as strings). Anyone can
recompute the chain with the sqlite3 shell and a few lines of any language.

Triggers refuse UPDATE and DELETE on the table; ``verify_chain`` catches tampering by
someone who dropped them first. A chain rewritten end to end by someone who also
recomputes every hash is only detectable against a head hash kept elsewhere, which is
why ``ChainReport`` carries ``head``.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from sync.store import GENESIS_HASH, ORIGINS

_COLUMNS = ("id", "at", "run", "actor", "origin", "request", "system", "field", "old", "new")


@dataclass(frozen=True)
class AuditEvent:
    """One thing relsync saw or did to one field of one request."""

    at: str
    run: int | None
    actor: str
    origin: str
    request: str | None
    system: str | None
    field: str | None
    old: Any
    new: Any

    def __post_init__(self) -> None:
        if self.origin not in ORIGINS:
            raise ValueError(f"audit origin {self.origin!r} is not one of {', '.join(ORIGINS)}")


@dataclass(frozen=True)
class ChainReport:
    """The outcome of ``verify_chain``: ``first_bad_id`` is where the chain first breaks."""

    ok: bool
    checked: int
    first_bad_id: int | None
    reason: str
    head: str


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _row_hash(prev_hash: str, content: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + _json(content)).encode("utf-8")).hexdigest()


def _chain_head(db: sqlite_utils.Database) -> tuple[int, str]:
    row = db.conn.execute("select id, hash from audit order by id desc limit 1").fetchone()
    return (row[0], row[1]) if row else (0, GENESIS_HASH)


def append_events(db: sqlite_utils.Database, events: Iterable[AuditEvent]) -> None:
    """Append ``events`` in order, chained to the current head, in the caller's transaction.

    Ids are assigned here (last id + 1) because they are part of the hashed content.
    The head is read inside the caller's transaction, so two writers cannot fork the
    chain: the second one fails on the primary key or on SQLite's stale-snapshot check.
    """
    if not db.conn.in_transaction:
        # A write outside a transaction would commit on its own, and the events would no
        # longer land together with the changes they describe.
        raise RuntimeError("append_events must be called inside the caller's transaction (with db.atomic())")
    last_id, prev_hash = _chain_head(db)
    rows = []
    for offset, event in enumerate(events, start=1):
        content = {
            "id": last_id + offset,
            "at": event.at,
            "run": event.run,
            "actor": event.actor,
            "origin": event.origin,
            "request": event.request,
            "system": event.system,
            "field": event.field,
            "old": _json(event.old),
            "new": _json(event.new),
        }
        digest = _row_hash(prev_hash, content)
        rows.append((*(content[name] for name in _COLUMNS), prev_hash, digest))
        prev_hash = digest
    if rows:
        db.conn.executemany(
            f"insert into audit ({', '.join(_COLUMNS)}, prev_hash, hash) "
            f"values ({', '.join('?' * (len(_COLUMNS) + 2))})",
            rows,
        )


def verify_chain(db: sqlite_utils.Database) -> ChainReport:
    """Recompute the whole chain; report the first row that was altered, removed or moved."""
    # Read the high-water id first: rows appended while we scan only raise max(id).
    seq_row = db.conn.execute("select seq from sqlite_sequence where name = 'audit'").fetchone()
    highest_written = seq_row[0] if seq_row else 0
    expected_prev = GENESIS_HASH
    checked = 0
    last_id = 0
    cursor = db.conn.execute(
        f"select {', '.join(_COLUMNS)}, prev_hash, hash from audit order by id"
    )
    for row in cursor:
        content = dict(zip(_COLUMNS, row[: len(_COLUMNS)], strict=True))
        prev_hash, stored_hash = row[len(_COLUMNS)], row[len(_COLUMNS) + 1]
        row_id = content["id"]
        if prev_hash != expected_prev:
            return ChainReport(
                False, checked, row_id,
                f"row {row_id}: prev_hash does not match the hash of the row before it "
                "(a row was deleted, inserted or reordered)",
                expected_prev,
            )
        if _row_hash(prev_hash, content) != stored_hash:
            return ChainReport(
                False, checked, row_id,
                f"row {row_id}: its content does not match its hash (the row was altered)",
                expected_prev,
            )
        expected_prev = stored_hash
        last_id = row_id
        checked += 1
    if highest_written > last_id:
        return ChainReport(
            False, checked, last_id + 1,
            f"the chain ends at row {last_id} but rows up to {highest_written} were written "
            "(rows were deleted from the end)",
            expected_prev,
        )
    return ChainReport(True, checked, None, f"{checked} rows, chain intact", expected_prev)


def request_history(db: sqlite_utils.Database, key: str) -> list[dict[str, Any]]:
    """Every audit event for request ``key``, oldest first, with ``old``/``new`` decoded."""
    history = []
    for row in db.query(
        "select id, at, run, actor, origin, request, system, field, old, new "
        "from audit where request = ? order by id",
        [key],
    ):
        row["old"] = None if row["old"] is None else json.loads(row["old"])
        row["new"] = None if row["new"] is None else json.loads(row["new"])
        history.append(row)
    return history
