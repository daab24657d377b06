"""Cell values: validating writes the way Airtable does, and rendering records as JSON.

A write is checked completely before anything changes (a batch is all or nothing), then
committed with one timestamp. Empty values ("", false, [], null) clear a cell, and
cleared cells are left out of a record's ``fields``, as Airtable leaves them out.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from sandboxes.airtable.data import (
    COLORS,
    AirtableState,
    Choice,
    Field,
    Record,
    Table,
    airtable_id,
    attachment,
    collaborator,
    iso,
)
from sandboxes.airtable.formula_eval import RecordContext, parse_iso, text
from sandboxes.airtable.http import (
    AirtableError,
    cannot_accept,
    error,
    row_missing,
    unknown_field,
)

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TEXT_TYPES = ("singleLineText", "multilineText", "email")
NOT_RECORD_IDS = "Value is not an array of record IDs."


@dataclass
class Write:
    """A validated change to one record: values by field id (None clears the cell)."""

    values: dict[str, Any] = field(default_factory=dict)
    new_choices: list[tuple[Field, str]] = field(default_factory=list)


def resolve_field(table: Table, key: str) -> Field:
    """A field by name or id, or Airtable's UNKNOWN_FIELD_NAME."""
    found = table.field(key)
    if found is None:
        raise unknown_field(key)
    return found


def _computed(found: Field) -> AirtableError:
    return error(422, "INVALID_VALUE_FOR_COLUMN", f'Field "{found.name}" cannot accept a value because the field is computed')


def _select(found: Field, value: Any, typecast: bool, write: Write) -> str:
    if not isinstance(value, str):
        if not (typecast and isinstance(value, (int, float))):
            raise cannot_accept(found)
        value = text(value)
    if found.choice(value) is None and all(name != value for f, name in write.new_choices if f is found):
        if not typecast:
            message = f'Insufficient permissions to create new select option ""{value}""'
            raise error(422, "INVALID_MULTIPLE_CHOICE_OPTIONS", message)
        write.new_choices.append((found, value))
    return value


def _date(found: Field, value: Any, typecast: bool) -> str:
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            raise cannot_accept(found) from None
    if typecast and isinstance(value, str):
        try:
            return parse_iso(value).date().isoformat()
        except ValueError:
            pass
    raise cannot_accept(found)


def _links(state: AirtableState, found: Field, value: Any, typecast: bool) -> list[str]:
    if isinstance(value, str) and typecast:
        value = [value]
    if not isinstance(value, list):
        raise error(422, "INVALID_VALUE_FOR_COLUMN", NOT_RECORD_IDS)
    linked = state.table(found.linked_table or "")
    assert linked is not None
    names = {text(r.cells.get(linked.primary.id)): r.id for r in linked.records.values()}
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise error(422, "INVALID_VALUE_FOR_COLUMN", NOT_RECORD_IDS)
        if item in linked.records:
            out.append(item)
        elif typecast:
            out.append(names.get(item, "new:" + item))  # a name: link it, creating the record if needed
        elif item.startswith("rec") and len(item) == 17:
            raise row_missing(item)
        else:
            raise error(422, "INVALID_VALUE_FOR_COLUMN", NOT_RECORD_IDS)
    return list(dict.fromkeys(out))


def _collaborator(found: Field, value: Any) -> dict[str, str]:
    # A collaborator is written as {"id": "usr…"} or {"email": "…"}; a bare string is refused.
    if not isinstance(value, dict) or not isinstance(value.get("id") or value.get("email"), str):
        raise cannot_accept(found)
    if value.get("email"):
        return collaborator(str(value["email"]), value.get("name"))
    return {"id": str(value["id"]), "email": f"{value['id']}@users.airtable.example", "name": str(value["id"])}


def _attachments(found: Field, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) and isinstance(item.get("url"), str) for item in value):
        raise cannot_accept(found)
    out = []
    for number, item in enumerate(value):
        name = str(item.get("filename") or item["url"].rsplit("/", 1)[-1] or "file")
        out.append(item if str(item.get("id", "")).startswith("att") else
                   attachment(item["url"], number, name, 0, "application/octet-stream"))
    return out


def normalize(state: AirtableState, found: Field, value: Any, typecast: bool, write: Write) -> Any:
    """``value`` as stored for ``found``, None for empty, or Airtable's 422."""
    if found.computed:
        raise _computed(found)
    if value is None or value is False or value == "" or value == []:
        return None
    if found.type in _TEXT_TYPES:
        if isinstance(value, str):
            return value
        if typecast and isinstance(value, (int, float)):
            return text(value)
        raise cannot_accept(found)
    if found.type == "singleSelect":
        return _select(found, value, typecast, write)
    if found.type == "date":
        return _date(found, value, typecast)
    if found.type == "multipleRecordLinks":
        return _links(state, found, value, typecast) or None
    if found.type == "multipleSelects":
        items = [value] if isinstance(value, str) and typecast else value
        if not isinstance(items, list):
            raise cannot_accept(found)
        return list(dict.fromkeys(_select(found, item, typecast, write) for item in items)) or None
    if found.type == "singleCollaborator":
        return _collaborator(found, value)
    if found.type == "multipleAttachments":
        return _attachments(found, value)
    raise cannot_accept(found)


def prepare(state: AirtableState, table: Table, fields: Any, typecast: bool) -> Write:
    """Validate one record's ``fields`` object; nothing changes yet."""
    if not isinstance(fields, dict):
        raise error(422, "INVALID_REQUEST_MISSING_FIELDS", 'Could not find field "fields" in the request body')
    write = Write()
    for key, value in fields.items():
        found = resolve_field(table, str(key))
        write.values[found.id] = normalize(state, found, value, typecast, write)
    return write


