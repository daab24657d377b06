"""The release calendar: upcoming releases of a train, with their freeze and SDLC phases.

Pure and deterministic: ``now`` is always a parameter; every datetime returned is UTC.

Cadence. A train's cadence dates are ``origin + k * step`` days for any integer ``k``
(``every_days`` from ``anchor``, or ``every_weeks`` on ``weekday``), so the anchor may
lie in the past or the future. Dates are calendar days in the train's ``timezone``
(IANA name, default UTC): a release deploys at ``deploy_time`` local time, converted to
UTC for that date, so an 18:00 Europe/Berlin deploy is 17:00Z in winter and 16:00Z in
summer. A wall-clock time that does not exist that day (inside a spring-forward gap)
is read with the offset before the change, i.e. an hour later on the wall clock; an
ambiguous one (autumn) is its first occurrence. Freeze, phases and the deployment
window count whole local days at ``deploy_time`` too.

Blackouts. A cadence date inside a blackout (``start``..``end`` inclusive, local
dates) either moves to the day after ``end`` (``move``) or is not materialized at all
(``skip``). A moved date that lands inside another blackout is treated again; a date
covered by a ``skip`` blackout is skipped even if a ``move`` one covers it too. Only one
release deploys on a day: when moves land several releases on one day, the one whose
cadence date *is* that day is kept, otherwise the one with the earliest cadence date;
the others are not materialized (their requests are re-planned). A release's ``id`` is
``<train>-<cadence date>`` (the original date, so ids stay stable when a blackout is
added or changed); its ``name`` follows the actual deploy date.

``materialize_releases`` returns, ordered by deploy time:

- every release that is *deploying*: ``deploy_at <= now`` until its deployment phase
  ends (at least one day). It is kept so that its requests stay in it while it ships;
  nothing new is ever planned into it, and it does not count towards ``horizon``;
- the next ``horizon`` releases with ``deploy_at > now`` (releases that exist: skipped
  and merged ones do not count): *frozen* from ``freeze_at`` (``freeze_days`` before
  the deploy) on; before that *open*, except that with ``open_releases: N`` only the
  first N not-yet-frozen releases are open and later ones are *planned* (they keep what
  is in them but take no new requests).

Phases: the phases other than deployment and maintenance run back to back in config
order and the last of them ends at ``deploy_at``; deployment starts at ``deploy_at``
and lasts its days (at least the deploy day); maintenance follows deployment.
"""
from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass

from config.trains import Train

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
    """A release as the planner sees it.

    ``state``: planned, open, frozen or deploying from the calendar; cancelled when a
    user cancelled it. ``capacity`` is the total; ``quotas`` the department quotas
    within it (department name, seats). ``moved_by`` names the blackout that moved the
    release off its cadence date; ``cancelled_why`` says who cancelled it and why
    (``by alice: vendor outage``), for the reasons of the moves it causes;
    ``requires_signoff`` the phases that must be signed off before it counts as deployed.
    """

    id: str
    name: str
    train: str
    deploy_at: dt.datetime
    freeze_at: dt.datetime
    capacity: int
    state: str
    phases: tuple[PhaseWindow, ...] = ()
    quotas: tuple[tuple[str, int], ...] = ()
    moved_by: str | None = None
    cancelled_why: str | None = None
    requires_signoff: tuple[str, ...] = ()


def require_utc(moment: dt.datetime, what: str = "now") -> dt.datetime:
    """``moment`` in UTC; a naive datetime is refused rather than guessed at."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {moment.isoformat()}")
    return moment.astimezone(dt.UTC)


def local_at(train: Train, day: dt.date) -> dt.datetime:
    """``deploy_time`` on local ``day`` in the train's timezone, as UTC."""
    wall = dt.datetime.combine(day, train.deploy_time.replace(tzinfo=None), tzinfo=train.zone)
    return wall.astimezone(dt.UTC)


def _deploy_days(train: Train) -> int:
    days = [phase.days for phase in train.phases if phase.phase == "deployment"]
    return max(days[0], 1) if days else 1


def _phases(train: Train, day: dt.date) -> tuple[PhaseWindow, ...]:
    before = [p for p in train.phases if p.phase not in ("deployment", "maintenance")]
    windows: dict[str, PhaseWindow] = {}
    ends = day
    for phase in reversed(before):
        starts = ends - phase.days * DAY
        windows[phase.phase] = PhaseWindow(phase.phase, local_at(train, starts), local_at(train, ends), phase.owner)
        ends = starts
    deployed = day + _deploy_days(train) * DAY
    for phase in train.phases:
        if phase.phase == "deployment":
            windows[phase.phase] = PhaseWindow(
                phase.phase, local_at(train, day), local_at(train, deployed), phase.owner
            )
        elif phase.phase == "maintenance":
            windows[phase.phase] = PhaseWindow(
                phase.phase, local_at(train, deployed), local_at(train, deployed + phase.days * DAY), phase.owner
            )
    return tuple(windows[phase.phase] for phase in train.phases)


