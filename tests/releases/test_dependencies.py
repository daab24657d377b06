"""Dependencies between requests: no dependent deploys before what it depends on, across trains."""
from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from mapping.model import PRIORITIES
from releases.dependencies import cycles, holds_for
from releases.routing import plan_trains
from tests.releases.two_trains import BS, HOTFIX, NOW, release, req

R1, R2, R3 = (release("BS", day, 2) for day in ("2026-12-08 18:00", "2026-12-22 18:00", "2027-01-05 18:00"))


def plan(candidates, plans=None, waiting=None):
    decided = plan_trains(plans or [(BS, [R1, R2, R3])], candidates, now=NOW, waiting=waiting)
    return {d.key: (d.release, d.reason) for d in decided}


def test_cycles_are_found_whole_and_in_path_order():
    graph = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["d"], "e": ["a"], "f": ["g"], "g": []}
    assert cycles(graph) == [["a", "b", "c"], ["d"]]
    assert cycles({"x": ["y"], "y": []}) == []


def test_a_dependent_never_goes_before_its_prerequisite():
    # jira:D is urgent and would take the first release; airtable:P only finds room in the second.
    full = [req(f"jira:{i}", "high", release=R1.id) for i in (1, 2)]
    waiting: dict[str, str] = {}
    decided = plan([*full, req("airtable:P", "low"), req("jira:D", "critical", depends_on=("airtable:P",))],
                   waiting=waiting)
    assert decided["airtable:P"][0] == R2.id
    assert decided["jira:D"][0] == R2.id  # with P, not before it


def test_a_dependent_waits_while_its_prerequisite_has_no_release():
    waiting: dict[str, str] = {}
    decided = plan([req("airtable:P", status="new"), req("jira:D", depends_on=("airtable:P",), release=R1.id)],
                   waiting=waiting)
    assert decided == {"jira:D": (None, "left release BS-20261208: dependency: depends on airtable:P, "
                                        "which has no release yet")}
    assert waiting["jira:D"] == "dependency: depends on airtable:P, which has no release yet"


def test_rejected_unknown_and_done_prerequisites():
    waiting: dict[str, str] = {}
    decided = plan([
        req("airtable:R", status="rejected"), req("airtable:S", status="deployed"),
        req("jira:1", depends_on=("airtable:R",)), req("jira:2", unknown=("OPS-404",)),
        req("jira:3", depends_on=("airtable:S",)),
    ], waiting=waiting)
    assert waiting["jira:1"] == "dependency: depends on airtable:R, which was rejected"
    assert waiting["jira:2"] == "dependency: depends on OPS-404, which relsync does not know"
    assert decided == {"jira:3": (R1.id, "planned: priority medium, status approved, created 2026-10-01")}


def test_a_cycle_plans_none_of_its_members_and_names_the_whole_cycle():
    waiting: dict[str, str] = {}
    decided = plan([req("jira:A", depends_on=("jira:B",), release=R1.id), req("jira:B", depends_on=("salesforce:C",)),
                    req("salesforce:C", depends_on=("jira:A",)), req("jira:Z", depends_on=("jira:A",))], waiting=waiting)
    assert decided == {"jira:A": (None, "left release BS-20261208: dependency cycle: jira:A -> jira:B -> salesforce:C "
                                        "-> jira:A")}
    assert waiting["salesforce:C"] == "dependency cycle: jira:A -> jira:B -> salesforce:C -> jira:A"
    assert waiting["jira:Z"] == "dependency: depends on jira:A, which is in a dependency cycle"


def test_across_trains_a_hotfix_waits_for_the_regular_release_it_depends_on():
    hotfixes = [release("hotfix", day, 3) for day in ("2026-12-03 18:00", "2026-12-10 18:00", "2026-12-24 18:00")]
    decided = plan([req("airtable:P", "low", release=R2.id), req("jira:D", "critical", depends_on=("airtable:P",))],
                   plans=[(HOTFIX, hotfixes), (BS, [R1, R2, R3])])
    assert decided["jira:D"][0] in {"hotfix-20261224", R2.id}


