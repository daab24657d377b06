"""The Jira sandbox's search index: what ``search/jql`` sees, a few seconds behind the issue store.

Jira Cloud's search is not read-after-write consistent: a write reaches search "from
a few seconds to minutes" later, and ``reconcileIssues`` (at most 50 ids) makes named
issues current in one search. The sandbox keeps, for each issue written within the
last ``lag_seconds`` of its time source, the versions it went through; search sees
each issue as it was ``lag_seconds`` ago (a new one not yet, a deleted one still),
while Get issue and bulkfetch read the store. With a lag of 0 nothing is kept and
search reads the store itself.
"""
from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Generic, Protocol, TypeVar

from sandboxes.clock import TimeSource

BEFORE_ANY = float("-inf")
"""When an issue's seeded or long-standing state entered the index: always."""


class Indexed(Protocol):
    """What the index needs of an issue: its id."""

    @property
    def id(self) -> int:
        """The issue id."""


Issue = TypeVar("Issue", bound=Indexed)


class SearchIndex(Generic[Issue]):
    """Issue versions written within the lag, and the view of the store search gets from them.

    Callers hold the Jira state's lock. A version is ``(moment, issue)``, the issue as it
    was from that moment (monotonic seconds of the time source) on; None once deleted.
    ``snapshot`` copies an issue so that later writes leave the copy alone.
    """

    def __init__(self, source: TimeSource, lag_seconds: float, snapshot: Callable[[Issue], Issue]) -> None:
        self.source = source
        self.lag_seconds = lag_seconds
        self._snapshot = snapshot
        self._versions: dict[int, list[tuple[float, Issue | None]]] = {}

    def set_lag(self, seconds: float) -> None:
        """Change the lag; versions kept so far are forgotten (search sees the store from now)."""
        self.lag_seconds = seconds
        self._versions.clear()

    def before_change(self, issue: Issue) -> None:
        """Keep ``issue`` as search sees it now, before a write changes or deletes it."""
        if self.lag_seconds > 0 and issue.id not in self._versions:
            self._versions[issue.id] = [(BEFORE_ANY, self._snapshot(issue))]

    def changed(self, issue: Issue) -> None:
        """Note that ``issue`` was created or written just now."""
        if self.lag_seconds > 0:
            self._versions.setdefault(issue.id, []).append((self.source.monotonic(), self._snapshot(issue)))

    def deleted(self, issue: Issue) -> None:
        """Note that ``issue`` was deleted just now (call after ``before_change``)."""
        if self.lag_seconds > 0:
            self._versions.setdefault(issue.id, []).append((self.source.monotonic(), None))

    def view(self, live: dict[int, Issue], reconcile: Collection[int] = ()) -> dict[int, Issue]:
        """The issues search sees by id: ``live`` itself when the index has caught up.

        Issues named in ``reconcile`` are read from the store, as ``reconcileIssues`` asks.
        """
        lagging = self._lagging(self.source.monotonic() - self.lag_seconds)
        for ident in reconcile:
            lagging.pop(ident, None)
        if not lagging:
            return live
        seen = {ident: lagging.get(ident, issue) for ident, issue in live.items()}
        seen.update((ident, issue) for ident, issue in lagging.items() if ident not in live)
        return {ident: issue for ident, issue in seen.items() if issue is not None}

    def caught_up(self) -> bool:
        """Whether search sees the store as it is (nothing is waiting to be indexed)."""
        return not self._lagging(self.source.monotonic() - self.lag_seconds)

    def _lagging(self, cutoff: float) -> dict[int, Issue | None]:
        """Issues whose indexed version is not their current one: that version (None: not visible).

        Versions older than the one indexed at ``cutoff`` are dropped, and an issue whose
        current version is indexed leaves the index.
        """
        lagging: dict[int, Issue | None] = {}
        for ident, versions in list(self._versions.items()):
            indexed = max((n for n, (moment, _) in enumerate(versions) if moment <= cutoff), default=-1)
            if indexed > 0:
                del versions[:indexed]
            if indexed >= 0 and len(versions) == 1:
                del self._versions[ident]
                continue
            lagging[ident] = versions[0][1] if indexed >= 0 else None
        return lagging


__all__ = ["SearchIndex"]
