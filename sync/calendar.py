"""The release calendar: upcoming releases of a train, with their freeze and SDLC phases.

Pure and deterministic: ``now`` is always a parameter, every datetime is UTC.

A train deploys on ``cadence.anchor + k * every_days`` (any integer ``k``, so the anchor
may lie in the past or the future) at ``deploy_time`` UTC. ``materialize_releases``
returns, ordered by deploy time:

- every release that is *deploying*: ``deploy_at <= now < deploy_at + deployment
  days`` (the deployment phase's length, at least one day). It is kept so that its
  requests stay in it while it ships, and its state can be written back; nothing new is
  ever planned into it, and it does not count towards ``horizon``;
- the next ``horizon`` releases with ``deploy_at > now``: *open* while ``now <
  freeze_at`` (``deploy_at - freeze_days``), *frozen* from ``freeze_at`` on.

Phases: the phases other than deployment and maintenance run back to back in config
order and the last of them ends at ``deploy_at``; deployment starts at ``deploy_at``
and lasts its days (at least the deploy day); maintenance follows deployment.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from config.schema import Train

DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class PhaseWindow:
    """One SDLC phase of one release: when it runs and who owns it."""

    phase: str
    starts: dt.datetime
    ends: dt.datetime
    owner: str


@dataclass(frozen=True)
class PlannedRelease:
    """A release the calendar says exists now (open, frozen or deploying)."""

    id: str
    name: str
    train: str
    deploy_at: dt.datetime
    freeze_at: dt.datetime
    capacity: int
    state: str
    phases: tuple[PhaseWindow, ...] = ()


def require_utc(moment: dt.datetime, what: str = "now") -> dt.datetime:
    """``moment`` in UTC; a naive datetime is refused rather than guessed at."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {moment.isoformat()}")
    return moment.astimezone(dt.timezone.utc)


def _deploy_at(train: Train, k: int) -> dt.datetime:
    day = train.cadence.anchor + dt.timedelta(days=k * train.cadence.every_days)
    at = train.deploy_time
    if at.tzinfo is None:
        return dt.datetime.combine(day, at, tzinfo=dt.timezone.utc)
    return dt.datetime.combine(day, at).astimezone(dt.timezone.utc)


def _deploy_days(train: Train) -> int:
    days = [phase.days for phase in train.phases if phase.phase == "deployment"]
    return max(days[0], 1) if days else 1


def _phases(train: Train, deploy_at: dt.datetime) -> tuple[PhaseWindow, ...]:
    before = [p for p in train.phases if p.phase not in ("deployment", "maintenance")]
    windows: dict[str, PhaseWindow] = {}
    ends = deploy_at
    for phase in reversed(before):
        starts = ends - phase.days * DAY
        windows[phase.phase] = PhaseWindow(phase.phase, starts, ends, phase.owner)
        ends = starts
    deployed = deploy_at + _deploy_days(train) * DAY
    for phase in train.phases:
        if phase.phase == "deployment":
            windows[phase.phase] = PhaseWindow(phase.phase, deploy_at, deployed, phase.owner)
        elif phase.phase == "maintenance":
            windows[phase.phase] = PhaseWindow(
                phase.phase, deployed, deployed + phase.days * DAY, phase.owner
            )
    return tuple(windows[phase.phase] for phase in train.phases)


def _release(train: Train, deploy_at: dt.datetime, now: dt.datetime) -> PlannedRelease:
    freeze_at = deploy_at - train.freeze_days * DAY
    if now < freeze_at:
        state = "open"
    elif now < deploy_at:
        state = "frozen"
    else:
        state = "deploying"
    return PlannedRelease(
        id=f"{train.name}-{deploy_at:%Y%m%d}",
        name=train.release_name.format(train=train.name, deploy=deploy_at),
        train=train.name,
        deploy_at=deploy_at,
        freeze_at=freeze_at,
        capacity=train.capacity,
        state=state,
        phases=_phases(train, deploy_at),
    )


def materialize_releases(train: Train, now: dt.datetime) -> list[PlannedRelease]:
    """The train's deploying releases and its next ``horizon`` releases after ``now``."""
    now = require_utc(now)
    every = train.cadence.every_days
    # Floor division puts k at or just before today's date for any anchor; the loops
    # then settle on the first deploy strictly after now (deploy_time may be ahead).
    k = (now.date() - train.cadence.anchor).days // every - 2
    while _deploy_at(train, k) <= now:
        k += 1
    deploying_for = _deploy_days(train) * DAY
    deploying = []
    back = k - 1
    while _deploy_at(train, back) + deploying_for > now:
        deploying.append(_deploy_at(train, back))
        back -= 1
    deploys = sorted(deploying) + [_deploy_at(train, k + step) for step in range(train.horizon)]
    return [_release(train, deploy_at, now) for deploy_at in deploys]
