"""sObject Rows (create, read, update, delete one record) and sObject Collections (up to 200).

Reads accept 15- or 18-character ids and answer with 18; a malformed id reads as an
external id ("Provided external ID field does not exist or is not accessible: X", 404),
a deleted record as 404 ENTITY_IS_DELETED. PATCH takes ``If-Unmodified-Since`` (an HTTP
date; an unreadable one is 400) and answers 412 when the record was modified after it.
"""
from __future__ import annotations

from typing import Any

import flask

from sandboxes.salesforce.data import Row, SalesforceState
from sandboxes.salesforce.http import (
    NOT_FOUND,
    SalesforceHttpError,
    http_date,
    parse_http_date,
    read_json,
    sf_error,
)
from sandboxes.salesforce.schema import SObject
from sandboxes.salesforce.soql_eval import json_value
from sandboxes.salesforce.values import canonical_id
from sandboxes.salesforce.writes import (
    MAX_COLLECTION,
    WriteRefused,
    delete_collection,
    existing,
    save_collection,
    validate,
)

MAX_RETRIEVE = 2000


def _object(state: SalesforceState, name: str) -> SObject:
    obj = state.sobject(name)
    if obj is None:
        raise sf_error(404, "NOT_FOUND", NOT_FOUND)
    return obj


def _refused(refusal: WriteRefused) -> SalesforceHttpError:
    return SalesforceHttpError(400, [e.rest() for e in refusal.errors])


def render_record(obj: SObject, row: Row, version: str, fields: list[str] | None = None) -> dict[str, Any]:
    """A record as sObject Rows returns it: attributes, then fields (all, or those asked for)."""
    out: dict[str, Any] = {"attributes": {"type": obj.name, "url": f"/services/data/v{version}/sobjects/{obj.name}/{row['Id']}"}}
    for f in obj.fields if fields is None else [obj.field(n) for n in fields]:
        assert f is not None
        out[f.name] = json_value(f, row.get(f.name))
    return out


def _field_list(obj: SObject, raw: str | None) -> list[str] | None:
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


