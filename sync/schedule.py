"""Putting the release plan into the store: releases, phases and assignments.

The planner itself (releases.routing, releases.planner) is pure; this module reads its inputs
from the store, writes its decisions back and audits every move with its reason.

Release states in the store: the calendar's (planned, open, frozen, deploying) for
the releases it gives; a release it no longer gives is *released* once its deploy
time has passed, *planned* if it now lies beyond the horizon, and otherwise
*cancelled* (a blackout skipped it or merged it into another, or the cadence
changed). *cancelled* is also what a user sets; it is never undone here.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from config.trains import Train
from mapping import clock
from releases.clashes import Clash, find_clashes
from releases.planner import Candidate, PlannedRelease, materialize_releases
from releases.routing import plan_trains
from sync.audit import AuditEvent, append_events


@dataclass
class PlanCounts:
    """What one planning pass changed."""

    releases: int = 0
    assigned: int = 0
    unassigned: int = 0


def save_releases(db: sqlite_utils.Database, releases: list[PlannedRelease]) -> None:
    """Upsert materialized releases and their phases (inside the caller's transaction)."""
    _free_names(db, releases)
    db.table("releases").upsert_all(
        [
            {
                "id": r.id,
                "name": r.name,
                "train": r.train,
                "deploy_at": clock.stamp(r.deploy_at),
                "freeze_at": clock.stamp(r.freeze_at),
                "capacity": r.capacity,
                "state": r.state,
            }
            for r in releases
        ],
        pk="id",
    )
    db.table("release_phases").upsert_all(
        [
            {"release": r.id, "phase": p.phase, "starts": clock.stamp(p.starts), "ends": clock.stamp(p.ends), "owner": p.owner}
            for r in releases
            for p in r.phases
        ],
        pk=("release", "phase"),
    )


def _free_names(db: sqlite_utils.Database, releases: list[PlannedRelease]) -> None:
    """Release names are unique; a blackout moving a release can hand its name to another id.

    A stored release holding a name that another id now needs gives it up: one that is
    materialized too gets a placeholder (its own upsert renames it), one that is not
    keeps its name with its id appended.
    """
    wanted = {r.name: r.id for r in releases}
    materialized = {r.id for r in releases}
    rows = db.query(
        "select id, name from releases where name in (select value from json_each(?))", [json.dumps(sorted(wanted))]
    )
    for row in list(rows):
        if row["id"] == wanted[row["name"]]:
            continue
        # NUL never appears in a formatted release name, so the placeholder cannot clash.
        name = f"\0{row['id']}" if row["id"] in materialized else f"{row['name']} ({row['id']})"
        db.execute("update releases set name = ? where id = ?", [name, row["id"]])


def _age_out(db: sqlite_utils.Database, train: str, current: list[PlannedRelease], now: dt.datetime) -> None:
    """Stored releases the calendar no longer gives: past ones were released; later ones
    than the horizon wait as planned; the rest were dropped by a blackout or a cadence
    change and are cancelled (a user's cancellation is never undone here)."""
    ids = json.dumps([r.id for r in current])
    last = max((clock.stamp(r.deploy_at) for r in current), default=clock.stamp(now))
    missing = "train = ? and state not in ('cancelled', 'released') and id not in (select value from json_each(?))"
    db.execute(f"update releases set state = 'released' where {missing} and deploy_at <= ?", [train, ids, clock.stamp(now)])
    db.execute(f"update releases set state = 'planned' where {missing} and deploy_at > ?", [train, ids, last])
    db.execute(
        f"update releases set state = 'cancelled' where {missing} and deploy_at > ? and deploy_at <= ?",
        [train, ids, clock.stamp(now), last],
    )


def _stored(db: sqlite_utils.Database, train: Train, current: list[PlannedRelease]) -> list[PlannedRelease]:
    """Stored releases of the train that the calendar did not give but the planner must
    know: cancelled ones (their requests are re-planned) and planned ones past the
    horizon (they keep what is in them)."""
    rows = db.query(
        "select * from releases where train = ? and state in ('cancelled', 'planned') "
        "and id not in (select value from json_each(?)) order by deploy_at, id",
        [train.name, json.dumps([r.id for r in current])],
    )
    return [
        PlannedRelease(
            id=row["id"], name=row["name"], train=row["train"], deploy_at=clock.parse(row["deploy_at"]),
            freeze_at=clock.parse(row["freeze_at"]), capacity=row["capacity"], state=row["state"], quotas=train.quotas,
        )
        for row in rows
    ]


def candidates(db: sqlite_utils.Database) -> list[Candidate]:
    """Every stored request as the planner sees it."""
    rows = db.query(
        "select r.key, r.source, r.status, r.priority, r.department, r.type, r.created_at, r.deleted_at, "
        "a.release, a.pinned from change_requests r left join assignments a on a.request = r.key"
    )
    return [
        Candidate(
            key=row["key"],
            status=row["status"],
            priority=row["priority"],
            created_at=row["created_at"] or "",
            release=row["release"],
            pinned=bool(row["pinned"]),
            deleted=row["deleted_at"] is not None,
            department=row["department"],
            type=row["type"],
            source=row["source"],
        )
        for row in rows
    ]


def plan_into_store(
    db: sqlite_utils.Database, trains: Sequence[Train], *, now: dt.datetime, run_id: int
) -> PlanCounts:
    """Materialize every train's releases, route and plan requests into them and record every move.

    ``trains`` in config order: a request goes to the first train whose match takes it.
    A release a user cancelled stays cancelled and its requests are planned again.
    """
    counts = PlanCounts()
    stamp = clock.stamp(now)
    with db.atomic():
        cancelled = {row["id"] for row in db.query("select id from releases where state = 'cancelled'")}
        plans: list[tuple[Train, list[PlannedRelease]]] = []
        for train in trains:
            releases = [
                dataclasses.replace(r, state="cancelled") if r.id in cancelled else r
                for r in materialize_releases(train, now)
            ]
            counts.releases += len(releases)
            save_releases(db, releases)
            _age_out(db, train.name, releases, now)
            plans.append((train, releases + _stored(db, train, releases)))
        names = {row["id"]: row["name"] for row in db.query("select id, name from releases")}
        current = {c.key: c for c in candidates(db)}
        waiting: dict[str, str] = {}
        decisions = plan_trains(plans, list(current.values()), now=now, waiting=waiting)
        save_waiting(db, waiting, stamp)
        events: list[AuditEvent] = []
        systems = {row["key"]: row["system"] for row in db.query("select key, system from change_requests")}
        for decision in decisions:
            before = current[decision.key].release
            if decision.release is None:
                counts.unassigned += 1
                db.execute("delete from assignments where request = ?", [decision.key])
            else:
                counts.assigned += 1
                db.table("assignments").upsert(
                    {
                        "request": decision.key,
                        "release": decision.release,
                        "pinned": 0,
                        "reason": decision.reason,
                        "assigned_by": "planner",
                        "assigned_at": stamp,
                    },
                    pk="request",
                )
            events.append(
                AuditEvent(
                    at=stamp, run=run_id, actor="planner", origin="planned", request=decision.key,
                    system=systems.get(decision.key, ""), field="release",
                    old=names.get(before) if before else None,
                    new=_planned(names.get(decision.release) if decision.release else None, decision.reason),
                )
            )
        append_events(db, events)
    return counts


def save_waiting(db: sqlite_utils.Database, waiting: dict[str, str], stamp: str) -> None:
    """Replace the planner's reasons for the requests it left without a release; ``since`` survives a pass."""
    db.execute("delete from waiting where request not in (select value from json_each(?))", [json.dumps(sorted(waiting))])
    since = {row["request"]: row["since"] for row in db.query("select request, since from waiting")}
    db.table("waiting").upsert_all(
        [{"request": key, "reason": reason, "since": since.get(key, stamp), "updated_at": stamp}
         for key, reason in sorted(waiting.items())],
        pk="request",
    )


def _planned(release: str | None, reason: str) -> dict[str, Any]:
    return {"release": release, "reason": reason}


def release_plan(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Upcoming and current releases with their phases and request counts."""
    releases = list(
        db.query(
            "select rel.*, (select count(*) from assignments a where a.release = rel.id) as requests "
            "from releases rel where state not in ('released', 'cancelled') order by deploy_at"
        )
    )
    for release in releases:
        release["by_source"] = {
            row["source"]: row["n"]
            for row in db.query(
                "select r.source, count(*) as n from assignments a join change_requests r on r.key = a.request "
                "where a.release = ? group by r.source order by r.source",
                [release["id"]],
            )
        }
        release["phases"] = list(
            db.query(
                "select phase, starts, ends, owner from release_phases where release = ? order by starts",
                [release["id"]],
            )
        )
    return releases


def release_clashes(db: sqlite_utils.Database, release_id: str) -> list[Clash]:
    """Objects (tables, components) changed by more than one request of the release."""
    rows = db.query(
        "select r.key, r.affected from assignments a join change_requests r on r.key = a.request "
        "where a.release = ? order by r.key",
        [release_id],
    )
    return find_clashes((row["key"], row["affected"]) for row in rows)


def all_clashes(db: sqlite_utils.Database) -> dict[str, list[Clash]]:
    """Clashes of every live release, by release name (releases without any left out)."""
    found: dict[str, list[Clash]] = {}
    for release in db.query(
        "select id, name from releases where state not in ('released', 'cancelled') order by deploy_at"
    ):
        clashes = release_clashes(db, release["id"])
        if clashes:
            found[release["name"]] = clashes
    return found
