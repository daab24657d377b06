"""Putting the release plan into the store: releases, phases and assignments.

The planner itself (releases.routing, releases.planner) is pure; this module reads its inputs
from the store, writes its decisions back and audits every move with its reason.

Release states in the store: the calendar's (planned, open, frozen, deploying) for
the releases it gives; a release it no longer gives is *released* once its deploy
time has passed (or *held* as deploying while a phase its train requires to be signed
off is not), *planned* if it now lies beyond the horizon, and otherwise
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

from config.trains import Train
from mapping import clock
from releases.clashes import Clash, find_clashes
from releases.kinds import refuse_planned_examples
from releases.planner import PlannedRelease, materialize_releases
from releases.routing import plan_trains
from sync.audit import AuditEvent, append_events
from sync.db import Database, upsert
from sync.plan_input import read_plan_input, save_waiting


@dataclass
class PlanCounts:
    """What one planning pass changed."""

    releases: int = 0
    assigned: int = 0
    """Requests placed in a release: newly, or moved from another one (``moved`` of them)."""
    unassigned: int = 0
    """Requests taken out of their release and left unassigned."""
    moved: int = 0
    undated: list[str] = dataclasses.field(default_factory=list)
    """Requests whose created_at is not a date-time (``key ('value')``): planned as of an unknown age."""


def save_releases(db: Database, releases: list[PlannedRelease]) -> None:
    """Upsert materialized releases and their phases (inside the caller's transaction)."""
    _free_names(db, releases)
    stored = {
        row["id"]: row
        for row in db.query(
            f"select id, deploy_at, freeze_at, revision from releases where id in ({db.json_values})",
            [json.dumps([r.id for r in releases])],
        )
    }

    def revision(release: PlannedRelease) -> int:
        """One more than stored when the dates moved (compared as times: stored precision varies)."""
        row = stored.get(release.id)
        if row is None:
            return 0
        moved = (clock.parse(row["deploy_at"]), clock.parse(row["freeze_at"])) != (release.deploy_at, release.freeze_at)
        return int(row["revision"]) + moved

    upsert(
        db,
        "releases",
        [
            {
                "id": r.id,
                "name": r.name,
                "train": r.train,
                "deploy_at": clock.stamp(r.deploy_at),
                "freeze_at": clock.stamp(r.freeze_at),
                "capacity": r.capacity,
                "state": r.state,
                "revision": revision(r),
                "requires_signoff": json.dumps(list(r.requires_signoff)),
            }
            for r in releases
        ],
        key="id",
    )
    upsert(
        db,
        "release_phases",
        [
            {"release": r.id, "phase": p.phase, "starts": clock.stamp(p.starts), "ends": clock.stamp(p.ends), "owner": p.owner}
            for r in releases
            for p in r.phases
        ],
        key=("release", "phase"),
    )


def _free_names(db: Database, releases: list[PlannedRelease]) -> None:
    """Release names are unique; a blackout moving a release can hand its name to another id.

    A stored release holding a name that another id now needs gives it up: one that is
    materialized too gets a placeholder (its own upsert renames it), one that is not
    keeps its name with its id appended.
    """
    wanted = {r.name: r.id for r in releases}
    materialized = {r.id for r in releases}
    rows = db.query(
        f"select id, name from releases where name in ({db.json_values})", [json.dumps(sorted(wanted))]
    )
    for row in list(rows):
        if row["id"] == wanted[row["name"]]:
            continue
        # NUL never appears in a formatted release name, so the placeholder cannot clash.
        name = f"\0{row['id']}" if row["id"] in materialized else f"{row['name']} ({row['id']})"
        db.execute("update releases set name = ? where id = ?", [name, row["id"]])


def _age_out(db: Database, train: str, current: list[PlannedRelease], now: dt.datetime) -> None:
    """Stored releases the calendar no longer gives: past ones were released; later ones
    than the horizon wait as planned; the rest were dropped by a blackout or a cadence
    change and are cancelled (a user's cancellation is never undone here)."""
    ids = json.dumps([r.id for r in current])
    last = max((clock.stamp(r.deploy_at) for r in current), default=clock.stamp(now))
    missing = f"train = ? and state not in ('cancelled', 'released') and id not in ({db.json_values})"
    # A release whose required sign-offs are missing is held: it stays deploying, its requests stay put.
    db.execute(
        f"update releases set state = case when {unsigned(db, 'releases')} then 'deploying' else 'released' end "
        f"where {missing} and deploy_at <= ?",
        [train, ids, clock.stamp(now)],
    )
    db.execute(f"update releases set state = 'planned' where {missing} and deploy_at > ?", [train, ids, last])
    db.execute(
        f"update releases set state = 'cancelled', revision = revision + 1 where {missing} and deploy_at > ? "
        "and deploy_at <= ?",
        [train, ids, clock.stamp(now), last],
    )


def _stored(db: Database, train: Train, current: list[PlannedRelease]) -> list[PlannedRelease]:
    """Stored releases of the train that the calendar did not give but the planner must
    know: cancelled ones (their requests are re-planned), planned ones past the
    horizon and held ones, past their deploy time without their sign-offs (both keep
    what is in them)."""
    rows = db.query(
        "select * from releases where train = ? and state in ('cancelled', 'planned', 'deploying') "
        f"and id not in ({db.json_values}) order by deploy_at, id",
        [train.name, json.dumps([r.id for r in current])],
    )
    return [
        PlannedRelease(
            id=row["id"], name=row["name"], train=row["train"], deploy_at=clock.parse(row["deploy_at"]),
            freeze_at=clock.parse(row["freeze_at"]), capacity=row["capacity"], state=row["state"], quotas=train.quotas,
            cancelled_why=cancellation(row), requires_signoff=tuple(json.loads(row["requires_signoff"] or "[]")),
        )
        for row in rows
    ]


def _mark_held(db: Database, now: dt.datetime) -> None:
    """A release past its deploy time without a required sign-off is held (since when it first was)."""
    stamp = clock.stamp(now)
    db.execute(
        f"update releases set held_since = case when state = 'deploying' and deploy_at <= ? and {unsigned(db, 'releases')} "
        "then coalesce(held_since, ?) end where state not in ('released', 'cancelled') or held_since is not null",
        [stamp, stamp],
    )


def unsigned(db: Database, table: str) -> str:
    """SQL: the release row ``table`` has a required phase nobody signed off."""
    return (
        f"exists (select 1 from {db.json_rows(f'{table}.requires_signoff', 'need')} where need.value not in "
        f"(select phase from phase_signoffs s where s.release = {table}.id))"
    )


def phases_with_signoffs(db: Database, release_id: str) -> list[dict[str, Any]]:
    """The release's phases in order, each with its owner and, once given, its sign-off."""
    return list(
        db.query(
            "select p.phase, p.starts, p.ends, p.owner, s.signed_by, s.signed_at, s.note as signoff_note, "
            f"case when p.phase in (select value from {db.json_rows('rel.requires_signoff', 'need')}) then 1 else 0 end "
            "as signoff_required "
            "from release_phases p join releases rel on rel.id = p.release "
            "left join phase_signoffs s on s.release = p.release and s.phase = p.phase "
            "where p.release = ? order by p.starts, p.phase",
            [release_id],
        )
    )


def add_signoffs(db: Database, release: dict[str, Any]) -> None:
    """Give a releases row its phases with their sign-offs, the sign-offs still missing and whether it is held."""
    release["phases"] = phases_with_signoffs(db, release["id"])
    release["missing_signoffs"] = [p["phase"] for p in release["phases"] if p["signoff_required"] and not p["signed_by"]]
    release["held"] = release["held_since"] is not None and release["state"] == "deploying"


def missing_signoffs(db: Database, release_id: str) -> list[str]:
    """The phases of the release that must be signed off and are not, in SDLC order of the train's list."""
    rows = list(db.query("select requires_signoff from releases where id = ?", [release_id]))
    required = json.loads(rows[0]["requires_signoff"] or "[]") if rows else []
    signed = {row["phase"] for row in db.query("select phase from phase_signoffs where release = ?", [release_id])}
    return [phase for phase in required if phase not in signed]


def cancellation(row: dict[str, Any]) -> str | None:
    """Who cancelled a stored release and why (``by alice: vendor outage``), if a person did."""
    if row.get("state") != "cancelled" or not row.get("cancelled_by"):
        return None
    return f"by {row['cancelled_by']}" + (f": {row['cancel_reason']}" if row.get("cancel_reason") else "")


def plan_into_store(
    db: Database, trains: Sequence[Train], *, now: dt.datetime, run_id: int
) -> PlanCounts:
    """Materialize every train's releases, route and plan requests into them and record every move.

    ``trains`` in config order: a request goes to the first train whose match takes it.
    A release a user cancelled stays cancelled and its requests are planned again.
    """
    counts = PlanCounts()
    stamp = clock.stamp(now)
    with db.atomic():
        cancelled = {row["id"]: cancellation(row) for row in db.query("select * from releases where state = 'cancelled'")}
        plans: list[tuple[Train, list[PlannedRelease]]] = []
        for train in trains:
            releases = [
                dataclasses.replace(r, state="cancelled", cancelled_why=cancelled[r.id]) if r.id in cancelled else r
                for r in materialize_releases(train, now)
            ]
            counts.releases += len(releases)
            save_releases(db, releases)
            _age_out(db, train.name, releases, now)
            plans.append((train, releases + _stored(db, train, releases)))
        _mark_held(db, now)
        names = {row["id"]: row["name"] for row in db.query("select id, name from releases")}
        given = read_plan_input(db, plans)
        counts.undated = given.undated
        current = {c.key: c for c in given.candidates}
        waiting: dict[str, str] = {}
        decisions = plan_trains(plans, given.candidates, now=now, waiting=waiting)
        refuse_planned_examples(decisions)
        save_waiting(db, given, waiting, stamp)
        events: list[AuditEvent] = []
        systems = {row["key"]: row["system"] for row in db.query(
            f"select key, system from change_requests where key in ({db.json_values})",
            [json.dumps([decision.key for decision in decisions])])}
        for decision in decisions:
            before = current[decision.key].release
            if decision.release is None:
                counts.unassigned += 1
                db.execute("delete from assignments where request = ?", [decision.key])
            else:
                counts.assigned += 1
                counts.moved += before is not None
                upsert(db, "assignments", [
                    {
                        "request": decision.key,
                        "release": decision.release,
                        "pinned": 0,
                        "reason": decision.reason,
                        "assigned_by": "planner",
                        "assigned_at": stamp,
                    }], key="request",
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


def release_plan(db: Database, *, cancelled_after: str | None = None) -> list[dict[str, Any]]:
    """Upcoming and current releases with their phases and request counts; with
    ``cancelled_after`` (a stamp), also the cancelled ones due after it."""
    releases = list(
        db.query(
            "select rel.*, (select count(*) from assignments a where a.release = rel.id) as requests "
            "from releases rel where state not in ('released', 'cancelled') "
            "or (state = 'cancelled' and cast(? as text) is not null and deploy_at > ?) order by deploy_at, id",
            [cancelled_after, cancelled_after],
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
        add_signoffs(db, release)
    return releases


def release_clashes(db: Database, release_id: str) -> list[Clash]:
    """Objects (tables, components) changed by more than one request of the release."""
    rows = db.query(
        "select r.key, r.affected from assignments a join change_requests r on r.key = a.request "
        "where a.release = ? order by r.key",
        [release_id],
    )
    return find_clashes((row["key"], row["affected"]) for row in rows)


def all_clashes(db: Database) -> dict[str, list[Clash]]:
    """Clashes of every live release, by release name (releases without any left out)."""
    found: dict[str, list[Clash]] = {}
    for release in db.query(
        "select id, name from releases where state not in ('released', 'cancelled') order by deploy_at"
    ):
        clashes = release_clashes(db, release["id"])
        if clashes:
            found[release["name"]] = clashes
    return found