def _find_live(state: SalesforceState, obj: SObject, record_id: str) -> Row:
    canonical = canonical_id(record_id)
    if canonical is None:
        raise sf_error(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {record_id}")
    row = state.tables[obj.name].get(canonical) if obj.name in state.tables else None
    if row is None:
        raise sf_error(404, "NOT_FOUND", NOT_FOUND)
    if row.get("IsDeleted"):
        raise sf_error(404, "ENTITY_IS_DELETED", "entity is deleted")
    return row


def register_record_routes(app: flask.Flask, state: SalesforceState) -> None:
    """sObject Rows and sObject Collections."""

    @app.post("/services/data/v<version>/sobjects/<name>/", strict_slashes=False)
    def create(version: str, name: str) -> tuple[flask.Response, int]:
        """POST sobjects/{type}/: create; 201 with id, success and errors."""
        obj = _object(state, name)
        body = read_json()
        with state.lock:
            if not obj.writable:
                raise sf_error(405, "METHOD_NOT_ALLOWED", "HTTP Method 'POST' not allowed. Allowed are GET,HEAD")
            try:
                changes = validate(state, obj, body, current=None)
            except WriteRefused as refusal:
                raise _refused(refusal) from None
            row = state.insert(obj, changes, state.stamp())
        return flask.jsonify({"id": row["Id"], "success": True, "errors": []}), 201

    @app.get("/services/data/v<version>/sobjects/<name>/<record_id>")
    def read(version: str, name: str, record_id: str) -> flask.Response:
        """GET sobjects/{type}/{id}: the record (``fields`` picks fields)."""
        obj = _object(state, name)
        with state.lock:
            fields = _field_list(obj, flask.request.args.get("fields"))
            row = _find_live(state, obj, record_id)
            response = flask.jsonify(render_record(obj, row, version, fields))
            if row.get("LastModifiedDate"):
                response.headers["Last-Modified"] = http_date(row["LastModifiedDate"])
            return response

    @app.patch("/services/data/v<version>/sobjects/<name>/<record_id>")
    def update(version: str, name: str, record_id: str) -> flask.Response:
        """PATCH sobjects/{type}/{id}: update; 204, or 412 past If-Unmodified-Since."""
        obj = _object(state, name)
        body = read_json()
        condition = flask.request.headers.get("If-Unmodified-Since")
        since = parse_http_date(condition) if condition is not None else None
        if condition is not None and since is None:
            raise sf_error(400, "INVALID_HEADER_VALUE", f"If-Unmodified-Since is not a valid HTTP date: {condition}")
        with state.lock:
            row = _find_live(state, obj, record_id)
            if since is not None and row["LastModifiedDate"] > since:
                raise sf_error(412, "PRECONDITION_FAILED",
                               f"The requested resource was modified since {condition} "
                               f"(Last-Modified: {http_date(row['LastModifiedDate'])})")
            try:
                changes = validate(state, obj, body, current=row)
            except WriteRefused as refusal:
                raise _refused(refusal) from None
            state.update(row, changes, state.stamp())
        return flask.Response(status=204)

    @app.delete("/services/data/v<version>/sobjects/<name>/<record_id>")
    def delete(version: str, name: str, record_id: str) -> flask.Response:
        """DELETE sobjects/{type}/{id}: to the recycle bin; 204."""
        obj = _object(state, name)
        with state.lock:
            row = _find_live(state, obj, record_id)
            state.delete(row, state.stamp())
        return flask.Response(status=204)

    def collection(version: str) -> flask.Response:
        """POST (create) or PATCH (update) composite/sobjects: up to 200 records, SaveResults in order."""
        body = read_json()
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise sf_error(400, "JSON_PARSER_ERROR", "Cannot deserialize the request: expected an object with records")
        records = body["records"]
        if len(records) > MAX_COLLECTION:
            raise sf_error(400, "EXCEEDED_ID_LIMIT",
                           f"record limit reached. cannot submit more than {MAX_COLLECTION} records into this call")
        all_or_none = body.get("allOrNone", False) is True
        with state.lock:
            results = save_collection(state, records, all_or_none=all_or_none,
                                      creating=flask.request.method == "POST")
        return flask.jsonify(results)

    app.add_url_rule("/services/data/v<version>/composite/sobjects", endpoint="sf_collection", view_func=collection,
                     methods=["POST", "PATCH"], strict_slashes=False)

    @app.delete("/services/data/v<version>/composite/sobjects", strict_slashes=False)
    def collection_delete(version: str) -> flask.Response:
        """DELETE composite/sobjects?ids=&allOrNone=: up to 200 deletes, DeleteResults in order."""
        ids = [i for i in flask.request.args.get("ids", "").split(",") if i]
        if not ids:
            raise sf_error(400, "MISSING_ARGUMENT", "ids parameter is required")
        if len(ids) > MAX_COLLECTION:
            raise sf_error(400, "EXCEEDED_ID_LIMIT",
                           f"record limit reached. cannot submit more than {MAX_COLLECTION} records into this call")
        all_or_none = flask.request.args.get("allOrNone", "false").lower() == "true"
        with state.lock:
            return flask.jsonify(delete_collection(state, ids, all_or_none=all_or_none))

    @app.get("/services/data/v<version>/composite/sobjects/<name>", strict_slashes=False)
    def collection_read(version: str, name: str) -> flask.Response:
        """GET composite/sobjects/{type}?ids=&fields=: records in the order asked (null when missing)."""
        obj = _object(state, name)
        ids = [i for i in flask.request.args.get("ids", "").split(",") if i]
        fields = _field_list(obj, flask.request.args.get("fields"))
        if not ids or not fields:
            raise sf_error(400, "MISSING_ARGUMENT", "ids and fields parameters are required")
        if len(ids) > MAX_RETRIEVE:
            raise sf_error(400, "EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more than {MAX_RETRIEVE} records")
        with state.lock:
            out = []
            for ident in ids:
                try:
                    row: Row | None = existing(state, obj, ident)
                except WriteRefused:
                    row = None
                out.append(None if row is None else render_record(obj, row, version, fields))
            return flask.jsonify(out)
