"""How requests flow through releases: cycle times, throughput, fill and slips.

Figures over a period ``[since, until)`` (moments as in ``reports.timeline``):

- **cycle times**: for each request deployed in the period, the days from created to
  deployed and, when relsync saw it approved no later than deployed, from approved to
  deployed; per type, per department and overall: how many, the median (the middle
  value, or the mean of the two middle ones) and the 85th percentile (nearest rank: the
  smallest value with at least 85% of the values at or below it), in days, to 0.01.
- **throughput**: per release that deployed in the period (state deploying or
  released, ``deploy_at`` in the period), the requests it holds (its assignments,
  requests deleted in their source left out).
- **fill**: per release that deploys in the period or is still live (planned, open,
  frozen, deploying), cancelled ones left out: the requests it holds against its
  capacity, and per department quota of its train (from the config) the department's
  requests against its seats; the departments without a quota share the rest.
- **slipped**: every planner move in the period (audit origin ``planned``) from one
  release to a later one (a later ``deploy_at``), with the planner's reason and its
  cause: what is in the parentheses of "moved from X (cause)", a bump named by the
  bumping request's priority rather than its key.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TypedDict

from mapping import clock
from reports.timeline import RequestFacts
from sync.db import Database

__all__ = [
    "CycleTimes", "ReleaseFill", "ReleaseThroughput", "Slip", "Slips", "Spread",
    "cycle_times", "fill", "percentile", "slipped", "spread", "throughput",
]

LIVE_STATES = ("planned", "open", "frozen", "deploying")
NONE = "(none)"


class Spread(TypedDict):
    """How many values, their median and 85th percentile (days; None without values)."""

    requests: int
    median_days: float | None
    p85_days: float | None


class CycleTimes(TypedDict):
    """One cycle time, overall and per type and department."""

    all: Spread
    by_type: dict[str, Spread]
    by_department: dict[str, Spread]


class ReleaseThroughput(TypedDict):
    """One deployed release and how many requests it shipped."""

    release: str
    train: str
    deploy_at: str
    state: str
    requests: int


class QuotaFill(TypedDict):
    """One department's seats in a release and how many it uses (``department`` None: the shared rest)."""

    department: str | None
    seats: int
    requests: int


class ReleaseFill(TypedDict):
    """One release's load against its capacity and its train's department quotas."""

    release: str
    train: str
    deploy_at: str
    state: str
    capacity: int
    requests: int
    by_department: dict[str, int]
    quotas: list[QuotaFill]


class Slip(TypedDict):
    """One move of a request to a later release."""

    request: str
    at: str
    from_release: str
    to_release: str
    reason: str
    cause: str


class Slips(TypedDict):
    """Every slip in the period and how many per cause."""

    requests: list[Slip]
    by_cause: dict[str, int]


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``share`` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)), 1) - 1]


def spread(days: Sequence[float]) -> Spread:
    """Count, median and 85th percentile of a list of durations in days."""
    if not days:
        return Spread(requests=0, median_days=None, p85_days=None)
    return Spread(requests=len(days), median_days=round(statistics.median(days), 2),
                  p85_days=round(percentile(days, 0.85), 2))


def _days(start: dt.datetime, end: dt.datetime) -> float:
    return (end - start).total_seconds() / 86400


def cycle_times(facts: list[RequestFacts], since: dt.datetime, until: dt.datetime) -> dict[str, CycleTimes]:
    """``created_to_deployed`` and ``approved_to_deployed`` for the requests deployed in the period."""
    found: dict[str, CycleTimes] = {}
    for name, start_of in (("created_to_deployed", "created"), ("approved_to_deployed", "approved")):
        measured: list[tuple[RequestFacts, float]] = []
        for request in facts:
            start: dt.datetime | None = getattr(request, start_of)
            deployed = request.deployed
            if deployed is None or start is None or not since <= deployed < until or start > deployed:
                continue
            measured.append((request, _days(start, deployed)))
        by_type: dict[str, list[float]] = {}
        by_department: dict[str, list[float]] = {}
        for request, days in measured:
            by_type.setdefault(request.type or NONE, []).append(days)
            by_department.setdefault(request.department or NONE, []).append(days)
        found[name] = CycleTimes(
            all=spread([days for _, days in measured]),
            by_type={key: spread(values) for key, values in sorted(by_type.items())},
            by_department={key: spread(values) for key, values in sorted(by_department.items())},
        )
    return found


