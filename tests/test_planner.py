"""The planner: examples first, then properties (hypothesis). The calendar is in test_calendar.py."""
from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.schema import Train
from mapping.model import PRIORITIES, STATUSES
from sync.planner import Candidate, Decision, PlannedRelease, materialize_releases, plan_releases

UTC = dt.timezone.utc
ELIGIBLE = {"approved", "scheduled"}
STARTED = {"in_progress", "testing", "deployed"}
PHASES = [
    {"phase": "planning", "days": 3, "owner": "pm@example.com"},
    {"phase": "development", "days": 7, "owner": "dev-lead@example.com"},
    {"phase": "testing", "days": 3, "owner": "qa@example.com"},
    {"phase": "deployment", "days": 1, "owner": "release-manager@example.com"},
    {"phase": "maintenance", "days": 5, "owner": "ops@example.com"},
]


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def train(**changes) -> Train:
    spec = {
        "name": "BS",
        "release_name": "{train} {deploy:%Y.%m.%d}",
        "cadence": {"every_days": 14, "anchor": "2026-12-01"},
        "capacity": 2,
        "phases": PHASES,
    }
    return Train.model_validate(spec | changes)


# --- the planner: examples ----------------------------------------------------------

NOW = at("2026-11-20 09:00")


def release(rid: str, deploy: str, *, capacity: int = 2, state: str = "open", freeze_days: int = 3) -> PlannedRelease:
    deploy_at = at(deploy)
    return PlannedRelease(
        id=rid, name=rid.replace("-", " "), train="BS", deploy_at=deploy_at,
        freeze_at=deploy_at - dt.timedelta(days=freeze_days), capacity=capacity, state=state,
    )


R1 = release("BS-20261201", "2026-12-01 18:00")
R2 = release("BS-20261215", "2026-12-15 18:00")
R3 = release("BS-20261229", "2026-12-29 18:00")


def req(key: str, priority: str | None = "medium", created: str | None = "2026-10-01T10:00:00Z", *,
        status: str = "approved", release: str | None = None, pinned: bool = False, deleted: bool = False) -> Candidate:
    return Candidate(key=key, status=status, priority=priority, created_at=created, release=release,
                     pinned=pinned, deleted=deleted)


def plan(releases, candidates, now=NOW):
    return {d.key: (d.release, d.reason) for d in plan_releases(releases, candidates, eligible_statuses=ELIGIBLE, now=now)}


def test_new_requests_go_in_priority_then_age_order_into_the_earliest_release_with_room():
    decisions = plan_releases(
        [R3, R1, R2],
        [
            req("jira:4", "low", "2026-09-01T00:00:00Z"),
            req("jira:3", "high", "2026-10-05T00:00:00Z"),
            req("jira:2", "critical", "2026-10-09T00:00:00Z"),
            req("jira:1", "high", "2026-10-02T08:00:00Z"),
            req("jira:5", None, "2026-01-01T00:00:00Z"),
            req("jira:6", "low", None),
            req("jira:7", "low", "2026-09-01T00:00:00Z", status="triaged"),
        ],
        eligible_statuses=ELIGIBLE, now=NOW,
    )
    assert decisions == [
        Decision("jira:1", "BS-20261201", "planned: priority high, status approved, created 2026-10-02"),
        Decision("jira:2", "BS-20261201", "planned: priority critical, status approved, created 2026-10-09"),
        Decision("jira:3", "BS-20261215", "planned: priority high, status approved, created 2026-10-05"),
        Decision("jira:4", "BS-20261215", "planned: priority low, status approved, created 2026-09-01"),
        Decision("jira:5", "BS-20261229", "planned: priority none, status approved, created 2026-01-01"),
        Decision("jira:6", "BS-20261229", "planned: priority low, status approved, created unknown"),
    ]