def test_a_dependent_already_planned_too_early_moves_after_its_prerequisite():
    decided = plan([req("airtable:P", release=R2.id), req("jira:D", release=R1.id, depends_on=("airtable:P",))])
    assert decided == {"jira:D": (R2.id, "moved from BS-20261208 (depends on airtable:P, which deploys 2026-12-22): "
                                         "priority medium, status approved, created 2026-10-01")}


def test_every_prerequisite_keeps_its_seat():
    holds = holds_for([req("a"), req("b", depends_on=("a",)), req("c", depends_on=("b",))], {})
    assert holds.protected == {"a", "b"}


# --- properties ----------------------------------------------------------------------------


@st.composite
def worlds(draw):
    hotfixes = [release("hotfix", f"2026-12-{day:02d} 18:00", draw(st.integers(0, 2))) for day in (3, 10, 17, 24)]
    regular = [release("BS", f"2026-12-{day:02d} 18:00", draw(st.integers(0, 3))) for day in (8, 22)]
    count = draw(st.integers(2, 9))
    keys = [f"jira:{i}" for i in range(count)]
    candidates = []
    for i, key in enumerate(keys):
        deps = tuple(sorted(set(draw(st.lists(st.sampled_from(keys), max_size=2)))))
        candidates.append(req(key, draw(st.sampled_from([*PRIORITIES, None])), depends_on=deps,
                              status=draw(st.sampled_from(["approved"] * 4 + ["new", "rejected", "deployed"])),
                              created=f"2026-10-{i + 1:02d}T10:00:00Z"))
    return [(HOTFIX, [r for r in hotfixes if r.capacity]), (BS, [r for r in regular if r.capacity])], candidates


def settle(plans, candidates):
    for _ in range(6):
        decided = {d.key: d.release for d in plan_trains(plans, candidates, now=NOW)}
        if not decided:
            break
        candidates = [dataclasses.replace(c, release=decided.get(c.key, c.release)) for c in candidates]
    return candidates


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_no_dependent_deploys_before_a_prerequisite_and_no_cycle_member_is_planned(world):
    plans, candidates = world
    deploys = {r.id: r.deploy_at for _, releases in plans for r in releases}
    graph = {c.key: list(c.depends_on) for c in candidates}
    looped = {key for cycle in cycles(graph) for key in cycle}
    settled = {c.key: c for c in settle(plans, candidates)}
    for c in settled.values():
        if c.release is None or c.status != "approved":
            continue
        assert c.key not in looped, c
        for prerequisite in c.depends_on:
            p = settled[prerequisite]
            if p.status in ("deployed", "closed"):
                continue
            assert p.status == "approved" and p.release is not None, (c, p)
            assert deploys[p.release] <= deploys[c.release], (c, p)


@settings(max_examples=300, deadline=None)
@given(worlds(), st.data())
def test_adding_a_dependency_never_makes_the_prerequisite_later(world, data):
    plans, candidates = world
    deploys = {r.id: r.deploy_at for _, releases in plans for r in releases}
    before = settle(plans, [dataclasses.replace(c, depends_on=()) for c in candidates])
    dependent, prerequisite = data.draw(st.lists(st.sampled_from(before), min_size=2, max_size=2, unique_by=lambda c: c.key))
    had = deploys.get(prerequisite.release) if prerequisite.release else None
    linked = [dataclasses.replace(c, depends_on=(prerequisite.key,)) if c.key == dependent.key else c for c in before]
    after = {c.key: c for c in settle(plans, linked)}
    gets = deploys.get(after[prerequisite.key].release) if after[prerequisite.key].release else None
    if had is not None:
        assert gets is not None and gets <= had, (prerequisite, after[prerequisite.key])
