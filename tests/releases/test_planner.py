"""The planner: examples first, then properties (hypothesis). The calendar is in test_calendar.py."""
from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.schema import Train
from config.trains import folded
from mapping.model import PRIORITIES, STATUSES
from releases.planner import (
    Candidate,
    Decision,
    PlannedRelease,
    bucket,
    limit,
    materialize_releases,
    plan_releases,
)
from releases.routing import plan_trains, train_for
from tests.trains import UTC, at, train

ELIGIBLE = {"approved", "scheduled"}
STARTED = {"in_progress", "testing", "deployed"}


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
        status: str = "approved", release: str | None = None, pinned: bool = False, deleted: bool = False,
        department: str | None = None, type: str | None = None, source: str | None = None) -> Candidate:
    return Candidate(key=key, status=status, priority=priority, created_at=created, release=release,
                     pinned=pinned, deleted=deleted, department=department, type=type, source=source)


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


# --- department quotas ------------------------------------------------------------------

SPLIT = (("Sales Ops", 1),)  # total 2: one seat for Sales Ops, one shared by everyone else


def test_a_department_quota_caps_its_requests_and_the_others_share_the_rest():
    r1, r2 = (dataclasses.replace(r, quotas=SPLIT) for r in (R1, R2))
    assert plan([r1, r2], [
        req("jira:1", "high", department="Sales Ops"),
        req("jira:2", "high", department="sales ops "),  # names ignore case and outer spaces
        req("jira:3", "low", department="Finance"),
        req("jira:4", "low"),
    ]) == {
        "jira:1": ("BS-20261201", "planned: priority high, status approved, created 2026-10-01"),
        "jira:2": ("BS-20261215", "planned: priority high, status approved, created 2026-10-01"),
        "jira:3": ("BS-20261201", "planned: priority low, status approved, created 2026-10-01"),
        "jira:4": ("BS-20261215", "planned: priority low, status approved, created 2026-10-01"),
    }


def test_a_full_quota_is_freed_only_by_its_own_department():
    r1 = dataclasses.replace(R1, quotas=SPLIT)
    assert plan([r1], [
        req("jira:1", "low", release="BS-20261201", department="Finance"),
        req("jira:2", "low", release="BS-20261201", department="Sales Ops"),
        req("jira:3", "critical", department="Sales Ops"),
    ]) == {
        "jira:2": (None, "left release BS 20261201: bumped by jira:3, priority critical, no open release has room"),
        "jira:3": ("BS-20261201", "planned: priority critical, status approved, created 2026-10-01"),
    }


def test_a_full_total_is_freed_by_any_less_urgent_request():
    # Sales Ops has a seat left in its quota, but a pin outside any quota filled the total.
    r1 = dataclasses.replace(R1, capacity=2, quotas=(("Sales Ops", 2),))
    assert plan([r1], [
        req("jira:1", "critical", release="BS-20261201", pinned=True, department="Finance"),
        req("jira:2", "low", release="BS-20261201", department="Sales Ops"),
        req("jira:3", "high", department="Sales Ops"),
    ]) == {
        "jira:2": (None, "left release BS 20261201: bumped by jira:3, priority high, no open release has room"),
        "jira:3": ("BS-20261201", "planned: priority high, status approved, created 2026-10-01"),
    }


def test_a_release_over_a_quota_sheds_that_departments_least_urgent_request():
    r1, r2 = (dataclasses.replace(r, capacity=3, quotas=SPLIT) for r in (R1, R2))
    assert plan([r1, r2], [
        req("jira:1", "high", release="BS-20261201", department="Sales Ops"),
        req("jira:2", "low", release="BS-20261201", department="Sales Ops"),
        req("jira:3", "low", release="BS-20261201", department="Finance"),
    ]) == {"jira:2": (
        "BS-20261215", "moved from BS 20261201 (over capacity): priority low, status approved, created 2026-10-01"
    )}


def test_quota_helpers():
    r1 = dataclasses.replace(R1, capacity=5, quotas=(("Sales Ops", 2), ("IT", 0)))
    assert [bucket(req("jira:1", department=d), r1) for d in ("SALES OPS", "IT", "Finance", None)] == [
        "sales ops", "it", None, None,
    ]
    assert [limit(r1, q) for q in ("sales ops", "it", None)] == [2, 0, 3]


