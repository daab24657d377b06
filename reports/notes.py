"""Release notes for stakeholders: one release's phases and requests, as Markdown or HTML.

``release_notes(db, "BS 2026.12.01")`` reads the store (releases, release_phases,
assignments, change_requests) into a ``ReleaseNotes`` value; ``render_markdown`` and
``render_html`` turn it into text. Every value that came from a source system (titles,
departments, owners, URLs) is treated as hostile: escaped for the output format, and
linked only when it is an http(s) URL.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import jinja2

from mapping import clock
from mapping.model import PRIORITIES
from sync.db import Database
from sync.schedule import phases_with_signoffs

__all__ = [
    "DepartmentGroup",
    "ReleaseNotes",
    "ReleasePhase",
    "RequestLine",
    "TypeGroup",
    "UnknownReleaseError",
    "release_notes",
    "render_html",
    "render_markdown",
]

NO_DEPARTMENT = "(no department)"
NO_TYPE = "(no type)"
SYSTEM_LABELS = {"jira": "Jira", "airtable": "Airtable", "salesforce": "Salesforce"}


class UnknownReleaseError(LookupError):
    """No release has the id or name that was asked for."""

    def __init__(self, asked: str, known: list[str]) -> None:
        self.asked = asked
        self.known = known
        shown = ", ".join(known[:30]) + (f" and {len(known) - 30} more" if len(known) > 30 else "")
        super().__init__(f"no release with id or name {asked!r}; known releases: {shown or 'none'}")


@dataclass(frozen=True)
class ReleasePhase:
    """One SDLC phase of the release: when it runs and who owns it."""

    phase: str
    starts: dt.datetime
    ends: dt.datetime
    owner: str | None
    signoff: str = ""
    """``signed off by Dana, 2026-12-07 10:00 UTC``, ``required, not given`` or empty (none required)."""


@dataclass(frozen=True)
class RequestLine:
    """One change request in the release, with the link to its source record."""

    key: str
    title: str
    priority: str | None
    status: str | None
    source: str
    system: str
    url: str | None
    depends_on: str | None = None
    """The requests it needs first, as its source names them (shipped in this release or before)."""

    @property
    def system_label(self) -> str:
        """The source system's display name (``Jira``, ``Airtable``, ``Salesforce``)."""
        return SYSTEM_LABELS.get(self.system, self.system)

    @property
    def link(self) -> str | None:
        """The source record's URL if it is safe to link (http or https), else None."""
        return self.url if self.url and re.match(r"(?i)https?://", self.url) else None


@dataclass(frozen=True)
class TypeGroup:
    """The requests of one type within a department."""

    type: str
    requests: tuple[RequestLine, ...]


@dataclass(frozen=True)
class DepartmentGroup:
    """The requests of one department, by type."""

    department: str
    types: tuple[TypeGroup, ...]

    @property
    def count(self) -> int:
        """How many requests the department has in the release."""
        return sum(len(group.requests) for group in self.types)


@dataclass(frozen=True)
class ReleaseNotes:
    """What stakeholders need to know about one release."""

    id: str
    name: str
    train: str
    deploy_at: dt.datetime
    freeze_at: dt.datetime
    capacity: int
    state: str
    phases: tuple[ReleasePhase, ...]
    departments: tuple[DepartmentGroup, ...]

    @property
    def request_count(self) -> int:
        """How many requests the release holds."""
        return sum(group.count for group in self.departments)


def find_release(db: Database, release_id_or_name: str) -> dict[str, Any]:
    """The releases row whose id or name is ``release_id_or_name``, or UnknownReleaseError."""
    row = next(
        db.query(
            "select * from releases where id = :asked or name = :asked order by id = :asked desc limit 1",
            {"asked": release_id_or_name},
        ),
        None,
    )
    if row is None:
        known = [r["name"] for r in db.query("select name from releases order by deploy_at, name")]
        raise UnknownReleaseError(release_id_or_name, known)
    return row


def _priority_rank(priority: str | None) -> int:
    return PRIORITIES.index(priority) if priority in PRIORITIES else len(PRIORITIES)


def _group(requests: list[tuple[str, str, RequestLine]]) -> tuple[DepartmentGroup, ...]:
    """Departments A-Z (none last), types A-Z (none last), requests by priority then key."""

    def label_order(label: str, missing: str) -> tuple[bool, str, str]:
        return (label == missing, label.casefold(), label)

    by_department: dict[str, dict[str, list[RequestLine]]] = {}
    for department, type_, line in requests:
        by_department.setdefault(department, {}).setdefault(type_, []).append(line)
    return tuple(
        DepartmentGroup(
            department,
            tuple(
                TypeGroup(type_, tuple(sorted(lines, key=lambda r: (_priority_rank(r.priority), r.key))))
                for type_, lines in sorted(types.items(), key=lambda item: label_order(item[0], NO_TYPE))
            ),
        )
        for department, types in sorted(by_department.items(), key=lambda item: label_order(item[0], NO_DEPARTMENT))
    )


