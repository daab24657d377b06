"""Two trains for routing and dependency tests: a weekly-ish hotfix train for critical
requests and a catch-all BS train, their releases and requests, planned on 1 December 2026."""
from __future__ import annotations

import datetime as dt

from releases.planner import Candidate, PlannedRelease
from tests.trains import at, train

NOW = at("2026-12-01 09:00")
HOTFIX = train(name="hotfix", match={"priorities": ["critical"]}, expedite={"priorities": ["critical"]})
BS = train(name="BS")


def release(train_name: str, deploy: str, capacity: int, state: str = "open") -> PlannedRelease:
    """A release of ``train_name`` deploying at ``deploy`` (UTC), frozen a day before."""
    deploy_at = at(deploy)
    rid = f"{train_name}-{deploy_at:%Y%m%d}"
    return PlannedRelease(id=rid, name=rid, train=train_name, deploy_at=deploy_at,
                          freeze_at=deploy_at - dt.timedelta(days=1), capacity=capacity, state=state)


def req(key: str, priority: str | None = "medium", *, release: str | None = None, status: str = "approved",
        depends_on: tuple[str, ...] = (), unknown: tuple[str, ...] = (), created: str = "2026-10-01T10:00:00Z",
        pinned: bool = False) -> Candidate:
    """A request as the planner sees it."""
    return Candidate(key=key, status=status, priority=priority, created_at=created, release=release,
                     pinned=pinned, deleted=False, depends_on=depends_on, unknown=unknown)
