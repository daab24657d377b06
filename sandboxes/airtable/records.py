"""The record routes: list, get, create, update (PATCH merges, PUT replaces), upsert, delete.

Batches hold at most ten records and are all or nothing: every record is validated
before any changes, and all of a request's changes share one timestamp.
"""
from __future__ import annotations

import re
from typing import Any

import flask

from sandboxes.airtable.cells import (
    Write,
    commit,
    create,
    prepare,
    render,
    resolve_field,
)
from sandboxes.airtable.data import AirtableState, Record, Table
from sandboxes.airtable.http import (
    current_state,
    error,
    flag,
    invalid_request,
    read_body,
    record_not_found,
    require_table,
    row_missing,
)
from sandboxes.airtable.listing import (
    list_page,
    options_from_body,
    options_from_query,
)
from sandboxes.core import controls

MAX_BATCH = 10
NEXT_PAGE = "airtable.list.next_page"
"""The scheduled-action trigger run before a list request that carries an offset."""
_RECORD_ID = re.compile(r"rec[0-9A-Za-z]{14}$")
_UP_TO_TEN_OBJECTS = "You must provide an array of up to 10 record objects."
_UP_TO_TEN_IDS = '"records" must be an array of up to 10 record IDs.'


def _batch(body: dict[str, Any]) -> list[dict[str, Any]]:
    records = body.get("records")
    if not isinstance(records, list) or not 1 <= len(records) <= MAX_BATCH or not all(isinstance(r, dict) for r in records):
        raise error(422, "INVALID_RECORDS", _UP_TO_TEN_OBJECTS)
    return records


def _existing(table: Table, record_id: Any) -> Record:
    if not isinstance(record_id, str) or not _RECORD_ID.match(record_id):
        raise error(422, "INVALID_RECORDS", _UP_TO_TEN_OBJECTS)
    record = table.records.get(record_id)
    if record is None:
        raise row_missing(record_id)
    return record


def _out(state: AirtableState, table: Table, records: list[Record], body: dict[str, Any]) -> list[dict[str, Any]]:
    by_id = flag(body.get("returnFieldsByFieldId", flask.request.args.get("returnFieldsByFieldId", False)))
    return [render(state, table, record, by_id=by_id) for record in records]


def _plan_upsert(state: AirtableState, table: Table, records: list[dict[str, Any]], merge_on: Any,
                 writes: list[Write]) -> list[Record | int | None]:
    """For each record: the record it updates, the index of an earlier create it updates, or None (create)."""
    if not isinstance(merge_on, list) or not 1 <= len(merge_on) <= 3 or not all(isinstance(k, str) for k in merge_on):
        raise invalid_request()
    keys = [resolve_field(table, k) for k in merge_on]
    if any(k.computed for k in keys):
        raise invalid_request()
    plan: list[Record | int | None] = []
    created: dict[tuple[Any, ...], int] = {}
    for index, (raw, write) in enumerate(zip(records, writes, strict=True)):
        if "id" in raw:
            plan.append(_existing(table, raw["id"]))
            continue
        if any(k.id not in write.values for k in keys):
            raise invalid_request("Upsert records must include every field in fieldsToMergeOn")
        wanted = tuple(repr(write.values[k.id]) for k in keys)
        found = [r for r in table.records.values() if tuple(repr(r.cells.get(k.id)) for k in keys) == wanted]
        if len(found) > 1:
            raise error(422, "INVALID_REQUEST_UNKNOWN", "Multiple records match the fields to merge on")
        if found:
            plan.append(found[0])
        elif wanted in created:
            plan.append(created[wanted])
        else:
            created[wanted] = index
            plan.append(None)
    return plan


def _update_many(state: AirtableState, table: Table, body: dict[str, Any], *, replace: bool) -> dict[str, Any]:
    records = _batch(body)
    typecast = flag(body.get("typecast", False))
    upsert = body.get("performUpsert")
    with state.lock:
        writes = [prepare(state, table, raw.get("fields"), typecast) for raw in records]
        if upsert is None:
            plan: list[Record | int | None] = [_existing(table, raw.get("id")) for raw in records]
        elif isinstance(upsert, dict):
            plan = _plan_upsert(state, table, records, upsert.get("fieldsToMergeOn"), writes)
        else:
            raise invalid_request()
        when = state.now()
        done: list[Record] = []
        created_ids: list[str] = []
        for target, write in zip(plan, writes, strict=True):
            if target is None:
                record = create(state, table, write, when)
                created_ids.append(record.id)
            else:
                record = done[target] if isinstance(target, int) else target
                commit(state, table, record, write, when, replace=replace)
            done.append(record)
        result: dict[str, Any] = {"records": _out(state, table, done, body)}
        if upsert is not None:
            result["createdRecords"] = created_ids
            result["updatedRecords"] = list(dict.fromkeys(r.id for r in done if r.id not in created_ids))
        return result


