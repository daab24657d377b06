"""The audit, queried: events filtered for an auditor (JSON, CSV, JSON Lines), and one request's merged timeline.

Everything is read from the store; nothing calls a source. A timeline puts together, in
the order they happened, what relsync saw (pulled), decided (planned, manual) and wrote
(pushed), and what the source's own history recorded (origin ``history``: Jira's
changelog, Salesforce field history), each line saying who, where, when and what.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass
from typing import Any

from config.schema import Config
from mapping import clock
from sync.db import Database
from sync.store import ORIGINS, open_database

COLUMNS = ("id", "at", "run", "actor", "origin", "request", "system", "field", "old", "new", "hash")
ORIGIN_WORDS = {
    "pulled": "relsync saw it in a pull",
    "planned": "relsync's plan",
    "pushed": "relsync wrote it",
    "manual": "set by hand in relsync",
    "history": "the source's own history",
}
NO_HISTORY_API = {
    "airtable": "Airtable's API keeps no record history: the changes below are those relsync observed when it pulled, "
                "not a history Airtable recorded (who made them is not known).",
}


class AuditQueryError(ValueError):
    """A filter that cannot be read (a time that is not a date or date-time, an unknown origin)."""


def moment(text: str | None, *, end: bool = False) -> str | None:
    """A --since/--until value as the store's moment; a bare date is its day's start (``end``: the next day's)."""
    if text is None:
        return None
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        try:
            return clock.stamp(text)
        except ValueError as error:
            raise AuditQueryError(f"{text!r} is not a date (2026-11-20) or a date-time with a time zone") from error
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return clock.stamp(start + dt.timedelta(days=1) if end else start)


@dataclass(frozen=True)
class AuditFilter:
    """What to select; every given filter must match (``since`` inclusive, ``until`` exclusive)."""

    request: str | None = None
    release: str | None = None
    system: str | None = None
    actor: str | None = None
    field: str | None = None
    origin: str | None = None
    since: str | None = None
    until: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        """The SQL condition and its parameters."""
        if self.origin is not None and self.origin not in ORIGINS:
            raise AuditQueryError(f"origin {self.origin!r} is not one of {', '.join(ORIGINS)}")
        clauses: list[str] = []
        params: list[Any] = []
        for column in ("request", "system", "actor", "field", "origin"):
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.release is not None:
            clauses.append(
                "request in (select key from change_requests where release = :r or release in "
                "(select name from releases where id = :r) union select request from assignments where release = :r "
                "or release in (select id from releases where name = :r))".replace(":r", "?"))
            params += [self.release] * 4
        if self.since is not None:
            clauses.append("at >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("at < ?")
            params.append(self.until)
        return (" and ".join(clauses) or "1 = 1"), params


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    row["old"] = None if row["old"] is None else json.loads(row["old"])
    row["new"] = None if row["new"] is None else json.loads(row["new"])
    return row


def select_events(db: Database, chosen: AuditFilter) -> list[dict[str, Any]]:
    """The events ``chosen`` selects, in the order they happened (then as recorded), ``old``/``new`` decoded."""
    where, params = chosen.where()
    return [_decoded(row) for row in db.query(
        f"select {', '.join(COLUMNS)} from audit where {where} order by at, id", params)]


def events(config: Config, chosen: AuditFilter) -> list[dict[str, Any]]:
    """``select_events`` on the configured store."""
    db = open_database(config.store, create=False)
    try:
        return select_events(db, chosen)
    finally:
        db.close()


def as_csv(rows: list[dict[str, Any]]) -> str:
    """CSV with a header; ``old`` and ``new`` as JSON text (a plain string stays plain)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (v if k not in ("old", "new") or v is None or isinstance(v, str)
                             else json.dumps(v, ensure_ascii=False, sort_keys=True)) for k, v in row.items()})
    return out.getvalue()


def as_jsonl(rows: list[dict[str, Any]]) -> str:
    """One JSON object a line."""
    return "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)


def timeline(config: Config, key: str) -> dict[str, Any]:
    """One request's merged timeline, oldest first, with a note where its system has no history API."""
    rows = events(config, AuditFilter(request=key))
    system = rows[0]["system"] if rows else key.partition(":")[0]
    return {"request": key, "system": system, "note": NO_HISTORY_API.get(system or ""),
            "events": [row | {"from_source_history": row["origin"] == "history"} for row in rows]}


def _short(value: Any, width: int = 60) -> str:
    text = "-" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def change_text(event: dict[str, Any]) -> str:
    """What one event changed: ``old -> new``, a creation, a planning move or a conflict."""
    old, new = event["old"], event["new"]
    if event["field"] == "*":
        return f"created {_short(new, 90)}"
    if isinstance(new, dict) and "reason" in new:
        return f"{_short(old)} -> {_short(new.get('release'))} ({new['reason']})"
    if isinstance(new, dict) and "conflict" in new:
        return f"CONFLICT, not written: {new.get('message')}"
    return f"{_short(old)} -> {_short(new)}"


def timeline_text(data: dict[str, Any]) -> str:
    """The timeline for people: when, where, who, field, old -> new, and where the line comes from."""
    lines = [f"timeline of {data['request']} (oldest first):"]
    if data["note"]:
        lines.append(f"  note: {data['note']}")
    for event in data["events"]:
        when = event["at"][:19].replace("T", " ") + "Z"
        source = f"[{event['system']} history]" if event["from_source_history"] else f"[{ORIGIN_WORDS[event['origin']]}]"
        lines.append(f"  {when}  {event['system'] or '-':<10} {event['actor']:<22} {event['field']}: "
                     f"{change_text(event)}  {source}")
    return "\n".join(lines)
