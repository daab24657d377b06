"""The report (``reports.analytics.Report``) as text for people and as CSV for spreadsheets.

The CSV is long-form, one figure a row: ``section, bucket, dimension, value, metric,
figure``; e.g. ``volume,2026-W49,department,Sales Ops,arrived,4`` or
``cycle_time,,type,Layout,created_to_deployed_median_days,12.5``. Every number in the
text and the JSON is in it.
"""
from __future__ import annotations

import csv
import io
from typing import Any

from reports.analytics import Report
from reports.flow import Spread
from reports.volume import DIMENSIONS, METRICS

__all__ = ["CSV_COLUMNS", "report_csv", "report_text"]

CSV_COLUMNS: tuple[str, ...] = ("section", "bucket", "dimension", "value", "metric", "figure")


def report_rows(report: Report) -> list[tuple[Any, ...]]:
    """Every figure of the report as one ``CSV_COLUMNS`` row."""
    rows: list[tuple[Any, ...]] = []
    for bucket in report["volume"]:
        rows += [("volume", bucket["bucket"], "all", "", metric, bucket["totals"][metric]) for metric in METRICS]
        for dimension in DIMENSIONS:
            for value, counts in sorted(bucket["by"][dimension].items()):
                rows += [("volume", bucket["bucket"], dimension, value, metric, counts[metric]) for metric in METRICS]
    for name, times in report["flow"]["cycle_times"].items():
        groups: list[tuple[str, str, Spread]] = [("all", "", times["all"])]
        groups += [("type", key, value) for key, value in times["by_type"].items()]
        groups += [("department", key, value) for key, value in times["by_department"].items()]
        for dimension, value, measured in groups:
            rows += [
                ("cycle_time", "", dimension, value, f"{name}_requests", measured["requests"]),
                ("cycle_time", "", dimension, value, f"{name}_median_days", measured["median_days"]),
                ("cycle_time", "", dimension, value, f"{name}_p85_days", measured["p85_days"]),
            ]
    rows += [("throughput", "", "release", r["release"], "requests", r["requests"]) for r in report["flow"]["throughput"]]
    for release in report["flow"]["fill"]:
        rows += [("fill", "", "release", release["release"], "requests", release["requests"]),
                 ("fill", "", "release", release["release"], "capacity", release["capacity"])]
        rows += [("fill", "", "release_department", f"{release['release']}/{department}", "requests", n)
                 for department, n in release["by_department"].items()]
        for quota in release["quotas"]:
            where = f"{release['release']}/{quota['department'] or '(shared)'}"
            rows += [("fill", "", "release_quota", where, "requests", quota["requests"]),
                     ("fill", "", "release_quota", where, "seats", quota["seats"])]
    slipped = report["flow"]["slipped"]
    rows += [("slipped", "", "cause", cause, "requests", n) for cause, n in slipped["by_cause"].items()]
    rows += [("slipped", s["at"][:10], "request", s["request"], f"{s['from_release']} -> {s['to_release']}", s["cause"])
             for s in slipped["requests"]]
    backlog = report["backlog"]
    rows += [("backlog", "", "all", "", "requests", backlog["size"]),
             ("backlog", "", "all", "", "median_age_days", backlog["median_age_days"]),
             ("backlog", "", "all", "", "p85_age_days", backlog["p85_age_days"])]
    rows += [("backlog", "", "age", band, "requests", n) for band, n in backlog["ages"].items()]
    rows += [("backlog", "", "reason", kind, "requests", n) for kind, n in backlog["by_reason"].items()]
    rows += [("backlog_trend", point["bucket"], "all", "", "requests", point["size"]) for point in backlog["trend"]]
    return rows


def report_csv(report: Report) -> str:
    """The report as CSV (header row ``CSV_COLUMNS``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(["" if cell is None else cell for cell in row] for row in report_rows(report))
    return out.getvalue()


def _spread(measured: Spread) -> str:
    if not measured["requests"]:
        return "none"
    return f"{measured['requests']} requests, median {measured['median_days']} d, 85th pct {measured['p85_days']} d"


def report_text(report: Report) -> str:
    """The report for a terminal: volume per bucket, flow and backlog."""
    period = report["period"]
    lines = [f"report {period['since'][:10]} .. {period['until'][:10]} by {period['by']}", "", "volume:"]
    lines.append(f"  {'bucket':<10}" + "".join(f"{metric:>10}" for metric in METRICS))
    for bucket in report["volume"]:
        lines.append(f"  {bucket['bucket']:<10}" + "".join(f"{bucket['totals'][m]:>10}" for m in METRICS))
    for dimension in DIMENSIONS:
        totals: dict[str, dict[str, int]] = {}
        for bucket in report["volume"]:
            for value, counts in bucket["by"][dimension].items():
                into = totals.setdefault(value, dict.fromkeys(METRICS, 0))
                for metric in METRICS:
                    into[metric] += counts[metric]
        lines.append(f"  by {dimension}, whole period:")
        lines += [f"    {value[:30]:<30}" + "".join(f"{counts[m]:>10}" for m in METRICS)
                  for value, counts in sorted(totals.items())]
    flow = report["flow"]
    lines += ["", "cycle times (requests deployed in the period):"]
    for name, times in flow["cycle_times"].items():
        lines.append(f"  {name.replace('_', ' ')}: {_spread(times['all'])}")
        lines += [f"    type {key}: {_spread(value)}" for key, value in times["by_type"].items()]
        lines += [f"    department {key}: {_spread(value)}" for key, value in times["by_department"].items()]
    lines += ["", "throughput (releases deployed in the period):"]
    lines += [f"  {r['release']:<20} {r['deploy_at'][:10]}  {r['requests']} requests" for r in flow["throughput"]] or ["  none"]
    lines += ["", "release fill:"]
    for release in flow["fill"]:
        quotas = ", ".join(f"{q['department'] or 'others'} {q['requests']}/{q['seats']}" for q in release["quotas"])
        lines.append(f"  {release['release']:<20} {release['deploy_at'][:10]}  {release['state']:<9} "
                     f"{release['requests']}/{release['capacity']}" + (f"  ({quotas})" if quotas else ""))
    if not flow["fill"]:
        lines.append("  none")
    slips = flow["slipped"]
    lines += ["", f"slipped to a later release: {len(slips['requests'])}"]
    lines += [f"  {cause}: {n}" for cause, n in slips["by_cause"].items()]
    backlog = report["backlog"]
    lines += ["", f"backlog (approved, no release) now: {backlog['size']} requests, median age "
                  f"{backlog['median_age_days']} d, 85th pct {backlog['p85_age_days']} d"]
    lines += [f"  {band}: {n}" for band, n in backlog["ages"].items()]
    lines += [f"  why: {kind} {n}" for kind, n in backlog["by_reason"].items()]
    lines.append("  trend: " + ", ".join(f"{p['bucket']} {p['size']}" for p in backlog["trend"]))
    return "\n".join(lines)
