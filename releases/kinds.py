"""Requests a plan can speak for by example: how a store of any size is planned in little memory.

Most requests of a large store wait, unplanned: no train takes them, their status is
one their train does not plan, or no seat is left. Call requests *alike* when one train
plans them, no other train would take them at a lower priority (so routing never tries
them elsewhere), and they share their priority, their quota in each of its releases and whether
their status is eligible there; and give each only to unassigned, movable requests
that depend on nothing and that nothing depends on.

Of requests alike and eligible, a planning pass seats at most as many as the train's
open and frozen releases hold, and the first one that finds no seat is followed by none
that does (``releases.planner``: a seat once given goes only to a more urgent request,
and requests alike are taken in planning order). So the planner decides the same when
it is given only the first ``seats + 1`` of them in planning order (``limit``). Requests
no train takes, or whose status no train they could go to plans, it never seats at all
(limit 0), whether or not routing would try them elsewhere.
What each request left out would be told is what an *example* of it is told: a request
with the fields the waiting reasons read (priority, department, type, source, status)
placed last in planning order, where it finds no seat either (``example``).
"""
from __future__ import annotations

import datetime as dt
import heapq
import operator
from collections.abc import Hashable, Iterable, Sequence

from config.trains import Train
from releases.calendar import PlannedRelease
from releases.candidate import Candidate, Decision, planning_order
from releases.routing import fallbacks, plan_trains, train_for
from releases.seats import buckets

__all__ = [
    "EXAMPLE_PREFIX", "LOOKS", "Kinds", "Looks", "Sample", "looks", "plan_sampled", "refuse_planned_examples", "sample_part",
    "sampled",
]

EXAMPLE_PREFIX = "\U0010ffff"
"""Keys of examples start with it: after every real key, so an example is last in planning order."""

Looks = tuple[str | None, str | None, str | None, str | None, str]
"""What a waiting reason reads of a request: the values of ``LOOKS``."""
LOOKS = ("priority", "department", "type", "source", "status")
_looks = operator.attrgetter(*LOOKS)


def looks(candidate: Candidate) -> Looks:
    found: Looks = _looks(candidate)
    return found


class Kinds:
    """Which kind of request each is to the planner, for trains planned with these releases."""

    def __init__(self, plans: Sequence[tuple[Train, Sequence[PlannedRelease]]]) -> None:
        self.trains = [train for train, _ in plans]
        self.taking = {
            train.name: [release for release in releases if release.state in ("open", "frozen")] for train, releases in plans
        }
        """Each train's releases that may take a request: open or frozen."""
        self._known: dict[Looks, tuple[Hashable, int] | None] = {}

    def kind(self, candidate: Candidate) -> tuple[Hashable, int] | None:
        """The kind of an unassigned, movable request that depends on nothing and that nothing
        depends on, and how many of that kind the planner must see (the first in planning
        order); None: the planner must see it, whatever (a train takes it for its priority)."""
        seen = looks(candidate)
        if seen not in self._known:
            self._known[seen] = self._kind(candidate)
        return self._known[seen]

    def _kind(self, candidate: Candidate) -> tuple[Hashable, int] | None:
        routed = train_for(candidate, self.trains)
        if routed is None:
            return ("no train",), 0
        others = fallbacks(candidate, routed, self.trains)
        if not any(candidate.status in train.eligible_statuses for train in [routed, *others]):
            return ("not eligible", routed.name), 0  # no train it could go to plans its status
        if others:
            return None
        releases = self.taking[routed.name]
        kind = (routed.name, planning_order(candidate)[0], buckets(candidate, releases))
        return kind, sum(release.capacity for release in releases) + 1

    @staticmethod
    def example(seen: Looks, number: int) -> Candidate:
        """A request that looks like ``seen`` to the waiting reasons, last in planning order."""
        priority, department, type_, source, status = seen
        return Candidate(key=f"{EXAMPLE_PREFIX}{number:09d}", status=status, priority=priority, created_at=None,
                         release=None, pinned=False, deleted=False, department=department, type=type_, source=source)


class _Last:
    """A heap entry whose heap top is the request last in planning order."""

    __slots__ = ("candidate", "order")

    def __init__(self, candidate: Candidate) -> None:
        self.candidate = candidate
        self.order = planning_order(candidate)

    def __lt__(self, other: _Last) -> bool:
        return self.order > other.order


