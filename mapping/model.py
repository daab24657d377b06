"""The normalized change request and the vocabularies it is written in."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from json.encoder import encode_basestring_ascii
from typing import Any

from mapping import clock

STATUSES: tuple[str, ...] = (
    "new",
    "triaged",
    "approved",
    "scheduled",
    "in_progress",
    "testing",
    "deployed",
    "closed",
    "rejected",
)
"""Normalized workflow statuses, in lifecycle order."""

PRIORITIES: tuple[str, ...] = ("critical", "high", "medium", "low")
"""Normalized priorities, most urgent first."""

SOURCE_OWNED: tuple[str, ...] = (
    "title",
    "description",
    "type",
    "department",
    "requester",
    "owner",
    "priority",
    "status",
    "source_status",
    "affected",
    "depends_on",
)
"""Fields that flow source -> store only."""

OPTIONAL_HASHED = frozenset({"depends_on", "source_planned_date", "source_phase"})
"""Fields a request's content hash leaves out while empty: adding them kept stored hashes valid."""

ENGINE_OWNED: tuple[str, ...] = ("release", "release_status")
"""Fields that flow store -> source only (the engine decides them)."""


@dataclass(frozen=True)
class SourceRecord:
    """One record as the source system returned it (what a connector yields, before mapping).

    ``version`` is the system's modstamp (Jira ``updated``, Salesforce
    ``SystemModstamp``, Airtable last-modified time or content hash), used to
    detect edits made between a pull and a push.
    """

    native_id: str
    native_key: str | None
    url: str | None
    version: str | None
    raw: dict[str, Any]


@dataclass(frozen=True)
class ChangeRequest:
    """One change request, normalized from whichever system it came from.

    ``key`` is ``<source name>:<native id or key>`` and is stable for the life of
    the record. Timestamps are UTC ISO-8601 strings ending in ``Z``.
    """

    key: str
    source: str
    system: str
    native_id: str
    native_key: str | None
    url: str | None
    title: str
    description: str | None
    type: str | None
    department: str | None
    requester: str | None
    owner: str | None
    priority: str | None
    status: str
    source_status: str | None
    release: str | None
    created_at: str | None
    updated_at: str | None
    source_version: str | None
    affected: str | None = None
    depends_on: str | None = None
    """References to the requests this one depends on, comma-separated as read (``OPS-12, airtable:rec…``)."""
    source_planned_date: str | None = None
    """What the source's planned-deploy-date field shows (``write.planned_date``), when relsync writes one."""
    source_phase: str | None = None
    """What the source's phase field shows (``write.phase``), in the source's own words."""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def content_hash(self) -> str:
        """sha256 over the normalized content (not the raw payload or version)."""
        return _content_hash(self._shallow())

    def _shallow(self) -> dict[str, Any]:
        # dataclasses.asdict() deep-copies ``raw``: far too slow for every pulled record.
        return {name: getattr(self, name) for name in _FIELD_NAMES}

    def as_row(self) -> dict[str, Any]:
        """The store row for this request (without store-managed columns)."""
        row = self._shallow()
        row["content_hash"] = _content_hash(row)
        row["raw"] = _encode_raw(self.raw)
        row["source_moment"] = version_moment(self.source_version)
        return row


UNREAD_VERSION_MOMENT = "1970-01-01T00:00:00.000Z"


def version_moment(version: str | None) -> str:
    """A source version (modstamp) as the store's one shape of moment, so that versions sort as text in SQL.

    The vendors write their versions with different offsets (``+0000``, ``Z``, ``-0500``);
    a version missing or unreadable sorts first.
    """
    try:
        return clock.stamp(clock.parse(version)) if version else UNREAD_VERSION_MOMENT
    except clock.TimestampError:
        return UNREAD_VERSION_MOMENT


_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(ChangeRequest))


_UNHASHED = frozenset({"raw", "source_version", "updated_at"})
_HASHED: tuple[tuple[str, str, bool], ...] = tuple(
    (name, f'"{name}":', name in OPTIONAL_HASHED) for name in sorted(set(_FIELD_NAMES) - _UNHASHED)
)
"""The hashed fields in key order, each with its JSON key text and whether it is left out while empty."""

_encode_raw = json.JSONEncoder(sort_keys=True).encode
"""``json.dumps(raw, sort_keys=True)``, without building an encoder for every record."""


def _content_hash(shallow: dict[str, Any]) -> str:
    """sha256 of ``json.dumps(content, sort_keys=True, separators=(",", ":"))`` (``content``: the hashed fields).

    The fields are text or None, so the JSON is written here key by key, as the
    encoder would write it; a value of another type takes the encoder itself.
    """
    parts = []
    for name, key, optional in _HASHED:
        value = shallow[name]
        if value is None:
            if not optional:
                parts.append(key + "null")
        elif isinstance(value, str):
            parts.append(key + encode_basestring_ascii(value))
        else:
            return _encoded_content_hash(shallow)
    return hashlib.sha256(("{" + ",".join(parts) + "}").encode()).hexdigest()


def _encoded_content_hash(shallow: dict[str, Any]) -> str:
    content = {
        name: value
        for name, value in shallow.items()
        if name not in _UNHASHED and not (name in OPTIONAL_HASHED and value is None)
    }
    encoded = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()