def _held(facts: list[RequestFacts]) -> dict[str, list[RequestFacts]]:
    held: dict[str, list[RequestFacts]] = {}
    for request in facts:
        if request.release is not None:
            held.setdefault(request.release, []).append(request)
    return held


def throughput(
    db: Database, facts: list[RequestFacts], since: dt.datetime, until: dt.datetime
) -> list[ReleaseThroughput]:
    """Requests shipped per release deployed in the period, by deploy date."""
    held = _held(facts)
    return [
        ReleaseThroughput(release=row["name"], train=row["train"], deploy_at=row["deploy_at"], state=row["state"],
                          requests=len(held.get(row["name"], [])))
        for row in db.query(
            "select * from releases where state in ('deploying', 'released') and deploy_at >= ? and deploy_at < ? "
            "order by deploy_at, name", [clock.stamp(since), clock.stamp(until)],
        )
    ]


def fill(
    db: Database, facts: list[RequestFacts], since: dt.datetime, until: dt.datetime,
    quotas: Mapping[str, Sequence[tuple[str, int]]] | None = None,
) -> list[ReleaseFill]:
    """Each release deploying in the period or still live, against its capacity and quotas."""
    held = _held(facts)
    found: list[ReleaseFill] = []
    for row in db.query(
        "select * from releases where state != 'cancelled' and ((deploy_at >= ? and deploy_at < ?) or state in "
        f"({db.json_values})) order by deploy_at, name",
        [clock.stamp(since), clock.stamp(until), json.dumps(LIVE_STATES)],
    ):
        requests = held.get(row["name"], [])
        departments = Counter(request.department or NONE for request in requests)
        seats = list((quotas or {}).get(row["train"], ()))
        quota_fill = [
            QuotaFill(department=name, seats=n, requests=sum(
                1 for r in requests if (r.department or "").strip().casefold() == name.strip().casefold()))
            for name, n in seats
        ]
        if seats:
            quota_fill.append(QuotaFill(department=None, seats=row["capacity"] - sum(n for _, n in seats),
                                        requests=len(requests) - sum(q["requests"] for q in quota_fill)))
        found.append(ReleaseFill(
            release=row["name"], train=row["train"], deploy_at=row["deploy_at"], state=row["state"],
            capacity=row["capacity"], requests=len(requests), by_department=dict(sorted(departments.items())),
            quotas=quota_fill,
        ))
    return found


_MOVED = re.compile(r"moved from .* \((?P<cause>[^()]*)\)(?: \(expedited into a frozen release\))?: ")


def slip_cause(reason: str) -> str:
    """The cause of a move, from the planner's reason (``over capacity``, ``bumped by a priority critical request``...)."""
    match = _MOVED.match(reason)
    if match is None:
        return reason.partition(":")[0]
    return re.sub(r"^bumped by \S+, priority (\S+)$", r"bumped by a priority \1 request", match["cause"])


def slipped(db: Database, since: dt.datetime, until: dt.datetime) -> Slips:
    """Planner moves to a later release in the period, oldest first, and their causes."""
    deploys = {row["name"]: row["deploy_at"] for row in db.query("select name, deploy_at from releases")}
    live = {row["key"] for row in db.query("select key from change_requests where deleted_at is null")}
    slips: list[Slip] = []
    for event in db.query(
        "select at, request, old, new from audit where origin = 'planned' and field = 'release' "
        "and at >= ? and at < ? order by id", [clock.stamp(since), clock.stamp(until)],
    ):
        old, new = json.loads(event["old"] or "null"), json.loads(event["new"] or "null")
        if event["request"] not in live or not old or not isinstance(new, dict) or not new.get("release"):
            continue
        before, after = deploys.get(old), deploys.get(new["release"])
        if before is None or after is None or clock.parse(after) <= clock.parse(before):
            continue
        slips.append(Slip(request=event["request"], at=event["at"], from_release=old, to_release=new["release"],
                          reason=new["reason"], cause=slip_cause(new["reason"])))
    return Slips(requests=slips, by_cause=dict(sorted(Counter(s["cause"] for s in slips).items())))