def effective_date(train: Train, day: dt.date) -> tuple[dt.date | None, str | None]:
    """Where the blackouts put a cadence date: (deploy date or None if skipped, blackout name)."""
    moved_by = None
    while True:
        covering = [b for b in train.blackouts if b.covers(day)]
        if not covering:
            return day, moved_by
        skip = next((b for b in covering if b.action == "skip"), None)
        if skip is not None:
            return None, skip.name
        last = max(covering, key=lambda b: (b.end, b.name))
        moved_by = moved_by or last.name
        day = last.end + DAY


def _first_slot(train: Train, today: dt.date) -> int:
    """A cadence index early enough that no release still deploying or ahead is missed."""
    lower = today - (_deploy_days(train) + 2) * DAY
    # A cadence date before `lower` still matters if a blackout moved it past `lower`;
    # chained (overlapping or adjacent) blackouts are followed back to their start.
    changed = True
    while changed:
        changed = False
        for blackout in train.blackouts:
            if blackout.start < lower and blackout.end >= lower - DAY:
                lower, changed = blackout.start, True
    return (lower - train.cadence.origin).days // train.cadence.step_days - 1


def _release(train: Train, original: dt.date, day: dt.date, moved_by: str | None, state: str) -> PlannedRelease:
    deploy_at = local_at(train, day)
    return PlannedRelease(
        id=f"{train.name}-{original:%Y%m%d}",
        name=train.release_name_for(deploy_at.astimezone(train.zone)),
        train=train.name,
        deploy_at=deploy_at,
        freeze_at=local_at(train, day - train.freeze_days * DAY),
        capacity=train.total_capacity,
        state=state,
        phases=_phases(train, day),
        quotas=train.quotas,
        moved_by=moved_by,
        requires_signoff=tuple(train.requires_signoff),
    )


def _kept(group: list[tuple[dt.date, str | None]], day: dt.date) -> tuple[dt.date, str | None]:
    # The release that really falls on `day` wins; otherwise the earliest one moved there.
    regular = [member for member in group if member[0] == day]
    return regular[0] if regular else group[0]


def materialize_releases(train: Train, now: dt.datetime) -> list[PlannedRelease]:
    """The train's deploying releases and its next ``horizon`` releases after ``now``."""
    now = require_utc(now)
    step = train.cadence.step_days
    origin = train.cadence.origin
    deploying_for = _deploy_days(train) * DAY  # the deployment phase, at least a day
    today = now.astimezone(train.zone).date()
    releases: list[PlannedRelease] = []
    upcoming = open_count = 0
    group: list[tuple[dt.date, str | None]] = []  # (cadence date, blackout) landing on `group_day`
    group_day: dt.date | None = None

    def emit() -> None:
        nonlocal upcoming, open_count
        assert group_day is not None
        original, moved_by = _kept(group, group_day)
        deploy_at = local_at(train, group_day)
        if deploy_at <= now:
            # Past and gone, or still deploying (its deployment phase is running).
            if local_at(train, group_day + deploying_for) > now:
                releases.append(_release(train, original, group_day, moved_by, "deploying"))
            return
        upcoming += 1
        freeze_at = local_at(train, group_day - train.freeze_days * DAY)
        if now >= freeze_at:
            state = "frozen"
        else:
            open_count += 1
            state = "open" if train.open_releases is None or open_count <= train.open_releases else "planned"
        releases.append(_release(train, original, group_day, moved_by, state))

    # Effective dates never decrease with k (a moved date is the first free day after
    # its blackouts), so the releases sharing a day are consecutive slots.
    for k in itertools.count(_first_slot(train, today)):
        original = origin + k * step * DAY
        day, moved_by = effective_date(train, original)
        if day is None:
            continue
        if group_day is not None and day != group_day:
            emit()
            group = []
            if upcoming == train.horizon:
                break
        group_day = day
        group.append((original, moved_by))
    return releases


BEFORE_PHASES = "scheduled"
"""The phase a release is in before its first phase starts."""
HELD = "held"
"""The phase of a release past its deploy time whose required sign-offs are missing."""
AFTER_PHASES = "deployed"
"""The phase of a deployed release once its last phase is over."""


def phase_at(phases: list[tuple[str, dt.datetime, dt.datetime]], deploy_at: dt.datetime, now: dt.datetime,
             *, held: bool = False) -> str:
    """The phase a release is in at ``now``, as a requester is told it.

    ``phases`` are (name, starts, ends) in order. Before the first starts: ``scheduled``;
    inside one: its name (the later one, where windows touch); between two before the
    deploy time: the one last begun; past the deploy time while a required sign-off is
    missing: ``held``; past the deploy time with no phase running: ``deployed``.
    """
    if held and now >= deploy_at:
        return HELD
    running = [name for name, starts, ends in phases if starts <= now < ends]
    if running:
        return running[-1]
    if now >= deploy_at:
        return AFTER_PHASES
    begun = [name for name, starts, _ in phases if starts <= now]
    return begun[-1] if begun else BEFORE_PHASES
