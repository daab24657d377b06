"""The dashboard: a static site of the release manager's views, written from the store alone.

``build_dashboard(db, Path("site"))`` writes, with ``dashboard.css`` beside them:

- ``index.html``: the overview: headline figures, requests arrived per bucket stacked
  by department, type and source, the cycle-time and backlog trends;
- ``calendar.html``: every release in deploy order, its phases (owners, sign-offs),
  freeze, held and cancelled releases, and the configured blackouts;
- ``releases/<id>.html``: one release: fill against capacity and quotas, clashes,
  phases and its requests;
- ``backlog.html``: approved requests without a release, their ages and reasons;
- ``requests/<name>.html``: one request and its timeline (``reports.request_pages``).

Every figure comes from ``reports.analytics.build_report``, the data of ``relsync
report --json``. The pages need no server, no network and no script: charts are
inline SVG (``reports.svg``), links are relative. Every value from a source system is
escaped by the templates' autoescape. The same store and options give the same bytes:
the pages are stamped with the latest change in the data, not the time they were built.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing
import os
import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypedDict

from config.trains import Blackout
from mapping import clock
from reports import svg
from reports.analytics import Report, build_report
from reports.flow import Spread, spread
from reports.notes import when
from reports.request_pages import ENVIRONMENT, PageWriter, page_name, request_pages_apart, split_keys, write_request_pages
from reports.timeline import RequestFacts, request_facts
from reports.volume import METRICS, Bucket, bucket_start, buckets, milestone
from sync.db import Database
from sync.schedule import cancellation, missing_signoffs, phases_with_signoffs, release_clashes

__all__ = ["DashboardSummary", "build_dashboard", "data_stamp", "page_name", "release_page", "safe_link"]

SPLITS: tuple[str, ...] = ("department", "type", "source")
WORKERS = 2
"""Processes writing the request pages while this one writes the rest (the pages are most of the work)."""
CHART_SERIES = 9
"""Series drawn in a stacked chart; the rest are drawn together as one (the table lists them all)."""


class DashboardSummary(TypedDict):
    """What a build wrote."""

    out: str
    generated: str
    pages: dict[str, int]


def safe_link(url: str | None) -> str | None:
    """The URL if it is safe to link (http or https), else None."""
    return url if url and re.match(r"(?i)https?://", url.strip()) else None


def release_page(release_id: str) -> str:
    """The release page's file name: ``releases/<id>.html`` (a hashed safe name for an unusual id)."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}", release_id):
        return f"releases/{release_id}.html"
    return f"releases/{page_name(release_id)}.html"


def data_stamp(db: Database) -> dt.datetime:
    """The latest change the store records (a run, an audit event, a request, an assignment, a sign-off)."""
    found = [
        clock.parse(row[0])
        for row in db.execute(
            "select max(ended_at) from runs union all select max(started_at) from runs "
            "union all select max(at) from audit union all select max(updated_at) from change_requests "
            "union all select max(assigned_at) from assignments union all select max(signed_at) from phase_signoffs"
        ).fetchall()
        if row[0]
    ]
    return max(found, default=dt.datetime(1970, 1, 1, tzinfo=dt.UTC))


def _next_bucket(moment: dt.datetime, by: str) -> dt.datetime:
    """The start of the bucket after the one holding ``moment``."""
    start = bucket_start(moment, by)
    if by == "week":
        return start + dt.timedelta(days=7)
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


def cycle_trend(facts: Sequence[RequestFacts], periods: Sequence[Bucket]) -> list[dict[str, Any]]:
    """Per bucket, the requests deployed in it and their days created -> deployed (as ``flow.cycle_times``)."""
    days: list[list[float]] = [[] for _ in periods]
    starts = [period.start for period in periods]
    for request in facts:
        created, deployed = request.created, request.deployed
        if created is None or deployed is None or created > deployed:
            continue
        if not periods or not periods[0].start <= deployed < periods[-1].end:
            continue
        days[bisect_right(starts, deployed) - 1].append((deployed - created).total_seconds() / 86400)
    trend = []
    for period, values in zip(periods, days, strict=True):
        measured: Spread = spread(values)
        trend.append({"bucket": period.label, **measured})
    return trend