# --- expedite into frozen releases ----------------------------------------------------------

FROZEN = release("BS-20261124", "2026-11-24 18:00", state="frozen", freeze_days=5)


def expedited(releases, candidates, now=NOW):
    decisions = plan_releases(releases, candidates, eligible_statuses=ELIGIBLE, now=now, expedite={"critical"})
    return {d.key: (d.release, d.reason) for d in decisions}


def test_an_expedited_request_enters_a_frozen_release_others_wait_for_the_next():
    assert expedited([FROZEN, R1], [req("jira:1", "critical"), req("jira:2", "high")]) == {
        "jira:1": ("BS-20261124", "planned (expedited into a frozen release): priority critical, status approved, "
                                  "created 2026-10-01"),
        "jira:2": ("BS-20261201", "planned: priority high, status approved, created 2026-10-01"),
    }


def test_an_expedited_request_may_bump_a_less_urgent_one_out_of_a_frozen_release():
    full = dataclasses.replace(FROZEN, capacity=1)
    assert expedited([full, R1], [req("jira:1", "low", release="BS-20261124"), req("jira:2", "critical")]) == {
        "jira:1": ("BS-20261201", "moved from BS 20261124 (bumped by jira:2, priority critical): "
                                  "priority low, status approved, created 2026-10-01"),
        "jira:2": ("BS-20261124", "planned (expedited into a frozen release): priority critical, status approved, "
                                  "created 2026-10-01"),
    }
    # Within capacity: a pinned or equally urgent request is never displaced.
    assert expedited([full, R1], [req("jira:1", "critical", release="BS-20261124"), req("jira:2", "critical")]) == {
        "jira:2": ("BS-20261201", "planned: priority critical, status approved, created 2026-10-01")
    }


def test_expedite_never_reaches_a_deploying_or_planned_release():
    deploying = release("BS-20261120", "2026-11-20 08:00", state="deploying")
    later = dataclasses.replace(R2, state="planned")
    assert expedited([deploying, later], [req("jira:1", "critical")]) == {}


# --- cancelled, planned and other trains' releases -----------------------------------------


def test_requests_of_a_cancelled_release_are_planned_again_and_a_pin_in_it_is_removed():
    cancelled = dataclasses.replace(R1, state="cancelled")
    assert plan([cancelled, R2, R3], [
        req("jira:1", "high", release="BS-20261201"),
        req("jira:2", "low", release="BS-20261201", pinned=True),
        req("jira:3", release="BS-20261201", status="in_progress"),
        req("jira:4", release="BS-20261201", status="closed"),
        req("jira:5", release="BS-20261201", status="triaged"),
    ]) == {
        "jira:1": ("BS-20261215", "moved from BS 20261201 (release BS 20261201 cancelled): "
                                  "priority high, status approved, created 2026-10-01"),
        "jira:2": ("BS-20261215", "moved from BS 20261201 (release BS 20261201 cancelled, pin removed): "
                                  "priority low, status approved, created 2026-10-01"),
        "jira:3": (None, "left release BS 20261201: release BS 20261201 cancelled"),
        "jira:4": (None, "left release BS 20261201: status closed before release"),
        "jira:5": (None, "left release BS 20261201: release BS 20261201 cancelled, status triaged is not eligible"),
    }


def test_a_cancelled_release_gives_who_cancelled_it_and_why_as_the_reason():
    cancelled = dataclasses.replace(R1, state="cancelled", cancelled_why="by alice: vendor outage")
    assert plan([cancelled, R2], [req("jira:1", "high", release="BS-20261201")]) == {
        "jira:1": ("BS-20261215", "moved from BS 20261201 (release BS 20261201 cancelled by alice: vendor outage): "
                                  "priority high, status approved, created 2026-10-01"),
    }


def test_a_planned_release_keeps_its_requests_but_takes_no_new_ones():
    later = dataclasses.replace(R2, state="planned")
    assert plan([R1, later], [
        req("jira:1", "low", release="BS-20261215"),
        req("jira:2", "high"), req("jira:3", "high"), req("jira:4", "high"),
    ]) == {
        "jira:2": ("BS-20261201", "planned: priority high, status approved, created 2026-10-01"),
        "jira:3": ("BS-20261201", "planned: priority high, status approved, created 2026-10-01"),
    }