def _create_linked(state: AirtableState, linked: Table, name: str, when: dt.datetime) -> str:
    record = Record(state.new_record_id(linked), when, cells={linked.primary.id: name})
    record.modified[linked.primary.id] = when
    record.last_modified = when
    linked.records[record.id] = record
    return record.id


def commit(state: AirtableState, table: Table, record: Record, write: Write, when: dt.datetime, *, replace: bool = False) -> None:
    """Apply a prepared write; ``replace`` (PUT) clears every writable field not named."""
    for select, name in write.new_choices:
        if select.choice(name) is None:
            assert select.choices is not None
            select.choices.append(Choice(airtable_id("sel", select.id, name), name, COLORS[len(select.choices) % len(COLORS)]))
    touched = set(write.values)
    if replace:
        touched |= {fid for fid in record.cells if fid not in write.values}
        for fid in list(record.cells):
            if fid not in write.values:
                del record.cells[fid]
    for fid, value in write.values.items():
        found = table.field(fid)
        if found is not None and found.type == "multipleRecordLinks" and value:
            linked = state.table(found.linked_table or "")
            assert linked is not None
            value = [_create_linked(state, linked, v[4:], when) if v.startswith("new:") else v for v in value]
            value = list(dict.fromkeys(value))
        if value is None:
            record.cells.pop(fid, None)
        else:
            record.cells[fid] = value
    for fid in touched:
        record.modified[fid] = when
    if touched:
        record.last_modified = when


def create(state: AirtableState, table: Table, write: Write, when: dt.datetime) -> Record:
    """A new record from a prepared write; its Last Modified starts at its creation."""
    record = Record(state.new_record_id(table), when)
    commit(state, table, record, write, when)
    record.last_modified = when
    table.records[record.id] = record
    return record


def _live_links(state: AirtableState, found: Field, record: Record) -> list[str]:
    linked = state.table(found.linked_table or "")
    return [rid for rid in record.cells.get(found.id, ()) if linked is not None and rid in linked.records]


def cell_json(state: AirtableState, found: Field, record: Record) -> Any:
    """The JSON value of one cell, None when empty."""
    if found.type == "createdTime":
        return iso(record.created)
    if found.type == "lastModifiedTime":
        return iso(record.last_modified or record.created)
    if found.type == "multipleRecordLinks":
        return _live_links(state, found, record) or None
    return record.cells.get(found.id)


def render(state: AirtableState, table: Table, record: Record, *, by_id: bool = False,
           only: set[str] | None = None, comment_count: bool = False) -> dict[str, Any]:
    """A record as the API returns it: id, createdTime, non-empty fields by name (or id)."""
    fields: dict[str, Any] = {}
    for found in table.fields:
        if only is not None and found.id not in only:
            continue
        value = cell_json(state, found, record)
        if value is not None:
            fields[found.id if by_id else found.name] = value
    body: dict[str, Any] = {"id": record.id, "createdTime": iso(record.created), "fields": fields}
    if comment_count:
        body["commentCount"] = 0  # the sandbox has no comments
    return body


def formula_value(state: AirtableState, table: Table, found: Field, record: Record) -> object:
    """A cell as a formula sees it: dates as date-times, links as their names joined."""
    if found.type == "createdTime":
        return record.created
    if found.type == "lastModifiedTime":
        return record.last_modified or record.created
    if found.type == "date":
        raw = record.cells.get(found.id)
        return None if raw is None else dt.datetime.fromisoformat(raw).replace(tzinfo=dt.UTC)
    if found.type == "multipleRecordLinks":
        linked = state.table(found.linked_table or "")
        assert linked is not None
        names = [text(linked.records[rid].cells.get(linked.primary.id)) for rid in _live_links(state, found, record)]
        return ", ".join(names) or None
    raw = record.cells.get(found.id)
    # Formulas see a collaborator by name, a multi-select's and attachments' names joined.
    if found.type == "singleCollaborator" and isinstance(raw, dict):
        return raw.get("name")
    if found.type == "multipleSelects" and isinstance(raw, list):
        return ", ".join(raw) or None
    if found.type == "multipleAttachments" and isinstance(raw, list):
        return ", ".join(str(item.get("filename", "")) for item in raw) or None
    return raw


def context(state: AirtableState, table: Table, record: Record, now: dt.datetime) -> RecordContext:
    """What a formula sees of ``record``."""

    def value(name: str) -> object:
        found = table.field(name)
        return None if found is None else formula_value(state, table, found, record)

    def modified(name: str) -> dt.datetime | None:
        found = table.field(name)
        if found is None:
            return None
        if found.computed:
            return record.last_modified if found.type == "lastModifiedTime" else record.created
        return record.changed_at(found.id)

    return RecordContext(record.id, record.created, record.last_modified or record.created, value, modified, now)


def sort_key(state: AirtableState, table: Table, found: Field, record: Record) -> tuple[int, Any]:
    """Ascending order for one field: empty first; selects in choice order, as Airtable sorts them."""
    value = formula_value(state, table, found, record)
    if value is None:
        return (0, "")
    if found.type == "singleSelect":
        names = [c.name for c in found.choices or ()]
        return (1, names.index(value) if value in names else len(names))
    if isinstance(value, str):
        return (1, value.casefold())
    return (1, value)


__all__ = [
    "Write", "cell_json", "commit", "context", "create", "formula_value", "normalize", "prepare", "render", "resolve_field", "sort_key",
]
