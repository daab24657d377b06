"""Planning change requests into releases. Pure and deterministic: no I/O, no clock.

``plan_releases`` takes the live releases (from ``materialize_releases``: open, frozen
or deploying) and every request it may move, and returns a ``Decision`` only for the
requests whose assignment changes, sorted by key. Same input, same output, whatever
the order of the lists. The rules, first match wins:

1. Deleted or rejected: the request leaves its release, even a pinned one (a pin says
   *when* a request ships, not *whether*; a cancelled request would otherwise hold
   capacity and appear in release notes). Closed: it leaves an open or frozen
   release (closed before shipping); in a deploying or past release it stays, as the
   record of what shipped with it.
2. Started (in_progress, testing, deployed): keeps its release, whatever it is, and is
   never re-planned; an unassigned started request stays unassigned.
3. Pinned: never moves, and counts against its release's capacity.
4. Assigned to a live release: keeps it, so requesters get a predictable date, except
   as rule 7 says. If the release holds more than its
   capacity (capacity lowered, pins added), the movable requests (not pinned, not
   started) leave, lowest priority then newest first, until it fits; eligible ones are
   re-planned, others are left unassigned.
5. Assigned to a release that is no longer live (past or cancelled): re-planned if its
   status is eligible, otherwise it leaves.
6. Unassigned and eligible: planned.
7. A request being planned that finds no room takes the seat of a strictly
   lower-priority, movable request in an earlier open release (the lowest priority,
   newest one); that request is planned again from there, so it lands in the next
   release with room. Equal priorities never bump each other: age decides only
   among requests planned in the same pass.

Planning takes the requests of rules 4-6 in priority order (critical, high, medium,
low, none), then ``created_at`` ascending (unknown last), then key, and puts each into
the earliest *open* release (state open and ``now`` before its freeze) with room. A
frozen or deploying release never receives a request. Without room anywhere the
request stays, or becomes, unassigned.

Callers pass every live release the candidates may be assigned to: an assignment to
a release missing from ``releases`` is treated as one to a past release (rule 5).
"""
from __future__ import annotations

import datetime as dt
import heapq
from dataclasses import dataclass

from mapping.model import PRIORITIES, STATUSES
from sync.calendar import PhaseWindow, PlannedRelease, materialize_releases, require_utc

__all__ = [
    "Candidate",
    "Decision",
    "PhaseWindow",
    "PlannedRelease",
    "materialize_releases",
    "plan_releases",
]

STARTED: frozenset[str] = frozenset({"in_progress", "testing", "deployed"})
LIVE_STATES: frozenset[str] = frozenset({"open", "frozen", "deploying"})
_LATEST = dt.datetime.max.replace(tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class Candidate:
    """A request as the planner sees it: status, urgency, age and current assignment."""

    key: str
    status: str
    priority: str | None
    created_at: str | None
    release: str | None
    pinned: bool
    deleted: bool

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"{self.key}: status {self.status!r} is not one of {', '.join(STATUSES)}")
        if self.priority is not None and self.priority not in PRIORITIES:
            raise ValueError(f"{self.key}: priority {self.priority!r} is not one of {', '.join(PRIORITIES)}")
        self.created()  # fail here, not halfway through planning

    def created(self) -> dt.datetime | None:
        """``created_at`` as a UTC datetime (naive values are taken as UTC), or None."""
        if not self.created_at:
            return None
        try:
            moment = dt.datetime.fromisoformat(self.created_at)
        except ValueError:
            raise ValueError(f"{self.key}: created_at {self.created_at!r} is not ISO-8601") from None
        return moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment.astimezone(dt.timezone.utc)


@dataclass(frozen=True)
class Decision:
    """A changed assignment: ``release`` is the new release id, None for unassigned."""

    key: str
    release: str | None
    reason: str


def _order(candidate: Candidate) -> tuple[int, dt.datetime, str]:
    """Planning order: most urgent first, then oldest, then key (total and stable)."""
    rank = PRIORITIES.index(candidate.priority) if candidate.priority else len(PRIORITIES)
    return rank, candidate.created() or _LATEST, candidate.key


def _why(candidate: Candidate) -> str:
    created = candidate.created()
    return (
        f"priority {candidate.priority or 'none'}, status {candidate.status}, "
        f"created {created.date().isoformat() if created else 'unknown'}"
    )


def _leaves(candidate: Candidate, live: dict[str, PlannedRelease]) -> str | None:
    """Why a terminal request leaves its release (rule 1), or None if it does not."""
    release = live.get(candidate.release or "")
    pin = " (pin removed)" if candidate.pinned else ""
    if candidate.deleted:
        return f"deleted in source{pin}"
    if candidate.status == "rejected":
        return f"status rejected{pin}"
    if candidate.status == "closed" and release is not None and release.state in ("open", "frozen"):
        return f"status closed before release{pin}"
    return None