def register_record_routes(app: flask.Flask) -> None:
    """Add the record endpoints under ``/v0/{base_id}/{table}``."""

    @app.route("/v0/<base_id>/<table>", methods=["GET"], strict_slashes=False)
    def list_records(base_id: str, table: str) -> flask.Response:
        """GET: one page of records (filterByFormula, sort, fields, pageSize, maxRecords, offset)."""
        state = current_state()
        found = require_table(state, base_id, table)
        options = options_from_query()
        if options.offset:
            controls(flask.current_app).run_scheduled(NEXT_PAGE)
        return flask.jsonify(list_page(state, found, options))

    @app.route("/v0/<base_id>/<table>/listRecords", methods=["POST"])
    def list_records_post(base_id: str, table: str) -> flask.Response:
        """POST listRecords: the same listing with its options in a JSON body."""
        state = current_state()
        found = require_table(state, base_id, table)
        options = options_from_body(read_body())
        if options.offset:
            controls(flask.current_app).run_scheduled(NEXT_PAGE)
        return flask.jsonify(list_page(state, found, options))

    @app.route("/v0/<base_id>/<table>", methods=["POST"], strict_slashes=False)
    def create_records(base_id: str, table: str) -> flask.Response:
        """POST: create one record (``fields``) or up to ten (``records``)."""
        state = current_state()
        found = require_table(state, base_id, table)
        body = read_body()
        typecast = flag(body.get("typecast", False))
        with state.lock:
            if "records" in body:
                writes = [prepare(state, found, raw.get("fields"), typecast) for raw in _batch(body)]
                when = state.now()
                made = [create(state, found, write, when) for write in writes]
                return flask.jsonify({"records": _out(state, found, made, body)})
            write = prepare(state, found, body.get("fields"), typecast)
            return flask.jsonify(_out(state, found, [create(state, found, write, state.now())], body)[0])

    @app.route("/v0/<base_id>/<table>", methods=["PATCH", "PUT"], strict_slashes=False)
    def update_records(base_id: str, table: str) -> flask.Response:
        """PATCH or PUT: update up to ten records by id, or upsert with performUpsert."""
        state = current_state()
        found = require_table(state, base_id, table)
        return flask.jsonify(_update_many(state, found, read_body(), replace=flask.request.method == "PUT"))

    @app.route("/v0/<base_id>/<table>", methods=["DELETE"], strict_slashes=False)
    def delete_records(base_id: str, table: str) -> flask.Response:
        """DELETE ?records[]=…: delete up to ten records."""
        state = current_state()
        found = require_table(state, base_id, table)
        args = flask.request.args
        bare = args.getlist("records")  # repeating the bare name also makes an array; once does not
        ids = args.getlist("records[]") + bare if "records[]" in args else bare if len(bare) > 1 else None
        if not ids or len(ids) > MAX_BATCH:
            raise error(422, "INVALID_RECORDS", _UP_TO_TEN_IDS)
        with state.lock:
            for record_id in ids:
                _existing(found, record_id)
            for record_id in ids:
                found.records.pop(record_id, None)
        return flask.jsonify({"records": [{"deleted": True, "id": record_id} for record_id in ids]})

    @app.route("/v0/<base_id>/<table>/<record_id>", methods=["GET"])
    def get_record(base_id: str, table: str, record_id: str) -> flask.Response:
        """GET one record."""
        state = current_state()
        found = require_table(state, base_id, table)
        with state.lock:
            record = found.records.get(record_id)
            if record is None:
                raise record_not_found()
            return flask.jsonify(_out(state, found, [record], {})[0])

    @app.route("/v0/<base_id>/<table>/<record_id>", methods=["PATCH", "PUT"])
    def update_record(base_id: str, table: str, record_id: str) -> flask.Response:
        """PATCH or PUT one record."""
        state = current_state()
        found = require_table(state, base_id, table)
        body = read_body()
        with state.lock:
            record = found.records.get(record_id)
            if record is None:
                raise record_not_found()
            write = prepare(state, found, body.get("fields"), flag(body.get("typecast", False)))
            commit(state, found, record, write, state.now(), replace=flask.request.method == "PUT")
            return flask.jsonify(_out(state, found, [record], body)[0])

    @app.route("/v0/<base_id>/<table>/<record_id>", methods=["DELETE"])
    def delete_record(base_id: str, table: str, record_id: str) -> flask.Response:
        """DELETE one record."""
        state = current_state()
        found = require_table(state, base_id, table)
        with state.lock:
            if found.records.pop(record_id, None) is None:
                raise record_not_found()
        return flask.jsonify({"deleted": True, "id": record_id})


__all__ = ["MAX_BATCH", "NEXT_PAGE", "register_record_routes"]