def test_a_request_from_another_trains_release_says_why_it_moved():
    decisions = plan_releases([R1], [req("jira:1", release="HF-20261126")], eligible_statuses=ELIGIBLE, now=NOW,
                              elsewhere={"HF-20261126": ("HF 2026.11.26", "routed to train BS")})
    assert decisions == [Decision("jira:1", "BS-20261201", "moved from HF 2026.11.26 (routed to train BS): "
                                                          "priority medium, status approved, created 2026-10-01")]


# --- routing requests to trains ------------------------------------------------------------


def trains_for_routing() -> list[Train]:
    return [
        train(name="hotfix", match={"priorities": ["critical"]}, expedite={"priorities": ["critical"]}),
        train(name="sales", match={"departments": ["Sales Ops"], "sources": ["jira", "salesforce"]}),
        train(name="BS"),
    ]


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        (req("jira:1", "critical", department="Sales Ops"), "hotfix"),  # the first match wins
        (req("jira:1", "high", department="SALES OPS", source="jira"), "sales"),
        (req("airtable:1", "high", department="Sales Ops", source="airtable"), "BS"),
        (req("jira:1", None, department=None, source="jira"), "BS"),
    ],
)
def test_a_request_belongs_to_the_first_train_whose_match_takes_it(candidate, expected):
    assert train_for(candidate, trains_for_routing()).name == expected


def test_no_train_for_a_request_nothing_matches():
    hotfix = trains_for_routing()[:1]
    assert train_for(req("jira:1", "high"), hotfix) is None
    assert train_for(req("jira:1", "critical"), hotfix).name == "hotfix"


def test_each_train_plans_only_its_own_requests_and_a_rerouted_one_leaves_its_old_release():
    hotfix_spec, _, bs_spec = trains_for_routing()
    hotfix = [dataclasses.replace(R1, id="HF-20261201", name="HF 2026.12.01", train="hotfix", capacity=4)]
    bs = [R1, R2]
    decisions = plan_trains([(hotfix_spec, hotfix), (bs_spec, bs)], [
        req("jira:1", "critical"),
        req("jira:2", "high", release="HF-20261201"),  # was critical
        req("jira:3", "high", release="HF-20261201", pinned=True),  # a pin wins over the match
        req("jira:4", "high", release="HF-20261201", status="testing"),  # started work stays
        req("jira:5", "critical", release="BS-20261201"),  # became critical: to the hotfix train
    ], now=NOW)
    assert {d.key: (d.release, d.reason) for d in decisions} == {
        "jira:1": ("HF-20261201", "planned: priority critical, status approved, created 2026-10-01"),
        "jira:2": ("BS-20261201", "moved from HF 2026.12.01 (routed to train BS): "
                                  "priority high, status approved, created 2026-10-01"),
        "jira:5": ("HF-20261201", "moved from BS 20261201 (routed to train hotfix): "
                                  "priority critical, status approved, created 2026-10-01"),
    }


def test_a_request_no_train_takes_leaves_its_release():
    hotfix_spec = trains_for_routing()[0]
    hotfix = [dataclasses.replace(R1, id="HF-20261201", name="HF 2026.12.01", train="hotfix")]
    decisions = plan_trains([(hotfix_spec, hotfix)], [
        req("jira:1", "high", release="HF-20261201", department="IT", source="jira"),
        req("jira:2", "high"),
        req("jira:3", "high", release="HF-20261201", status="rejected"),
    ], now=NOW)
    assert decisions == [
        Decision("jira:1", None, "left release HF 2026.12.01: no train takes it "
                                 "(priority high, department IT, type none, source jira)"),
        Decision("jira:3", None, "left release HF 2026.12.01: status rejected"),
    ]


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
    for earlier, later in itertools.pairwise(placed):
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


# --- properties with department quotas, expedite, cancelled and planned releases --------------

DEPARTMENTS = (None, "Sales Ops", "sales ops", "Finance", "IT")
FOREIGN = "HF-20261203"


