"""Which train plans which request, and planning every train at once. Pure, like the planner.

A request belongs to the first train, in config order, whose ``match`` accepts its
priority, department, type and source (a train without ``match`` takes everything,
and is last). Each train is planned with only its own requests and its own releases
(``releases.planner.plan_releases``). Where a request sits decides first:

- a request that may not be moved (pinned, started, closed, rejected, deleted) is
  handled by the train whose release holds it, whatever its match says now (a pin
  wins; started work is not pulled out; rule 1 of the planner lets finished ones go);
- a movable request in another train's release (its priority, department or type
  changed) is planned by its new train; it leaves the old release with the reason
  "routed to train <name>", or for a request no train takes, "no train takes it".

Urgency is monotone: raising a request's priority never ships it later. A train that
takes a request *because* of its priority (the hotfix train for critical requests)
plans it only when that gives a date no later than the train that would take it at a
lower priority: a request already in that other train's release keeps its place
unless the new train gives an earlier or equal date, and a request not yet planned
goes where it ships first (on a tie, to the first train in config order). The reason
says which train was passed over and why.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Hashable, Mapping, Sequence

from config.trains import Capacity, Train
from mapping.model import PRIORITIES
from releases.dependencies import Holds, holds_for, violations
from releases.planner import (
    Candidate,
    Decision,
    PlannedRelease,
    TrainRequests,
    plan_releases,
    plan_requests,
    planning_order,
)
from releases.seats import buckets

__all__ = ["fallbacks", "plan_trains", "train_for"]


def train_for(candidate: Candidate, trains: Sequence[Train]) -> Train | None:
    """The first train whose match takes ``candidate``, or None if none does."""
    for train in trains:
        if train.match is None or train.match.accepts(
            priority=candidate.priority, department=candidate.department,
            type=candidate.type, source=candidate.source,
        ):
            return train
    return None


def _unrouted(candidate: Candidate) -> str:
    return (
        f"no train takes it (priority {candidate.priority or 'none'}, department {candidate.department or 'none'}, "
        f"type {candidate.type or 'none'}, source {candidate.source or 'unknown'})"
    )


def fallbacks(candidate: Candidate, routed: Train, trains: Sequence[Train]) -> list[Train]:
    """Trains other than ``routed`` that would take ``candidate`` at a lower priority, in config order."""
    found: list[Train] = []
    for lower in [*PRIORITIES[_rank(candidate) + 1:], None]:
        train = train_for(dataclasses.replace(candidate, priority=lower), trains)
        if train is not None and train.name != routed.name and train not in found:
            found.append(train)
    return found


SWEEPS = 4
"""Passes over the requests a train takes for their priority, trying each in the other trains."""
ROUNDS = 25
"""Planning passes at most, when dependencies make one pass's result the next one's input."""


def plan_trains(
    plans: Sequence[tuple[Train, Sequence[PlannedRelease]]],
    candidates: Sequence[Candidate],
    *,
    now: dt.datetime,
    waiting: dict[str, str] | None = None,
) -> list[Decision]:
    """Route every request to its train and plan each train; only changes, sorted by key.

    ``plans`` pairs each train (in config order) with its releases, as for
    ``plan_releases``. ``waiting``, if given, is filled with key -> why for every
    movable request left without a release ("no train takes it", or the planner's reason).

    With dependencies (``releases.dependencies``), where a prerequisite lands decides
    where its dependents may go: passes repeat, each from the last one's result, until
    nothing moves (prerequisites before dependents, one level a pass). The decisions are
    the difference between the requests as given and the last pass, with the reason of
    each request's last move.
    """
    trains = [train for train, _ in plans]
    if len({train.name for train in trains}) != len(trains):
        raise ValueError("plans: the same train is listed twice")
    if not any(c.depends_on or c.unknown for c in candidates):
        return _plan_pass(plans, candidates, now=now, waiting=waiting, holds=None)
    deploys = {release.id: release.deploy_at for _, releases in plans for release in releases}
    original = {c.key: c.release for c in candidates}
    state = list(candidates)
    reasons: dict[str, str] = {}
    waited: dict[str, str] = {}
    for _ in range(ROUNDS):
        waited = {}
        decisions = _plan_pass(plans, state, now=now, waiting=waited, holds=holds_for(state, deploys))
        if not decisions:
            break
        reasons.update((d.key, d.reason) for d in decisions)
        moved = {d.key: d.release for d in decisions}
        state = [dataclasses.replace(c, release=moved[c.key]) if c.key in moved else c for c in state]
    # Whatever the passes reached, nothing ships against its dependencies: a request still
    # placed before a prerequisite (or while one has no release) leaves, and so on down.
    names = {release.id: release.name for _, releases in plans for release in releases}
    while broken := violations(state, deploys):
        for candidate in state:
            if candidate.key in broken and candidate.release is not None:
                reasons[candidate.key] = f"left release {names[candidate.release]}: {broken[candidate.key]}"
                waited[candidate.key] = broken[candidate.key]
        state = [dataclasses.replace(c, release=None) if c.key in broken else c for c in state]
    if waiting is not None:
        waiting.update(waited)
    return [Decision(c.key, c.release, reasons[c.key]) for c in sorted(state, key=lambda c: c.key)
            if c.release != original[c.key]]



def _plan_pass(
    plans: Sequence[tuple[Train, Sequence[PlannedRelease]]],
    candidates: Sequence[Candidate],
    *,
    now: dt.datetime,
    waiting: dict[str, str] | None,
    holds: Holds | None,
) -> list[Decision]:
    """One planning pass over every train (see ``plan_trains``)."""
    trains = [train for train, _ in plans]
    owner = {release.id: train.name for train, releases in plans for release in releases}
    names = {release.id: release.name for _, releases in plans for release in releases}
    deploys = {release.id: release.deploy_at for _, releases in plans for release in releases}
    mine: dict[str, list[Candidate]] = {train.name: [] for train in trains}
    stay: list[Candidate] = []  # in no train's hands: only the planner's rule 1 may apply
    unrouted: list[Decision] = []
    urgent: dict[str, tuple[Candidate, str, list[Train]]] = {}  # routed by priority, with the trains passed over
    # Which train takes a request, and which would at a lower priority, depend only on what
    # a match reads: asked once for each such combination, not once per request.
    routes: dict[tuple[str | None, ...], tuple[Train | None, list[Train]]] = {}
    for candidate in candidates:
        matched = (candidate.priority, candidate.department, candidate.type, candidate.source)
        if matched not in routes:
            found = train_for(candidate, trains)
            routes[matched] = found, fallbacks(candidate, found, trains) if found is not None else []
        routed, passed_over = routes[matched]
        holder = owner.get(candidate.release or "")
        if holder is not None and (not candidate.movable or (routed is not None and routed.name == holder)):
            mine[holder].append(candidate)
        elif routed is not None:
            mine[routed.name].append(candidate)
            if candidate.movable and passed_over:
                urgent[candidate.key] = (candidate, routed.name, passed_over)
        elif candidate.movable and candidate.release is not None:
            where = names.get(candidate.release, candidate.release)
            unrouted.append(Decision(candidate.key, None, f"left release {where}: {_unrouted(candidate)}"))
            if waiting is not None:
                waiting[candidate.key] = _unrouted(candidate)
        else:
            if waiting is not None and candidate.movable:
                waiting[candidate.key] = _unrouted(candidate)
            stay.append(candidate)

    by_name = {train.name: (train, releases) for train, releases in plans}
    elsewhere = {
        train.name: {release.id: (release.name, f"routed to train {train.name}")
                     for other, others in plans if other.name != train.name for release in others}
        for train in trains
    }
    stayed = plan_releases([], stay, eligible_statuses=set(), now=now)
    requests = {train.name: TrainRequests(mine[train.name], eligible_statuses=set(train.eligible_statuses), holds=holds)
                for train in trains}

    def plan_train(name: str, *, explain: bool = False) -> tuple[list[Decision], dict[str, str]]:
        """One train's plan of its requests now; with ``explain``, why each one left out waits
        (the decisions are the same without: trials leave the reasons out)."""
        train, releases = by_name[name]
        waited: dict[str, str] = {}
        decisions = plan_requests(
            list(releases), requests[name], now=now,
            expedite=set(train.expedite.priorities) if train.expedite else set(), elsewhere=elsewhere[name],
            waiting=waited if explain else None,
        )
        return decisions, waited

    def combined(results: Mapping[str, tuple[list[Decision], dict[str, str]]]) -> tuple[dict[str, Decision], dict[str, str]]:
        decided = {d.key: d for d in unrouted}
        waited: dict[str, str] = {}
        for train in trains:
            decisions, train_waited = results[train.name]
            decided.update((d.key, d) for d in decisions)
            waited.update(train_waited)
        decided.update((d.key, d) for d in stayed)
        return decided, waited

    results = {train.name: plan_train(train.name) for train in trains}
    decided, _ = combined(results)
    notes: dict[str, str] = {}
    placed = {key: routed_name for key, (_, routed_name, _) in urgent.items()}
    earliest = {train.name: min(r.deploy_at for r in releases if r.state in ("open", "frozen"))
                for train, releases in plans if any(r.state in ("open", "frozen") for r in releases)}
    # Sweeps until stable: a request moved to another train frees a seat an earlier one
    # may now take, so each is tried again until none ships sooner elsewhere. A trial
    # plans again only the two trains it changes, from their requests sorted out once
    # (``releases.intake``): one added to a train, one removed from the other. Trials go
    # in planning order; in a train without department quotas, a trial in which a request
    # finds no seat at all tells that no request after it in the planning order finds one
    # there either, until that train's requests change: those trials are skipped.
    revision = dict.fromkeys(by_name, 0)
    no_seat: dict[tuple[str, Hashable], tuple[int, tuple[int, dt.datetime, str]]] = {}
    for _ in range(SWEEPS):
        changed = False
        for key in sorted(urgent, key=lambda k: planning_order(urgent[k][0])):
            candidate, routed_name, passed = urgent[key]
            shipped = _deploy(decided, candidate, deploys)
            for option in [routed_name, *(f.name for f in passed)]:
                here = placed[key]
                if option == here or option not in earliest:
                    continue
                if shipped is not None and (earliest[option] > shipped or (earliest[option] == shipped and option != routed_name)):
                    continue  # that train cannot ship it sooner: no trial needed
                eligible = candidate.status in by_name[option][0].eligible_statuses
                seated = owner.get(candidate.release or "") == option  # a seat it holds there is kept
                if not eligible and not seated:
                    continue  # that train would not plan it at all
                # Only a request that train would plan afresh (eligible there, holding none of its
                # seats, needing nothing first) compares with the others in its planning order; in
                # a train with department quotas, only with those of the same quota in each release.
                comparable = eligible and not seated and not (candidate.depends_on or candidate.unknown)
                alike = (option, _quotas(candidate, *by_name[option]))
                known = no_seat.get(alike) if comparable else None
                if known is not None and known[0] == revision[option] and planning_order(candidate) >= known[1]:
                    continue  # an earlier request found no seat there: neither can this one
                kept = requests[here], requests[option]
                requests[here], requests[option] = kept[0].minus(candidate), kept[1].plus(candidate)
                if shipped is None and not candidate.release:
                    # It has no seat where it is: that train plans the same without it.
                    left = ([d for d in results[here][0] if d.key != key], results[here][1])
                else:
                    left = plan_train(here)
                trial_results = {**results, here: left, option: plan_train(option)}
                trial, _ = combined(trial_results)
                there = _deploy(trial, candidate, deploys)
                # Its own train on a tie; another train only when strictly sooner.
                if there is not None and (shipped is None or there < shipped or (there == shipped and option == routed_name)):
                    results, decided, placed[key], changed = trial_results, trial, option, True
                    revision[here] += 1
                    revision[option] += 1
                    notes.pop(key, None)
                    if option != routed_name:
                        notes[key] = f"not train {routed_name}: " + (
                            f"its first release with room deploys {_when(shipped)}" if shipped else "it has no release with room")
                    break
                requests[here], requests[option] = kept
                if there is None and comparable:
                    no_seat[alike] = (revision[option], planning_order(candidate))
        if not changed:
            break
    if waiting is not None:
        # Why each request left out waits, from the trains as the sweeps left them.
        waiting.update(combined({train.name: plan_train(train.name, explain=True) for train in trains})[1])
    decisions = [
        dataclasses.replace(d, reason=f"{d.reason} ({notes[d.key]})")
        if d.key in notes and d.release is not None else d
        for d in decided.values()
    ]
    return sorted(decisions, key=lambda decision: decision.key)


def _quotas(candidate: Candidate, train: Train, releases: Sequence[PlannedRelease]) -> Hashable:
    """Without department quotas, nothing; with them, the request's quota in each release of
    the train and whether it may enter a frozen one: which requests a failed trial speaks for."""
    if not isinstance(train.capacity, Capacity):
        return None
    expedited = train.expedite is not None and candidate.priority in train.expedite.priorities
    return expedited, buckets(candidate, releases)


def _rank(candidate: Candidate) -> int:
    return PRIORITIES.index(candidate.priority) if candidate.priority in PRIORITIES else len(PRIORITIES)


def _deploy(decided: Mapping[str, Decision], candidate: Candidate, deploys: Mapping[str, dt.datetime]) -> dt.datetime | None:
    """When ``candidate`` deploys under these decisions (None: unplanned)."""
    release = decided[candidate.key].release if candidate.key in decided else candidate.release
    return deploys.get(release) if release is not None else None


def _when(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%d}"
