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

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from connectors.base import Write, WriteResult
from mapping import clock
from mapping.fields import SourceMapping
from mapping.model import STATUSES
from sync.audit import AuditEvent, append_events

RELEASE = "release"
STATUS = "status"
STAGES: tuple[str, ...] = ("scheduled", "testing", "deployed")
"""The statuses a request shows as its release moves through its life."""
PLANNABLE = frozenset({"approved"})
OPEN_STATES = ("pending", "failed", "conflict")


@dataclass
class PushCounts:
    """What one push pass did."""

    queued: int = 0
    written: int = 0
    conflicts: int = 0
    failed: int = 0
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
    db: sqlite_utils.Database, mappings: dict[str, SourceMapping], *, now: str | None = None
) -> list[Wanted]:
    """Differences between the plan and what each source last showed.

    A quarantined request gets none: the store holds its last good values, not what
    its source shows now.
    """
    now = now or clock.stamp()
    ours = {row["name"] for row in db.query("select name from releases")}
    rows = db.query(
        "select r.key, r.source, r.system, r.status, r.source_status, r.release, r.source_version, "
        "rel.name as planned, rel.deploy_at, rel.state as release_state, "
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
        target = desired_status(row["status"], stage, row["release"] in ours, set(mapping.write.status))
        native = mapping.source_status_for(target) if target else None
        if native and native != row["source_status"]:
            wanted.append(_wanted(row, STATUS, native, row["source_status"], target))
    return wanted


def _wanted(row: dict[str, Any], field: str, value: Any, base: Any, status: str | None = None) -> Wanted:
    return Wanted(row["key"], row["source"], row["system"], field, value, base, row["source_version"], status)


def release_stage(row: dict[str, Any], now: str) -> str:
    """Where the request's release is in its life, as the status its requests should show.

    Moments are compared as datetimes: a release deploys at its deploy instant, even
    when the stored text and ``now`` were written at different precisions.
    """
    moment = clock.parse(now)
    if row["release_state"] in ("deploying", "released") or (row["deploy_at"] and moment >= clock.parse(row["deploy_at"])):
        return "deployed"
    if row["testing_at"] and moment >= clock.parse(row["testing_at"]):
        return "testing"
    return "scheduled"


def desired_status(status: str, stage: str | None, shows_our_release: bool, configured: set[str]) -> str | None:
    """The normalized status relsync sets, if any.

    A planned request shows the furthest configured status its release has
    reached (scheduled, then testing once the release's testing phase starts, then
    deployed once it deploys), and relsync only ever moves a request forward:
    never back past what its team set, never out of closed or rejected. A request
    that left its release goes back from scheduled to approved.
    """
    if stage is None:
        if status == "scheduled" and shows_our_release and "approved" in configured:
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


def queue(db: sqlite_utils.Database, wanted: list[Wanted], *, run_id: int, now: str) -> int:
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
                db.table("outbox").update(row["id"], {"state": "superseded", "updated_at": now})
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
                db.table("outbox").update(existing[0]["id"], columns)
            else:
                db.table("outbox").insert(
                    columns
                    | {
                        "request": w.request, "source": w.source, "system": w.system,
                        "field": w.field, "value": value, "attempts": 0, "created_at": now,
                    }
                )
    return len(wanted)


def send(
    db: sqlite_utils.Database,
    source: str,
    push: Callable[[list[Write]], list[WriteResult]],
    mapping: SourceMapping,
    *,
    run_id: int,
    now: str,
) -> PushCounts:
    """Send one source's pending rows through its connector and record each outcome."""
    counts = PushCounts()
    rows = list(
        db.query(
            "select o.*, r.native_id, r.native_key from outbox o join change_requests r on r.key = o.request "
            "where o.source = ? and o.state = 'pending' order by o.request, o.field",
            [source],
        )
    )
    if not rows:
        return counts
    writes = [
        Write(row["native_id"], row["native_key"], row["field"], json.loads(row["value"]), json.loads(row["base"]))
        for row in rows
    ]
    results = push(writes)
    by_write = {id(r.write): r for r in results}
    with db.atomic():
        events: list[AuditEvent] = []
        for row, write in zip(rows, writes, strict=True):
            result = by_write.get(id(write)) or WriteResult(write, "failed", "the connector reported no outcome")
            state = {"ok": "done"}.get(result.outcome, result.outcome)
            db.table("outbox").update(
                row["id"],
                {
                    "state": state,
                    "attempts": row["attempts"] + 1,
                    "last_error": result.message if state != "done" else None,
                    "updated_at": now,
                },
            )
            if state == "done":
                counts.written += 1
                _record_written(db, row["request"], write, mapping)
                events.append(_event(now, run_id, row, write.base, write.value))
            elif state == "conflict":
                counts.conflicts += 1
                counts.messages.append(result.message or f"{row['request']}: conflict")
                events.append(_event(now, run_id, row, result.current, {"conflict": write.value, "message": result.message}))
            else:
                counts.failed += 1
                counts.messages.append(f"{row['request']} {write.field}: {result.message}")
        append_events(db, events)
    return counts


def _record_written(db: sqlite_utils.Database, key: str, write: Write, mapping: SourceMapping) -> None:
    if write.field == RELEASE:
        db.table("change_requests").update(key, {"release": write.value})
    elif write.field == STATUS:
        db.table("change_requests").update(
            key, {"source_status": write.value, "status": mapping.status_from_source(write.value)}
        )


def _event(now: str, run_id: int, row: dict[str, Any], old: Any, new: Any) -> AuditEvent:
    return AuditEvent(
        at=now, run=run_id, actor="relsync", origin="pushed", request=row["request"],
        system=row["system"], field=row["field"], old=old, new=new,
    )
