"""Monotone urgency across trains: raising a request's priority never ships it later."""
from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from mapping.model import PRIORITIES
from releases.routing import plan_trains
from tests.releases.two_trains import BS, HOTFIX, NOW, release, req


def plan(plans, candidates):
    return {d.key: (d.release, d.reason) for d in plan_trains(plans, candidates, now=NOW)}


def test_an_urgent_newcomer_goes_to_the_regular_release_when_every_earlier_hotfix_is_full():
    """The demo's case: the hotfix train's releases are full for weeks, a regular release ships sooner."""
    hotfixes = [release("hotfix", "2026-12-03 18:00", 1), release("hotfix", "2026-12-24 18:00", 1)]
    regular = [release("BS", "2026-12-08 18:00", 3)]
    taken = [req("jira:1", "critical", release="hotfix-20261203")]
    decided = plan([(HOTFIX, hotfixes), (BS, regular)], [*taken, req("jira:9", "critical")])
    assert decided == {
        "jira:9": ("BS-20261208", "planned: priority critical, status approved, created 2026-10-01 "
                                  "(not train hotfix: its first release with room deploys 2026-12-24)"),
    }


def test_an_urgent_newcomer_takes_the_hotfix_release_when_it_is_as_early_or_earlier():
    hotfixes = [release("hotfix", "2026-12-03 18:00", 1)]
    regular = [release("BS", "2026-12-08 18:00", 3)]
    assert plan([(HOTFIX, hotfixes), (BS, regular)], [req("jira:9", "critical")]) == {
        "jira:9": ("hotfix-20261203", "planned: priority critical, status approved, created 2026-10-01"),
    }


def test_raising_a_planned_request_to_critical_keeps_its_place_when_the_hotfix_train_is_later():
    hotfixes = [release("hotfix", "2026-12-03 18:00", 1), release("hotfix", "2026-12-24 18:00", 1)]
    regular = [release("BS", "2026-12-08 18:00", 3)]
    candidates = [req("jira:1", "critical", release="hotfix-20261203"), req("jira:2", "critical", release="BS-20261208")]
    assert plan([(HOTFIX, hotfixes), (BS, regular)], candidates) == {}  # jira:2 keeps 8 December, not 24 December


# --- the property ------------------------------------------------------------------------


@st.composite
def worlds(draw):
    hotfixes = [
        release("hotfix", f"2026-12-{day:02d} 18:00", draw(st.integers(0, 2)))
        for day in (3, 10, 17, 24) if draw(st.booleans())
    ]
    regular = [release("BS", f"2026-12-{day:02d} 18:00", draw(st.integers(0, 3))) for day in (8, 22) if draw(st.booleans())]
    hotfixes = [r for r in hotfixes if r.capacity] or hotfixes[:0]
    regular = [r for r in regular if r.capacity]
    count = draw(st.integers(1, 10))
    candidates = [
        req(f"jira:{i}", draw(st.sampled_from([*PRIORITIES, None])), created=f"2026-10-{i + 1:02d}T10:00:00Z")
        for i in range(count)
    ]
    chosen = draw(st.integers(0, count - 1))
    raised = draw(st.sampled_from([None, *PRIORITIES]))
    return hotfixes, regular, candidates, chosen, raised


def settle(plans, candidates):
    """Plan, apply the decisions, and plan again until nothing changes (what successive runs do)."""
    for _ in range(5):
        decided = {d.key: d.release for d in plan_trains(plans, candidates, now=NOW)}
        if not decided:
            return candidates
        candidates = [dataclasses.replace(c, release=decided.get(c.key, c.release)) for c in candidates]
    return candidates


def rank(priority):
    return PRIORITIES.index(priority) if priority in PRIORITIES else len(PRIORITIES)


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_raising_a_priority_never_ships_a_request_later(world):
    hotfixes, regular, candidates, chosen, raised = world
    plans = [(HOTFIX, hotfixes), (BS, regular)]
    deploys = {r.id: r.deploy_at for r in hotfixes + regular}
    before = settle(plans, candidates)
    target = before[chosen]
    if rank(raised) >= rank(target.priority):
        return  # not a raise
    had = deploys.get(target.release) if target.release else None
    after = settle(plans, [dataclasses.replace(c, priority=raised) if c.key == target.key else c for c in before])
    moved = next(c for c in after if c.key == target.key)
    gets = deploys.get(moved.release) if moved.release else None
    if had is not None:
        assert gets is not None and gets <= had, (target, moved)


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_a_second_run_over_the_same_requests_moves_nothing(world):
    """What one run planned, the next run keeps: requesters are not told a new date every run."""
    hotfixes, regular, candidates, _, _ = world
    plans = [(HOTFIX, hotfixes), (BS, regular)]
    decided = {d.key: d.release for d in plan_trains(plans, candidates, now=NOW)}
    applied = [dataclasses.replace(c, release=decided.get(c.key, c.release)) for c in candidates]
    assert plan_trains(plans, applied, now=NOW) == []
