"""Quarantine: records the mapping cannot translate, held back while their source goes on.

A record that fails its mapping (a required value missing, a status no table maps, a
date that does not parse) is not stored. Its ``quarantine`` row names the source, the
record, the source field and the error, the run that last pulled it and when it was
first and last seen; the rest of its page, and the page's watermark, are stored as
usual. A record already in the store keeps its last good values there, and the outbox
queues no write-back for it while it is held.

The next pull that translates the record releases it; its changes are then stored and
audited like any other. The record as last pulled is kept with the row, so when the
mapping itself is fixed (a status added to ``map``) the held record is translated again
on the next page of its source, without waiting for someone to edit it. Entering
quarantine, a changed error, and leaving it are audit events on the field
``quarantine``.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mapping.fields import MappingError, SourceMapping
from mapping.model import ChangeRequest, SourceRecord
from sync.audit import AuditEvent
from sync.db import Database, insert, update

FIELD = "quarantine"
"""The audit field under which a request enters and leaves quarantine."""
SHOWN = 5
"""How many held records a run's messages name before saying how many more there are."""


@dataclass(frozen=True)
class Held:
    """A record the mapping refused, and why; ``retried`` if it came from the quarantine itself."""

    key: str
    record: SourceRecord
    error: MappingError
    retried: bool = False


@dataclass
class Normalized:
    """A page through the mapping: the requests to store and the records to hold."""

    requests: dict[str, ChangeRequest] = field(default_factory=dict)
    held: list[Held] = field(default_factory=list)


def normalize_page(db: Database, mapping: SourceMapping, records: list[SourceRecord]) -> Normalized:
    """Translate a page's records, and the source's held records the mapping has changed for since."""
    result = Normalized()
    in_page = {record.native_id for record in records}
    retried = [record for record in _held_under_other_mapping(db, mapping) if record.native_id not in in_page]
    for record, again in [*((r, True) for r in retried), *((r, False) for r in records)]:
        try:
            request = mapping.normalize(record)
        except MappingError as error:
            key = error.record or f"{mapping.source_name}:{record.native_key or record.native_id}"
            result.held.append(Held(key, record, error, again))
            continue
        result.requests[request.key] = request
    return result


def _held_under_other_mapping(db: Database, mapping: SourceMapping) -> list[SourceRecord]:
    rows = db.query(
        "select record from quarantine where source = ? and mapping != ? order by request",
        [mapping.source_name, mapping.fingerprint()],
    )
    return [SourceRecord(**json.loads(row["record"])) for row in rows]


def hold_and_release(
    db: Database,
    *,
    mapping: SourceMapping,
    normalized: Normalized,
    deleted: Iterable[str],
    run_id: int,
    now: str,
    events: list[AuditEvent],
) -> None:
    """Hold the refused records, release the translated and deleted ones (caller's transaction).

    The audit events go to ``events``, for the caller to append with the page's own.
    """
    source, fingerprint = mapping.source_name, mapping.fingerprint()
    deleted_ids = set(deleted)
    keys = sorted({*normalized.requests, *(item.key for item in normalized.held)})
    held = {row["request"]: row for row in db.query(
        "select request, native_id, field, error from quarantine where source = ? and "
        f"(request in ({db.json_values}) or native_id in ({db.json_values}))",
        [source, json.dumps(keys), json.dumps(sorted(deleted_ids))],
    )}
    for item in normalized.held:
        old = held.get(item.key)
        row: dict[str, Any] = {"field": item.error.field, "error": item.error.problem, "mapping": fingerprint}
        if not item.retried:
            row |= {"run": run_id, "last_seen_at": now, "record": _record_json(item.record)}
        if old is None:
            insert(db, "quarantine", row | {"request": item.key, "source": source, "native_id": item.record.native_id,
                                            "first_seen_at": now})
            events.append(_event(now, run_id, mapping, item.key, None, _reason(row)))
        else:
            update(db, "quarantine", {"request": item.key}, row)
            if _reason(old) != _reason(row):
                events.append(_event(now, run_id, mapping, item.key, _reason(old), _reason(row)))
    for key, old in held.items():
        if key in normalized.requests or old["native_id"] in deleted_ids:
            db.execute("delete from quarantine where request = ?", [key])
            events.append(_event(now, run_id, mapping, key, _reason(old), None))


def _record_json(record: SourceRecord) -> str:
    return json.dumps(
        {"native_id": record.native_id, "native_key": record.native_key, "url": record.url,
         "version": record.version, "raw": record.raw},
        sort_keys=True,
    )


def _reason(row: dict[str, Any]) -> dict[str, Any]:
    return {"field": row["field"], "error": row["error"]}


def _event(now: str, run_id: int, mapping: SourceMapping, key: str, old: Any, new: Any) -> AuditEvent:
    return AuditEvent(
        at=now, run=run_id, actor=mapping.source_name, origin="pulled", request=key,
        system=mapping.system, field=FIELD, old=old, new=new,
    )


def held_records(db: Database, sources: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The records in quarantine (of ``sources``, default all), longest held first."""
    rows = db.query(
        "select request, source, native_id, field, error, run, first_seen_at, last_seen_at from quarantine "
        f"where cast(? as text) is null or source in ({db.json_values}) order by first_seen_at, request",
        [None if sources is None else 1, json.dumps(sorted(sources or []))],
    )
    return list(rows)


def describe(row: dict[str, Any]) -> str:
    """One held record as a line: ``airtable:recX fields.Title: required value is missing``."""
    where = " ".join(part for part in (row["request"], row["field"]) if part)
    return f"{where}: {row['error']}"


def messages(rows: list[dict[str, Any]], shown: int = SHOWN) -> list[str]:
    """Run messages naming the held records, the first ``shown`` of them, then how many more."""
    lines = [f"quarantined {describe(row)}" for row in rows[:shown]]
    if len(rows) > shown:
        lines.append(f"quarantined {len(rows) - shown} more (relsync status lists them)")
    return lines