def test_an_urgent_newcomer_bumps_the_least_urgent_planned_request_to_the_next_release():
    decisions = plan([R1, R2], [
        req("jira:1", "low", release="BS-20261201"),
        req("jira:2", "low", release="BS-20261201", status="scheduled"),
        req("jira:3", "critical"),
    ])
    assert decisions == {
        "jira:3": ("BS-20261201", "planned: priority critical, status approved, created 2026-10-01"),
        "jira:2": (
            "BS-20261215",
            "moved from BS 20261201 (bumped by jira:3, priority critical): "
            "priority low, status scheduled, created 2026-10-01",
        ),
    }


def test_a_newcomer_of_equal_priority_does_not_bump_requests_already_planned():
    decisions = plan([R1, R2], [
        req("jira:1", "high", release="BS-20261201"),
        req("jira:2", "high", "2026-10-05T00:00:00Z", release="BS-20261201"),
        req("jira:3", "high", "2026-01-01T00:00:00Z"),
    ])
    assert decisions == {"jira:3": ("BS-20261215", "planned: priority high, status approved, created 2026-01-01")}


def test_a_frozen_release_is_never_bumped():
    frozen = release("BS-20261124", "2026-11-24 18:00", state="frozen")
    decisions = plan([frozen, R1], [
        req("jira:1", "low", release="BS-20261124"),
        req("jira:2", "critical"),
    ])
    assert decisions == {"jira:2": ("BS-20261201", "planned: priority critical, status approved, created 2026-10-01")}


def test_frozen_and_deploying_releases_take_no_newcomers():
    frozen = release("BS-20261124", "2026-11-24 18:00", state="frozen")
    deploying = release("BS-20261120", "2026-11-20 08:00", state="deploying")
    assert plan([deploying, frozen, R1], [req("jira:1")]) == {
        "jira:1": ("BS-20261201", "planned: priority medium, status approved, created 2026-10-01")
    }
    # A stale "open" label is not trusted past the freeze time.
    assert plan([R1], [req("jira:1")], now=at("2026-11-28 18:00")) == {}


def test_pins_stay_put_and_take_up_room():
    decisions = plan([R1, R2], [
        req("jira:1", "low", release="BS-20261201", pinned=True, status="triaged"),
        req("jira:2", "low", release="BS-20240101", pinned=True),
        req("jira:3", "high", release="BS-20261201"),
        req("jira:4", "high"),
    ])
    assert decisions == {"jira:4": ("BS-20261215", "planned: priority high, status approved, created 2026-10-01")}


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        (req("jira:1", status="rejected", release="BS-20261201"), "left release BS 20261201: status rejected"),
        (req("jira:1", deleted=True, release="BS-20261201"), "left release BS 20261201: deleted in source"),
        (req("jira:1", status="closed", release="BS-20261201"), "left release BS 20261201: status closed before release"),
        (req("jira:1", status="rejected", release="BS-20261201", pinned=True),
         "left release BS 20261201: status rejected (pin removed)"),
        (req("jira:1", deleted=True, status="deployed", release="BS-20240101"), "left release BS-20240101: deleted in source"),
    ],
)
def test_rejected_closed_and_deleted_requests_leave(candidate, reason):
    assert plan([R1], [candidate]) == {"jira:1": (None, reason)}


def test_started_and_shipped_requests_are_never_replanned():
    deploying = release("BS-20261117", "2026-11-17 18:00", state="deploying")
    assert plan([deploying, R1], [
        req("jira:1", status="in_progress", release="BS-20261103"),
        req("jira:2", status="testing"),
        req("jira:3", status="deployed", release="BS-20261117"),
        req("jira:4", status="closed", release="BS-20261103"),
        req("jira:5", status="closed", release="BS-20261117"),
        req("jira:6", status="rejected"),
        req("jira:7", deleted=True),
    ]) == {}


