"""The audit trail: append-only events, each chained to the one before by a sha256 hash.

Row ``n`` stores ``prev_hash`` (row ``n-1``'s ``hash``; 64 zeros for the first row) and
``hash = sha256((prev_hash + canonical).encode("utf-8")).hexdigest()``, where
``canonical`` is ``json.dumps(content, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` and ``content`` is the row's ``id``, ``at``, ``run``, ``actor``,
``origin``, ``request``, ``system``, ``field``, ``old`` and ``new`` exactly as stored
(``old`` and ``new`` are JSON text, so they enter the hash as strings). Anyone can
recompute the chain with the sqlite3 shell and a few lines of any language.

Triggers refuse UPDATE and DELETE on the table; ``verify_chain`` catches tampering by
someone who dropped them first. Two attacks leave a chain that checks out on its own:
rows cut from the end (with ``sqlite_sequence`` set back), and a chain rewritten end to
end with every hash recomputed. Both are caught against a head kept elsewhere: every
verification reports the head as an :class:`Anchor` (``N:HASH``), and
``verify_chain(db, anchor)`` fails unless the chain still reaches that row with that hash.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sync.db import Database
from sync.migrations import GENESIS_HASH, ORIGINS

_COLUMNS = ("id", "at", "run", "actor", "origin", "request", "system", "field", "old", "new")
CHAIN_COLUMNS = (*_COLUMNS, "prev_hash", "hash")
"""An audit row as ``verify_rows`` reads it: the hashed content, then ``prev_hash`` and ``hash``."""


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


_ANCHOR = re.compile(r"(\d+):([0-9a-f]{64})")


class AnchorError(ValueError):
    """An anchor that is not ``N:HASH`` (a row number, a colon, 64 hex digits)."""


@dataclass(frozen=True)
class Anchor:
    """A chain head kept outside the store: row ``seq`` had hash ``hash``; written ``N:HASH``."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """Read ``N:HASH`` (surrounding whitespace ignored); AnchorError says what is wrong."""
        found = _ANCHOR.fullmatch(text.strip().lower())
        if found is None:
            raise AnchorError("an anchor is N:HASH, the row number and its 64 hex digit hash as "
                              "`relsync audit verify` prints them (like 1042:3f9a...)")
        return cls(int(found.group(1)), found.group(2))


@dataclass(frozen=True)
class ChainReport:
    """The outcome of ``verify_chain``: ``first_bad_id`` is where the chain first breaks.

    ``head`` is the hash of the last row that checked out (the genesis hash before the
    first), ``head_id`` that row's id (0 for none).
    """

    ok: bool
    checked: int
    first_bad_id: int | None
    reason: str
    head: str
    head_id: int = 0

    @property
    def anchor(self) -> Anchor:
        """The head as an anchor to keep elsewhere."""
        return Anchor(self.head_id, self.head)


def audit_json(value: Any) -> str:
    """A value as the audit stores it (``old``, ``new``) and hashes it: canonical JSON."""
    if value is None:
        return "null"  # the commonest value (a new request's old one), without the encoder
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _row_hash(prev_hash: str, content: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + audit_json(content)).encode("utf-8")).hexdigest()


def _chain_head(db: Database) -> tuple[int, str]:
    row = db.execute("select id, hash from audit order by id desc limit 1").fetchone()
    return (row[0], row[1]) if row else (0, GENESIS_HASH)


def append_events(db: Database, events: Iterable[AuditEvent]) -> None:
    """Append ``events`` in order, chained to the current head, in the caller's transaction.

    Ids are assigned here (last id + 1) because they are part of the hashed content.
    The head is read inside the caller's transaction, so two writers cannot fork the
    chain: the second one fails on the primary key or on SQLite's stale-snapshot check.
    """
    if not db.in_transaction:
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
            "old": audit_json(event.old),
            "new": audit_json(event.new),
        }
        digest = _row_hash(prev_hash, content)
        rows.append((*(content[name] for name in _COLUMNS), prev_hash, digest))
        prev_hash = digest
    if rows:
        db.executemany(
            f"insert into audit ({', '.join(_COLUMNS)}, prev_hash, hash) "
            f"values ({', '.join('?' * (len(_COLUMNS) + 2))})",
            rows,
        )


def verify_chain(db: Database, anchor: Anchor | None = None) -> ChainReport:
    """Recompute the whole chain; report the first row that was altered, removed or moved.

    With ``anchor`` the chain must also still reach row ``anchor.seq`` with hash
    ``anchor.hash``: rows cut from the end, or a chain rewritten with fresh hashes,
    then fail even when the store's own bookkeeping was set back to match.
    """
    # Read the high-water id first: rows appended while we scan only raise max(id).
    seq_row = db.execute(_HIGH_WATER[db.dialect]).fetchone()
    rows = db.execute(f"select {', '.join(CHAIN_COLUMNS)} from audit order by id")
    return verify_rows(rows, seq_row[0] if seq_row else 0, anchor)


_HIGH_WATER = {
    "sqlite": "select seq from sqlite_sequence where name = 'audit'",
    "postgresql": "select seq from audit_high_water",  # kept by a trigger (sync.pg_migrations)
}
"""The highest audit id ever written, per dialect."""


def verify_rows(rows: Iterable[Sequence[Any]], highest_written: int, anchor: Anchor | None = None) -> ChainReport:
    """Check audit ``rows`` (``CHAIN_COLUMNS``, in id order) from any database, as ``verify_chain`` does.

    ``highest_written`` is the highest audit id the store ever wrote (SQLite's
    ``sqlite_sequence``), so that rows cut from the end are noticed.
    """
    expected_prev = GENESIS_HASH
    checked = 0
    last_id = 0

    def broken(row_id: int | None, reason: str) -> ChainReport:
        return ChainReport(False, checked, row_id, reason, expected_prev, last_id)

    if anchor is not None and anchor.seq == 0 and anchor.hash != GENESIS_HASH:
        return broken(None, f"the anchor {anchor} is not a chain head: row 0 is the genesis hash, 64 zeros")
    reached = anchor is None or anchor.seq == 0
    for row in rows:
        content = dict(zip(_COLUMNS, row[: len(_COLUMNS)], strict=True))
        prev_hash, stored_hash = row[len(_COLUMNS)], row[len(_COLUMNS) + 1]
        row_id = content["id"]
        if prev_hash != expected_prev:
            return broken(row_id, f"row {row_id}: prev_hash does not match the hash of the row before it "
                                  "(a row was deleted, inserted or reordered)")
        if _row_hash(prev_hash, content) != stored_hash:
            return broken(row_id, f"row {row_id}: its content does not match its hash (the row was altered)")
        if anchor is not None and row_id == anchor.seq:
            if stored_hash != anchor.hash:
                return broken(row_id, f"row {row_id}: its hash is {stored_hash}, not {anchor.hash} as anchored "
                                      "(the chain up to it was rewritten)")
            reached = True
        expected_prev = stored_hash
        last_id = row_id
        checked += 1
    if highest_written > last_id:
        return broken(last_id + 1, f"the chain ends at row {last_id} but rows up to {highest_written} were written "
                                   "(rows were deleted from the end)")
    if anchor is not None and not reached:
        if last_id < anchor.seq:
            return broken(last_id + 1, f"the chain ends at row {last_id} but the anchor says it reached row "
                                       f"{anchor.seq} (rows were cut from the end)")
        return broken(anchor.seq, f"row {anchor.seq} of the anchor is missing from the chain (rows were renumbered)")
    return ChainReport(True, checked, None, f"{checked} rows, chain intact", expected_prev, last_id)


def request_history(db: Database, key: str) -> list[dict[str, Any]]:
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