def _split(report: Report, dimension: str) -> dict[str, Any]:
    """The arrived figure per bucket split by ``dimension``: a stacked chart, its legend and its table."""
    labels = report["period"]["buckets"]
    totals: dict[str, int] = {}
    for bucket in report["volume"]:
        for name, figures in bucket["by"][dimension].items():
            totals[name] = totals.get(name, 0) + figures["arrived"]
    columns = sorted((name for name, total in totals.items() if total), key=lambda name: (-totals[name], name))
    rows = [
        (bucket["bucket"], [bucket["by"][dimension].get(name, {}).get("arrived", 0) for name in columns],
         bucket["totals"]["arrived"])
        for bucket in report["volume"]
    ]
    series: list[tuple[str, list[int]]] = [(name, [row[1][i] for row in rows]) for i, name in enumerate(columns)]
    if len(series) > CHART_SERIES:
        rest = series[CHART_SERIES - 1:]
        series = [*series[:CHART_SERIES - 1],
                  (f"{len(rest)} others", [sum(values[i] for _, values in rest) for i in range(len(labels))])]
    chart = svg.stacked_bars(labels, series, title=f"Requests arrived per {report['period']['by']} by {dimension}",
                             unit="requests")
    return {"dimension": dimension, "chart": chart, "legend": list(enumerate(name for name, _ in series)),
            "columns": columns, "rows": rows}


def _overview(report: Report, facts: Sequence[RequestFacts], periods: Sequence[Bucket]) -> dict[str, Any]:
    labels = report["period"]["buckets"]
    cycle = cycle_trend(facts, periods)
    overall = report["flow"]["cycle_times"]["created_to_deployed"]["all"]
    backlog = report["backlog"]
    live = sum(1 for release in report["flow"]["fill"] if release["state"] != "released")
    headline = [
        {"id": metric, "label": f"requests {metric}", "text": sum(b["totals"][metric] for b in report["volume"])}
        for metric in ("arrived", "approved", "deployed")
    ] + [
        {"id": "median_cycle_days", "label": "median days, created to deployed",
         "text": "" if overall["median_days"] is None else overall["median_days"]},
        {"id": "backlog_size", "label": "approved, not planned", "text": backlog["size"]},
        {"id": "median_backlog_age_days", "label": "median backlog age, days",
         "text": "" if backlog["median_age_days"] is None else backlog["median_age_days"]},
        {"id": "live_releases", "label": "releases in the plan", "text": live},
    ]
    return {
        "period": report["period"], "headline": headline, "metrics": METRICS, "volume": report["volume"],
        "splits": [_split(report, dimension) for dimension in SPLITS],
        "cycle": cycle,
        "cycle_chart": svg.line_chart(
            labels, [("median", [row["median_days"] for row in cycle]), ("85th percentile", [row["p85_days"] for row in cycle])],
            title="Cycle time, created to deployed, in days", unit="days"),
        "backlog_trend": backlog["trend"],
        "backlog_chart": svg.line_chart(labels, [("in the backlog", [point["size"] for point in backlog["trend"]])],
                                        title="Approved requests without a release", unit="requests"),
    }


def _phases(release_id: str, db: Database) -> list[dict[str, Any]]:
    phases = []
    for row in phases_with_signoffs(db, release_id):
        if row["signed_by"]:
            signoff = f"signed off by {row['signed_by']}, {when(clock.parse(row['signed_at']))}"
            signoff += f" ({row['signoff_note']})" if row["signoff_note"] else ""
        else:
            signoff = "sign-off required, not given" if row["signoff_required"] else ""
        starts, ends = clock.parse(row["starts"]), clock.parse(row["ends"])
        phases.append({"phase": row["phase"], "owner": row["owner"], "signoff": signoff, "starts": when(starts),
                       "ends": when(ends), "dates": f"{starts:%Y-%m-%d} – {ends:%Y-%m-%d}"})
    return phases


def _releases(db: Database, report: Report) -> list[dict[str, Any]]:
    """Every release in deploy order, with what its calendar row and its page show."""
    fills = {row["release"]: row for row in report["flow"]["fill"]}
    members: dict[str, list[dict[str, Any]]] = {}
    for row in db.query(
        "select a.release as release_id, a.pinned, a.reason, a.assigned_by, r.key, r.title, r.department, r.type, "
        "r.priority, r.status, r.url from assignments a join change_requests r on r.key = a.request "
        "where r.deleted_at is null order by a.release, r.department, r.key"
    ):
        row["link"], row["title"] = safe_link(row["url"]), row["title"] or "(no title)"
        members.setdefault(row["release_id"], []).append(row)
    releases = []
    for row in db.query("select * from releases order by deploy_at, id"):
        requests = members.get(row["id"], [])
        departments: dict[str, int] = {}
        for request in requests:
            name = request["department"] or "(none)"
            departments[name] = departments.get(name, 0) + 1
        releases.append({
            **row, "page": release_page(row["id"]), "requests": requests,
            "cancelled": row["state"] == "cancelled", "cancelled_why": cancellation(row) or "(by the calendar)",
            "held": row["held_since"] is not None and row["state"] == "deploying", "missing": missing_signoffs(db, row["id"]),
            "freeze_text": when(clock.parse(row["freeze_at"])), "deploy_text": when(clock.parse(row["deploy_at"])),
            "phases": _phases(row["id"], db), "clashes": release_clashes(db, row["id"]),
            "quotas": fills[row["name"]]["quotas"] if row["name"] in fills else [],
            "by_department": sorted(departments.items(), key=lambda item: (item[0] == "(none)", item[0].casefold(), item[0])),
        })
    return releases