def test_requests_in_a_release_that_is_gone_are_replanned_if_still_eligible():
    assert plan([R1], [
        req("jira:1", "high", release="BS-20261103", status="scheduled"),
        req("jira:2", release="BS-20261103", status="triaged"),
        req("jira:3", "low", release="BS-20261103"),
        req("jira:4", "low", "2026-10-02T00:00:00Z", release="BS-20261103"),
    ]) == {
        "jira:1": ("BS-20261201", "moved from BS-20261103 (no longer scheduled): priority high, status scheduled, created 2026-10-01"),
        "jira:2": (None, "left release BS-20261103: no longer scheduled, status triaged is not eligible"),
        "jira:3": ("BS-20261201", "moved from BS-20261103 (no longer scheduled): priority low, status approved, created 2026-10-01"),
        "jira:4": (None, "left release BS-20261103: no longer scheduled, no open release has room"),
    }


def test_an_overfull_release_sheds_its_least_urgent_newest_requests_first():
    small = dataclasses.replace(R1, capacity=2)
    decisions = plan([small, R2], [
        req("jira:1", "low", release="BS-20261201", pinned=True),
        req("jira:2", "high", release="BS-20261201", status="in_progress"),
        req("jira:3", "high", "2026-10-01T00:00:00Z", release="BS-20261201"),
        req("jira:4", "high", "2026-10-03T00:00:00Z", release="BS-20261201", status="triaged"),
        req("jira:5", "critical", release="BS-20261201"),
    ])
    assert decisions == {
        "jira:3": ("BS-20261215", "moved from BS 20261201 (over capacity): priority high, status approved, created 2026-10-01"),
        "jira:4": (None, "left release BS 20261201: over capacity"),
        "jira:5": ("BS-20261215", "moved from BS 20261201 (over capacity): priority critical, status approved, created 2026-10-01"),
    }
    one_left = plan([dataclasses.replace(R1, capacity=1)], [
        req("jira:1", "low", release="BS-20261201"),
        req("jira:2", "high", release="BS-20261201"),
    ])
    assert one_left == {"jira:1": (None, "left release BS 20261201: over capacity, no open release has room")}


def test_no_room_anywhere_leaves_newcomers_unassigned_without_a_decision():
    assert plan([dataclasses.replace(R1, capacity=1)], [
        req("jira:1", "critical", release="BS-20261201"), req("jira:2", "critical")
    ]) == {}
    assert plan([], [req("jira:1")]) == {}


def test_a_request_bumped_with_no_room_elsewhere_leaves_its_release():
    assert plan([dataclasses.replace(R1, capacity=1)], [
        req("jira:1", "low", release="BS-20261201"), req("jira:2", "critical")
    ]) == {
        "jira:1": (None, "left release BS 20261201: bumped by jira:2, priority critical, no open release has room"),
        "jira:2": ("BS-20261201", "planned: priority critical, status approved, created 2026-10-01"),
    }


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="status"):
        req("jira:1", status="done")
    with pytest.raises(ValueError, match="priority"):
        req("jira:1", priority="urgent")
    with pytest.raises(ValueError, match="created_at"):
        req("jira:1", created="last tuesday")
    with pytest.raises(ValueError, match="listed twice"):
        plan([R1], [req("jira:1"), req("jira:1")])
    with pytest.raises(ValueError, match="timezone-aware"):
        plan([R1], [req("jira:1")], now=dt.datetime(2026, 11, 20))
    assert req("jira:1", created="").created() is None  # the store's "unknown"


# --- the planner: properties --------------------------------------------------------

GONE = "BS-20240101"


@st.composite
def scenarios(draw):
    """Materialized releases with varied capacities, and requests in every situation."""
    spec = train(
        cadence={"every_days": draw(st.integers(1, 21)), "anchor": "2026-12-01"},
        freeze_days=draw(st.integers(0, 10)),
        horizon=draw(st.integers(1, 5)),
        phases=[{"phase": "deployment", "days": draw(st.integers(0, 3)), "owner": "rm"}],
    )
    now = draw(st.datetimes(dt.datetime(2026, 11, 1), dt.datetime(2027, 1, 31), timezones=st.just(UTC)))
    releases = [
        dataclasses.replace(r, capacity=draw(st.integers(0, 4)))
        for r in materialize_releases(spec, now)
    ]
    places = [None, GONE] + [r.id for r in releases]
    count = draw(st.integers(0, 25))
    candidates = [
        Candidate(
            key=f"jira:{n}",
            status=draw(st.sampled_from(STATUSES)),
            priority=draw(st.sampled_from((*PRIORITIES, None))),
            created_at=draw(st.sampled_from(
                (None, "2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z", "2026-10-01T00:00:00.500+00:00")
            )),
            release=draw(st.sampled_from(places)),
            pinned=draw(st.booleans()),
            deleted=draw(st.integers(0, 9)) == 0,
        )
        for n in range(count)
    ]
    return releases, candidates, now