class Sample:
    """What the planner must see of requests given one by one, in any order: every one it
    must see whole, the first of each kind up to its limit, and an example of each look
    among the rest (``Kinds``). Memory grows with the kinds and the seats, not the requests."""

    def __init__(self, kinds: Kinds) -> None:
        self.kinds = kinds
        self.whole: list[Candidate] = []
        self._first: dict[Hashable, list[_Last]] = {}
        self._left: set[Looks] = set()
        self.left = 0
        """How many requests were left out."""

    def add(self, candidate: Candidate) -> None:
        """Take an unassigned, movable request that depends on nothing and that nothing depends on."""
        found = self.kinds.kind(candidate)
        if found is None:
            self.whole.append(candidate)
            return
        kind, limit = found
        heap = self._first.setdefault(kind, [])
        out = candidate
        if len(heap) < limit:
            heapq.heappush(heap, _Last(candidate))
            return
        if heap and planning_order(candidate) < heap[0].order:
            out = heapq.heapreplace(heap, _Last(candidate)).candidate
        self._left.add(looks(out))
        self.left += 1

    def add_all(self, candidates: Iterable[Candidate]) -> None:
        for candidate in candidates:
            self.add(candidate)

    def kept(self) -> list[Candidate]:
        """The requests given that the planner must see."""
        return [*self.whole, *(entry.candidate for heap in self._first.values() for entry in heap)]

    def examples(self) -> dict[Looks, Candidate]:
        """One example for each look among the requests left out (see ``Kinds.example``)."""
        ordered = sorted(self._left, key=lambda seen: tuple("" if part is None else f"={part}" for part in seen))
        return {seen: Kinds.example(seen, number) for number, seen in enumerate(ordered)}


def sample_part(candidate: Candidate, *, linked: bool) -> str:
    """Where a request goes when the planner is given a sample: ``whole`` (in a release, pinned,
    or ``linked`` by a dependency, either side), ``sample`` (unassigned and movable: a ``Sample``
    may leave it out) or ``none`` (unassigned, and started, finished or deleted: the planner
    neither moves it nor says why it waits)."""
    if linked or candidate.pinned or candidate.release is not None:
        return "whole"
    return "sample" if candidate.movable else "none"


def sampled(candidates: Sequence[Candidate]) -> tuple[list[Candidate], list[Candidate]]:
    """The requests a ``Sample`` may thin out, and those the planner sees whole (``sample_part``)."""
    prerequisites = {key for candidate in candidates for key in candidate.depends_on}
    found: dict[str, list[Candidate]] = {"sample": [], "whole": [], "none": []}
    for candidate in candidates:
        linked = bool(candidate.depends_on or candidate.unknown) or candidate.key in prerequisites
        found[sample_part(candidate, linked=linked)].append(candidate)
    return found["sample"], found["whole"]


def refuse_planned_examples(decisions: Iterable[Decision]) -> None:
    """An example only ever finds no seat; one placed means the requests it speaks for were needed."""
    if any(decision.key.startswith(EXAMPLE_PREFIX) for decision in decisions):
        raise RuntimeError("the planner placed an example request: the requests it stands for cannot be left out")


def plan_sampled(
    plans: Sequence[tuple[Train, Sequence[PlannedRelease]]], candidates: Sequence[Candidate], *, now: dt.datetime
) -> tuple[list[Decision], dict[str, str]]:
    """``plan_trains`` with its waiting reasons, from a sample of the requests: the same result.

    The store plans this way, reading the requests one by one (``sync.plan_input``); this is
    the same in memory, for checking that the sample decides as the whole does.
    """
    kinds = Kinds(plans)
    sample = Sample(kinds)
    thinned, rest = sampled(candidates)
    sample.add_all(thinned)
    examples = sample.examples()
    waiting: dict[str, str] = {}
    decisions = plan_trains(plans, [*rest, *sample.kept(), *examples.values()], now=now, waiting=waiting)
    refuse_planned_examples(decisions)
    kept = {candidate.key for candidate in sample.kept()}
    for candidate in thinned:
        if candidate.key not in kept:
            waiting[candidate.key] = waiting[examples[looks(candidate)].key]
    return decisions, {key: why for key, why in waiting.items() if not key.startswith(EXAMPLE_PREFIX)}
