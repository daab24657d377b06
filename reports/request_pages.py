"""The dashboard's files: one page per request with its cross-system timeline, and the writer.

A request page shows what the request is now and every audit event about it, oldest
first: what relsync pulled from the source, planned, pushed back, what people did by
hand (``manual``) and, where the source's own history was imported, those events too:
when, who, where (the system), the field and its old and new value. The same events
as ``sync.audit.request_history``, read for every request in one ordered query and
written page by page, so 100,000 requests cost one pass over the audit.

File names: a request key (``jira:OPS-12``, ``airtable:recAbC``) becomes
``jira-OPS-12-<16 hex digits>``: the key's letters, digits, dots and dashes, every
other run of characters as one dash, then the start of the key's SHA-256. The hash
keeps names distinct where the readable part is not (``a:b`` and ``a/b``; Airtable's
case-sensitive ids on a case-insensitive file system), and no name holds ``:``, ``/``
or a leading dot.
"""
from __future__ import annotations

import contextlib
import hashlib
import re
import sqlite3
from collections.abc import Iterator, Mapping
from importlib import resources
from itertools import groupby
from pathlib import Path
from typing import Any, NamedTuple

import jinja2

from reports.notes import SYSTEM_LABELS
from sync.db import Database
from sync.store import Store

__all__ = ["ENVIRONMENT", "PageWriter", "page_name", "request_pages_apart", "split_keys", "write_request_pages"]

ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("reports", "templates/dashboard"),
    autoescape=True,  # every template, whatever its name: titles and names come from source systems
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)
"""The dashboard's templates."""

_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")


def page_name(key: str) -> str:
    """A file name (without ``.html``) for any key: readable, unique, safe on every file system."""
    readable = _UNSAFE.sub("-", key).strip(".-")[:80]
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    return f"{readable}-{digest}" if readable else digest


class PageWriter:
    """Renders templates into files under ``out`` and remembers what it wrote."""

    def __init__(self, out: Path, environment: jinja2.Environment, *, generated: str, generated_text: str) -> None:
        self.out = out
        self.environment = environment
        self.shared = {"generated": generated, "generated_text": generated_text}
        self.written: set[str] = set()
        for folder in ("", "releases", "requests"):
            (out / folder).mkdir(parents=True, exist_ok=True)

    def write(self, page: str, template: str | jinja2.Template, **context: Any) -> None:
        """Render ``template`` into ``page`` (a path relative to the site, ``/``-separated)."""
        if isinstance(template, str):
            template = self.environment.get_template(template)
        data = template.render({"root": "../" * page.count("/"), **self.shared, **context}).encode("utf-8")
        path = self.out / page
        self.written.add(page)
        # A page that did not change is left alone: rewriting 100,000 files costs more than reading them.
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_size == len(data) and path.read_bytes() == data:
                return
        path.write_bytes(data)

    def write_stylesheet(self) -> None:
        """The one stylesheet every page links to, beside ``index.html``."""
        css = resources.files("reports").joinpath("templates/dashboard/dashboard.css").read_text(encoding="utf-8")
        (self.out / "dashboard.css").write_text(css, encoding="utf-8", newline="\n")

    def remove_stale(self) -> None:
        """Delete release and request pages of an earlier build that this one did not write."""
        for folder in ("releases", "requests"):
            for path in (self.out / folder).glob("*.html"):
                if f"{folder}/{path.name}" not in self.written:
                    path.unlink()


class Event(NamedTuple):
    """One audit event as a request page shows it (a tuple: templates read its fields fast)."""

    id: int
    at: str
    actor: str
    origin: str
    system: str | None
    field: str | None
    old: str
    new: str


class Request(NamedTuple):
    """One request as its page shows it."""

    key: str
    title: str | None
    system_label: str
    link: str | None
    status: str | None
    priority: str | None
    department: str | None
    type: str | None
    created_at: str | None
    deleted_at: str | None
    release_name: str | None
    release_page: str | None


def _shown(column: str, dialect: str) -> str:
    """SQL: an audit value (JSON text) for reading: a string as itself, nothing as ``(none)``, the rest as JSON."""
    string = (f"json_type({column}) = 'text' then json_extract({column}, '$')" if dialect == "sqlite"
              else f"jsonb_typeof(cast({column} as jsonb)) = 'string' then cast({column} as jsonb) #>> '{{}}'")
    return f"case when {column} is null or {column} = 'null' then '(none)' when {string} else {column} end"


