"""Time buckets and the request volume per bucket.

A bucket is a UTC calendar week (Monday 00:00 to the next Monday, labelled
``2026-W49`` by its ISO week) or a UTC calendar month (``2026-12``). A period runs from
``since`` (included) to ``until`` (excluded) and is cut into every bucket it touches,
empty ones included, the first and last clipped to the period.

Volume, per bucket (each request counts at most once per figure, in the bucket of its
first such moment; see ``reports.timeline`` for the moments):

- **arrived**: requests whose ``created_at`` falls in the bucket;
- **approved**: whose approval (first pulled status ``approved``) falls in it;
- **planned**: whose first release assignment falls in it;
- **deployed**: whose deploy moment (their release's ``deploy_at`` once it deploys, or
  the first pulled status ``deployed``) falls in it;
- **rejected**: whose first pulled status ``rejected`` falls in it;

each also split by the request's current department, type, source (the configured
source name) and priority, ``(none)`` standing for a missing value.
"""
from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from dataclasses import dataclass
from typing import TypedDict

from mapping import clock
from reports.timeline import RequestFacts

__all__ = ["BUCKETS", "DIMENSIONS", "METRICS", "Bucket", "VolumeBucket", "bucket_start", "buckets", "milestone", "volume"]

BUCKETS: tuple[str, ...] = ("week", "month")
METRICS: tuple[str, ...] = ("arrived", "approved", "planned", "deployed", "rejected")
DIMENSIONS: tuple[str, ...] = ("department", "type", "source", "priority")
NONE = "(none)"


@dataclass(frozen=True)
class Bucket:
    """One week or month of the period: ``start`` included, ``end`` excluded."""

    label: str
    start: dt.datetime
    end: dt.datetime


class VolumeBucket(TypedDict):
    """The volume figures of one bucket: totals, and the same split by each dimension."""

    bucket: str
    start: str
    end: str
    totals: dict[str, int]
    by: dict[str, dict[str, dict[str, int]]]


def bucket_start(moment: dt.datetime, by: str) -> dt.datetime:
    """The start of the week (Monday) or month holding ``moment``, UTC."""
    day = moment.astimezone(dt.UTC).date()
    day = day.replace(day=1) if by == "month" else day - dt.timedelta(days=day.weekday())
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _next(start: dt.datetime, by: str) -> dt.datetime:
    if by == "week":
        return start + dt.timedelta(days=7)
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


def _label(start: dt.datetime, by: str) -> str:
    if by == "month":
        return f"{start.year:04d}-{start.month:02d}"
    year, week, _ = start.isocalendar()
    return f"{year:04d}-W{week:02d}"


def buckets(since: dt.datetime, until: dt.datetime, by: str) -> list[Bucket]:
    """Every bucket from ``since`` to ``until``, in order, clipped to the period."""
    if by not in BUCKETS:
        raise ValueError(f"by must be one of {', '.join(BUCKETS)}, not {by!r}")
    found: list[Bucket] = []
    start = bucket_start(since, by)
    while start < until:
        end = _next(start, by)
        found.append(Bucket(_label(start, by), max(start, since), min(end, until)))
        start = end
    return found


def milestone(facts: RequestFacts, metric: str) -> dt.datetime | None:
    """The moment one volume figure counts the request at (None: it does not count)."""
    return {
        "arrived": facts.created, "approved": facts.approved, "planned": facts.planned,
        "deployed": facts.deployed, "rejected": facts.rejected,
    }[metric]


def dimension(facts: RequestFacts, name: str) -> str:
    """The request's value for a split (``(none)`` when missing)."""
    value = {"department": facts.department, "type": facts.type, "source": facts.source,
             "priority": facts.priority}[name]
    return value or NONE


def volume(facts: list[RequestFacts], periods: list[Bucket]) -> list[VolumeBucket]:
    """The volume figures of every bucket (see the module docstring)."""
    found = [
        VolumeBucket(bucket=b.label, start=clock.stamp(b.start), end=clock.stamp(b.end),
                     totals=dict.fromkeys(METRICS, 0), by={name: {} for name in DIMENSIONS})
        for b in periods
    ]
    if not periods:
        return found
    starts = [b.start for b in periods]
    first, end = periods[0].start, periods[-1].end
    for request in facts:
        values = [(name, dimension(request, name)) for name in DIMENSIONS]
        for metric in METRICS:
            at = milestone(request, metric)
            if at is None or not first <= at < end:
                continue
            index = bisect_right(starts, at) - 1
            found[index]["totals"][metric] += 1
            by = found[index]["by"]
            for name, value in values:
                split = by[name].get(value)
                if split is None:
                    split = by[name][value] = dict.fromkeys(METRICS, 0)
                split[metric] += 1
    return found
