"""Dependencies between requests, as the planner needs them. Pure, like the planner.

A request may depend on others, in any system (``Candidate.depends_on`` holds the store
keys the references resolved to, ``Candidate.unknown`` the references that named
nothing relsync knows). ``holds_for`` turns that graph and where each request sits into
what the planner must respect:

- a request never goes into a release that deploys before the release of any request it
  depends on (``not_before``, with ``after`` saying which prerequisite sets the date);
- it waits, unplanned, while a prerequisite is unplanned, rejected, deleted or unknown,
  or is itself waiting on a cycle (``wait``, the reason in plain text);
- every member of a dependency cycle waits, and the reason names the whole cycle;
- nobody bumps a prerequisite out of its seat (``protected``): adding a dependency never
  moves the prerequisite, and a dependent never loses the ground it was planned on.

A prerequisite that is deployed or closed is satisfied whatever its release; so is one
in a release the planner no longer holds (a past release: it has shipped).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


class Candidate(Protocol):
    """What dependencies read of a request (``releases.planner.Candidate`` has it all)."""

    @property
    def key(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def release(self) -> str | None: ...
    @property
    def deleted(self) -> bool: ...
    @property
    def depends_on(self) -> tuple[str, ...]: ...
    @property
    def unknown(self) -> tuple[str, ...]: ...

__all__ = ["Holds", "cycles", "holds_for"]

DONE = frozenset({"deployed", "closed"})


@dataclass(frozen=True)
class Holds:
    """What dependencies ask of one planning pass."""

    wait: Mapping[str, str] = field(default_factory=dict)
    not_before: Mapping[str, dt.datetime] = field(default_factory=dict)
    after: Mapping[str, str] = field(default_factory=dict)
    protected: frozenset[str] = frozenset()

    def allowed(self, key: str, release_deploys: dt.datetime) -> bool:
        """Whether ``key`` may sit in a release deploying then."""
        bound = self.not_before.get(key)
        return bound is None or release_deploys >= bound


def cycles(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Every cycle of the graph (strongly connected parts of two or more, or a self-loop),
    each as its members in a path order starting at the smallest key; iterative Tarjan."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            successors = sorted(graph.get(node, ()))
            if position < len(successors):
                work.append((node, position + 1))
                nxt = successors[position]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                part: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    part.append(member)
                    if member == node:
                        break
                if len(part) > 1 or node in graph.get(node, ()):
                    found.append(_path_order(part, graph))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return sorted(found)


def _path_order(part: list[str], graph: Mapping[str, Sequence[str]]) -> list[str]:
    """The members of one cycle in an order that follows its edges, from the smallest key."""
    members = set(part)
    ordered = [min(part)]
    while len(ordered) < len(part):
        nxt = sorted(n for n in graph.get(ordered[-1], ()) if n in members and n not in ordered)
        if not nxt:  # a strongly connected part that is not one simple cycle: list the rest in key order
            ordered += sorted(members - set(ordered))
            break
        ordered.append(nxt[0])
    return ordered


def holds_for(candidates: Sequence[Candidate], deploys: Mapping[str, dt.datetime]) -> Holds:
    """What the dependencies among ``candidates`` ask of a planning pass, given where each sits.

    ``deploys``: release id -> deploy moment, for every release the planner holds.
    """
    by_key = {c.key: c for c in candidates}
    graph = {c.key: [d for d in c.depends_on if d in by_key] for c in candidates if c.depends_on}
    in_cycle: dict[str, list[str]] = {}
    for cycle in cycles(graph):
        for member in cycle:
            in_cycle[member] = cycle
    wait: dict[str, str] = {}
    not_before: dict[str, dt.datetime] = {}
    after: dict[str, str] = {}
    for candidate in candidates:
        if not (candidate.depends_on or candidate.unknown):
            continue
        key = candidate.key
        if key in in_cycle:
            cycle = in_cycle[key]
            wait[key] = "dependency cycle: " + " -> ".join([*cycle, cycle[0]])
            continue
        reasons: list[str] = [f"depends on {ref}, which relsync does not know" for ref in candidate.unknown]
        for prerequisite in candidate.depends_on:
            other = by_key.get(prerequisite)
            if other is None:
                reasons.append(f"depends on {prerequisite}, which relsync does not know")
            elif other.deleted:
                reasons.append(f"depends on {prerequisite}, deleted in its source")
            elif other.status == "rejected":
                reasons.append(f"depends on {prerequisite}, which was rejected")
            elif other.status in DONE:
                continue
            elif prerequisite in in_cycle:
                reasons.append(f"depends on {prerequisite}, which is in a dependency cycle")
            elif other.release is None:
                reasons.append(f"depends on {prerequisite}, which has no release yet")
            elif other.release in deploys:
                moment = deploys[other.release]
                if key not in not_before or moment > not_before[key]:
                    not_before[key] = moment
                    after[key] = f"depends on {prerequisite}, which deploys {moment:%Y-%m-%d}"
        if reasons:
            wait[key] = "dependency: " + "; ".join(reasons)
    protected = frozenset(prerequisite for prerequisites in graph.values() for prerequisite in prerequisites)
    return Holds(wait=wait, not_before=not_before, after=after, protected=protected)


def violations(candidates: Sequence[Candidate], deploys: Mapping[str, dt.datetime]) -> dict[str, str]:
    """Requests placed against their dependencies (waiting, or before a prerequisite's release), with why."""
    holds = holds_for(candidates, deploys)
    found: dict[str, str] = {}
    for candidate in candidates:
        if candidate.release is None or candidate.release not in deploys or candidate.status in DONE:
            continue
        if candidate.key in holds.wait:
            found[candidate.key] = holds.wait[candidate.key]
        elif not holds.allowed(candidate.key, deploys[candidate.release]):
            found[candidate.key] = f"dependency: it {holds.after[candidate.key]}"
    return found
