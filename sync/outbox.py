"""Write-backs: what each source should show, queued as differences and sent in batches.

The desired value of each engine-owned field is compared with what the source
showed at its last pull; only differences enter the outbox, one row per
(request, field, desired value). A row is pending until its connector reports
``ok`` (the store then records what the source now shows, so the value coming
back on the next pull is recognised as relsync's own), ``conflict`` (the source
changed under us: not written) or ``failed`` (the API refused, with its message;
tried again on the next run while still wanted).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.base import Journal, Write, WriteResult
from mapping import clock
from mapping.fields import SourceMapping
from mapping.model import STATUSES
from releases.calendar import phase_at
from sync.audit import AuditEvent, append_events
from sync.db import Database, insert, update
from sync.schedule import unsigned

log = logging.getLogger(__name__)

RELEASE = "release"
STATUS = "status"
STAGES: tuple[str, ...] = ("scheduled", "testing", "deployed")
"""The statuses a request shows as its release moves through its life."""
PLANNABLE = frozenset({"approved"})
OPEN_STATES = ("pending", "sending", "failed", "conflict")
"""Rows still wanted-or-not: a ``sending`` row the pull did not settle may not have landed, and goes out again."""


@dataclass
class PushCounts:
    """What one push pass did."""

    queued: int = 0
    written: int = 0
    conflicts: int = 0
    failed: int = 0
    pending: int = 0
    """Not tried to the end (the run's deadline, or a source that kept failing): sent again next run."""
    messages: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Wanted:
    """One engine-owned field whose source value differs from the plan."""

    request: str
    source: str
    system: str
    field: str
    value: Any
    base: Any
    base_version: str | None
    status: str | None = None


def wanted_writes(
    db: Database, mappings: dict[str, SourceMapping], *, now: str | None = None,
    zones: Mapping[str, dt.tzinfo] | None = None,
) -> list[Wanted]:
    """Differences between the plan and what each source last showed.

    A quarantined request gets none: the store holds its last good values, not what
    its source shows now. ``zones`` gives each train's timezone, in which a planned
    deploy date is written (UTC for a train not named).
    """
    now = now or clock.stamp()
    moment = clock.parse(now)
    ours = {row["name"] for row in db.query("select name from releases")}
    plain = any(m.write.field_targets() for m in mappings.values())
    phases = release_phases(db) if plain else {}
    rows = db.scan(
        "select r.key, r.source, r.system, r.status, r.source_status, r.release, r.source_version, "
        "r.source_planned_date, r.source_phase, rel.id as release_id, rel.train, "
        f"{_last_written('planned_date')} as our_planned_date, {_last_written('phase')} as our_phase, "
        f"{_last_written('status')} as our_status, "
        "rel.name as planned, rel.deploy_at, rel.state as release_state, "
        f"case when rel.id is not null and {unsigned(db, 'rel')} then 1 else 0 end as unsigned, "
        "(select p.starts from release_phases p where p.release = rel.id and p.phase = 'testing') as testing_at "
        "from change_requests r "
        "left join assignments a on a.request = r.key left join releases rel on rel.id = a.release "
        "where r.deleted_at is null and r.key not in (select request from quarantine) order by r.key"
    )
    wanted: list[Wanted] = []
    for row in rows:
        mapping = mappings.get(row["source"])
        if mapping is None:
            continue

        planned = row["planned"]
        if mapping.release_field() and (planned or row["release"] in ours) and planned != row["release"]:
            wanted.append(_wanted(row, RELEASE, planned, row["release"]))
        stage = release_stage(row, now) if planned else None
        # Whether the status shown is relsync's to undo: the source shows relsync's release, or
        # the status relsync last wrote (its release write landed and its status write did not).
        ours_shown = row["release"] in ours or _json(row["our_status"]) == row["source_status"]
        target = desired_status(row["status"], stage, ours_shown, set(mapping.write.status))
        native = mapping.source_status_for(target) if target else None
        if native and native != row["source_status"]:
            wanted.append(_wanted(row, STATUS, native, row["source_status"], target))
        for name, target_field in mapping.write.field_targets().items():
            value = None
            if planned:
                value = target_field.native(_planned_value(name, row, phases, moment, zones or {}))
            shown = row[f"source_{name}"]
            if value != shown and (value is not None or shown == _json(row[f"our_{name}"])):
                wanted.append(_wanted(row, name, value, shown))
    return wanted


def _last_written(field: str) -> str:
    """SQL: the value relsync last wrote to ``field`` of request ``r`` (JSON), or null; read only where it
    decides something: an unplanned request whose source shows a value (relsync clears only its own)."""
    return (f"case when rel.id is null and r.source_{field} is not null then (select o.value from outbox o "
            f"where o.request = r.key and o.field = '{field}' and o.state = 'done' order by o.id desc limit 1) end")


def _json(value: str | None) -> Any:
    return json.loads(value) if value is not None else None


def release_phases(db: Database) -> dict[str, list[tuple[str, dt.datetime, dt.datetime]]]:
    """Each release's phases in order: (name, starts, ends)."""
    phases: dict[str, list[tuple[str, dt.datetime, dt.datetime]]] = {}
    for row in db.query("select release, phase, starts, ends from release_phases order by release, starts, phase"):
        phases.setdefault(row["release"], []).append((row["phase"], clock.parse(row["starts"]), clock.parse(row["ends"])))
    return phases


def _planned_value(name: str, row: dict[str, Any], phases: dict[str, list[tuple[str, dt.datetime, dt.datetime]]],
                   now: dt.datetime, zones: Mapping[str, dt.tzinfo]) -> str:
    """What a planned request's ``planned_date`` or ``phase`` field should show, in relsync's words."""
    deploy_at = clock.parse(row["deploy_at"])
    if name == "planned_date":
        return deploy_at.astimezone(zones.get(row["train"], dt.UTC)).date().isoformat()
    return phase_at(phases.get(row["release_id"], []), deploy_at, now, held=bool(row["unsigned"]))


def _wanted(row: dict[str, Any], field: str, value: Any, base: Any, status: str | None = None) -> Wanted:
    return Wanted(row["key"], row["source"], row["system"], field, value, base, row["source_version"], status)


def release_stage(row: dict[str, Any], now: str) -> str:
    """Where the request's release is in its life, as the status its requests should show.

    A release held for a missing sign-off stays at testing. Moments are compared as datetimes: a release deploys at its deploy instant, even
    when the stored text and ``now`` were written at different precisions.
    """
    moment = clock.parse(now)
    if row["release_state"] in ("deploying", "released") or (row["deploy_at"] and moment >= clock.parse(row["deploy_at"])):
        return "testing" if row.get("unsigned") else "deployed"  # held: a required sign-off is missing
    if row["testing_at"] and moment >= clock.parse(row["testing_at"]):
        return "testing"
    return "scheduled"


def desired_status(status: str, stage: str | None, shows_ours: bool, configured: set[str]) -> str | None:
    """The normalized status relsync sets, if any.

    A planned request shows the furthest configured status its release has
    reached (scheduled, then testing once the release's testing phase starts, then
    deployed once it deploys), and relsync only ever moves a request forward:
    never back past what its team set, never out of closed or rejected. A request
    that left its release goes back from scheduled to approved, when what the source
    shows is relsync's doing (``shows_ours``: its release, or the status it wrote).
    """
    if stage is None:
        if status == "scheduled" and shows_ours and "approved" in configured:
            return "approved"
        return None
    if status in ("closed", "rejected") or status not in STATUSES:
        return None
    reached = [s for s in STAGES[: STAGES.index(stage) + 1] if s in configured]
    if not reached:
        return None
    target = reached[-1]
    if status not in PLANNABLE and target == "scheduled":
        return None  # only approved requests become scheduled; new or triaged ones wait
    return target if STATUSES.index(target) > STATUSES.index(status) else None


def queue(db: Database, wanted: list[Wanted], *, run_id: int, now: str) -> int:
    """Enter wanted writes as pending outbox rows; drop open rows no longer wanted."""
    with db.atomic():
        open_rows = list(
            db.query(
                f"select id, request, field, value from outbox where state in {OPEN_STATES!r}"
            )
        )
        keep = {(w.request, w.field, json.dumps(w.value)) for w in wanted}
        for row in open_rows:
            if (row["request"], row["field"], row["value"]) not in keep:
                update(db, "outbox", {"id": row["id"]}, {"state": "superseded", "updated_at": now})
        for w in wanted:
            value = json.dumps(w.value)
            existing = list(
                db.query(
                    "select id, attempts from outbox where request = ? and field = ? and value = ?",
                    [w.request, w.field, value],
                )
            )
            columns = {
                "base": json.dumps(w.base),
                "base_version": w.base_version,
                "state": "pending",
                "run": run_id,
                "updated_at": now,
            }
            if existing:
                update(db, "outbox", {"id": existing[0]["id"]}, columns)
            else:
                insert(
                    db, "outbox", columns
                    | {
                        "request": w.request, "source": w.source, "system": w.system,
                        "field": w.field, "value": value, "attempts": 0, "created_at": now,
                    }
                )
    return len(wanted)


class OutboxJournal:
    """The outbox as a push's journal: rows go to ``sending`` before their writes leave,
    and each batch's outcomes are stored (with their audit events) as soon as they are known.
    Every call is its own committed transaction, so a killed run leaves the truth behind.
    """

    def __init__(
        self, db: Database, rows: list[dict[str, Any]], writes: list[Write], mapping: SourceMapping,
        *, run_id: int, now: str,
    ) -> None:
        self.db = db
        self.mapping = mapping
        self.run_id = run_id
        self.now = now
        self.counts = PushCounts()
        self._rows = {id(write): row for row, write in zip(rows, writes, strict=True)}
        self._writes = writes
        self._settled: set[int] = set()

    def sending(self, writes: list[Write]) -> None:
        """Mark the rows of ``writes`` in flight, durably, before they leave."""
        ids = [self._rows[id(w)]["id"] for w in writes if id(w) in self._rows]
        log.debug("run %s: sending a batch of %d writes to %s", self.run_id, len(ids), self.mapping.source_name)
        with self.db.atomic():
            self.db.executemany(
                "update outbox set state = 'sending', sent_at = ?, run = ?, updated_at = ? where id = ?",
                [(clock.stamp(), self.run_id, self.now, outbox_id) for outbox_id in ids],
            )

    def settled(self, results: list[WriteResult]) -> None:
        """Store these outcomes and audit the writes that landed, in one transaction."""
        fresh = [r for r in results if id(r.write) in self._rows and id(r.write) not in self._settled]
        if not fresh:
            return
        log.debug("run %s: %s answered %d writes: %s", self.run_id, self.mapping.source_name, len(fresh),
                  ", ".join(f"{n} {o}" for o, n in sorted(Counter(r.outcome for r in fresh).items())))
        events: list[AuditEvent] = []
        with self.db.atomic():
            for result in fresh:
                self._settled.add(id(result.write))
                events += self._settle(self._rows[id(result.write)], result)
            append_events(self.db, events)

    def finish(self, results: list[WriteResult]) -> PushCounts:
        """Settle what the connector returned but did not report on the way; a write with no outcome failed."""
        self.settled(results)
        missing = [w for w in self._writes if id(w) not in self._settled]
        self.settled([WriteResult(w, "failed", "the connector reported no outcome") for w in missing])
        return self.counts

    def _settle(self, row: dict[str, Any], result: WriteResult) -> list[AuditEvent]:
        write = result.write
        state = {"ok": "done"}.get(result.outcome, result.outcome)
        update(
            self.db, "outbox", {"id": row["id"]},
            {"state": state, "attempts": row["attempts"] + 1,
             "last_error": result.message if state != "done" else None, "updated_at": self.now},
        )
        if state == "done":
            self.counts.written += 1
            _record_written(self.db, row["request"], write, self.mapping, result.version)
            return [_event(self.now, self.run_id, row, write.base, write.value)]
        if state == "conflict":
            self.counts.conflicts += 1
            self.counts.messages.append(result.message or f"{row['request']}: conflict")
            return [_event(self.now, self.run_id, row, result.current, {"conflict": write.value, "message": result.message})]
        if state == "pending":
            self.counts.pending += 1
            return []
        self.counts.failed += 1
        self.counts.messages.append(f"{row['request']} {write.field}: {result.message}")
        return []


def send(
    db: Database,
    source: str,
    push: Callable[[list[Write], Journal], list[WriteResult]],
    mapping: SourceMapping,
    *,
    run_id: int,
    now: str,
) -> PushCounts:
    """Send one source's pending rows through its connector, recording each write before it leaves
    and each outcome as it comes."""
    rows = list(
        db.query(
            "select o.*, r.native_id, r.native_key from outbox o join change_requests r on r.key = o.request "
            "where o.source = ? and o.state = 'pending' order by o.request, o.field",
            [source],
        )
    )
    if not rows:
        return PushCounts()
    writes = [
        Write(row["native_id"], row["native_key"], row["field"], json.loads(row["value"]), json.loads(row["base"]))
        for row in rows
    ]
    journal = OutboxJournal(db, rows, writes, mapping, run_id=run_id, now=now)
    return journal.finish(push(writes, journal))


def _record_written(db: Database, key: str, write: Write, mapping: SourceMapping, version: str | None = None) -> None:
    """What the source shows once ``write`` landed; with the record's version then, when the source told it."""
    if write.field == RELEASE:
        update(db, "change_requests", {"key": key}, {"release": write.value})
    elif write.field == STATUS:
        update(
            db, "change_requests", {"key": key}, {"source_status": write.value, "status": mapping.status_from_source(write.value)}
        )
    elif write.field in mapping.write.field_targets():
        update(db, "change_requests", {"key": key}, {f"source_{write.field}": write.value})
    if version is not None:
        stored = db.execute("select source_version from change_requests where key = ?", [key]).fetchone()
        if stored is None or stored[0] is None or clock.parse(version) > clock.parse(stored[0]):
            update(db, "change_requests", {"key": key}, {"source_version": version})


def _event(now: str, run_id: int, row: dict[str, Any], old: Any, new: Any) -> AuditEvent:
    return AuditEvent(
        at=now, run=run_id, actor="relsync", origin="pushed", request=row["request"],
        system=row["system"], field=row["field"], old=old, new=new,
    )