def planned(releases, candidates, now):
    return plan_releases(releases, candidates, eligible_statuses=ELIGIBLE, now=now)


def applied(candidates, decisions):
    moved = {d.key: d.release for d in decisions}
    return [
        dataclasses.replace(c, release=moved[c.key], pinned=False) if c.key in moved else c
        for c in candidates
    ]


def order(c: Candidate):
    rank = PRIORITIES.index(c.priority) if c.priority else len(PRIORITIES)
    return rank, c.created() or dt.datetime.max.replace(tzinfo=UTC), c.key


SETTINGS = settings(max_examples=200, deadline=None)


@SETTINGS
@given(scenarios())
def test_capacity_is_never_exceeded_by_requests_the_planner_could_move(scenario):
    releases, candidates, now = scenario
    after = applied(candidates, planned(releases, candidates, now))
    for r in releases:
        members = [c for c in after if c.release == r.id]
        movable = [c for c in members if not c.pinned and c.status not in STARTED | {"closed"}]
        assert len(members) <= r.capacity or not movable, r.id


@SETTINGS
@given(scenarios())
def test_pins_never_move_and_started_requests_are_never_replanned(scenario):
    releases, candidates, now = scenario
    decided = {d.key for d in planned(releases, candidates, now)}
    for c in candidates:
        cancelled = c.deleted or c.status == "rejected"
        if (c.pinned and c.release and not cancelled and c.status != "closed") or (c.status in STARTED and not c.deleted):
            assert c.key not in decided


@SETTINGS
@given(scenarios())
def test_newcomers_only_enter_open_releases_before_their_freeze(scenario):
    releases, candidates, now = scenario
    by_id = {r.id: r for r in releases}
    for decision in planned(releases, candidates, now):
        if decision.release is not None:
            target = by_id[decision.release]
            assert target.state == "open" and now < target.freeze_at


@SETTINGS
@given(scenarios(), st.randoms(use_true_random=False))
def test_output_does_not_depend_on_input_order(scenario, random):
    releases, candidates, now = scenario
    shuffled_releases, shuffled_candidates = releases[:], candidates[:]
    random.shuffle(shuffled_releases)
    random.shuffle(shuffled_candidates)
    assert planned(shuffled_releases, shuffled_candidates, now) == planned(releases, candidates, now)


@SETTINGS
@given(scenarios())
def test_priority_order_is_respected_among_newly_placed(scenario):
    releases, candidates, now = scenario
    decisions = {d.key: d.release for d in planned(releases, candidates, now)}
    deploy = {r.id: r.deploy_at for r in releases}
    placed = sorted((c for c in candidates if decisions.get(c.key)), key=order)
    for earlier, later in zip(placed, placed[1:]):
        assert deploy[decisions[earlier.key]] <= deploy[decisions[later.key]]
    waiting = [
        c for c in candidates
        if c.release is None and c.key not in decisions and c.status in ELIGIBLE and not c.deleted
    ]
    for c in waiting:
        assert all(order(p) < order(c) for p in placed)


@SETTINGS
@given(scenarios())
def test_decisions_are_changes_and_planning_twice_changes_nothing_more(scenario):
    releases, candidates, now = scenario
    decisions = planned(releases, candidates, now)
    current = {c.key: c.release for c in candidates}
    assert all(d.release != current[d.key] and d.reason for d in decisions)
    assert [d.key for d in decisions] == sorted(d.key for d in decisions)
    assert planned(releases, applied(candidates, decisions), now) == []
