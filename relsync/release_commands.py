"""The release manager's commands: releases (list, show, cancel, notes), pins, the dry run and the calendar."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from relsync.common import CONFIG_OPTION, JSON_OPTION, ConfigFailure, emit, library_errors, store_of


@click.group()
def release() -> None:
    """Releases: list, show, cancel, sign off, notes."""


@release.command("list")
@CONFIG_OPTION
@JSON_OPTION
@library_errors
def release_list(config_path: Path, as_json: bool) -> None:
    """Upcoming releases with dates, state, load and clashes; cancelled ones marked."""
    from mapping import clock
    from reports import views
    from sync import schedule

    with store_of(config_path) as db:
        plan = schedule.release_plan(db, cancelled_after=clock.stamp())
        for release in plan:
            release["clashes"] = schedule.release_clashes(db, release["id"])
            release["cancelled"] = schedule.cancellation(release) if release["state"] == "cancelled" else None
    lines = [views.plan_line(r) for r in plan]
    if any(r["clashes"] for r in plan):
        lines.append(views.CLASHES_EXPLAINED)
    emit(plan, as_json, "\n".join(lines) or "no releases yet (run relsync sync)")


@release.command("show")
@click.argument("release_ref", metavar="RELEASE")
@CONFIG_OPTION
@JSON_OPTION
@library_errors
def release_show(release_ref: str, config_path: Path, as_json: bool) -> None:
    """One release: phases with owners and every request in it."""
    from reports import views
    from sync.manual import release_detail

    with store_of(config_path) as db:
        detail = release_detail(db, release_ref)
    emit(detail, as_json, views.release_text(detail))


@release.command("cancel")
@click.argument("release_ref", metavar="RELEASE")
@click.option("--reason", default="", help="Why (recorded in the audit).")
@CONFIG_OPTION
@JSON_OPTION
@library_errors
def release_cancel(release_ref: str, reason: str, config_path: Path, as_json: bool) -> None:
    """Cancel a release; its requests are re-planned on the next sync."""
    from sync.manual import cancel_release

    with store_of(config_path, locked=True) as db:
        done = cancel_release(db, release_ref, reason=reason)
    emit(done, as_json, f"cancelled {done['release']}; {len(done['requests'])} requests will be re-planned on the next sync")


@release.command("signoff")
@click.argument("release_ref", metavar="RELEASE")
@click.argument("phase")
@click.option("--by", "by", required=True, help="Who signs the phase off (recorded in the audit).")
@click.option("--note", default="", help="What was accepted, a ticket, a link.")
@CONFIG_OPTION
@JSON_OPTION
@library_errors
def release_signoff(release_ref: str, phase: str, by: str, note: str, config_path: Path, as_json: bool) -> None:
    """Record a phase's sign-off; a release waits at its deploy time for those its train requires."""
    from sync.manual import sign_off

    with store_of(config_path, locked=True) as db:
        done = sign_off(db, release_ref, phase, by=by, note=note)
    left = f"; still required: {', '.join(done['missing'])}" if done["missing"] else "; no sign-off left to give"
    emit(done, as_json, f"{phase} of {done['release']} signed off by {done['by']}{left}")


@click.command()
@click.argument("key")
@click.argument("release_ref", metavar="RELEASE")
@click.option("--reason", required=True, help="Why (recorded in the audit).")
@CONFIG_OPTION
@JSON_OPTION
@library_errors
def assign(key: str, release_ref: str, reason: str, config_path: Path, as_json: bool) -> None:
    """Pin a request to a release; the planner will not move it."""
    from sync.manual import assign as pin

    with store_of(config_path, locked=True) as db:
        done = pin(db, key, release_ref, reason=reason)
    emit(done, as_json, f"{key} pinned to {done['release']} (was {done['previous'] or 'unassigned'}); written back on the next sync")


@click.command()
@click.argument("key")
@click.option("--reason", default="", help="Why (recorded in the audit).")
@CONFIG_OPTION
@JSON_OPTION
@library_errors
def unassign(key: str, reason: str, config_path: Path, as_json: bool) -> None:
    """Remove a request's release assignment (the planner may plan it again)."""
    from sync.manual import unassign as unpin

    with store_of(config_path, locked=True) as db:
        done = unpin(db, key, reason=reason)
    emit(done, as_json, f"{key} removed from {done['previous']}")


@click.command("plan")
@CONFIG_OPTION
@JSON_OPTION
@library_errors
def plan_command(config_path: Path, as_json: bool) -> None:
    """Dry run: what the next sync would change and write, and what it would cost. Writes nothing."""
    from config.loader import load_config
    from reports import views
    from sync.dryrun import dry_run
    from sync.store import store_problem

    config = load_config(config_path)
    if (problem := store_problem(config.store)) is not None:
        raise ConfigFailure(f"store: {problem}")
    result = dry_run(config)
    emit(result.as_dict(), as_json, views.dry_run_text(result.as_dict()))


@release.command("notes")
@click.argument("release_ref", metavar="RELEASE")
@click.option("--format", "fmt", type=click.Choice(["md", "html"]), default="md", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file instead of stdout.")
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the notes as JSON (with --output: what was written).")
@library_errors
def release_notes_command(release_ref: str, fmt: str, output: Path | None, config_path: Path, as_json: bool) -> None:
    """Release notes for stakeholders: requests by department and type, links, phases and owners."""
    from reports.notes import release_notes, render_html, render_markdown

    with store_of(config_path) as db:
        notes = release_notes(db, release_ref)
    text = render_html(notes) if fmt == "html" else render_markdown(notes)
    if output:
        output.write_text(text, encoding="utf-8")
        written = {"output": str(output), "format": fmt, "release": notes.id, "requests": notes.request_count}
        emit(written, as_json, f"wrote {output} ({notes.request_count} requests)")
    elif as_json:
        emit({**dataclasses.asdict(notes), "requests": notes.request_count}, True, "")
    else:
        click.echo(text)


@click.command()
@click.option("--ics", "ics_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The .ics file to write.")
@click.option("--train", "trains", multiple=True, help="Only these trains (repeatable).")
@CONFIG_OPTION
@JSON_OPTION
@library_errors
def calendar(ics_path: Path, trains: tuple[str, ...], config_path: Path, as_json: bool) -> None:
    """Releases, freezes and SDLC phases as calendar events (.ics) for stakeholders."""
    from config.loader import load_config
    from reports.ics import calendar_ics

    config = load_config(config_path)
    blackouts = [(train.name, blackout) for train in config.trains for blackout in train.blackouts]
    with store_of(config_path) as db:
        data = calendar_ics(db, trains=list(trains) or None, blackouts=blackouts)
    ics_path.write_bytes(data)
    events = data.count(b"BEGIN:VEVENT")
    emit({"ics": str(ics_path), "events": events, "trains": list(trains)}, as_json, f"wrote {ics_path} ({events} events)")
