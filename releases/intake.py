"""A train's requests sorted out once for the planner, so that planning them again is cheap.

Most requests of a large store are new to the plan: no release, a status the train plans,
nothing they wait for. The planner only ever queues those, in planning order, and in a
full train nearly all of them find no seat. ``TrainRequests`` keeps them apart, already
in planning order (``fresh``), so ``releases.planner.plan_requests`` neither sorts them
again nor looks at them one by one once their priority can find no seat. Requests that
change nothing unless the waiting reasons are asked for (no release and not planned:
a status that is not eligible, finished or started, or waiting on a prerequisite) are
kept apart too (``idle``); the rest go through the planner's rules one by one.

Routing plans the same train many times with one request more or less: ``plus`` and
``minus`` make the new set by copying the lists, not by sorting them again.
"""
from __future__ import annotations

import bisect
from collections.abc import Collection, Iterable

from mapping.model import PRIORITIES
from releases.candidate import STARTED, Candidate, planning_order
from releases.dependencies import Holds

__all__ = ["TrainRequests"]

_FINISHED = ("rejected", "closed")


def _rank(candidate: Candidate) -> int:
    return planning_order(candidate)[0]


class TrainRequests:
    """The requests one train plans in one pass, with the train's eligible statuses and
    what dependencies ask (``holds``), sorted out for ``plan_requests``."""

    def __init__(self, candidates: Iterable[Candidate], *, eligible_statuses: Collection[str],
                 holds: Holds | None = None) -> None:
        self.eligible_statuses = eligible_statuses
        self.eligible = frozenset(eligible_statuses)
        self.holds = holds or Holds()
        fresh: list[Candidate] = []
        idle: list[Candidate] = []
        rest: list[Candidate] = []
        keys: set[str] = set()
        count = 0
        for candidate in candidates:
            count += 1
            keys.add(candidate.key)
            [fresh, idle, rest][self._kind(candidate)].append(candidate)
        fresh.sort(key=planning_order)
        self.unique = len(keys) == count
        """Whether no request key was given twice (the planner refuses the set otherwise)."""
        self._set(fresh, idle, rest)

    def _set(self, fresh: list[Candidate], idle: list[Candidate], rest: list[Candidate]) -> None:
        self.fresh = fresh
        """Requests the planner queues as they are: no release, eligible, nothing awaited or bounded; in planning order."""
        self.idle = idle
        """Requests without a release that the planner leaves as they are (only their waiting reason is said)."""
        self.rest = rest
        """Every other request: in a release, or bound by a prerequisite's date."""
        self.starts = [bisect.bisect_left(fresh, rank, key=_rank) for rank in range(len(PRIORITIES) + 2)]
        """Where each priority rank begins in ``fresh`` (the last: its end)."""

    def _kind(self, candidate: Candidate) -> int:
        """0: fresh, 1: idle, 2: rest (see the attributes)."""
        if candidate.release is not None:
            return 2
        if candidate.status in STARTED or candidate.deleted or candidate.status in _FINISHED:
            return 1
        if candidate.status not in self.eligible or candidate.key in self.holds.wait:
            return 1
        return 2 if candidate.key in self.holds.not_before else 0

    def plus(self, candidate: Candidate) -> TrainRequests:
        """These requests and ``candidate`` (whose key must not be among them)."""
        lists = [self.fresh, self.idle, self.rest]
        kind = self._kind(candidate)
        if kind == 0:
            at = bisect.bisect_left(self.fresh, planning_order(candidate), key=planning_order)
            lists[0] = list(self.fresh)
            lists[0].insert(at, candidate)
        else:
            lists[kind] = [*lists[kind], candidate]
        return self._like(*lists)

    def minus(self, candidate: Candidate) -> TrainRequests:
        """These requests without ``candidate`` (one of them)."""
        lists = [self.fresh, self.idle, self.rest]
        kind = self._kind(candidate)
        if kind == 0:
            at = bisect.bisect_left(self.fresh, planning_order(candidate), key=planning_order)
            if at == len(self.fresh) or self.fresh[at].key != candidate.key:
                raise ValueError(f"{candidate.key} is not among these requests")
            lists[0] = list(self.fresh)
            del lists[0][at]
        else:
            if not any(c.key == candidate.key for c in lists[kind]):
                raise ValueError(f"{candidate.key} is not among these requests")
            lists[kind] = [c for c in lists[kind] if c.key != candidate.key]
        return self._like(*lists)

    def _like(self, fresh: list[Candidate], idle: list[Candidate], rest: list[Candidate]) -> TrainRequests:
        made = TrainRequests((), eligible_statuses=self.eligible_statuses, holds=self.holds)
        made.unique = self.unique
        made._set(fresh, idle, rest)
        return made
