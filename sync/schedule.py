"""Putting the release plan into the store: releases, phases and assignments.

The planner itself (sync.planner) is pure; this module reads its inputs from the
store, writes its decisions back and audits every move with its reason.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from config.schema import Train
from sync.audit import AuditEvent, append_events
from sync.planner import Candidate, PlannedRelease, materialize_releases, plan_releases


@dataclass
class PlanCounts:
    """What one planning pass changed."""

    releases: int = 0
    assigned: int = 0
    unassigned: int = 0


def iso(moment: dt.datetime, timespec: str = "seconds") -> str:
    """UTC ISO-8601 with ``Z``."""
    return moment.astimezone(dt.timezone.utc).isoformat(timespec=timespec).replace("+00:00", "Z")


def save_releases(db: sqlite_utils.Database, releases: list[PlannedRelease]) -> None:
    """Upsert materialized releases and their phases (inside the caller's transaction)."""
    db["releases"].upsert_all(
        [
            {
                "id": r.id,
                "name": r.name,
                "train": r.train,
                "deploy_at": iso(r.deploy_at),
                "freeze_at": iso(r.freeze_at),
                "capacity": r.capacity,
                "state": r.state,
            }
            for r in releases
        ],
        pk="id",
    )
    db["release_phases"].upsert_all(
        [
            {"release": r.id, "phase": p.phase, "starts": iso(p.starts), "ends": iso(p.ends), "owner": p.owner}
            for r in releases
            for p in r.phases
        ],
        pk=("release", "phase"),
    )


def _age_out(db: sqlite_utils.Database, train: str, current: list[PlannedRelease]) -> None:
    """Releases no longer materialized keep their row; they have been released."""
    db.execute(
        "update releases set state = 'released' where train = ? and state not in ('cancelled', 'released') "
        "and id not in (select value from json_each(?))",
        [train, json.dumps([r.id for r in current])],
    )


def candidates(db: sqlite_utils.Database) -> list[Candidate]:
    """Every stored request as the planner sees it."""
    rows = db.query(
        "select r.key, r.status, r.priority, r.created_at, r.deleted_at, a.release, a.pinned "
        "from change_requests r left join assignments a on a.request = r.key"
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
        )
        for row in rows
    ]


def plan_into_store(
    db: sqlite_utils.Database, train: Train, *, now: dt.datetime, run_id: int
) -> PlanCounts:
    """Materialize the train's releases, plan requests into them and record every move."""
    releases = materialize_releases(train, now)
    counts = PlanCounts(releases=len(releases))
    stamp = iso(now, "milliseconds")
    with db.atomic():
        save_releases(db, releases)
        _age_out(db, train.name, releases)
        names = {row["id"]: row["name"] for row in db.query("select id, name from releases")}
        current = {c.key: c for c in candidates(db)}
        decisions = plan_releases(
            releases,
            list(current.values()),
            eligible_statuses=set(train.eligible_statuses),
            now=now,
        )
        events: list[AuditEvent] = []
        systems = {row["key"]: row["system"] for row in db.query("select key, system from change_requests")}
        for decision in decisions:
            before = current[decision.key].release
            if decision.release is None:
                counts.unassigned += 1
                db.execute("delete from assignments where request = ?", [decision.key])
            else:
                counts.assigned += 1
                db["assignments"].upsert(
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
