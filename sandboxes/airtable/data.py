"""The Airtable sandbox's base: two tables, their fields and choices, records, ids and time.

Records are as untidy as a real base's: empty cells are left out (a few rows have no
Title or no Status), Requester and Owner are collaborators (``{id, email, name}``),
Request Type is a multi-select, and some rows carry attachments.

One base ("Relsync Ops") holds "Change Requests", seeded from :mod:`seed`, and
"Releases", which "Release Link" points at. Ids look like Airtable's (a three-letter
prefix and 14 letters or digits, 17 in all, as pyairtable's ``is_airtable_id`` checks) and
are derived from the seed, so two sandboxes with the same seed hand out the same ids.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import string
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from sandboxes.clock import Clock
from sandboxes.seed import (
    DEPARTMENTS,
    OBJECTS,
    REQUEST_TYPES,
    SeedRequest,
    iter_seed_requests,
)

CHANGE_REQUESTS = "Change Requests"
RELEASES = "Releases"
BASE_NAME = "Relsync Ops"
_ALPHABET = string.digits + string.ascii_letters
UTC = dt.UTC

PRIORITY_CHOICES = ("Critical", "High", "Medium", "Low")
STATUS_CHOICES = ("New", "Triage", "Approved", "Scheduled", "In Progress", "Testing", "Deployed", "Closed", "Rejected")
SEED_STATUS = {"new": "New", "triaged": "Triage", "approved": "Approved", "in_progress": "In Progress",
               "testing": "Testing", "deployed": "Deployed", "closed": "Closed", "rejected": "Rejected"}
SEED_RELEASES = (("2026.08", "2026-08-20"), ("2026.09", "2026-09-17"), ("2026.10", "2026-10-15"))
COLORS = ("blueLight2", "cyanLight2", "tealLight2", "greenLight2", "yellowLight2", "orangeLight2",
          "redLight2", "pinkLight2", "purpleLight2", "grayLight2")
"""Airtable's select colours; new choices take the next one, as the UI does."""

COMPUTED_TYPES = ("createdTime", "lastModifiedTime")


_TO_ALPHABET = bytes(ord(_ALPHABET[b % 62]) for b in range(256))


def airtable_id(prefix: str, *parts: object) -> str:
    """``prefix`` and 14 base-62 characters derived from ``parts``: stable, unique in practice."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=14).digest()
    return prefix + digest.translate(_TO_ALPHABET).decode("ascii")


def iso(moment: dt.datetime) -> str:
    """Airtable's timestamp format, ``2026-05-01T10:00:00.000Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class Choice:
    """One option of a single select."""

    id: str
    name: str
    color: str


@dataclass
class Field:
    """A field as the metadata API describes it; ``choices`` only for selects."""

    id: str
    name: str
    type: str
    choices: list[Choice] | None = None
    linked_table: str | None = None  # table id, for multipleRecordLinks

    @property
    def computed(self) -> bool:
        """Whether Airtable computes this field (writes are refused)."""
        return self.type in COMPUTED_TYPES

    def choice(self, name: str) -> Choice | None:
        """The choice called ``name``, if any."""
        return next((c for c in self.choices or () if c.name == name), None)


@dataclass(slots=True, eq=False)
class Record:
    """A row: cells by field id (empty cells absent) and when each field last changed.

    Seeded records keep one ``seeded`` stamp for all their seeded cells instead of a
    per-field entry, which keeps a million-record sandbox in memory.
    """

    id: str
    created: dt.datetime
    cells: dict[str, Any] = field(default_factory=dict)
    modified: dict[str, dt.datetime] = field(default_factory=dict)
    last_modified: dt.datetime | None = None
    seeded: dt.datetime | None = None

    def changed_at(self, field_id: str) -> dt.datetime | None:
        """When the field last changed; None if it never held a value."""
        stamp = self.modified.get(field_id)
        if stamp is None and self.seeded is not None and field_id in self.cells:
            return self.seeded
        return stamp


@dataclass
class Table:
    """A table with its fields, its one grid view and its records in creation order."""

    id: str
    name: str
    fields: list[Field]
    view_id: str
    view_name: str = "Grid view"
    records: dict[str, Record] = field(default_factory=dict)
    created_count: int = 0

    @property
    def primary(self) -> Field:
        """The primary field (the first one, as in Airtable)."""
        return self.fields[0]

    def field(self, key: str) -> Field | None:
        """A field by id or by exact name."""
        for candidate in self.fields:
            if candidate.id == key or candidate.name == key:
                return candidate
        return None


