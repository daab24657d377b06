"""The release calendar as an iCalendar (.ics) file for stakeholders' calendar apps.

``calendar_ics(db)`` reads the store and returns the file's bytes: for every release,
its deploy, its freeze and each SDLC phase as a VEVENT, and each blackout given as an
all-day event of its own. The same store always gives the same bytes: events come in a
fixed order, UIDs are derived from release ids, and DTSTAMP is the latest change
recorded in the data (an assignment or a request update), never the wall clock. A
calendar app that imports the file again updates the events in place rather than
duplicating them: a release that moved keeps its UIDs, and a cancelled one stays, as
``STATUS:CANCELLED``; every event carries the release's ``revision`` as its SEQUENCE,
which the move or the cancellation raised.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Sequence
from typing import Any

import icalendar

from config.trains import Blackout
from mapping import clock
from sync.db import Database

__all__ = ["UnknownTrainError", "calendar_ics"]

PRODID = "-//relsync//release calendar//EN"
UID_DOMAIN = "relsync"


class UnknownTrainError(LookupError):
    """A train was asked for that has no release in the store."""

    def __init__(self, asked: list[str], known: list[str]) -> None:
        self.asked = asked
        self.known = known
        super().__init__(
            f"no releases for train {', '.join(map(repr, asked))}; "
            f"trains with releases: {', '.join(known) or 'none'}"
        )


def _midnight(moment: dt.datetime) -> bool:
    return (moment.hour, moment.minute, moment.second, moment.microsecond) == (0, 0, 0, 0)


def _releases(db: Database, trains: Collection[str] | None) -> list[dict[str, Any]]:
    """Every release, in deploy order, narrowed to ``trains`` if given."""
    rows = list(db.query("select * from releases order by deploy_at, id"))
    if trains is None:
        return rows
    wanted = [trains] if isinstance(trains, str) else sorted(set(trains))
    known = sorted({row["train"] for row in rows})
    missing = [train for train in wanted if train not in known]
    if missing:
        raise UnknownTrainError(missing, known)
    return [row for row in rows if row["train"] in wanted]


def _stamp(db: Database, releases: list[dict[str, Any]]) -> dt.datetime:
    """DTSTAMP for every event: the latest change in the data the calendar shows.

    That is the newest assignment to one of its releases or update of a request in
    them; a calendar of empty releases falls back to the earliest freeze.
    """
    ids = json.dumps([row["id"] for row in releases])
    marks = f"({db.json_values})"
    # Stored stamps differ in precision (seconds, milliseconds): compare them as times.
    candidates = [
        clock.parse(row[0])
        for row in db.execute(
            f"select assigned_at from assignments where release in {marks} and assigned_at is not null"
            " union select r.updated_at from assignments a join change_requests r on r.key = a.request"
            f" where a.release in {marks} and r.updated_at is not null",
            [ids, ids],
        ).fetchall()
    ]
    moment = max(candidates) if candidates else min(clock.parse(row["freeze_at"]) for row in releases)
    return moment.replace(microsecond=0)


def _event(uid: str, summary: str, stamp: dt.datetime, starts: dt.datetime, ends: dt.datetime | None,
           description: str, *, categories: str, sequence: int = 0, cancelled: bool = False) -> icalendar.Event:
    """One VEVENT; midnight-to-midnight spans become all-day events (DTSTART;VALUE=DATE)."""
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", stamp)
    event.add("sequence", sequence)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("summary", ("Cancelled: " if cancelled else "") + summary)
    if ends is not None and _midnight(starts) and _midnight(ends) and ends > starts:
        event.add("dtstart", starts.date())
        event.add("dtend", ends.date())
    else:
        event.add("dtstart", starts)
        if ends is not None and ends > starts:
            event.add("dtend", ends)
    event.add("description", description)
    event.add("categories", [categories])
    event.add("transp", "TRANSPARENT")
    return event


def calendar_ics(
    db: Database, *, trains: Collection[str] | None = None,
    blackouts: Sequence[tuple[str, Blackout]] = (),
) -> bytes:
    """The releases, their freezes and phases, and the blackouts as an .ics file.

    Args:
        db: the store.
        trains: only these trains' releases (train names); all trains when None.
            A name with no release in the store raises ``UnknownTrainError``.
        blackouts: (train name, blackout) pairs from the configuration; those of the
            trains shown become all-day events.

    Returns:
        The iCalendar text (UTF-8, CRLF line endings), identical for identical data.
    """
    releases = _releases(db, trains)
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    shown = sorted({release["train"] for release in releases})
    calendar.add("x-wr-calname", "Releases" + (f" ({', '.join(shown)})" if trains is not None else ""))
    if not releases:
        return calendar.to_ical()
    stamp = _stamp(db, releases)
    for release in releases:
        for event in _release_events(db, release, stamp):
            calendar.add_component(event)
    for train, blackout in blackouts:
        if train in shown:
            calendar.add_component(_blackout_event(train, blackout, stamp))
    return calendar.to_ical()


def _blackout_event(train: str, blackout: Blackout, stamp: dt.datetime) -> icalendar.Event:
    """A blackout as an all-day event from its first to its last day (DTEND is exclusive)."""
    starts = dt.datetime.combine(blackout.start, dt.time(), tzinfo=dt.UTC)
    ends = dt.datetime.combine(blackout.end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    action = "moved to the day after" if blackout.action == "move" else "skipped"
    return _event(
        f"blackout-{train}-{blackout.start:%Y%m%d}@{UID_DOMAIN}", f"Blackout ({train}): {blackout.name}", stamp,
        starts, ends, f"Nothing deploys on train {train}; a release due in it is {action}.", categories="blackout",
    )


def _release_events(db: Database, release: dict[str, Any], stamp: dt.datetime) -> list[icalendar.Event]:
    """A release's deploy, freeze and phases; all cancelled with it, all at its revision."""
    events: list[icalendar.Event] = []
    rid, name = release["id"], release["name"]
    sequence, cancelled = int(release.get("revision") or 0), release["state"] == "cancelled"
    phases = list(
        db.query(
            "select phase, starts, ends, owner from release_phases where release = ? order by starts, phase",
            [rid],
        )
    )
    count = db.execute(
        "select count(*) from assignments a join change_requests r on r.key = a.request "
        "where a.release = ? and r.deleted_at is null",
        [rid],
    ).fetchone()[0]
    owners = [f"{p['phase']}: {p['owner']}" for p in phases if p["owner"]]
    description = "\n".join(
        [
            f"{count} request{'s' if count != 1 else ''} (capacity {release['capacity']})",
            f"Train {release['train']}, state {release['state']}",
            *(["Phase owners:", *owners] if owners else []),
        ]
    )
    deploy_at, freeze_at = clock.parse(release["deploy_at"]), clock.parse(release["freeze_at"])
    events.append(
        _event(f"{rid}@{UID_DOMAIN}", f"Deploy {name}", stamp, deploy_at, None, description, categories="deploy",
               sequence=sequence, cancelled=cancelled)
    )
    events.append(
        _event(
            f"{rid}-freeze@{UID_DOMAIN}", f"Freeze {name}", stamp, freeze_at, None,
            f"Change freeze for {name}", categories="freeze", sequence=sequence, cancelled=cancelled,
        )
    )
    for phase in phases:
        owner = f" ({phase['owner']})" if phase["owner"] else ""
        events.append(
            _event(
                f"{rid}-{phase['phase']}@{UID_DOMAIN}", f"{name}: {phase['phase']}{owner}", stamp,
                clock.parse(phase["starts"]), clock.parse(phase["ends"]),
                f"{phase['phase']} phase of {name}" + (f", owned by {phase['owner']}" if phase["owner"] else ""),
                categories="phase", sequence=sequence, cancelled=cancelled,
            )
        )
    return events
