"""The release manager's read-only views: ``relsync requests`` (the list) and ``relsync report``."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from mapping import clock
from relsync.common import CONFIG_OPTION, JSON_OPTION, emit, library_errors, store_of
from reports.requests import SORTS, RequestFilter, RequestRow, list_requests, requests_csv
from reports.timeline import moment
from reports.volume import BUCKETS

__all__ = ["dashboard_command", "report_command", "requests_command"]


class Moment(click.ParamType):
    """A date (``2026-11-01``, midnight UTC) or a date-time with a time zone."""

    name = "DATE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value
        try:
            return moment(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a date (2026-11-01) or a date-time with a time zone", param, ctx)


CSV_OPTION = click.option("--csv", "as_csv", is_flag=True, help="Print CSV (a header row, then data).")
SINCE_OPTION = click.option("--since", type=Moment(), help="From this date or date-time (included, UTC).")
UNTIL_OPTION = click.option("--until", type=Moment(), help="Up to this date or date-time (excluded, UTC).")


def _one_format(as_json: bool, as_csv: bool) -> None:
    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")


def _line(row: RequestRow) -> str:
    title = (row["title"] or "").replace("\n", " ")
    where = row["release"] or "-"
    if row["age_days"] is not None:
        where = f"waiting {row['age_days']} d: {row['reason'] or 'not planned yet'}"
    if row["quarantined"]:
        where += f"  QUARANTINED {row['quarantined']}"
    return (f"{row['key']:<24} {row['status'] or '-':<11} {row['priority'] or '-':<8} {row['department'] or '-':<16} "
            f"{row['type'] or '-':<12} {(row['created_at'] or '-')[:10]}  {title[:50]:<50}  {where}")


@click.command("requests")
@click.option("--status", multiple=True, help="Only these statuses (repeatable).")
@click.option("--release", multiple=True, help="Only requests in this release, by id or name (repeatable).")
@click.option("--source", multiple=True, help="Only these configured sources (repeatable).")
@click.option("--department", multiple=True, help="Only these departments, any case (repeatable).")
@click.option("--type", "type_", multiple=True, help="Only these request types, any case (repeatable).")
@click.option("--priority", multiple=True, help="Only these priorities (repeatable).")
@SINCE_OPTION
@UNTIL_OPTION
@click.option("--unplanned", is_flag=True, help="Approved requests without a release: their age and why they wait.")
@click.option("--quarantined", is_flag=True, help="Only records held in quarantine.")
@click.option("--sort", type=click.Choice(SORTS), default="priority", show_default=True,
              help="priority: most urgent, then oldest first; age: longest waiting first.")
@click.option("--reverse", is_flag=True, help="Reverse the order.")
@CONFIG_OPTION
@JSON_OPTION
@CSV_OPTION
@library_errors
def requests_command(status: tuple[str, ...], release: tuple[str, ...], source: tuple[str, ...],
                     department: tuple[str, ...], type_: tuple[str, ...], priority: tuple[str, ...],
                     since: dt.datetime | None, until: dt.datetime | None, unplanned: bool, quarantined: bool,
                     sort: str, reverse: bool, config_path: Path, as_json: bool, as_csv: bool) -> None:
    """Change requests, filtered and sorted; --unplanned shows the backlog with the planner's reasons."""
    _one_format(as_json, as_csv)
    wanted = RequestFilter(status=status, release=release, source=source, department=department, type=type_,
                           priority=priority, since=since, until=until, unplanned=unplanned, quarantined=quarantined)
    with store_of(config_path) as db:
        rows = list_requests(db, wanted, sort=sort, reverse=reverse)
    if as_csv:
        click.echo(requests_csv(rows), nl=False)
        return
    emit(rows, as_json, "\n".join([*(_line(row) for row in rows), f"{len(rows)} requests"]))


@click.command("report")
@click.option("--by", type=click.Choice(BUCKETS), default="week", show_default=True, help="Bucket size.")
@SINCE_OPTION
@UNTIL_OPTION
@CONFIG_OPTION
@JSON_OPTION
@CSV_OPTION
@library_errors
def report_command(by: str, since: dt.datetime | None, until: dt.datetime | None, config_path: Path,
                   as_json: bool, as_csv: bool) -> None:
    """Volume, flow and backlog over a period, from the store alone (no API calls)."""
    from config.loader import load_config
    from reports.analytics import build_report
    from reports.report_formats import report_csv, report_text

    _one_format(as_json, as_csv)
    config = load_config(config_path)
    quotas = {train.name: train.quotas for train in config.trains}
    now = clock.now()
    if since is not None and since >= (until or now):
        raise click.BadParameter("must be before --until (or now)", param_hint="--since")
    with store_of(config_path) as db:
        report = build_report(db, by=by, since=since, until=until, quotas=quotas, now=now)
    if as_csv:
        click.echo(report_csv(report), nl=False)
        return
    emit(report, as_json, report_text(report))


@click.command("dashboard")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The folder to write the site into (created if needed; open its index.html).")
@click.option("--by", type=click.Choice(BUCKETS), default="week", show_default=True, help="Bucket size.")
@SINCE_OPTION
@UNTIL_OPTION
@CONFIG_OPTION
@JSON_OPTION
@library_errors
def dashboard_command(out: Path, by: str, since: dt.datetime | None, until: dt.datetime | None, config_path: Path,
                      as_json: bool) -> None:
    """Write the dashboard, a static site that opens offline, from the store alone (no API calls)."""
    from config.loader import load_config
    from reports.dashboard import build_dashboard

    config = load_config(config_path)
    quotas = {train.name: train.quotas for train in config.trains}
    blackouts = [(train.name, blackout) for train in config.trains for blackout in train.blackouts]
    if since is not None and until is not None and since >= until:
        raise click.BadParameter("must be before --until", param_hint="--since")
    with store_of(config_path) as db:
        try:
            summary = build_dashboard(db, out, by=by, since=since, until=until, quotas=quotas, blackouts=blackouts)
        except ValueError as error:
            if since is None:
                raise
            raise click.BadParameter(str(error), param_hint="--since") from None
    pages = summary["pages"]
    emit(summary, as_json, f"wrote {pages['total']} pages to {out} ({pages['releases']} releases, "
                           f"{pages['requests']} requests; data as of {summary['generated']}): open "
                           f"{out / 'index.html'}")