def _select(table: str, name: str, options: tuple[str, ...], kind: str = "singleSelect") -> Field:
    fid = airtable_id("fld", table, name)
    choices = [Choice(airtable_id("sel", fid, option), option, COLORS[i % len(COLORS)]) for i, option in enumerate(options)]
    return Field(fid, name, kind, choices=choices)


def collaborator(email: str, name: str | None = None) -> dict[str, str]:
    """A base collaborator as a cell holds it: ``{id, email, name}`` (id derived from the email)."""
    return {"id": airtable_id("usr", email.lower()), "email": email, "name": name or email.split("@")[0]}


def attachment(record_id: str, number: int, filename: str, size: int, kind: str) -> dict[str, Any]:
    """An attachment object as the list-records API returns it (no thumbnails for non-images)."""
    ident = airtable_id("att", record_id, number)
    return {"id": ident, "width": 1280, "height": 720, "url": f"https://v5.airtableusercontent.example/{ident}/{filename}",
            "filename": filename, "size": size, "type": kind} if kind.startswith("image/") else {
            "id": ident, "url": f"https://v5.airtableusercontent.example/{ident}/{filename}", "filename": filename,
            "size": size, "type": kind}


def _plain(table: str, name: str, kind: str, linked_table: str | None = None) -> Field:
    return Field(airtable_id("fld", table, name), name, kind, linked_table=linked_table)


def build_tables(releases_primary: str = "Name") -> tuple[Table, Table]:
    """The two empty tables, fields in display order (primary first); ``releases_primary`` names the Releases one."""
    releases_id = airtable_id("tbl", RELEASES)
    requests = Table(
        id=airtable_id("tbl", CHANGE_REQUESTS),
        name=CHANGE_REQUESTS,
        view_id=airtable_id("viw", CHANGE_REQUESTS),
        fields=[
            _plain(CHANGE_REQUESTS, "Title", "singleLineText"),
            _plain(CHANGE_REQUESTS, "Description", "multilineText"),
            _select(CHANGE_REQUESTS, "Department", DEPARTMENTS),
            _select(CHANGE_REQUESTS, "Request Type", REQUEST_TYPES, "multipleSelects"),
            _select(CHANGE_REQUESTS, "Affected Object", OBJECTS),
            _select(CHANGE_REQUESTS, "Priority", PRIORITY_CHOICES),
            _select(CHANGE_REQUESTS, "Status", STATUS_CHOICES),
            _plain(CHANGE_REQUESTS, "Requester", "singleCollaborator"),
            _plain(CHANGE_REQUESTS, "Requester Email", "email"),
            _plain(CHANGE_REQUESTS, "Owner", "singleCollaborator"),
            _plain(CHANGE_REQUESTS, "Release", "singleLineText"),
            _select(CHANGE_REQUESTS, "Release Select", tuple(name for name, _ in SEED_RELEASES)),
            _plain(CHANGE_REQUESTS, "Release Link", "multipleRecordLinks", linked_table=releases_id),
            _plain(CHANGE_REQUESTS, "Target Date", "date"),
            # Requests in this table this one needs first; requests in other systems go in the text field.
            _plain(CHANGE_REQUESTS, "Depends On", "multipleRecordLinks", linked_table=airtable_id("tbl", CHANGE_REQUESTS)),
            _plain(CHANGE_REQUESTS, "Depends On Elsewhere", "singleLineText"),
            # What relsync keeps equal to the plan, when configured to: the deploy date and the phase.
            _plain(CHANGE_REQUESTS, "Planned Deploy", "date"),
            _plain(CHANGE_REQUESTS, "Release Phase", "singleLineText"),
            _plain(CHANGE_REQUESTS, "Attachments", "multipleAttachments"),
            _plain(CHANGE_REQUESTS, "Created", "createdTime"),
            _plain(CHANGE_REQUESTS, "Last Modified", "lastModifiedTime"),
        ],
    )
    releases = Table(
        id=releases_id,
        name=RELEASES,
        view_id=airtable_id("viw", RELEASES),
        fields=[_plain(RELEASES, releases_primary, "singleLineText"), _plain(RELEASES, "Deploy Date", "date")],
    )
    return requests, releases


def truncate(moment: dt.datetime, precision: str) -> dt.datetime:
    """A stamp at the configured precision: whole seconds (Airtable's) or milliseconds."""
    if precision == "second":
        return moment.replace(microsecond=0)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@dataclass
