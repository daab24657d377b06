"""Telling relsync's own writes apart from people's edits when records come back on a pull.

The outbox records every write as ``sending`` before it leaves (sync.outbox). A pulled
record is then read against the writes sent to it:

- a write that left but was never confirmed (``sending``: the run that sent it was
  killed before it heard the answer; or ``failed``/``pending`` after a timeout or a
  server error, which may still have applied it) landed if the source now shows its
  value: it is done, audited as relsync's push, and the pulled change of that field is
  relsync's echo, never a person's move;
- a ``sending`` write whose base the source still shows did not land: it goes out again;
- a ``sending`` write the source shows some third value for was overtaken by a person:
  a conflict, and the pulled value is theirs;
- a record no newer than the stored one, differing only where relsync wrote, is an
  old view (a lagging search index): the store keeps what it knows.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mapping import clock
from mapping.clock import TimestampError
from sync.audit import AuditEvent
from sync.db import Database, update

COLUMNS: dict[str, tuple[str, ...]] = {
    "release": ("release",), "status": ("source_status", "status"),
    "planned_date": ("source_planned_date",), "phase": ("source_phase",),
}
"""Per outbox field, the change_requests columns a write to it changes (the native value first)."""


def sent_writes(db: Database, keys: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Per request, its latest write per field that is done or left without being confirmed."""
    if not keys:
        return {}  # a page of new requests: nothing was ever written to them
    rows = db.query(
        "select * from outbox where (state = 'done' or (sent_at is not null and state in ('sending', 'failed', 'pending'))) "
        f"and request in ({db.json_values}) order by id",
        [json.dumps(keys)],
    )
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        latest[(row["request"], row["field"])] = row
    found: dict[str, list[dict[str, Any]]] = {}
    for (request, _), row in latest.items():
        found.setdefault(request, []).append(row)
    return found


def _order(new: str | None, old: str | None) -> int | None:
    """-1, 0 or 1 as the pulled version is older than, equal to or newer than the stored one; None: unknown."""
    if not new or not old:
        return None
    try:
        a, b = clock.parse(new), clock.parse(old)
    except TimestampError:
        return None
    return (a > b) - (a < b)


def is_old_view(old: dict[str, Any], new: dict[str, Any], sent: list[dict[str, Any]], audited: tuple[str, ...]) -> bool:
    """Whether the pulled record is an older view of it than the store holds.

    Older by version, or of the same version and differing only in fields whose last
    write relsync sent from exactly the value pulled now (what the record showed before it).
    """
    order = _order(new.get("source_version"), old.get("source_version"))
    if order is None or order > 0:
        return False
    if order < 0:
        return True
    differing = {name for name in audited if old.get(name) != new.get(name)}
    covered: set[str] = set()
    for write in sent:
        columns = COLUMNS.get(write["field"], ())
        if columns and new.get(columns[0]) == json.loads(write["base"]):
            covered.update(columns)
    return bool(differing) and differing <= covered


@dataclass
class Settled:
    """What the pull said of the writes in flight to one record."""

    echoed: set[str] = field(default_factory=set)
    """change_requests columns whose pulled change is relsync's own write landing."""
    events: list[AuditEvent] = field(default_factory=list)


def settle_in_flight(
    db: Database, new: dict[str, Any], sent: list[dict[str, Any]], *, run_id: int, now: str
) -> Settled:
    """Settle the unconfirmed writes to one pulled record (caller's transaction)."""
    settled = Settled()
    for write in sent:
        if write["state"] == "done" or write["field"] not in COLUMNS:
            continue
        columns = COLUMNS[write["field"]]
        shown, value, base = new.get(columns[0]), json.loads(write["value"]), json.loads(write["base"])
        if write["state"] != "sending" and shown != value:
            continue  # it failed or waits, and the source does not show it: the next push decides
        if shown == value:
            change = {"state": "done", "last_error": None}
            settled.echoed.update(columns)
            settled.events.append(AuditEvent(
                at=now, run=run_id, actor="relsync", origin="pushed", request=write["request"],
                system=write["system"], field=write["field"], old=base, new=value,
            ))
        elif shown == base:
            change = {"state": "pending", "last_error": "sent by a run that ended before it heard back; the source does not show it"}
        else:
            change = {"state": "conflict",
                      "last_error": f"{write['field']} changed in the source to {shown!r} while relsync's write of {value!r} was in flight"}
        update(db, "outbox", {"id": write["id"]}, {**change, "attempts": write["attempts"] + 1, "updated_at": now})
    return settled
