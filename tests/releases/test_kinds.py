"""Planning from a sample of the requests (releases.kinds) decides and explains as planning them all."""
from __future__ import annotations

import dataclasses
import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from mapping.model import PRIORITIES
from releases.kinds import Kinds, Sample, plan_sampled, sampled
from releases.planner import Candidate, PlannedRelease
from releases.routing import plan_trains
from tests.releases.two_trains import BS, HOTFIX, NOW, release, req
from tests.trains import train

IT = train(name="it", match={"departments": ["IT"]}, eligible_statuses=["approved"])
DEPARTMENTS = ["Sales Ops", "sales ops", "IT", "Finance", None]


def whole(plans, candidates):
    waiting: dict[str, str] = {}
    decisions = plan_trains(plans, candidates, now=NOW, waiting=waiting)
    return decisions, waiting


def test_a_full_train_needs_to_see_its_seats_plus_one_of_each_kind():
    regular = [release("BS", "2026-12-08 18:00", 2), release("BS", "2026-12-22 18:00", 1)]
    many = [req(f"jira:{n:03d}", "medium", created=f"2026-{1 + n % 11:02d}-{1 + n % 27:02d}T10:00:00Z") for n in range(100)]
    plans = [(BS, regular)]
    sample = Sample(Kinds(plans))
    sample.add_all(many)
    assert len(sample.kept()) == 4  # three seats, and the first to find none
    assert sample.left == 96 and len(sample.examples()) == 1
    assert plan_sampled(plans, many, now=NOW) == whole(plans, many)


def test_requests_no_train_plans_are_all_spoken_for_by_examples():
    regular = [release("BS", "2026-12-08 18:00", 2)]
    new = [req(f"jira:{n}", "low", status="new") for n in range(50)]
    plans = [(BS, regular)]
    sample = Sample(Kinds(plans))
    sample.add_all(new)
    assert sample.kept() == [] and sample.left == 50
    decisions, waiting = plan_sampled(plans, new, now=NOW)
    assert decisions == [] and waiting == whole(plans, new)[1]
    assert set(waiting.values()) == {"status new is not eligible (approved, scheduled)"}


def test_requests_a_train_takes_for_their_priority_are_all_seen():
    """Routing may try a critical request in the regular train too: those are never thinned out."""
    plans = [(HOTFIX, [release("hotfix", "2026-12-03 18:00", 1)]), (BS, [release("BS", "2026-12-08 18:00", 3)])]
    critical = [req(f"jira:{n}", "critical") for n in range(30)]
    sample = Sample(Kinds(plans))
    sample.add_all(critical)
    assert len(sample.kept()) == 30 and sample.left == 0
    assert plan_sampled(plans, critical, now=NOW) == whole(plans, critical)


# --- the property ---------------------------------------------------------------------------


@st.composite
def worlds(draw):
    quotas = draw(st.sampled_from([(), (("Sales Ops", 1),), (("Sales Ops", 1), ("IT", 1))]))
    regular = train(name="BS", capacity={"total": 3, "by_department": dict(quotas)} if quotas else 3)
    trains = draw(st.sampled_from([[regular], [HOTFIX, regular], [IT, regular], [HOTFIX, IT, regular]]))
    plans: list[tuple[object, list[PlannedRelease]]] = []
    for each in trains:
        drawn = []
        for number, day in enumerate(draw(st.lists(st.sampled_from([2, 3, 8, 15, 22]), max_size=3, unique=True))):
            deploy = dt.datetime(2026, 12, day, 18, tzinfo=dt.UTC)
            state = draw(st.sampled_from(["open", "open", "frozen", "planned", "cancelled"]))
            drawn.append(PlannedRelease(
                id=f"{each.name}-{number}", name=f"{each.name} R{number}", train=each.name, deploy_at=deploy,
                freeze_at=deploy - dt.timedelta(days=draw(st.sampled_from([0, 1, 3]))), capacity=draw(st.integers(0, 3)),
                state=state, quotas=each.quotas))
        plans.append((each, drawn))
    places = [r.id for _, drawn in plans for r in drawn] + ["gone"]
    count = draw(st.integers(0, 40))
    keys = [f"jira:{n:02d}" for n in range(count)]
    candidates = []
    for key in keys:
        candidates.append(Candidate(
            key=key,
            status=draw(st.sampled_from(["approved", "approved", "scheduled", "new", "in_progress", "closed"])),
            priority=draw(st.sampled_from([*PRIORITIES, None])),
            created_at=draw(st.sampled_from([None, "2026-10-01T10:00:00Z", "2026-10-02T09:00:00+0100", "2026-11-05T10:00:00Z"])),
            release=draw(st.sampled_from(places)) if draw(st.integers(0, 5)) == 0 else None,
            pinned=draw(st.integers(0, 12)) == 0, deleted=draw(st.integers(0, 20)) == 0,
            department=draw(st.sampled_from(DEPARTMENTS)), type="Report", source="jira",
            depends_on=tuple(draw(st.lists(st.sampled_from(keys), max_size=2, unique=True)))
            if draw(st.integers(0, 6)) == 0 else (),
        ))
    return plans, candidates


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_the_sample_decides_and_explains_as_the_whole(world):
    plans, candidates = world
    assert plan_sampled(plans, candidates, now=NOW) == whole(plans, candidates)


def test_what_is_thinned_out_and_what_is_not():
    candidates = [
        req("jira:1"), req("jira:2", depends_on=("jira:3",)), req("jira:3"), req("jira:4", release="BS-1"),
        req("jira:5", pinned=True), req("jira:6", status="closed"),
        dataclasses.replace(req("jira:7"), deleted=True), req("jira:8", unknown=("EXT-1",)),
    ]
    thinned, rest = sampled(candidates)
    assert [c.key for c in thinned] == ["jira:1"]
    assert [c.key for c in rest] == ["jira:2", "jira:3", "jira:4", "jira:5", "jira:8"]
