"""A change request as the planner sees it, the decision it may get, and the planning order."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from mapping import clock
from mapping.model import PRIORITIES, STATUSES

__all__ = ["STARTED", "Candidate", "Decision", "may_move", "planning_order"]

STARTED: frozenset[str] = frozenset({"in_progress", "testing", "deployed"})
_LATEST = dt.datetime.max.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A request as the planner sees it: status, urgency, age, who it is for, and its
    current assignment. ``source`` is the configured source name (``jira``)."""

    key: str
    status: str
    priority: str | None
    created_at: str | None
    release: str | None
    pinned: bool
    deleted: bool
    department: str | None = None
    type: str | None = None
    source: str | None = None
    depends_on: tuple[str, ...] = ()
    """Store keys of the requests this one depends on (``releases.dependencies``)."""
    unknown: tuple[str, ...] = ()
    """References to prerequisites that name no request relsync knows."""
    _created: dt.datetime | None = field(init=False, repr=False, compare=False, default=None)
    _order_key: tuple[int, dt.datetime, str] = field(init=False, repr=False, compare=False, default=(0, _LATEST, ""))

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"{self.key}: status {self.status!r} is not one of {', '.join(STATUSES)}")
        if self.priority is not None and self.priority not in PRIORITIES:
            raise ValueError(f"{self.key}: priority {self.priority!r} is not one of {', '.join(PRIORITIES)}")
        # Parsed once, here, so a bad value fails before planning starts and sorting stays cheap.
        object.__setattr__(self, "_created", self._parse_created())
        # The planning order is asked for many times a request while seats are found: computed once.
        rank = PRIORITIES.index(self.priority) if self.priority else len(PRIORITIES)
        object.__setattr__(self, "_order_key", (rank, self._created or _LATEST, self.key))

    def _parse_created(self) -> dt.datetime | None:
        if not self.created_at:
            return None
        try:
            return clock.parse(self.created_at)
        except clock.TimestampError:
            raise ValueError(f"{self.key}: created_at {self.created_at!r} is not ISO-8601 with a time zone") from None

    def created(self) -> dt.datetime | None:
        """``created_at`` as a UTC datetime, or None."""
        return self._created

    @property
    def movable(self) -> bool:
        """Whether the planner may place or move it: not pinned, started or finished."""
        return may_move(self.status, pinned=self.pinned, deleted=self.deleted)


@dataclass(frozen=True)
class Decision:
    """A changed assignment: ``release`` is the new release id, None for unassigned."""

    key: str
    release: str | None
    reason: str


def may_move(status: str, *, pinned: bool, deleted: bool) -> bool:
    """Whether the planner may place or move a request: not pinned, deleted, started or finished."""
    return not (pinned or deleted or status in STARTED or status in ("closed", "rejected"))


def planning_order(candidate: Candidate) -> tuple[int, dt.datetime, str]:
    """Planning order: most urgent first, then oldest, then key (total and stable)."""
    return candidate._order_key
