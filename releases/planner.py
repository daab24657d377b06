"""Planning change requests into one train's releases. Pure and deterministic: no I/O, no clock.

``plan_releases`` takes the train's releases (from ``materialize_releases``; a user
may have cancelled some) and every request it may move, and returns a ``Decision``
only for the requests whose assignment changes, sorted by key. Same input, same
output, whatever the order of the lists. ``releases.routing`` decides which requests each
train gets, and plans a train many times with one request more or less: it sorts each
train's requests out once (``releases.intake.TrainRequests``) and calls ``plan_requests``,
which decides the same. The rules, first match wins:

1. Deleted or rejected: the request leaves its release, even a pinned one (a pin says
   *when* a request ships, not *whether*; a cancelled request would otherwise hold
   capacity and appear in release notes). Closed: it leaves a release that has not
   shipped (planned, open, frozen, cancelled); in a deploying or past release it
   stays, as the record of what shipped with it.
2. Started (in_progress, testing, deployed): keeps its release, whatever it is but a
   cancelled one (which it leaves), and is never re-planned; an unassigned started
   request stays unassigned.
3. Pinned: never moves, and counts against its release's capacity and its
   department's quota. The one exception: its release was cancelled, so the pin can
   never be honoured; the request is re-planned and the pin removed (rule 5).
4. Assigned to a live release (planned, open, frozen, deploying): keeps it, so
   requesters get a predictable date, except as rule 7 says. If the release holds
   more than a department quota or its total capacity (capacity lowered, pins added),
   the movable requests (not pinned, not started) leave, lowest priority then newest
   first, until it fits (quotas first, then the total); eligible ones are re-planned,
   others are left unassigned.
5. Assigned to a release that is not live here (past, cancelled, unknown, or one of
   another train, listed in ``elsewhere``): re-planned if its status is eligible,
   otherwise it leaves.
6. Unassigned and eligible: planned.
7. A request being planned that finds no room takes the seat of a strictly
   lower-priority, movable request in an earlier release it may enter (the lowest
   priority, newest one whose seat gives room: of its own department quota when that
   is full); that request is planned again from there, so it lands in the next
   release with room. Equal priorities never bump each other: age decides only among
   requests planned in the same pass.

Planning takes the requests of rules 3-6 in priority order (critical, high, medium,
low, none), then ``created_at`` ascending (unknown last), then key, and puts each into
the earliest release it may enter with room in both its department's quota and the
total. Any request may enter an *open* release (state open and ``now`` before its
freeze). A request whose priority is in ``expedite`` may also enter a *frozen* one
(``now`` between its freeze and its deploy), within capacity, bumping as rule 7 says.
Planned, deploying and cancelled releases never receive a request. Without room
anywhere the request stays, or becomes, unassigned.

Capacity: ``capacity`` is the total; ``quotas`` give departments (compared ignoring
case) their own seats within it, and every other department shares the rest
(``capacity`` minus the quotas).

Given a ``waiting`` dict, the planner also says why each request it may move is left
without a release after the pass (plain text): its status is
not eligible, no release is open to it (frozen, not yet open), or every release it may
enter is full in total or in its department's quota.
"""
from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Collection, Hashable, Mapping

from mapping.model import PRIORITIES
from releases.calendar import (
    PhaseWindow,
    PlannedRelease,
    materialize_releases,
    require_utc,
)
from releases.candidate import STARTED, Candidate, Decision, planning_order
from releases.dependencies import Holds
from releases.intake import TrainRequests
from releases.seats import Seats, bucket, buckets, limit, waiting_reason

__all__ = [
    "Candidate",
    "Decision",
    "PhaseWindow",
    "PlannedRelease",
    "TrainRequests",
    "bucket",
    "limit",
    "materialize_releases",
    "plan_releases",
    "plan_requests",
    "planning_order",
]

LIVE_STATES: frozenset[str] = frozenset({"planned", "open", "frozen", "deploying"})
UNSHIPPED_STATES: frozenset[str] = frozenset({"planned", "open", "frozen", "cancelled"})


