"""The release manager's report: volume, flow and backlog over a period, from the store alone.

``build_report(db, by="week", since=..., until=...)`` returns the whole report as one
JSON-ready structure (``Report``); ``relsync report`` prints it and a dashboard can draw
it. Nothing here calls an API. Each figure is defined where it is computed:
``reports.timeline`` (the moments), ``reports.volume`` (buckets, volume),
``reports.flow`` (cycle times, throughput, fill, slips) and ``backlog`` below; the
same definitions are in docs/reports.md.

The period: ``since`` included, ``until`` excluded; ``until`` defaults to now and
``since`` to the earliest moment the report counts (a request created, approved,
planned, deployed or rejected), so the default is all the store knows.
"""
from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import accumulate
from typing import TypedDict

from mapping import clock
from reports.flow import CycleTimes, ReleaseFill, ReleaseThroughput, Slips, cycle_times, fill, slipped, spread, throughput
from reports.requests import RequestFilter, RequestRow, list_requests
from reports.timeline import RequestFacts, request_facts
from reports.volume import METRICS, Bucket, VolumeBucket, bucket_start, buckets, milestone, volume
from sync.db import Database

__all__ = ["AGE_BANDS", "Backlog", "Flow", "Period", "Report", "backlog", "backlog_counts", "build_report", "in_backlog"]

AGE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("under 7 days", 0, 7), ("7-30 days", 7, 30), ("30-90 days", 30, 90), ("90 days or more", 90, float("inf")),
)
"""Backlog ages, in days since approval: each band includes its lower bound and excludes its upper one."""


class Period(TypedDict):
    """What the report covers: ``since`` included, ``until`` excluded, cut in weeks or months."""

    since: str
    until: str
    by: str
    buckets: list[str]


class Flow(TypedDict):
    """Cycle times, throughput per release, release fill and slips."""

    cycle_times: dict[str, CycleTimes]
    throughput: list[ReleaseThroughput]
    fill: list[ReleaseFill]
    slipped: Slips


class TrendPoint(TypedDict):
    """The backlog's size at the end of one bucket."""

    bucket: str
    at: str
    size: int


class Backlog(TypedDict):
    """Approved requests without a release: now (size, ages, reasons, the requests) and per bucket."""

    at: str
    size: int
    median_age_days: float | None
    p85_age_days: float | None
    ages: dict[str, int]
    by_reason: dict[str, int]
    requests: list[RequestRow]
    trend: list[TrendPoint]


class Report(TypedDict):
    """The whole report, JSON-ready."""

    period: Period
    volume: list[VolumeBucket]
    flow: Flow
    backlog: Backlog


def in_backlog(request: RequestFacts, at: dt.datetime) -> bool:
    """Whether the request was approved and without a release at ``at``, as relsync had seen it."""
    return request.status_at(at) == "approved" and request.release_at(at) is None


def backlog_counts(facts: list[RequestFacts], moments: Sequence[dt.datetime]) -> list[int]:
    """How many requests were in the backlog at each of ``moments`` (in ascending order).

    The same answer as counting ``in_backlog`` per request and moment, in one pass over
    each request's changes: the spans in which it was approved and without a release
    are laid over the moments they contain.
    """
    counts = [0] * (len(moments) + 1)
    for request in facts:
        if not any(status == "approved" for _, status in request.statuses):
            continue
        changes = sorted({at for at, _ in request.statuses} | {at for at, _ in request.releases})
        for index, at in enumerate(changes):
            if not in_backlog(request, at):
                continue
            first = bisect_left(moments, at)
            last = bisect_left(moments, changes[index + 1]) if index + 1 < len(changes) else len(moments)
            counts[first] += 1
            counts[last] -= 1
    return list(accumulate(counts[:-1]))


def backlog(
    db: Database, facts: list[RequestFacts], periods: list[Bucket], *, now: dt.datetime
) -> Backlog:
    """The backlog (approved, no release, not deleted) as the store holds it now, and its trend.

    Now: its size, the ages (days since approval, see ``reports.requests``) in
    ``AGE_BANDS`` with their median and 85th percentile, and the count per kind of the
    planner's reason. Trend: per bucket, how many requests were in the backlog at the
    bucket's end (or now, for a bucket not over yet), replaying the audit: their last
    pulled status was ``approved`` and their last recorded assignment gave no release.
    """
    waiting = list_requests(db, RequestFilter(unplanned=True), sort="age", now=now, facts=facts)
    ages = [row["age_days"] for row in waiting if row["age_days"] is not None]
    bands = {label: sum(1 for age in ages if low <= age < high) for label, low, high in AGE_BANDS}
    measured = spread(ages)
    moments = [min(period.end, now) for period in periods]
    trend = [
        TrendPoint(bucket=period.label, at=clock.stamp(at), size=size)
        for period, at, size in zip(periods, moments, backlog_counts(facts, moments), strict=True)
    ]
    return Backlog(
        at=clock.stamp(now), size=len(waiting), median_age_days=measured["median_days"],
        p85_age_days=measured["p85_days"], ages=bands,
        by_reason=dict(sorted(Counter(row["reason_kind"] or "" for row in waiting).items())),
        requests=waiting, trend=trend,
    )


def build_report(
    db: Database, *, by: str = "week", since: dt.datetime | None = None,
    until: dt.datetime | None = None, quotas: Mapping[str, Sequence[tuple[str, int]]] | None = None,
    now: dt.datetime | None = None, facts: list[RequestFacts] | None = None,
) -> Report:
    """The whole report over ``[since, until)`` in ``by`` buckets (week or month).

    Args:
        quotas: train name -> its department quotas ``(department, seats)``, from the
            config; without them release fill shows the total capacity only.
        now: the moment the backlog is measured at (default: the clock).
        facts: ``request_facts(db)`` when the caller has read them already.
    """
    now = now or clock.now()
    until = until or now
    facts = request_facts(db) if facts is None else facts
    if since is None:
        moments = [at for request in facts for metric in METRICS if (at := milestone(request, metric)) is not None]
        since = bucket_start(min(moments, default=until), by)
    if since >= until:
        raise ValueError(f"the period is empty: since {clock.stamp(since)} is not before until {clock.stamp(until)}")
    periods = buckets(since, until, by)
    return Report(
        period=Period(since=clock.stamp(since), until=clock.stamp(until), by=by, buckets=[p.label for p in periods]),
        volume=volume(facts, periods),
        flow=Flow(
            cycle_times=cycle_times(facts, since, until),
            throughput=throughput(db, facts, since, until),
            fill=fill(db, facts, since, until, quotas),
            slipped=slipped(db, since, until),
        ),
        backlog=backlog(db, facts, periods, now=now),
    )
