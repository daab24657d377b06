"""sObject Rows (create, read, update, delete one record) as plain operations.

The Flask routes in :mod:`sandboxes.salesforce.records` and the Composite resource
(:mod:`sandboxes.salesforce.composite`) both run them: each returns an :class:`Answer`
(status, body, headers) or raises :class:`~sandboxes.salesforce.http.SalesforceHttpError`.
Reads accept 15- or 18-character ids and answer with 18; a malformed id reads as an
external id ("Provided external ID field does not exist or is not accessible: X", 404),
a deleted record as 404 ENTITY_IS_DELETED. An update takes ``If-Unmodified-Since`` (an
HTTP date; an unreadable one is 400) and answers 412 when the record was modified after it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import flask

from sandboxes.salesforce.data import Row, SalesforceState
from sandboxes.salesforce.http import NOT_FOUND, SalesforceHttpError, http_date, parse_http_date, sf_error
from sandboxes.salesforce.schema import SObject
from sandboxes.salesforce.soql_eval import json_value
from sandboxes.salesforce.values import canonical_id
from sandboxes.salesforce.writes import WriteRefused, validate


@dataclass
class Answer:
    """What a resource answers: HTTP status, JSON body (None: no content) and headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> flask.Response:
        """As a Flask response."""
        response = flask.jsonify(self.body) if self.body is not None else flask.Response()
        response.status_code = self.status
        response.headers.update(self.headers)
        return response


def sobject(state: SalesforceState, name: str) -> SObject:
    """The sObject type ``name``, or Salesforce's 404."""
    obj = state.sobject(name)
    if obj is None:
        raise sf_error(404, "NOT_FOUND", NOT_FOUND)
    return obj


def refused(refusal: WriteRefused) -> SalesforceHttpError:
    """A refused save as the sObject Rows resources answer it."""
    return SalesforceHttpError(400, [e.rest() for e in refusal.errors])


def render_record(obj: SObject, row: Row, version: str, fields: list[str] | None = None) -> dict[str, Any]:
    """A record as sObject Rows returns it: attributes, then fields (all, or those asked for)."""
    out: dict[str, Any] = {"attributes": {"type": obj.name, "url": f"/services/data/v{version}/sobjects/{obj.name}/{row['Id']}"}}
    for f in obj.fields if fields is None else [obj.field(n) for n in fields]:
        assert f is not None
        out[f.name] = json_value(f, row.get(f.name))
    return out


def field_list(obj: SObject, raw: str | None) -> list[str] | None:
    """The ``fields`` parameter as field names (None: all), or INVALID_FIELD naming the unknown one."""
    if raw is None:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    for name in names:
        if obj.field(name) is None:
            raise sf_error(400, "INVALID_FIELD", f"No such column '{name}' on entity '{obj.name}'. If you are attempting "
                                                 "to use a custom field, be sure to append the '__c' after the custom "
                                                 "field name. Please reference your WSDL or the describe call for the "
                                                 "appropriate names.")
    return names


def find_live(state: SalesforceState, obj: SObject, record_id: str) -> Row:
    """The live record ``record_id`` of ``obj``, or the 404 Salesforce gives."""
    canonical = canonical_id(record_id)
    if canonical is None:
        raise sf_error(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {record_id}")
    row = state.tables[obj.name].get(canonical) if obj.name in state.tables else None
    if row is None:
        raise sf_error(404, "NOT_FOUND", NOT_FOUND)
    if row.get("IsDeleted"):
        raise sf_error(404, "ENTITY_IS_DELETED", "entity is deleted")
    return row


def create_row(state: SalesforceState, version: str, name: str, body: Any) -> Answer:
    """POST sobjects/{type}/: 201 with id, success and errors."""
    obj = sobject(state, name)
    with state.lock:
        if not obj.writable:
            raise sf_error(405, "METHOD_NOT_ALLOWED", "HTTP Method 'POST' not allowed. Allowed are GET,HEAD")
        try:
            changes = validate(state, obj, body, current=None)
        except WriteRefused as refusal:
            raise refused(refusal) from None
        row = state.insert(obj, changes, state.stamp())
    location = f"/services/data/v{version}/sobjects/{obj.name}/{row['Id']}"
    return Answer(201, {"id": row["Id"], "success": True, "errors": []}, {"Location": location})


def read_row(state: SalesforceState, version: str, name: str, record_id: str, fields: str | None) -> Answer:
    """GET sobjects/{type}/{id}: the record with Last-Modified; ``fields`` picks fields, and Id comes too."""
    obj = sobject(state, name)
    with state.lock:
        chosen = field_list(obj, fields)
        if chosen is not None and not any(n.lower() == "id" for n in chosen):
            chosen.append("Id")
        row = find_live(state, obj, record_id)
        headers = {"Last-Modified": http_date(row["LastModifiedDate"])} if row.get("LastModifiedDate") else {}
        return Answer(200, render_record(obj, row, version, chosen), headers)


def update_row(state: SalesforceState, name: str, record_id: str, body: Any, condition: str | None) -> Answer:
    """PATCH sobjects/{type}/{id}: 204, or 412 when modified after ``condition`` (If-Unmodified-Since)."""
    obj = sobject(state, name)
    since = parse_http_date(condition) if condition is not None else None
    if condition is not None and since is None:
        raise sf_error(400, "INVALID_HEADER_VALUE", f"If-Unmodified-Since is not a valid HTTP date: {condition}")
    with state.lock:
        row = find_live(state, obj, record_id)
        if since is not None and row["LastModifiedDate"] > since:
            raise sf_error(412, "PRECONDITION_FAILED",
                           f"The requested resource was modified since {condition} "
                           f"(Last-Modified: {http_date(row['LastModifiedDate'])})")
        try:
            changes = validate(state, obj, body, current=row)
        except WriteRefused as refusal:
            raise refused(refusal) from None
        state.update(row, changes, state.stamp())
    return Answer(204)


def delete_row(state: SalesforceState, name: str, record_id: str) -> Answer:
    """DELETE sobjects/{type}/{id}: to the recycle bin; 204."""
    obj = sobject(state, name)
    with state.lock:
        row = find_live(state, obj, record_id)
        state.delete(row, state.stamp())
    return Answer(204)


__all__ = ["Answer", "create_row", "delete_row", "field_list", "find_live", "read_row", "render_record", "sobject",
           "update_row"]
