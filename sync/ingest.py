"""Storing pulled pages: normalize, diff field by field, audit, advance the watermark.

Each page is one transaction together with the watermark it reached, so a killed
run resumes from the last stored page and loses nothing. A record whose content
hash is unchanged costs one small update and writes no audit event; this is how
the overlap window's re-reads and relsync's own write-backs coming home are
recognised.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from connectors.base import Page
from mapping.fields import SourceMapping
from mapping.model import SOURCE_OWNED, ChangeRequest
from sync import quarantine
from sync.audit import AuditEvent, append_events
from sync.db import Database, update, upsert
from sync.echoes import is_old_view, sent_writes, settle_in_flight
from sync.store import get_watermark, set_watermark

STREAM = "requests"
RECONCILED = "reconciled"
AUDITED_FIELDS: tuple[str, ...] = (*SOURCE_OWNED, "release", "source_planned_date", "source_phase")


@dataclass
class PullCounts:
    """What one source's pull did to the store."""

    pulled: int = 0
    created: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0
    pages: int = 0

    def add(self, other: PullCounts) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def existing_rows(db: Database, keys: list[str]) -> dict[str, dict[str, Any]]:
    """Stored change requests by key, fetched in one query."""
    rows = db.query(
        f"select * from change_requests where key in ({db.json_values})",
        [json.dumps(keys)],
    )
    return {row["key"]: row for row in rows}


def store_page(
    db: Database,
    *,
    source: str,
    mapping: SourceMapping,
    page: Page,
    run_id: int,
    now: str,
) -> PullCounts:
    """Normalize and store one page with its watermark, in one transaction.

    A record the mapping refuses is quarantined (sync.quarantine); the rest of the page
    and its watermark are stored all the same.
    """
    normalized = quarantine.normalize_page(db, mapping, page.records)
    requests = normalized.requests
    counts = PullCounts(pulled=len(page.records), pages=1)
    with db.atomic(durable=False):  # the page can be pulled again: its watermark commits with it
        stored = existing_rows(db, list(requests))
        sent = sent_writes(db, list(stored))
        rows: list[dict[str, Any]] = []
        lagging: list[tuple[str, str]] = []  # (pulled at, key): an older view than the store's
        reread: list[tuple[str | None, str | None, str, str, str]] = []  # (version, moment, pulled at, raw, key)
        events: list[AuditEvent] = []
        for key, request in requests.items():
            row = request.as_row() | {"last_pulled_at": now, "deleted_at": None}
            old = stored.get(key)
            if old is not None and old["deleted_at"] is None and is_old_view(old, row, sent.get(key, []), AUDITED_FIELDS):
                counts.unchanged += 1  # a lagging read: the store already knows better
                lagging.append((now, key))
                continue
            settled = settle_in_flight(db, row, sent.get(key, []), run_id=run_id, now=now) if old is not None else None
            if settled is not None:
                events.extend(settled.events)
            if old is None:
                counts.created += 1
                row["first_seen_at"] = now
                created = {name: row[name] for name in AUDITED_FIELDS if row[name] is not None}
                events.append(_event(now, run_id, source, request, "*", None, created))
            elif old["content_hash"] == row["content_hash"] and old["deleted_at"] is None:
                counts.unchanged += 1
                reread.append((request.source_version, row["source_moment"], now, row["raw"], key))
                continue
            else:
                row["first_seen_at"] = old["first_seen_at"]
                echoed = settled.echoed if settled is not None else set()
                changes = [
                    _event(now, run_id, source, request, name, old[name], row[name])
                    for name in AUDITED_FIELDS
                    if old[name] != row[name] and name not in echoed
                ]
                if old["deleted_at"] is not None:
                    changes.append(_event(now, run_id, source, request, "deleted_at", old["deleted_at"], None))
                # No audited field differs: relsync's own write-back came home, or only
                # unmapped content moved. The row still takes the new hash and version.
                if changes:
                    counts.changed += 1
                else:
                    counts.unchanged += 1
                events.extend(changes)
            rows.append(row)
        db.executemany("update change_requests set last_pulled_at = ? where key = ?", lagging)
        db.executemany("update change_requests set source_version = ?, source_moment = ?, last_pulled_at = ?, raw = ? "
                       "where key = ?", reread)
        upsert(db, "change_requests", rows, key="key")
        _pin_moves_made_in_source(db, events, source, now)
        counts.deleted = _mark_deleted(db, source, mapping.system, page.deleted, run_id, now, events)
        quarantine.hold_and_release(db, mapping=mapping, normalized=normalized, deleted=page.deleted, run_id=run_id,
                                    now=now, events=events)
        append_events(db, events)
        if page.watermark:
            current = get_watermark(db, source, STREAM)
            if current is None or page.watermark > current:
                set_watermark(db, source, STREAM, page.watermark)
    return counts


def _pin_moves_made_in_source(db: Database, events: list[AuditEvent], source: str, now: str) -> None:
    """A person moved a request to another relsync release in its own tool: that is a pin.

    relsync's own writes never show up as pulled changes: the store already holds
    them, or the write-ahead outbox recognises them (sync.echoes) and audits them as
    relsync's. So a pulled change of the release field naming a live release is a
    person's decision, which the planner must keep rather than overwrite.
    """
    moved = [e for e in events if e.field == "release" and e.new and e.actor == source]
    if not moved:
        return
    live = {
        row["name"]: row["id"]
        for row in db.query("select id, name from releases where state not in ('released', 'cancelled')")
    }
    for event in moved:
        if event.new in live:
            upsert(db, "assignments", [
                {"request": event.request, "release": live[event.new], "pinned": 1,
                 "reason": f"pinned: moved to {event.new} in {source} (was {event.old or 'unassigned'})",
                 "assigned_by": source, "assigned_at": now}],
                key="request",
            )


def _mark_deleted(
    db: Database,
    source: str,
    system: str,
    native_ids: list[str],
    run_id: int,
    now: str,
    events: list[AuditEvent],
) -> int:
    """Mark stored, live requests of ``source`` with these native ids deleted (caller's transaction)."""
    if not native_ids:
        return 0
    rows = list(
        db.query(
            "select key from change_requests where source = ? and deleted_at is null "
            f"and native_id in ({db.json_values})",
            [source, json.dumps(sorted(native_ids))],
        )
    )
    for row in rows:
        update(db, "change_requests", {"key": row["key"]}, {"deleted_at": now})
        events.append(
            AuditEvent(
                at=now, run=run_id, actor=source, origin="pulled", request=row["key"],
                system=system, field="deleted_at", old=None, new=now,
            )
        )
    return len(rows)


def store_deletions(
    db: Database, *, source: str, system: str, native_ids: list[str], run_id: int, now: str
) -> int:
    """Record a reconcile's result: deletions, audited, and when it ran, in one transaction."""
    events: list[AuditEvent] = []
    with db.atomic():
        count = _mark_deleted(db, source, system, native_ids, run_id, now, events)
        append_events(db, events)
        set_watermark(db, source, RECONCILED, now)
    return count


def _event(
    now: str, run_id: int, source: str, request: ChangeRequest, field: str, old: Any, new: Any
) -> AuditEvent:
    return AuditEvent(
        at=now, run=run_id, actor=source, origin="pulled", request=request.key,
        system=request.system, field=field, old=old, new=new,
    )