def build_dashboard(
    db: Database, out: Path, *, by: str = "week", since: dt.datetime | None = None,
    until: dt.datetime | None = None, quotas: Mapping[str, Sequence[tuple[str, int]]] | None = None,
    blackouts: Sequence[tuple[str, Blackout]] = (), generated: dt.datetime | None = None,
) -> DashboardSummary:
    """Write the site into ``out`` (created if needed) and say what was written.

    Args:
        by, since, until: the report's buckets and period (``until`` defaults to the end
            of the bucket holding ``generated``, so the latest data is counted).
        quotas: train name -> department quotas, as for ``build_report``.
        blackouts: (train name, blackout) pairs from the configuration, for the calendar.
        generated: the moment the figures are measured at and the pages are stamped
            with; default the latest change recorded in the store (``data_stamp``).
    """
    generated = generated or data_stamp(db)
    writer = PageWriter(out, ENVIRONMENT, generated=clock.stamp(generated), generated_text=when(generated))
    pages_of = {row["id"]: (row["name"], release_page(row["id"])) for row in db.query("select id, name from releases")}
    store = _store_file(db)
    with contextlib.ExitStack() as stack:
        # The request pages do not depend on the report: on a file store worker processes write
        # them, each a range of keys, while this one computes the figures and the other pages.
        jobs: list[Future[dict[str, str]]] = []
        if store is not None and (os.cpu_count() or 1) > 1 and "fork" in multiprocessing.get_all_start_methods():
            pool = stack.enter_context(ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("fork")))
            jobs = [pool.submit(request_pages_apart, store, out, pages_of, keys) for keys in split_keys(db, WORKERS)]
        summary = _write_views(db, writer, generated, by, since, until, quotas, blackouts)
        request_pages: dict[str, str] = {}
        for job in jobs:
            request_pages.update(job.result())
        if not jobs:
            request_pages = write_request_pages(db, writer, pages_of)
    writer.written.update(request_pages.values())
    writer.remove_stale()
    summary["requests"] = len(request_pages)
    summary["total"] = sum(summary.values())
    return DashboardSummary(out=str(out), generated=clock.stamp(generated), pages=summary)


def _store_file(db: Database) -> str | None:
    """The SQLite store's file, or None for an in-memory one or a PostgreSQL store (its pages are written in one process)."""
    if db.dialect != "sqlite":
        return None
    for _, name, path in db.execute("pragma database_list").fetchall():
        if name == "main" and path:
            return str(path)
    return None


def _write_views(
    db: Database, writer: PageWriter, generated: dt.datetime, by: str, since: dt.datetime | None,
    until: dt.datetime | None, quotas: Mapping[str, Sequence[tuple[str, int]]] | None,
    blackouts: Sequence[tuple[str, Blackout]],
) -> dict[str, int]:
    """The overview, calendar, release and backlog pages and the stylesheet; how many of each."""
    facts = request_facts(db)
    until = until or _next_bucket(generated, by)
    if since is None and not any(milestone(request, metric) for request in facts for metric in METRICS):
        since = bucket_start(min(generated, until - dt.timedelta(microseconds=1)), by)
    report = build_report(db, by=by, since=since, until=until, quotas=quotas, now=generated, facts=facts)
    periods = buckets(clock.parse(report["period"]["since"]), clock.parse(report["period"]["until"]), by)
    releases = _releases(db, report)
    request_pages = {key: f"requests/{page_name(key)}.html" for key, in db.execute("select key from change_requests")}
    linked = {key: f"../{page}" for key, page in request_pages.items()}
    writer.write("index.html", "overview.html", o=_overview(report, facts, periods), swatch=svg.swatch)
    writer.write("calendar.html", "calendar.html", releases=releases, blackouts=[
        {"train": train, "name": b.name, "start": b.start.isoformat(), "end": b.end.isoformat(),
         "action": "moves to the day after" if b.action == "move" else "is skipped"} for train, b in blackouts])
    for release in releases:
        writer.write(release["page"], "release.html", r=release, request_pages=linked)
    ages = report["backlog"]["ages"]
    writer.write("backlog.html", "backlog.html", b=report["backlog"], request_pages=request_pages, link=safe_link,
                 age_chart=svg.stacked_bars(list(ages), [("requests", list(ages.values()))],
                                            title="Backlog by age since approval", unit="requests"))
    writer.write_stylesheet()
    return {"overview": 1, "calendar": 1, "backlog": 1, "releases": len(releases)}