class AirtableState:
    """Everything one Airtable sandbox knows; guard every access with ``lock``."""

    base_id: str
    token: str
    seed: int
    requests: Table
    releases: Table
    user_id: str
    clock: Clock
    lock: threading.RLock = field(default_factory=threading.RLock)
    precision: str = "second"
    iterator_ttl: float | None = None
    retry_after_header: bool = False
    iterators: OrderedDict[str, Any] = field(default_factory=OrderedDict)
    iterators_made: int = 0

    @property
    def tables(self) -> tuple[Table, Table]:
        """Both tables, Change Requests first."""
        return self.requests, self.releases

    def table(self, id_or_name: str) -> Table | None:
        """A table by id or exact name."""
        return next((t for t in self.tables if id_or_name in (t.id, t.name)), None)

    def now(self) -> dt.datetime:
        """The stamp for a write happening now (non-decreasing, at the configured precision)."""
        return truncate(self.clock.now(), self.precision)

    def new_record_id(self, table: Table) -> str:
        """The next id for a record created through the API (deterministic per seed)."""
        while True:
            table.created_count += 1
            candidate = airtable_id("rec", self.seed, table.id, "created", table.created_count)
            if candidate not in table.records:
                return candidate


def _stamp(record: Record, table: Table, when: dt.datetime) -> None:
    record.seeded = record.last_modified = when
    table.records[record.id] = record


def _seed_release(state: AirtableState, name: str, deploy: str) -> Record:
    created = dt.datetime.fromisoformat(deploy).replace(tzinfo=UTC) - dt.timedelta(days=42)
    record = Record(airtable_id("rec", state.seed, RELEASES, name), truncate(created, state.precision))
    record.cells = {state.releases.primary.id: name, state.releases.field("Deploy Date").id: deploy}  # type: ignore[union-attr]
    _stamp(record, state.releases, record.created)
    return record


_FILES = (("screenshot.png", "image/png"), ("current-layout.pdf", "application/pdf"),
          ("field-list.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
          ("flow-diagram.jpg", "image/jpeg"))


def _attachment(record_id: str, seq: int, number: int) -> dict[str, Any]:
    filename, kind = _FILES[(seq + number) % len(_FILES)]
    return attachment(record_id, number, filename, 20_000 + 7_919 * (number + 1) * seq % 900_000, kind)


def _request_cells(ids: dict[str, str], request: SeedRequest, release: tuple[str, str, str] | None,
                   record_id: str) -> dict[str, Any]:
    quirks = request.quirks
    owner = request.owner
    values: dict[str, Any] = {
        "Title": None if quirks.no_title else request.title,
        "Description": None if quirks.no_description else request.description,
        "Department": None if quirks.no_custom_fields else request.department,
        "Request Type": [request.request_type, *([quirks.extra_type] if quirks.extra_type else [])],
        "Affected Object": request.affected_object, "Priority": request.priority.capitalize(),
        "Status": None if quirks.no_status else SEED_STATUS[request.status],
        "Requester": collaborator(request.requester.email, request.requester.name),
        "Requester Email": request.requester.email,
        "Owner": collaborator(owner.email, owner.name) if owner else None,
        "Attachments": [_attachment(record_id, request.seq, n) for n in range(quirks.attachments)],
    }
    if release is not None:
        name, deploy, record_id = release
        values.update({"Release": name, "Release Select": name, "Release Link": [record_id], "Target Date": deploy})
    return {ids[name]: value for name, value in values.items() if value}


def seed_state(state: AirtableState, count: int) -> None:
    """Fill the base: the past releases, then ``count`` seeded change requests.

    Deployed and closed requests carry the last release deployed before their last
    update; every seeded field counts as last changed at the request's ``updated``.
    """
    releases = [(name, deploy, _seed_release(state, name, deploy).id) for name, deploy in SEED_RELEASES]
    ids = {f.name: f.id for f in state.requests.fields}
    for request in iter_seed_requests(state.seed, count):
        release = None
        if request.status in ("deployed", "closed"):
            shipped = [r for r in releases if r[1] <= request.updated.date().isoformat()]
            release = shipped[-1] if shipped else None
        record = Record(airtable_id("rec", state.seed, CHANGE_REQUESTS, request.seq), truncate(request.created, state.precision))
        record.cells = _request_cells(ids, request, release, record.id)
        _stamp(record, state.requests, truncate(request.updated, state.precision))


__all__ = [
    "AirtableState", "Choice", "Field", "Record", "Table", "airtable_id", "attachment", "build_tables", "collaborator", "iso",
    "seed_state",
]
