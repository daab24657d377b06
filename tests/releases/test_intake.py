"""A train's requests sorted out once (releases.intake): the same plan as the list they came from."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from releases.dependencies import Holds
from releases.intake import TrainRequests
from releases.planner import Candidate, plan_releases, plan_requests, planning_order
from tests.releases.test_planner import ELIGIBLE, FOREIGN, NOW, R1, R2, release, req, rich_scenarios

ELSEWHERE = {FOREIGN: ("HF 2026.12.03", "routed to train BS")}


def test_requests_are_sorted_out_by_what_the_planner_does_with_them():
    holds = Holds(wait={"jira:5": "it waits for jira:9"}, not_before={"jira:6": R2.deploy_at})
    requests = TrainRequests(
        [req("jira:1", "low"), req("jira:2", "critical"), req("jira:3", release=R1.id), req("jira:4", status="triaged"),
         req("jira:5"), req("jira:6"), req("jira:7", status="in_progress"), req("jira:8", deleted=True)],
        eligible_statuses=ELIGIBLE, holds=holds,
    )
    assert [c.key for c in requests.fresh] == ["jira:2", "jira:1"]  # in planning order
    assert sorted(c.key for c in requests.idle) == ["jira:4", "jira:5", "jira:7", "jira:8"]
    assert sorted(c.key for c in requests.rest) == ["jira:3", "jira:6"]  # in a release; bounded by a prerequisite
    assert requests.starts == [0, 1, 1, 1, 2, 2]


def test_a_key_given_twice_is_refused_when_planned():
    requests = TrainRequests([req("jira:1"), req("jira:1", "high")], eligible_statuses=ELIGIBLE)
    with pytest.raises(ValueError, match="the same request key is listed twice"):
        plan_requests([R1], requests, now=NOW)


def test_removing_a_request_that_is_not_there_is_refused():
    requests = TrainRequests([req("jira:1")], eligible_statuses=ELIGIBLE)
    with pytest.raises(ValueError, match="jira:2 is not among these requests"):
        requests.minus(req("jira:2"))


@settings(max_examples=300, deadline=None)
@given(rich_scenarios(), st.data())
def test_requests_added_and_removed_plan_like_the_list_they_make(scenario, data):
    """What routing's trials do: one request more in a train, one fewer, from sorted-out requests."""
    releases, candidates, now, expedite = scenario
    if not candidates:
        return
    extra = data.draw(st.sampled_from(candidates))
    gone = data.draw(st.sampled_from(candidates))
    rest = [c for c in candidates if c.key != extra.key]
    requests = TrainRequests(rest, eligible_statuses=ELIGIBLE).plus(extra).minus(gone)
    expected_list = [c for c in candidates if c.key != gone.key]
    assert [planning_order(c) for c in requests.fresh] == sorted(planning_order(c) for c in requests.fresh)
    for waiting_given in (False, True):
        waited: dict[str, str] = {}
        expected: dict[str, str] = {}
        kwargs = {"now": now, "expedite": expedite, "elsewhere": ELSEWHERE}
        got = plan_requests(releases, requests, waiting=waited if waiting_given else None, **kwargs)
        want = plan_releases(releases, expected_list, eligible_statuses=ELIGIBLE,
                             waiting=expected if waiting_given else None, **kwargs)
        assert got == want
        assert waited == expected


def test_a_full_train_passes_over_the_requests_that_cannot_find_a_seat():
    """Many newcomers, two seats: the two most urgent take them; the others change nothing."""
    many: list[Candidate] = [req(f"jira:{n}", ("critical", "high", "low")[n % 3]) for n in range(300)]
    decided = plan_releases([R1], many, eligible_statuses=ELIGIBLE, now=NOW)
    assert [(d.key, d.release) for d in decided] == [("jira:0", R1.id), ("jira:102", R1.id)]


def test_an_expedited_request_still_finds_a_frozen_seat_after_more_urgent_ones_found_none_open():
    """Only critical requests pass over the others of their priority: high ones may enter the frozen release."""
    frozen = release("BS-20261122", "2026-11-22 18:00", capacity=1, state="frozen")
    full = release("BS-20261201", "2026-12-01 18:00", capacity=1)
    candidates = [req("jira:1", "critical"), req("jira:2", "critical"), req("jira:3", "high"),
                  req("jira:9", "low", release=full.id, pinned=True)]
    decided = plan_releases([frozen, full], candidates, eligible_statuses=ELIGIBLE, now=NOW, expedite={"high"})
    assert [(d.key, d.release) for d in decided] == [("jira:3", frozen.id)]
