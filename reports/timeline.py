"""When each request arrived, was approved, planned, deployed or rejected, as the store knows it.

Everything here is read from the store (no API call): ``change_requests`` for what a
request is now, the ``audit`` for when it changed as relsync saw it, and ``releases``
for when a release deployed. The moments, per request (requests deleted in their
source are left out):

- **created**: ``change_requests.created_at``, the source system's creation time.
- **approved**: the first audit event pulled from the source (origin ``pulled``) that
  shows the status ``approved``: the status field changing to it, or the request first
  seen (field ``*``) with it. relsync only knows a status from the moment it pulled it.
- **planned**: the first release assignment recorded in the audit: a planner move or a
  manual ``relsync assign`` (field ``release``, origin ``planned`` or ``manual``, a
  release given), or a person moving the request to a stored release in its own tool
  (origin ``pulled``, field ``release``).
- **deployed**: the ``deploy_at`` of the release the request is in, when that release
  is deploying or released; otherwise the first pulled event showing the status
  ``deployed``.
- **rejected**: the first pulled event showing the status ``rejected``.

``status_at`` and ``release_at`` replay the same events to tell a request's status and
release at any past moment (the backlog trend).
"""
from __future__ import annotations

import datetime as dt
import json
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

from mapping import clock
from sync.db import Database

__all__ = ["RequestFacts", "moment", "request_facts"]

SHIPPED_STATES = ("released", "deploying")


def moment(text: str) -> dt.datetime:
    """A ``--since``/``--until`` value: a date (midnight UTC) or a date-time with a time zone."""
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        return clock.parse(text)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


@dataclass
class RequestFacts:
    """One stored request: what it is now and when its milestones happened (None: not yet, or unknown)."""

    key: str
    source: str
    department: str | None
    type: str | None
    priority: str | None
    status: str | None
    release: str | None
    created: dt.datetime | None
    approved: dt.datetime | None = None
    planned: dt.datetime | None = None
    deployed: dt.datetime | None = None
    rejected: dt.datetime | None = None
    statuses: list[tuple[dt.datetime, str | None]] = field(default_factory=list, repr=False)
    releases: list[tuple[dt.datetime, str | None]] = field(default_factory=list, repr=False)

    def status_at(self, when: dt.datetime) -> str | None:
        """The status relsync had last pulled at ``when`` (None before it first saw the request)."""
        return _as_of(self.statuses, when)

    def release_at(self, when: dt.datetime) -> str | None:
        """The release (name) relsync had the request in at ``when``."""
        return _as_of(self.releases, when)


def _as_of(changes: list[tuple[dt.datetime, str | None]], when: dt.datetime) -> str | None:
    index = bisect_right([at for at, _ in changes], when)
    return changes[index - 1][1] if index else None


def _first(changes: list[tuple[dt.datetime, str | None]], value: str) -> dt.datetime | None:
    return next((at for at, seen in changes if seen == value), None)


def _decoded(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def request_facts(db: Database) -> list[RequestFacts]:
    """Every live request (not deleted in its source) with its milestones, by key."""
    releases = {row["name"]: row for row in db.query("select id, name, state, deploy_at from releases")}
    by_id = {row["id"]: row for row in releases.values()}
    # Events of one run share their stamp: each distinct text is parsed once.
    parsed: dict[str, dt.datetime] = {}

    def parse(text: str) -> dt.datetime:
        found = parsed.get(text)
        if found is None:
            # relsync's own stamps (2026-11-20T10:15:30.123Z) take the C parser; others clock's.
            canonical = len(text) == 24 and text[10] == "T" and text[-1] == "Z"
            found = parsed[text] = dt.datetime.fromisoformat(text) if canonical else clock.parse(text)
        return found

    facts: dict[str, RequestFacts] = {}
    # Plain tuples rather than db.query's dicts: this reads every request and most of the audit.
    for key, source, department, type_, priority, status, created_at, release in db.execute(
        "select r.key, r.source, r.department, r.type, r.priority, r.status, r.created_at, a.release "
        "from change_requests r left join assignments a on a.request = r.key where r.deleted_at is null order by r.key"
    ):
        facts[key] = RequestFacts(
            key=key, source=source, department=department, type=type_, priority=priority, status=status,
            release=by_id[release]["name"] if release in by_id else None,
            created=parse(created_at) if created_at else None,
        )
    # The database takes from each event's JSON what is needed (a first-seen record can be large):
    # from an object, its status (first seen) or release (planned), else the value itself.
    for at_text, origin, key, field_name, is_object, value in db.execute(_EVENT_VALUES[db.dialect]
    ):
        request = facts.get(key)
        if request is None:
            continue
        at = parse(at_text)
        if origin == "pulled" and field_name == "*" and is_object:
            request.statuses.append((at, value))
        elif origin == "pulled" and field_name == "status":
            request.statuses.append((at, None if is_object else value))  # an object is no status
        elif origin in ("planned", "manual") and field_name == "release" and is_object:
            request.releases.append((at, value))
        elif origin == "pulled" and field_name == "release" and not is_object and value in releases:
            request.releases.append((at, value))
    for request in facts.values():
        request.statuses.sort(key=lambda change: change[0])
        request.releases.sort(key=lambda change: change[0])
        request.approved = _first(request.statuses, "approved")
        request.rejected = _first(request.statuses, "rejected")
        request.planned = next((at for at, release in request.releases if release is not None), None)
        shipped = releases.get(request.release or "")
        if shipped is not None and shipped["state"] in SHIPPED_STATES:
            request.deployed = clock.parse(shipped["deploy_at"])
        else:
            request.deployed = _first(request.statuses, "deployed")
    return list(facts.values())


_EVENT_VALUES = {
    "sqlite": (
        "select at, origin, request, field, json_type(new) = 'object', case when json_type(new) = 'object' "
        "then json_extract(new, case field when '*' then '$.status' else '$.release' end) "
        "else json_extract(new, '$') end from audit where field in ('*', 'status', 'release') order by id"),
    "postgresql": (
        "select at, origin, request, field, jsonb_typeof(cast(new as jsonb)) = 'object', "
        "case when jsonb_typeof(cast(new as jsonb)) = 'object' "
        "then cast(new as jsonb) ->> case field when '*' then 'status' else 'release' end "
        "else cast(new as jsonb) #>> '{}' end from audit where field in ('*', 'status', 'release') order by id"),
}
"""Per dialect: the audit events the timeline reads, with the value each contributes."""