@st.composite
def rich_scenarios(draw):
    """Like ``scenarios``, plus quotas, expedited priorities, user-cancelled releases,
    ``open_releases`` (planned releases) and requests routed in from another train."""
    spec = train(
        cadence={"every_days": draw(st.integers(1, 21)), "anchor": "2026-12-01"},
        freeze_days=draw(st.integers(0, 10)),
        horizon=draw(st.integers(1, 5)),
        open_releases=draw(st.none() | st.integers(1, 3)),
        phases=[{"phase": "deployment", "days": draw(st.integers(0, 3)), "owner": "rm"}],
    )
    now = draw(st.datetimes(dt.datetime(2026, 11, 1), dt.datetime(2027, 1, 31), timezones=st.just(UTC)))
    quotas = tuple(
        (name, draw(st.integers(0, 2))) for name in ("Sales Ops", "IT") if draw(st.booleans())
    )
    releases = [
        dataclasses.replace(
            r,
            capacity=sum(seats for _, seats in quotas) + draw(st.integers(0, 3)),
            quotas=quotas,
            state="cancelled" if draw(st.integers(0, 5)) == 0 else r.state,
        )
        for r in materialize_releases(spec, now)
    ]
    places = [None, GONE, FOREIGN] + [r.id for r in releases]
    candidates = [
        Candidate(
            key=f"jira:{n}",
            status=draw(st.sampled_from(STATUSES)),
            priority=draw(st.sampled_from((*PRIORITIES, None))),
            created_at=draw(st.sampled_from((None, "2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z"))),
            release=draw(st.sampled_from(places)),
            pinned=draw(st.booleans()),
            deleted=draw(st.integers(0, 9)) == 0,
            department=draw(st.sampled_from(DEPARTMENTS)),
        )
        for n in range(draw(st.integers(0, 25)))
    ]
    expedite = frozenset(draw(st.sets(st.sampled_from(PRIORITIES), max_size=2)))
    return releases, candidates, now, expedite


def rich_planned(releases, candidates, now, expedite):
    return plan_releases(releases, candidates, eligible_statuses=ELIGIBLE, now=now, expedite=expedite,
                         elsewhere={FOREIGN: ("HF 2026.12.03", "routed to train BS")})


def movable_after(c: Candidate) -> bool:
    return not c.pinned and c.status not in STARTED | {"closed"}


@SETTINGS
@given(rich_scenarios())
def test_total_capacity_and_department_quotas_are_never_exceeded_by_movable_requests(scenario):
    releases, candidates, now, expedite = scenario
    after = applied(candidates, rich_planned(releases, candidates, now, expedite))
    for r in releases:
        members = [c for c in after if c.release == r.id]
        if r.state == "cancelled":
            assert not [c for c in members if movable_after(c)], r.id
            continue
        assert len(members) <= r.capacity or not [c for c in members if movable_after(c)], r.id
        for quota in {bucket(c, r) for c in members}:
            held = [c for c in members if bucket(c, r) == quota]
            assert len(held) <= limit(r, quota) or not [c for c in held if movable_after(c)], (r.id, quota)


@SETTINGS
@given(rich_scenarios())
def test_pins_never_move_unless_their_release_is_cancelled(scenario):
    releases, candidates, now, expedite = scenario
    cancelled = {r.id for r in releases if r.state == "cancelled"}
    decided = {d.key for d in rich_planned(releases, candidates, now, expedite)}
    for c in candidates:
        finished = c.deleted or c.status in ("rejected", "closed")
        if c.pinned and c.release and not finished and c.status not in STARTED:
            assert (c.key in decided) == (c.release in cancelled), c
        if c.status in STARTED and not c.deleted:  # only a cancelled release lets a started request go
            assert (c.key in decided) == (c.release in cancelled), c


@SETTINGS
@given(rich_scenarios())
def test_no_newcomer_in_a_frozen_release_except_expedited_ones(scenario):
    releases, candidates, now, expedite = scenario
    by_id = {r.id: r for r in releases}
    priority = {c.key: c.priority for c in candidates}
    for decision in rich_planned(releases, candidates, now, expedite):
        if decision.release is None:
            continue
        target = by_id[decision.release]
        assert target.state in ("open", "frozen") and now < target.deploy_at
        if not (target.state == "open" and now < target.freeze_at):
            assert priority[decision.key] in expedite, decision
            assert "expedited into a frozen release" in decision.reason