def _between(column: str, keys: tuple[str | None, str | None]) -> tuple[str, list[str]]:
    """SQL: ``column`` from ``keys[0]`` (included) to ``keys[1]`` (excluded), None for no bound."""
    low, high = keys
    clause = " and ".join([*([f"{column} >= ?"] if low is not None else []), *([f"{column} < ?"] if high is not None else [])])
    return clause or "1 = 1", [key for key in keys if key is not None]


def _events(db: Database, keys: tuple[str | None, str | None]) -> Iterator[tuple[str, list[Event]]]:
    """(request key, its events oldest first) for every request in ``keys`` with events, by key."""
    where, bounds = _between("request", keys)
    rows = db.execute(
        f"select request, id, at, actor, origin, system, field, {_shown('old', db.dialect)}, {_shown('new', db.dialect)} from audit "
        f"where request is not null and {where} order by request, id", bounds,
    )
    for key, group in groupby(rows, key=lambda row: row[0]):
        yield key, [
            Event(*row[1:]) for row in group
        ]


def write_request_pages(
    db: Database, writer: PageWriter, releases: Mapping[str, tuple[str, str]],
    keys: tuple[str | None, str | None] = (None, None),
) -> dict[str, str]:
    """Write ``requests/<name>.html`` for every stored request; return key -> page (relative to the site).

    Args:
        releases: release id -> (name, page), for the link to the request's release.
        keys: only the requests from the first key (included) to the second (excluded); None: no bound.
    """
    template = writer.environment.get_template("request.html")
    events = _events(db, keys)
    where, bounds = _between("r.key", keys)
    pending = next(events, None)
    pages: dict[str, str] = {}
    names: set[str] = set()
    for key, system, url, title, department, type_, priority, status, created_at, deleted_at, release_id in (
        db.execute(
            "select r.key, r.system, r.url, r.title, r.department, r.type, r.priority, r.status, r.created_at, "
            "r.deleted_at, a.release from change_requests r left join assignments a on a.request = r.key "
            f"where {where} order by r.key", bounds,
        )
    ):
        # Both are in key order (SQLite's binary order is code point order, as Python's): a merge join.
        while pending is not None and pending[0] < key:
            pending = next(events, None)
        timeline = pending[1] if pending is not None and pending[0] == key else []
        name = page_name(key)
        if name.casefold() in names:
            raise RuntimeError(f"two request keys share the page name {name!r}")
        names.add(name.casefold())
        release = releases.get(release_id or "")
        request = Request(
            key=key, title=title, system_label=SYSTEM_LABELS.get(system, system),
            link=url if url and re.match(r"(?i)https?://", url.strip()) else None, status=status, priority=priority,
            department=department, type=type_, created_at=created_at, deleted_at=deleted_at,
            release_name=release[0] if release else None, release_page=f"../{release[1]}" if release else None,
        )
        page = f"requests/{name}.html"
        writer.write(page, template, q=request, events=timeline, generated=None)
        pages[key] = page
    return pages


def split_keys(db: Database, parts: int) -> list[tuple[str | None, str | None]]:
    """Key ranges that cut the stored requests into ``parts`` about equal shares, in key order."""
    total = db.execute("select count(*) from change_requests").fetchone()[0]
    cuts = [db.execute("select key from change_requests order by key limit 1 offset ?", [total * i // parts]).fetchone()
            for i in range(1, parts)]
    bounds = [None, *sorted({cut[0] for cut in cuts if cut}), None]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def request_pages_apart(
    store: str, out: Path, releases: Mapping[str, tuple[str, str]], keys: tuple[str | None, str | None]
) -> dict[str, str]:
    """``write_request_pages`` on a connection of its own to the store file, for a worker process.

    A forked worker must not use its parent's SQLite connection; it opens the file read-only.
    """
    db = Store(sqlite3.connect(f"file:{store}?mode=ro", uri=True))
    try:
        writer = PageWriter(out, ENVIRONMENT, generated="", generated_text="")
        return write_request_pages(db, writer, releases, keys)
    finally:
        db.close()
