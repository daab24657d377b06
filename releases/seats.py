"""Who sits in a train's releases during one plan: totals, department quotas, and who may be bumped."""
from __future__ import annotations

from collections.abc import Sequence

from config.trains import folded
from releases.calendar import PlannedRelease
from releases.candidate import Candidate, planning_order

__all__ = ["Seats", "bucket", "buckets", "limit", "waiting_reason"]



def bucket(candidate: Candidate, release: PlannedRelease) -> str | None:
    """The quota a request counts against in ``release``: its department's, or None for the shared rest."""
    department = folded(candidate.department)
    return department if department in {folded(name) for name, _ in release.quotas} else None


def buckets(candidate: Candidate, releases: Sequence[PlannedRelease]) -> tuple[str | None, ...]:
    """The quota a request counts against in each of these releases."""
    return tuple(bucket(candidate, release) for release in releases)


def limit(release: PlannedRelease, quota: str | None) -> int:
    """Seats of one quota (None: the rest shared by departments without one)."""
    if quota is None:
        return release.capacity - sum(seats for _, seats in release.quotas)
    return next(seats for name, seats in release.quotas if folded(name) == quota)


def waiting_reason(candidate: Candidate, allowed: list[PlannedRelease], seats: Seats, *, expedited: bool) -> str:
    """Why a request to plan found no seat: no release open to it, or each one full (in total or its quota)."""
    if not allowed:
        frozen = "open or frozen" if expedited else "open (before its freeze)"
        return f"freeze: no release is {frozen}; it waits for the next one to open"
    full: list[str] = []
    by_quota = 0
    for release in allowed:
        quota = bucket(candidate, release)
        if seats.total[release.id] >= release.capacity:
            full.append(f"{release.name} full ({seats.total[release.id]}/{release.capacity})")
            continue
        by_quota += 1
        whose = f"the {candidate.department} quota" if quota is not None else "the seats shared outside the quotas"
        full.append(f"{release.name} has no room in {whose} ({limit(release, quota)})")
    kind = "capacity" if by_quota == 0 else "department quota" if by_quota == len(full) else "capacity and quota"
    return f"{kind}: {', '.join(full)}"


class Seats:
    """Who sits in each release, per quota, and who may give up a seat (rule 7)."""

    def __init__(self, releases: list[PlannedRelease]) -> None:
        self.releases = {release.id: release for release in releases}
        self.total = {release.id: 0 for release in releases}
        self.quota: dict[tuple[str, str | None], int] = {}
        self.movable: dict[str, list[Candidate]] = {release.id: [] for release in releases}

    def add(self, release: PlannedRelease, candidate: Candidate, *, movable: bool) -> None:
        self.total[release.id] += 1
        key = (release.id, bucket(candidate, release))
        self.quota[key] = self.quota.get(key, 0) + 1
        if movable:
            self.movable[release.id].append(candidate)

    def remove(self, release: PlannedRelease, candidate: Candidate) -> None:
        self.total[release.id] -= 1
        self.quota[(release.id, bucket(candidate, release))] -= 1
        self.movable[release.id].remove(candidate)

    def quota_full(self, release: PlannedRelease, quota: str | None) -> bool:
        return self.quota.get((release.id, quota), 0) >= limit(release, quota)

    def has_room(self, release: PlannedRelease, candidate: Candidate) -> bool:
        return self.total[release.id] < release.capacity and not self.quota_full(release, bucket(candidate, release))

    def overflow(self, release: PlannedRelease) -> list[Candidate]:
        """Movable requests that must leave so the release fits: per quota, then in total."""
        leaving: list[Candidate] = []
        for quota in sorted({bucket(c, release) for c in self.movable[release.id]}, key=str):
            excess = self.quota.get((release.id, quota), 0) - limit(release, quota)
            # Newest and least urgent leave first: the reverse of the planning order.
            held = sorted(
                (c for c in self.movable[release.id] if bucket(c, release) == quota), key=planning_order, reverse=True
            )
            leaving += held[: max(excess, 0)]
        excess = self.total[release.id] - len(leaving) - release.capacity
        rest = sorted((c for c in self.movable[release.id] if c not in leaving), key=planning_order, reverse=True)
        leaving += rest[: max(excess, 0)]
        for candidate in leaving:
            self.remove(release, candidate)
        return leaving

    def seat(
        self, candidate: Candidate, allowed: list[PlannedRelease], protected: frozenset[str] = frozenset()
    ) -> tuple[PlannedRelease | None, Candidate | None]:
        """The earliest allowed release with room, or with a less urgent request to bump
        (never one of ``protected``: a prerequisite of some request keeps its seat)."""
        rank = planning_order(candidate)[0]
        for release in allowed:
            if self.has_room(release, candidate):
                return release, None
            quota = bucket(candidate, release)
            # A full quota only frees up when one of its own leaves; a full total, by anyone.
            same_quota = self.quota_full(release, quota)
            lower = [
                c for c in self.movable[release.id]
                if planning_order(c)[0] > rank and (not same_quota or bucket(c, release) == quota) and c.key not in protected
            ]
            if lower:
                return release, max(lower, key=planning_order)
        return None, None

