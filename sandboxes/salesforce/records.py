"""The routes of sObject Rows (one record; the operations live in :mod:`rows`) and sObject
Collections (up to 200 records a call, SaveResults in request order)."""
from __future__ import annotations

import flask

from sandboxes.salesforce.data import Row, SalesforceState
from sandboxes.salesforce.http import read_json, sf_error
from sandboxes.salesforce.rows import (
    create_row,
    delete_row,
    field_list,
    read_row,
    render_record,
    sobject,
    update_row,
)
from sandboxes.salesforce.writes import (
    MAX_COLLECTION,
    WriteRefused,
    delete_collection,
    existing,
    save_collection,
)

MAX_RETRIEVE = 2000


def register_record_routes(app: flask.Flask, state: SalesforceState) -> None:
    """sObject Rows and sObject Collections."""

    @app.post("/services/data/v<version>/sobjects/<name>/", strict_slashes=False)
    def create(version: str, name: str) -> flask.Response:
        """POST sobjects/{type}/: create; 201 with id, success and errors."""
        return create_row(state, version, name, read_json()).response()

    @app.get("/services/data/v<version>/sobjects/<name>/<record_id>")
    def read(version: str, name: str, record_id: str) -> flask.Response:
        """GET sobjects/{type}/{id}: the record (``fields`` picks fields)."""
        return read_row(state, version, name, record_id, flask.request.args.get("fields")).response()

    @app.patch("/services/data/v<version>/sobjects/<name>/<record_id>")
    def update(version: str, name: str, record_id: str) -> flask.Response:
        """PATCH sobjects/{type}/{id}: update; 204, or 412 past If-Unmodified-Since."""
        sobject(state, name)
        body = read_json()
        return update_row(state, name, record_id, body, flask.request.headers.get("If-Unmodified-Since")).response()

    @app.delete("/services/data/v<version>/sobjects/<name>/<record_id>")
    def delete(version: str, name: str, record_id: str) -> flask.Response:
        """DELETE sobjects/{type}/{id}: to the recycle bin; 204."""
        return delete_row(state, name, record_id).response()

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
        obj = sobject(state, name)
        ids = [i for i in flask.request.args.get("ids", "").split(",") if i]
        fields = field_list(obj, flask.request.args.get("fields"))
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
