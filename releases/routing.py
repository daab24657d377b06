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
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from config.trains import Train
from releases.planner import Candidate, Decision, PlannedRelease, plan_releases

__all__ = ["plan_trains", "train_for"]


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
    """
    trains = [train for train, _ in plans]
    if len({train.name for train in trains}) != len(trains):
        raise ValueError("plans: the same train is listed twice")
    owner = {release.id: train.name for train, releases in plans for release in releases}
    names = {release.id: release.name for _, releases in plans for release in releases}
    mine: dict[str, list[Candidate]] = {train.name: [] for train in trains}
    stay: list[Candidate] = []  # in no train's hands: only the planner's rule 1 may apply
    decisions: list[Decision] = []
    for candidate in candidates:
        routed = train_for(candidate, trains)
        holder = owner.get(candidate.release or "")
        if holder is not None and (not candidate.movable or (routed is not None and routed.name == holder)):
            mine[holder].append(candidate)
        elif routed is not None:
            mine[routed.name].append(candidate)
        elif candidate.movable and candidate.release is not None:
            where = names.get(candidate.release, candidate.release)
            decisions.append(Decision(candidate.key, None, f"left release {where}: {_unrouted(candidate)}"))
            if waiting is not None:
                waiting[candidate.key] = _unrouted(candidate)
        else:
            if waiting is not None and candidate.movable:
                waiting[candidate.key] = _unrouted(candidate)
            stay.append(candidate)
    for train, releases in plans:
        elsewhere = {
            release.id: (release.name, f"routed to train {train.name}")
            for other, others in plans if other.name != train.name for release in others
        }
        decisions += plan_releases(
            list(releases), mine[train.name],
            eligible_statuses=set(train.eligible_statuses), now=now,
            expedite=set(train.expedite.priorities) if train.expedite else set(), elsewhere=elsewhere,
            waiting=waiting,
        )
    decisions += plan_releases([], stay, eligible_statuses=set(), now=now)
    return sorted(decisions, key=lambda decision: decision.key)
