"""Planning a store from a sample of its requests: the store ends as if the planner had seen them all."""
from __future__ import annotations

import dataclasses
import datetime as dt
import random

import pytest

from config.schema import Train
from mapping import clock
from mapping.model import PRIORITIES
from releases.planner import Candidate, materialize_releases
from releases.routing import plan_trains
from sync.db import insert_all
from sync.plan_input import read_plan_input
from sync.schedule import plan_into_store
from sync.store import open_database, start_run
from tests.conftest import store_location

NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
HOTFIX = Train.model_validate({
    "name": "hotfix", "release_name": "{train} {deploy:%Y.%m.%d}",
    "cadence": {"every_weeks": 1, "weekday": "thursday"}, "freeze_days": 1, "horizon": 2,
    "capacity": 2, "match": {"priorities": ["critical"]}, "expedite": {"priorities": ["critical"]},
})
BS = Train.model_validate({
    "name": "BS", "release_name": "{train} {deploy:%Y.%m.%d}",
    "cadence": {"every_weeks": 2, "weekday": "tuesday", "anchor": "2026-12-01"}, "horizon": 3,
    "capacity": {"total": 8, "by_department": {"Sales Ops": 2}},
})
TRAINS = [HOTFIX, BS]
STATUSES = ["approved"] * 5 + ["scheduled", "new", "triaged", "in_progress", "closed"]


@pytest.fixture
def store(tmp_path, store_kind, request):
    db = open_database(store_location(store_kind, tmp_path, request))
    yield db
    db.close()


def requests(count: int) -> list[Candidate]:
    draw = random.Random(5)
    found = []
    for n in range(count):
        key = f"jira:OPS-{n}"
        depends = (f"jira:OPS-{draw.randrange(count)}",) if draw.random() < 0.05 else ()
        found.append(Candidate(
            key=key, status=draw.choice(STATUSES), priority=draw.choices([*PRIORITIES, None], [1, 6, 6, 6, 6])[0],
            created_at=f"2026-{draw.randint(1, 10):02d}-{draw.randint(1, 28):02d}T{draw.randint(0, 23):02d}:00:00Z",
            release=None, pinned=False, deleted=draw.random() < 0.02, department=draw.choice(["Sales Ops", "IT", None]),
            type="Field change", source="jira", depends_on=tuple(d for d in depends if d != key),
        ))
    return found


def store_requests(db, candidates: list[Candidate]) -> None:
    insert_all(db, "change_requests", [
        {"key": c.key, "source": "jira", "system": "jira", "native_id": c.key.split(":")[1], "title": c.key,
         "priority": c.priority, "department": c.department, "type": c.type, "status": c.status,
         "created_at": c.created_at, "deleted_at": "2026-11-01T00:00:00.000Z" if c.deleted else None,
         "depends_on": ", ".join(c.depends_on) or None}
        for c in candidates
    ])


def expected(candidates: list[Candidate], now: dt.datetime) -> tuple[dict[str, str], dict[str, str]]:
    """Where every request sits and why the unplanned ones wait, planned whole, in memory."""
    waiting: dict[str, str] = {}
    plans = [(train, materialize_releases(train, now)) for train in TRAINS]
    decisions = plan_trains(plans, candidates, now=now, waiting=waiting)
    placed = {c.key: c.release for c in candidates if c.release} | {d.key: d.release for d in decisions}
    return {key: release for key, release in placed.items() if release}, waiting


def in_store(db) -> tuple[dict[str, str], dict[str, str]]:
    placed = {row["request"]: row["release"] for row in db.query("select request, release from assignments")}
    waiting = {row["request"]: row["reason"] for row in db.query("select request, reason from waiting")}
    return placed, waiting