def _seat(
    candidate: Candidate,
    releases: list[PlannedRelease],
    load: dict[str, int],
    seated: dict[str, list[Candidate]],
) -> tuple[PlannedRelease | None, Candidate | None]:
    """The earliest open release with room, or with a less urgent request to bump."""
    rank = _order(candidate)[0]
    for release in releases:
        if load[release.id] < release.capacity:
            return release, None
        lower = [c for c in seated[release.id] if _order(c)[0] > rank]
        if lower:
            return release, max(lower, key=_order)
    return None, None


def plan_releases(
    releases: list[PlannedRelease],
    candidates: list[Candidate],
    *,
    eligible_statuses: set[str],
    now: dt.datetime,
) -> list[Decision]:
    """Decide release assignments (see the module docstring); only changes are returned."""
    now = require_utc(now)
    live = {release.id: release for release in releases if release.state in LIVE_STATES}
    if len(live) != len([r for r in releases if r.state in LIVE_STATES]):
        raise ValueError("releases: the same release id is listed twice")
    if len({c.key for c in candidates}) != len(candidates):
        raise ValueError("candidates: the same request key is listed twice")
    calendar = sorted(live.values(), key=lambda release: (release.deploy_at, release.id))
    members: dict[str, list[Candidate]] = {release.id: [] for release in calendar}
    movable: dict[str, list[Candidate]] = {release.id: [] for release in calendar}
    decisions: dict[str, Decision] = {}
    # Requests to plan, with why they moved (None: never planned before).
    queue: list[tuple[Candidate, str | None]] = []

    def name(release_id: str) -> str:
        return live[release_id].name if release_id in live else release_id

    for candidate in sorted(candidates, key=lambda c: c.key):
        current = candidate.release
        if current is not None and (leaving := _leaves(candidate, live)) is not None:
            decisions[candidate.key] = Decision(candidate.key, None, f"left release {name(current)}: {leaving}")
        elif (
            candidate.deleted
            or candidate.status in ("rejected", "closed")
            or candidate.status in STARTED
            or (candidate.pinned and current is not None)
        ):
            if current in members:  # stays put and takes up room
                members[current].append(candidate)
        elif current in live:
            members[current].append(candidate)
            movable[current].append(candidate)
        elif current is not None:
            if candidate.status in eligible_statuses:
                queue.append((candidate, "no longer scheduled"))
            else:
                decisions[candidate.key] = Decision(
                    candidate.key, None,
                    f"left release {current}: no longer scheduled, status {candidate.status} is not eligible",
                )
        elif candidate.status in eligible_statuses:
            queue.append((candidate, None))

    load = {release_id: len(held) for release_id, held in members.items()}
    for release in calendar:
        excess = load[release.id] - release.capacity
        # Newest and least urgent leave first: the reverse of the planning order.
        for candidate in sorted(movable[release.id], key=_order, reverse=True)[: max(excess, 0)]:
            load[release.id] -= 1
            if candidate.status in eligible_statuses:
                queue.append((candidate, "over capacity"))
            else:
                decisions[candidate.key] = Decision(
                    candidate.key, None, f"left release {release.name}: over capacity"
                )

    open_for_new = [r for r in calendar if r.state == "open" and now < r.freeze_at]
    # Who sits in each open release and may give up the seat to a more urgent request (rule 7).
    queued = {c.key for c, _ in queue}
    seated = {r.id: [c for c in movable[r.id] if c.key not in decisions and c.key not in queued] for r in open_for_new}
    pending = [(_order(c), c, cause) for c, cause in queue]
    heapq.heapify(pending)
    while pending:
        _, candidate, cause = heapq.heappop(pending)
        target, bumped = _seat(candidate, open_for_new, load, seated)
        if bumped is not None:
            seated[target.id].remove(bumped)
            load[target.id] -= 1
            decisions.pop(bumped.key, None)
            why = f"bumped by {candidate.key}, priority {candidate.priority}"
            heapq.heappush(pending, (_order(bumped), bumped, why if bumped.release else None))
        if target is None:
            decisions.pop(candidate.key, None)
            if candidate.release is not None:
                decisions[candidate.key] = Decision(
                    candidate.key, None,
                    f"left release {name(candidate.release)}: {cause}, no open release has room",
                )
            continue
        load[target.id] += 1
        seated[target.id].append(candidate)
        if candidate.release == target.id:
            decisions.pop(candidate.key, None)  # bumped and back where it was: no change
            continue
        how = "planned" if cause is None else f"moved from {name(candidate.release or '')} ({cause})"
        decisions[candidate.key] = Decision(candidate.key, target.id, f"{how}: {_why(candidate)}")
    return [decisions[key] for key in sorted(decisions)]