def _why(candidate: Candidate) -> str:
    created = candidate.created()
    return (
        f"priority {candidate.priority or 'none'}, status {candidate.status}, "
        f"created {created.date().isoformat() if created else 'unknown'}"
    )


def _leaves(candidate: Candidate, releases: Mapping[str, PlannedRelease]) -> str | None:
    """Why a terminal request leaves its release (rule 1), or None if it does not."""
    release = releases.get(candidate.release or "")
    pin = " (pin removed)" if candidate.pinned else ""
    if candidate.deleted:
        return f"deleted in source{pin}"
    if candidate.status == "rejected":
        return f"status rejected{pin}"
    if candidate.status == "closed" and release is not None and release.state in UNSHIPPED_STATES:
        return f"status closed before release{pin}"
    return None


def plan_releases(
    releases: list[PlannedRelease],
    candidates: list[Candidate],
    *,
    eligible_statuses: Collection[str],
    now: dt.datetime,
    expedite: Collection[str] = (),
    elsewhere: Mapping[str, tuple[str, str]] | None = None,
    waiting: dict[str, str] | None = None,
    holds: Holds | None = None,
) -> list[Decision]:
    """Decide release assignments (see the module docstring); only changes are returned.

    Args:
        releases: the train's releases; states other than live ones and cancelled are ignored.
        candidates: every request this train may place, move or keep.
        eligible_statuses: statuses that may be planned.
        now: the planning time (timezone-aware).
        expedite: priorities that may enter a frozen release.
        elsewhere: release id -> (name, why) for releases of other trains whose requests
            are planned here (routing moved them).
        waiting: if given, filled with key -> why for every movable request left without
            a release (the decisions are the same with or without it).
        holds: what dependencies ask (``releases.dependencies``): requests that wait,
            the earliest deploy each may take, the prerequisites each may not bump.
    """
    return plan_requests(releases, TrainRequests(candidates, eligible_statuses=eligible_statuses, holds=holds),
                         now=now, expedite=expedite, elsewhere=elsewhere, waiting=waiting)


