"""The list of change requests, filtered and sorted, for ``relsync requests``.

``list_requests(db, RequestFilter(...))`` reads the store only. Filters combine with
AND; an option given several times (``--status approved --status new``) matches any of
its values. Departments, types and sources compare ignoring case; a release is named by
its id or its name. ``--since/--until`` select on ``created_at`` (the source's creation
time), ``since`` included, ``until`` excluded.

*Unplanned* means approved, with no release assignment, not deleted in its source: the
backlog. Each such request carries its age (days since relsync first saw it approved,
or since it was created when relsync never saw the approval) and the planner's reason
from its last pass (the ``waiting`` table), with that reason's kind: ``no matching
train``, ``not eligible``, ``freeze``, ``capacity``, ``department quota``, ``capacity
and quota`` (some releases full, others full in its quota), ``dependency`` (a
prerequisite is unplanned, rejected, unknown or deploys after every open release),
``dependency cycle``, or ``not planned yet``
when no planning pass has looked at it since it was approved.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

from mapping import clock
from mapping.model import PRIORITIES
from reports.timeline import RequestFacts, request_facts
from sync.db import Database

__all__ = ["SORTS", "RequestFilter", "RequestRow", "list_requests", "reason_kind", "requests_csv"]

SORTS: tuple[str, ...] = ("priority", "created", "updated", "age", "key", "status", "release")
"""``priority``: most urgent first, then oldest (the planner's order); ``age``: longest waiting first."""


class RequestRow(TypedDict):
    """One request as ``relsync requests`` lists it."""

    key: str
    source: str
    system: str
    native_key: str | None
    title: str | None
    status: str | None
    priority: str | None
    department: str | None
    type: str | None
    release: str | None
    release_deploy_at: str | None
    pinned: bool
    created_at: str | None
    updated_at: str | None
    approved_at: str | None
    age_days: float | None
    reason: str | None
    reason_kind: str | None
    quarantined: str | None
    url: str | None


@dataclass(frozen=True)
class RequestFilter:
    """What to list; empty tuples and None mean no filter on that field."""

    status: Sequence[str] = ()
    release: Sequence[str] = ()
    source: Sequence[str] = ()
    department: Sequence[str] = ()
    type: Sequence[str] = ()
    priority: Sequence[str] = ()
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    unplanned: bool = False
    quarantined: bool = False


def reason_kind(reason: str | None) -> str:
    """The kind of a planner's waiting reason (see the module docstring)."""
    if not reason:
        return "not planned yet"
    if reason.startswith("no train takes it"):
        return "no matching train"
    if reason.startswith("status "):
        return "not eligible"
    return reason.partition(":")[0]


def _folded(values: Sequence[str]) -> set[str]:
    return {value.strip().casefold() for value in values}


def _matches(row: RequestRow, wanted: RequestFilter, release_ids: dict[str, str]) -> bool:
    checks: list[tuple[Sequence[str], str | None]] = [
        (wanted.status, row["status"]), (wanted.priority, row["priority"]), (wanted.source, row["source"]),
        (wanted.department, row["department"]), (wanted.type, row["type"]),
    ]
    if any(values and (value or "").strip().casefold() not in _folded(values) for values, value in checks):
        return False
    if wanted.release:
        names = {release_ids.get(ref, ref) for ref in wanted.release}
        if row["release"] not in names:
            return False
    created = clock.parse(row["created_at"]) if row["created_at"] else None
    if wanted.since is not None and (created is None or created < wanted.since):
        return False
    if wanted.until is not None and (created is None or created >= wanted.until):
        return False
    if wanted.unplanned and not (row["status"] == "approved" and row["release"] is None):
        return False
    return not (wanted.quarantined and row["quarantined"] is None)


def _sort_key(sort: str, row: RequestRow) -> tuple[object, ...]:
    rank = PRIORITIES.index(row["priority"]) if row["priority"] in PRIORITIES else len(PRIORITIES)
    if sort == "priority":
        return rank, row["created_at"] or "~", row["key"]
    if sort == "age":
        return -(row["age_days"] or 0.0), row["key"]
    if sort == "release":
        return row["release_deploy_at"] or "~", rank, row["key"]
    if sort == "created":
        return row["created_at"] or "~", row["key"]
    if sort == "updated":
        return row["updated_at"] or "~", row["key"]
    if sort == "status":
        return row["status"] or "", row["key"]
    return (row["key"],)


def list_requests(
    db: Database, wanted: RequestFilter = RequestFilter(), *, sort: str = "priority",
    reverse: bool = False, now: dt.datetime | None = None, facts: list[RequestFacts] | None = None,
) -> list[RequestRow]:
    """Stored requests (deleted ones left out) matching ``wanted``, sorted (see ``SORTS``); quarantined
    records never stored are listed too, with what the quarantine knows.

    ``facts``: ``request_facts(db)`` when the caller has it already (it reads the whole audit).
    """
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
    now = now or clock.now()
    approved = {request.key: request.approved for request in (request_facts(db) if facts is None else facts)}
    release_ids = {row["id"]: row["name"] for row in db.query("select id, name from releases")}
    rows: list[RequestRow] = []
    for row in db.query(
        "select r.key, r.source, r.system, r.native_key, r.title, r.status, r.priority, r.department, r.type, "
        "r.created_at, r.updated_at, r.url, rel.name as release_name, rel.deploy_at, a.pinned, w.reason, "
        "q.error as held, q.field as held_field "
        "from change_requests r left join assignments a on a.request = r.key "
        "left join releases rel on rel.id = a.release left join waiting w on w.request = r.key "
        "left join quarantine q on q.request = r.key where r.deleted_at is null"
        # The backlog is approved requests only: the rest need not be read (the filter below still decides).
        + (" and r.status = 'approved'" if wanted.unplanned else "")
    ):
        unplanned = row["status"] == "approved" and row["release_name"] is None
        since = approved.get(row["key"]) or (clock.parse(row["created_at"]) if row["created_at"] else None)
        rows.append(RequestRow(
            key=row["key"], source=row["source"], system=row["system"], native_key=row["native_key"],
            title=row["title"], status=row["status"], priority=row["priority"], department=row["department"],
            type=row["type"], release=row["release_name"], release_deploy_at=row["deploy_at"],
            pinned=bool(row["pinned"]), created_at=row["created_at"], updated_at=row["updated_at"],
            approved_at=clock.stamp(approved[row["key"]]) if approved.get(row["key"]) else None,
            age_days=round((now - since).total_seconds() / 86400, 1) if unplanned and since else None,
            reason=row["reason"] if unplanned else None,
            reason_kind=reason_kind(row["reason"]) if unplanned else None,
            quarantined=" ".join(p for p in (row["held_field"], row["held"]) if p) if row["held"] else None,
            url=row["url"],
        ))
    for held in db.query("select * from quarantine where request not in (select key from change_requests)"):
        rows.append(RequestRow(
            key=held["request"], source=held["source"], system="", native_key=held["native_id"], title=None,
            status=None, priority=None, department=None, type=None, release=None, release_deploy_at=None,
            pinned=False, created_at=None, updated_at=None, approved_at=None, age_days=None, reason=None,
            reason_kind=None, quarantined=" ".join(p for p in (held["field"], held["error"]) if p), url=None,
        ))
    chosen = [row for row in rows if _matches(row, wanted, release_ids)]
    return sorted(chosen, key=lambda row: _sort_key(sort, row), reverse=reverse)


def requests_csv(rows: list[RequestRow]) -> str:
    """The rows as CSV (a header row, then one line per request)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(RequestRow.__annotations__), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