@SETTINGS
@given(rich_scenarios(), st.randoms(use_true_random=False))
def test_rich_output_does_not_depend_on_input_order(scenario, random):
    releases, candidates, now, expedite = scenario
    shuffled_releases, shuffled_candidates = releases[:], candidates[:]
    random.shuffle(shuffled_releases)
    random.shuffle(shuffled_candidates)
    assert rich_planned(shuffled_releases, shuffled_candidates, now, expedite) == rich_planned(
        releases, candidates, now, expedite
    )


@SETTINGS
@given(rich_scenarios())
def test_priority_order_among_newly_placed_within_one_quota_and_one_kind(scenario):
    # A department with a free quota may rightly go ahead of a more urgent request whose
    # quota is full, and expedited requests have frozen releases to themselves: the
    # order holds among requests that compete for the same seats.
    releases, candidates, now, expedite = scenario
    decisions = {d.key: d.release for d in rich_planned(releases, candidates, now, expedite)}
    deploy = {r.id: r.deploy_at for r in releases}
    quota_names = {folded(name) for r in releases for name, _ in r.quotas}

    def kind(c: Candidate):
        department = folded(c.department)
        return (department if department in quota_names else None), c.priority in expedite

    placed = sorted((c for c in candidates if decisions.get(c.key)), key=order)
    for earlier in placed:
        for later in placed:
            if order(earlier) < order(later) and kind(earlier) == kind(later):
                assert deploy[decisions[earlier.key]] <= deploy[decisions[later.key]], (earlier.key, later.key)


@SETTINGS
@given(rich_scenarios())
def test_rich_decisions_have_reasons_and_planning_twice_changes_nothing_more(scenario):
    releases, candidates, now, expedite = scenario
    decisions = rich_planned(releases, candidates, now, expedite)
    current = {c.key: c.release for c in candidates}
    assert all(d.release != current[d.key] and d.reason for d in decisions)
    assert rich_planned(releases, applied(candidates, decisions), now, expedite) == []


# --- why a request waits ----------------------------------------------------------------


def waiting_after(releases, candidates, now=NOW, **kwargs):
    waiting: dict[str, str] = {}
    decisions = plan_releases(releases, candidates, eligible_statuses=ELIGIBLE, now=now, waiting=waiting, **kwargs)
    assert decisions == plan_releases(releases, candidates, eligible_statuses=ELIGIBLE, now=now, **kwargs)
    return waiting


def test_a_request_left_without_a_release_says_why():
    full = dataclasses.replace(R1, capacity=1)
    assert waiting_after([full], [req("jira:1", "high"), req("jira:2", "low"), req("jira:3", status="new")]) == {
        "jira:2": "capacity: BS 20261201 full (1/1)",
        "jira:3": "status new is not eligible (approved, scheduled)",
    }
    split = dataclasses.replace(R1, capacity=3, quotas=SPLIT)
    assert waiting_after([split], [req("jira:1", department="Sales Ops"), req("jira:2", department="Sales Ops")]) == {
        "jira:2": "department quota: BS 20261201 has no room in the Sales Ops quota (1)",
    }
    assert waiting_after([FROZEN], [req("jira:1")]) == {
        "jira:1": "freeze: no release is open (before its freeze); it waits for the next one to open",
    }
    assert waiting_after([], [req("jira:1", status="deployed"), req("jira:2", status="rejected")]) == {}


def test_a_request_no_train_takes_waits_for_that_reason():
    hotfix_spec = trains_for_routing()[0]
    waiting: dict[str, str] = {}
    plan_trains([(hotfix_spec, [])], [req("jira:1", "high", department="IT", source="jira")], now=NOW, waiting=waiting)
    assert waiting == {"jira:1": "no train takes it (priority high, department IT, type none, source jira)"}


@SETTINGS
@given(scenarios())
def test_every_eligible_request_left_unassigned_has_a_reason_and_no_assigned_one_does(scenario):
    releases, candidates, now = scenario
    waiting: dict[str, str] = {}
    after = applied(candidates, plan_releases(releases, candidates, eligible_statuses=ELIGIBLE, now=now,
                                              waiting=waiting))
    live = {r.id for r in releases if r.state in ("planned", "open", "frozen", "deploying")}
    for c in after:
        unassigned = c.release is None or c.release not in live
        if c.movable and unassigned and c.status in ELIGIBLE:
            assert waiting.get(c.key), c
        if c.release in live:
            assert c.key not in waiting, c