def plan_requests(
    releases: list[PlannedRelease],
    requests: TrainRequests,
    *,
    now: dt.datetime,
    expedite: Collection[str] = (),
    elsewhere: Mapping[str, tuple[str, str]] | None = None,
    waiting: dict[str, str] | None = None,
) -> list[Decision]:
    """``plan_releases`` of requests sorted out beforehand (``releases.intake``), the same decisions."""
    holds = requests.holds
    eligible_statuses = requests.eligible
    now = require_utc(now)
    elsewhere = elsewhere or {}
    known = {release.id: release for release in releases if release.state in LIVE_STATES | {"cancelled"}}
    if len(known) != len([r for r in releases if r.state in LIVE_STATES | {"cancelled"}]):
        raise ValueError("releases: the same release id is listed twice")
    if not requests.unique:
        raise ValueError("candidates: the same request key is listed twice")
    live = {rid: release for rid, release in known.items() if release.state in LIVE_STATES}
    calendar = sorted(live.values(), key=lambda release: (release.deploy_at, release.id))
    seats = Seats(calendar)
    decisions: dict[str, Decision] = {}
    # Requests to plan, with why they moved (None: never planned before).
    queue: list[tuple[Candidate, str | None]] = []

    def name(release_id: str) -> str:
        if release_id in known:
            return known[release_id].name
        return elsewhere[release_id][0] if release_id in elsewhere else release_id

    def gone(release_id: str) -> str:
        """Why a request in a release that is not live here must be planned again."""
        if release_id in known:
            why = known[release_id].cancelled_why
            return f"release {known[release_id].name} cancelled" + (f" {why}" if why else "")
        return elsewhere[release_id][1] if release_id in elsewhere else "no longer scheduled"

    # Most waiting requests wait for one of a few reasons: each text is kept once, not once a request.
    said: dict[str, str] = {}
    # Requests that found no seat, with the releases they might have entered: explained at the end.
    unseated: list[tuple[Candidate, list[PlannedRelease], bool]] = []
    # Requests without a release that are not planned change nothing but their waiting reason.
    for candidate in sorted([*requests.rest, *(requests.idle if waiting is not None else ())], key=lambda c: c.key):
        current = candidate.release
        cancelled = current in known and current not in live
        if current is not None and (leaving := _leaves(candidate, known)) is not None:
            decisions[candidate.key] = Decision(candidate.key, None, f"left release {name(current)}: {leaving}")
        elif candidate.status in STARTED or candidate.deleted or candidate.status in ("rejected", "closed"):
            if current in live:  # stays put and takes up room
                seats.add(live[current], candidate, movable=False)
            elif cancelled and current is not None:
                decisions[candidate.key] = Decision(candidate.key, None, f"left release {name(current)}: {gone(current)}")
        elif candidate.pinned and current is not None and not cancelled:
            if current in live:
                seats.add(live[current], candidate, movable=False)
        elif current in live and candidate.key in holds.wait and candidate.status in eligible_statuses:
            decisions[candidate.key] = Decision(candidate.key, None, f"left release {name(current)}: {holds.wait[candidate.key]}")
            if waiting is not None:
                waiting[candidate.key] = holds.wait[candidate.key]
        elif current in live and not holds.allowed(candidate.key, live[current].deploy_at):
            queue.append((candidate, holds.after[candidate.key]))
        elif current in live:
            seats.add(live[current], candidate, movable=True)
        elif current is not None:
            cause = gone(current) + (", pin removed" if candidate.pinned else "")
            if candidate.status in eligible_statuses and candidate.key in holds.wait:
                decisions[candidate.key] = Decision(
                    candidate.key, None, f"left release {name(current)}: {cause}; {holds.wait[candidate.key]}")
                if waiting is not None:
                    waiting[candidate.key] = holds.wait[candidate.key]
            elif candidate.status in eligible_statuses:
                queue.append((candidate, cause))
            else:
                decisions[candidate.key] = Decision(
                    candidate.key, None,
                    f"left release {name(current)}: {cause}, status {candidate.status} is not eligible",
                )
                if waiting is not None and candidate.movable:
                    waiting[candidate.key] = f"status {candidate.status} is not eligible; {cause}"
        elif candidate.status in eligible_statuses and candidate.key in holds.wait:
            if waiting is not None:
                waiting[candidate.key] = holds.wait[candidate.key]
        elif candidate.status in eligible_statuses:
            queue.append((candidate, None))
        elif waiting is not None and candidate.movable:
            why = f"status {candidate.status} is not eligible ({', '.join(sorted(requests.eligible_statuses))})"
            waiting[candidate.key] = said.setdefault(why, why)

    for release in calendar:
        for candidate in seats.overflow(release):
            if candidate.status in eligible_statuses:
                queue.append((candidate, "over capacity"))
            else:
                decisions[candidate.key] = Decision(
                    candidate.key, None, f"left release {release.name}: over capacity"
                )
                if waiting is not None:
                    waiting[candidate.key] = f"status {candidate.status} is not eligible; it left {release.name} over capacity"

    open_for_all = [r for r in calendar if r.state == "open" and now < r.freeze_at]
    # Frozen (including a stale "open" label past the freeze time) but not yet deploying.
    open_for_expedited = [r for r in calendar if r.state in ("open", "frozen") and now < r.deploy_at]
    pending = [(planning_order(c), c, cause) for c, cause in queue]
    heapq.heapify(pending)
    # Requests are taken in planning order, and a seat once given is only ever handed to a
    # more urgent request: when one finds no seat (none free, nobody less urgent to bump),
    # no request after it of the same or lower priority with the same releases open to it
    # finds one either. Those skip the search. With department quotas this holds among
    # requests of the same quota in each release: a full quota only frees up when one of its
    # own is bumped, and the one that found no seat saw none of its own less urgent than
    # itself (a bump can still empty another quota, so requests of other quotas search on).
    # The fresh requests (``releases.intake``) come in planning order beside the queue, and
    # without quotas all those of a priority that can find no seat are passed over at once.
    quotas = any(release.quotas for release in calendar)
    no_seat: dict[Hashable, int] = {}
    in_quotas: dict[tuple[bool, str | None], tuple[str | None, ...]] = {}

    def alike(candidate: Candidate, expedited: bool, opened: list[PlannedRelease]) -> Hashable:
        """Which requests a failed search speaks for: the same releases open, and with quotas the same quota in each."""
        if not quotas:
            return expedited
        department = (expedited, candidate.department)
        if department not in in_quotas:
            in_quotas[department] = buckets(candidate, opened)
        return expedited, in_quotas[department]

    fresh, at = requests.fresh, 0
    while pending or at < len(fresh):
        from_fresh = at < len(fresh) and (not pending or planning_order(fresh[at]) < pending[0][0])
        if from_fresh:
            candidate, reason = fresh[at], None
            at += 1
        else:
            _, candidate, reason = heapq.heappop(pending)
        expedited = candidate.priority is not None and candidate.priority in expedite
        opened = open_for_expedited if expedited else open_for_all
        bounded = candidate.key in holds.not_before
        allowed = [r for r in opened if holds.allowed(candidate.key, r.deploy_at)] if bounded else opened
        rank = planning_order(candidate)[0]
        comparable = not bounded  # the same releases are open to it as to the others
        group = alike(candidate, expedited, opened) if comparable else None
        if comparable and rank >= no_seat.get(group, len(PRIORITIES) + 1):
            if waiting is None and candidate.release is None:
                decisions.pop(candidate.key, None)
                if from_fresh and not quotas:  # nor for any fresh one of its priority (the same releases open to each)
                    at = max(at, requests.starts[rank + 1])
                continue  # no seat, nothing to say: the shortest way out
            target, bumped = None, None
        else:
            target, bumped = seats.seat(candidate, allowed, holds.protected)
            if target is None and comparable:
                no_seat[group] = min(rank, no_seat.get(group, rank))
        if target is not None and bumped is not None:
            seats.remove(target, bumped)
            decisions.pop(bumped.key, None)
            why = f"bumped by {candidate.key}, priority {candidate.priority}"
            heapq.heappush(pending, (planning_order(bumped), bumped, why if bumped.release else None))
        if target is None:
            decisions.pop(candidate.key, None)
            if waiting is not None and candidate.key in holds.after and not allowed:
                waiting[candidate.key] = f"dependency: it {holds.after[candidate.key]}, and no open release deploys then or later"
            elif waiting is not None:
                unseated.append((candidate, allowed, expedited))
            if candidate.release is not None:
                decisions[candidate.key] = Decision(
                    candidate.key, None,
                    f"left release {name(candidate.release)}: {reason}, no open release has room",
                )
            continue
        seats.add(target, candidate, movable=True)
        if candidate.release == target.id:
            decisions.pop(candidate.key, None)  # bumped and back where it was: no change
            continue
        how = "planned" if reason is None else f"moved from {name(candidate.release or '')} ({reason})"
        if target.state == "frozen" or now >= target.freeze_at:
            how += " (expedited into a frozen release)"
        decisions[candidate.key] = Decision(candidate.key, target.id, f"{how}: {_why(candidate)}")
    # Why each request that found no seat waits, from the seats as the pass leaves them: the
    # plan that is saved. (A request that found none finds none later in the pass either, but a
    # quota's seats may fill up after it looked.) The same words for the same kind of request,
    # whenever it came: what lets the store speak for many unplanned requests by one.
    for candidate, allowed, expedited in unseated:
        why = waiting_reason(candidate, allowed, seats, expedited=expedited)
        if candidate.key in holds.after:
            why += f" (it {holds.after[candidate.key]})"
        waiting[candidate.key] = said.setdefault(why, why)  # type: ignore[index]
    return [decisions[key] for key in sorted(decisions)]