def test_a_store_planned_from_a_sample_ends_as_if_every_request_was_seen(store):
    candidates = requests(400)
    store_requests(store, candidates)
    plans = [(train, materialize_releases(train, NOW)) for train in TRAINS]
    given = read_plan_input(store, plans)
    assert given.left_out > 100  # most of the unplanned requests are spoken for by examples

    plan_into_store(store, TRAINS, now=NOW, run_id=start_run(store))

    placed, waiting = expected(candidates, NOW)
    assert in_store(store) == (placed, waiting)
    assert len(waiting) > 250


def test_a_second_pass_keeps_since_for_who_still_waits_and_forgets_who_does_not(store):
    candidates = requests(300)
    store_requests(store, candidates)
    plan_into_store(store, TRAINS, now=NOW, run_id=start_run(store))
    first = {row["request"]: row["since"] for row in store.query("select request, since from waiting")}
    placed, _ = in_store(store)
    # People close some waiting requests and start others; the planner runs an hour later.
    waiting_keys = sorted(first)
    closed, started = set(waiting_keys[:40]), set(waiting_keys[40:45])
    for key in closed:
        store.execute("update change_requests set status = 'closed' where key = ?", [key])
    for key in started:
        store.execute("update change_requests set status = 'in_progress' where key = ?", [key])
    later = NOW + dt.timedelta(hours=1)

    plan_into_store(store, TRAINS, now=later, run_id=start_run(store))

    now_candidates = [
        dataclasses.replace(c, release=placed.get(c.key),
                            status="closed" if c.key in closed else "in_progress" if c.key in started else c.status)
        for c in candidates
    ]
    placed_after, waiting_after = expected(now_candidates, later)
    assert in_store(store) == (placed_after, waiting_after)
    rows = {row["request"]: row for row in store.query("select * from waiting")}
    assert not (closed | started) & set(rows)
    assert all(rows[key]["since"] == first.get(key, clock.stamp(later)) for key in rows)
    assert {row["updated_at"] for row in rows.values()} == {clock.stamp(later)}


def test_a_created_at_that_is_not_a_date_time_stops_no_plan(store):
    """A mapping without ``convert: datetime`` can store any text: that request is planned as of
    an unknown age (last of its priority) and named in the counts; the others are planned as ever."""
    good = [dataclasses.replace(c, status="approved", priority="high", deleted=False, depends_on=())
            for c in requests(3)]
    store_requests(store, good)
    insert_all(store, "change_requests", [{"key": "jira:OPS-99", "source": "jira", "system": "jira", "native_id": "99",
                                           "title": "odd date", "priority": "high", "status": "approved",
                                           "created_at": "12/01/2026"}])

    counts = plan_into_store(store, TRAINS, now=NOW, run_id=start_run(store))

    assert counts.undated == ["jira:OPS-99 ('12/01/2026')"]
    assert counts.assigned == 4
    undated = Candidate(key="jira:OPS-99", status="approved", priority="high", created_at=None, release=None,
                        pinned=False, deleted=False, source="jira")
    assert in_store(store) == expected([*good, undated], NOW)
    reason = next(store.query("select reason from assignments where request = 'jira:OPS-99'"))["reason"]
    assert reason.endswith("created unknown")


def test_a_run_names_the_requests_it_planned_without_a_readable_created_at(small_world):
    """As a store mapped without ``convert: datetime`` would hold it: the run plans and pushes as
    ever, and its messages say which request has an age relsync cannot read."""
    from sync import engine
    from sync.store import open_store

    engine.run(small_world.config, env=small_world.env)
    db = open_store(small_world.config.store)
    key = next(db.query("select request from assignments order by request"))["request"]
    db.execute("update change_requests set created_at = 'last Tuesday' where key = ?", [key])
    db.close()

    report = engine.run(small_world.config, env=small_world.env)

    assert report.exit_code == 0
    said = [m for m in report.messages if m.startswith("plan: ")]
    assert said == [f"plan: 1 request(s) with a created_at that is not a date-time with a time zone, planned as of an "
                    f"unknown age (last of their priority): {key} ('last Tuesday'); map created_at with convert: datetime"]