def release_notes(db: Database, release_id_or_name: str) -> ReleaseNotes:
    """The notes of the release with this id or name (UnknownReleaseError if none has it).

    Requests are those assigned to the release (deleted ones left out), grouped by
    department then type.
    """
    release = find_release(db, release_id_or_name)
    phases = tuple(
        ReleasePhase(row["phase"], clock.parse(row["starts"]), clock.parse(row["ends"]), row["owner"], _signoff(row))
        for row in phases_with_signoffs(db, release["id"])
    )
    requests = [
        (
            (row["department"] or "").strip() or NO_DEPARTMENT,
            (row["type"] or "").strip() or NO_TYPE,
            RequestLine(
                key=row["key"],
                title=row["title"] or "(no title)",
                priority=row["priority"],
                status=row["status"],
                source=row["source"],
                system=row["system"],
                url=row["url"],
                depends_on=row["depends_on"],
            ),
        )
        for row in db.query(
            "select r.key, r.title, r.department, r.type, r.priority, r.status, r.source, r.system, r.url, r.depends_on "
            "from assignments a join change_requests r on r.key = a.request "
            "where a.release = ? and r.deleted_at is null",
            [release["id"]],
        )
    ]
    return ReleaseNotes(
        id=release["id"],
        name=release["name"],
        train=release["train"],
        deploy_at=clock.parse(release["deploy_at"]),
        freeze_at=clock.parse(release["freeze_at"]),
        capacity=release["capacity"],
        state=release["state"],
        phases=phases,
        departments=_group(requests),
    )


def when(moment: dt.datetime) -> str:
    """A UTC moment for people: ``2026-12-01 18:00 UTC``."""
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~&$])")


def md_escape(text: str) -> str:
    """``text`` as literal Markdown inline text: specials backslash-escaped, one line."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def md_url(url: str) -> str:
    """A URL safe inside a Markdown link destination (no spaces, parentheses or brackets)."""
    return "".join({" ": "%20", "(": "%28", ")": "%29", "<": "%3C", ">": "%3E"}.get(c, c) for c in url.strip())


def _signoff(row: dict[str, Any]) -> str:
    if row["signed_by"]:
        return f"signed off by {row['signed_by']}, {when(clock.parse(row['signed_at']))}"
    return "required, not given" if row["signoff_required"] else ""


def render_markdown(notes: ReleaseNotes) -> str:
    """The notes as Markdown: headings, a phase table, requests as linked bullet lists."""
    e = md_escape
    lines = [
        f"# Release notes: {e(notes.name)}",
        "",
        (
            f"Train {e(notes.train)} · state {e(notes.state)} · deploy {when(notes.deploy_at)} · "
            f"freeze {when(notes.freeze_at)} · {notes.request_count} of {notes.capacity} requests"
        ),
        "",
        "## Phases",
        "",
    ]
    if notes.phases:
        lines += ["| Phase | Starts | Ends | Owner | Sign-off |", "| --- | --- | --- | --- | --- |"]
        lines += [
            f"| {e(p.phase)} | {when(p.starts)} | {when(p.ends)} | {e(p.owner or '')} | {e(p.signoff)} |"
            for p in notes.phases
        ]
    else:
        lines.append("No phases recorded.")
    lines += ["", "## Requests by department", ""]
    if not notes.departments:
        lines.append("No requests assigned.")
    else:
        lines += ["| Department | Requests |", "| --- | --- |"]
        lines += [f"| {e(d.department)} | {d.count} |" for d in notes.departments]
    for department in notes.departments:
        lines += ["", f"## {e(department.department)}"]
        for group in department.types:
            lines += ["", f"### {e(group.type)}", ""]
            for r in group.requests:
                title = f"[{e(r.title)}]({md_url(r.link)})" if r.link else e(r.title)
                needs = f"needs {r.depends_on}" if r.depends_on else None
                facts = " · ".join(e(fact) for fact in (r.key, r.priority, r.status, r.system_label, needs) if fact)
                lines.append(f"- {title} — {facts}")
    return "\n".join(lines) + "\n"


# Autoescape on for every template, whatever its file name: titles come from source systems.
_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("reports", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def render_html(notes: ReleaseNotes) -> str:
    """The notes as a standalone HTML document (inline stylesheet, every value escaped)."""
    return _ENVIRONMENT.get_template("release_notes.html").render(n=notes, when=when, iso=clock.stamp)
