"""A fake of the Airtable Web API for one base, good enough for the real pyairtable client.

``create_airtable_app`` builds the Flask app; ``start_airtable`` serves it on 127.0.0.1
for ``relsync sandbox`` and the tests. The record routes live in :mod:`airtable_records`
(listing in :mod:`airtable_listing`, cells in :mod:`airtable_cells`, formulas in
:mod:`airtable_formula`); this module adds authentication, the metadata API, Airtable's
error bodies for the shared core (401, 429, injected faults, unknown routes) and the
test knobs under ``/_sandbox/airtable/``.

Defaults are Airtable's ("real"): 5 requests per second per base, then 429 and 30 s in
which every request is refused; a list iterator idle for ``ITERATOR_TTL_SECONDS`` answers
422 LIST_RECORDS_ITERATOR_NOT_AVAILABLE (Airtable documents that iterators time out on
client inactivity, not after how long); an offset that is not an iterator's answers 422
INVALID_OFFSET_VALUE. ``behaviour="kind"`` switches off the rate limit and the time-out.

Knobs (unauthenticated, uncounted):
- ``GET|POST /_sandbox/airtable/config``: ``timestamp_precision`` ("second", Airtable's
  default here, or "millisecond"), ``iterator_ttl_seconds`` (null: offsets never time out),
  ``retry_after_header`` (send Retry-After with 429; Airtable documents none). The same
  settings show under "airtable" in ``GET /_sandbox/config``.
- ``POST /_sandbox/airtable/expire-offsets``: every offset handed out so far answers 422
  LIST_RECORDS_ITERATOR_NOT_AVAILABLE.
- ``POST /_sandbox/airtable/edit-during-paging``: ``{"edits": [{"record", "fields",
  "table"?}], "deletes": [...], "typecast"?}`` applied just before the next page request.
- ``GET /_sandbox/airtable/records/{id}``: a record with its per-field change times.
- the core's ``/_sandbox/calls``, ``/_sandbox/config`` (rate limit: Airtable's is
  ``{"requests": 5, "per_seconds": 1}``; the penalty window defaults to 30 s) and
  ``/_sandbox/faults``.

Known differences from Airtable (none of them used by relsync): ``cellFormat=string`` is
refused with a 422 (json only); there are no comments (``commentCount`` is always 0); one
grid view per table; the 50 requests/s per-token limit is not modelled. Bodies not seen
in any public source, so written in Airtable's style: the 400 for unparseable JSON, the
414 for URLs over 16,000 characters, an upsert matching several records, unknown views,
an unknown id in a batch delete (answered like a batch update's ROW_DOES_NOT_EXIST).
"""
from __future__ import annotations

import secrets
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import flask

from sandboxes.airtable.cells import commit, prepare, render
from sandboxes.airtable.data import (
    BASE_NAME,
    CHANGE_REQUESTS,
    RELEASES,
    AirtableState,
    Field,
    Table,
    airtable_id,
    build_tables,
    iso,
    seed_state,
)
from sandboxes.airtable.http import (
    RETRIABLE,
    STATE_KEY,
    AirtableError,
    error,
    no_model,
    route_not_found,
    state_of,
)
from sandboxes.airtable.listing import expire_iterators
from sandboxes.airtable.records import NEXT_PAGE, register_record_routes
from sandboxes.behaviour import REAL, is_real
from sandboxes.clock import SYSTEM_TIME, Clock, TimeSource
from sandboxes.core import controls, make_app, sandbox_route
from sandboxes.rate_limit import RateLimit
from sandboxes.seed import ANCHOR
from sandboxes.serving import RunningSandbox, serve

DEFAULT_BASE_ID = "appRelsyncOps0001"
PENALTY_SECONDS = 30.0
RATE_LIMIT = RateLimit(requests=5, per_seconds=1.0, penalty_seconds=PENALTY_SECONDS)
"""Airtable's limit: 5 requests per second per base, then 30 seconds of refusals."""
ITERATOR_TTL_SECONDS = 60.0
"""How long a list iterator may idle before it is gone (Airtable names no figure)."""
MAX_URL_LENGTH = 16_000
RATE_LIMITED = {"errors": [{"error": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded. Please try again later"}]}
UNAUTHORIZED = {"error": {"type": "AUTHENTICATION_REQUIRED", "message": "Authentication required"}}
_DATE_ISO = {"dateFormat": {"name": "iso", "format": "YYYY-MM-DD"}}
_DATETIME_UTC = {"type": "dateTime", "options": {**_DATE_ISO, "timeFormat": {"name": "24hour", "format": "HH:mm"}, "timeZone": "utc"}}


def _unauthorized() -> flask.Response:
    response = flask.jsonify(UNAUTHORIZED)
    response.status_code = 401
    return response


def _throttled(state: AirtableState) -> Callable[[float], flask.Response]:
    def answer(seconds: float) -> flask.Response:
        """429 with Airtable's body; Retry-After only when the knob asks for it."""
        response = flask.jsonify(RATE_LIMITED)
        response.status_code = 429
        if state.retry_after_header:
            response.headers["Retry-After"] = str(int(seconds))
        return response

    return answer


def _fault_body(status: int) -> Any:
    """The body Airtable would send with an injected status."""
    known: dict[int, Any] = {
        401: UNAUTHORIZED,
        403: no_model().body,
        404: route_not_found().body,
        422: {"error": {"type": "INVALID_REQUEST_UNKNOWN",
                        "message": "Invalid request: parameter validation failed. Check your request data."}},
        429: RATE_LIMITED,
        503: {"error": {"type": "RETRIABLE_ERROR", "message": RETRIABLE}},
    }
    if status in known:
        return known[status]
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return {"error": {"type": "SERVER_ERROR" if status >= 500 else "INVALID_REQUEST_UNKNOWN", "message": phrase}}


def field_json(found: Field, state: AirtableState) -> dict[str, Any]:
    """A field as the metadata API describes it (key order as Airtable sends it)."""
    body: dict[str, Any] = {"type": found.type}
    if found.choices is not None:
        body["options"] = {"choices": [{"id": c.id, "name": c.name, "color": c.color} for c in found.choices]}
    elif found.type == "date":
        body["options"] = _DATE_ISO
    elif found.type == "createdTime":
        body["options"] = {"result": _DATETIME_UTC}
    elif found.type == "lastModifiedTime":
        body["options"] = {"isValid": True, "referencedFieldIds": [], "result": _DATETIME_UTC}  # [] : every field
    elif found.type == "multipleRecordLinks":
        body["options"] = {"linkedTableId": found.linked_table, "isReversed": False, "prefersSingleRecordLink": False}
    elif found.type == "multipleAttachments":
        body["options"] = {"isReversed": False}
    body.update({"id": found.id, "name": found.name})
    return body


def table_json(table: Table, state: AirtableState, *, visible_fields: bool) -> dict[str, Any]:
    """A table as ``GET /v0/meta/bases/{base}/tables`` lists it."""
    view: dict[str, Any] = {"id": table.view_id, "name": table.view_name, "type": "grid"}
    if visible_fields:
        view["visibleFieldIds"] = [f.id for f in table.fields]
    return {"id": table.id, "name": table.name, "primaryFieldId": table.primary.id,
            "fields": [field_json(f, state) for f in table.fields], "views": [view]}


def _register_meta_routes(app: flask.Flask, state: AirtableState) -> None:
    @app.get("/v0/meta/whoami")
    def whoami() -> flask.Response:
        """GET meta/whoami: the token's user id."""
        return flask.jsonify({"id": state.user_id})

    @app.get("/v0/meta/bases")
    def bases() -> flask.Response:
        """GET meta/bases: the one base the token can see."""
        return flask.jsonify({"bases": [{"id": state.base_id, "name": BASE_NAME, "permissionLevel": "create"}]})

    @app.get("/v0/meta/bases/<base_id>/tables")
    def tables(base_id: str) -> flask.Response:
        """GET meta/bases/{base}/tables: tables, fields (with select choices) and views."""
        if base_id != state.base_id:
            raise no_model()
        visible = "visibleFieldIds" in flask.request.args.getlist("include") + flask.request.args.getlist("include[]")
        with state.lock:
            return flask.jsonify({"tables": [table_json(t, state, visible_fields=visible) for t in state.tables]})


def _bad_knob(message: str) -> tuple[flask.Response, int]:
    return flask.jsonify({"error": message}), 400


def _apply_edits(state: AirtableState, edits: list[dict[str, Any]], deletes: list[str], typecast: bool) -> None:
    """Edit and delete records as an Airtable user would, with one timestamp."""
    with state.lock:
        when = state.now()
        for change in edits:
            table = state.table(str(change.get("table", CHANGE_REQUESTS)))
            record = table.records.get(str(change.get("record"))) if table else None
            if table is not None and record is not None:
                commit(state, table, record, prepare(state, table, change.get("fields") or {}, typecast), when)
        for record_id in deletes:
            for table in state.tables:
                table.records.pop(record_id, None)


def settings(state: AirtableState) -> dict[str, Any]:
    """The Airtable settings a test can read and change."""
    with state.lock:
        return {"timestamp_precision": state.precision, "iterator_ttl_seconds": state.iterator_ttl,
                "retry_after_header": state.retry_after_header}


def _register_knobs(app: flask.Flask, state: AirtableState) -> None:
    controls(app).vendor_config = lambda: settings(state)

    @sandbox_route(app, "/airtable/config", methods=["GET", "POST"])
    def airtable_config() -> flask.Response | tuple[flask.Response, int]:
        """GET or POST /_sandbox/airtable/config: timestamp precision, offset time-out, Retry-After."""
        if flask.request.method == "POST":
            body = flask.request.get_json(silent=True) or {}
            precision = body.get("timestamp_precision", state.precision)
            if precision not in ("second", "millisecond"):
                return _bad_knob("timestamp_precision is 'second' or 'millisecond'")
            ttl = body.get("iterator_ttl_seconds", state.iterator_ttl)
            if ttl is not None and (not isinstance(ttl, (int, float)) or ttl < 0):
                return _bad_knob("iterator_ttl_seconds is null or a number of seconds")
            with state.lock:
                state.precision, state.iterator_ttl = precision, ttl
                state.retry_after_header = bool(body.get("retry_after_header", state.retry_after_header))
        return flask.jsonify(settings(state))

    @sandbox_route(app, "/airtable/expire-offsets", methods=["POST"])
    def expire_offsets() -> flask.Response:
        """POST /_sandbox/airtable/expire-offsets: every offset handed out so far stops working."""
        return flask.jsonify({"expired": expire_iterators(state)})

    @sandbox_route(app, "/airtable/edit-during-paging", methods=["POST"])
    def edit_during_paging() -> tuple[flask.Response, int]:
        """POST /_sandbox/airtable/edit-during-paging: edit or delete records before the next page."""
        body = flask.request.get_json(silent=True) or {}
        edits, deletes = body.get("edits") or [], body.get("deletes") or []
        if not isinstance(edits, list) or not isinstance(deletes, list) or not (edits or deletes):
            return _bad_knob("give 'edits': [{'record', 'fields'}] and/or 'deletes': [record ids]")
        typecast = bool(body.get("typecast", False))
        with state.lock:  # refuse now what would fail later, inside somebody's list request
            for change in edits:
                table = state.table(str(change.get("table", CHANGE_REQUESTS))) if isinstance(change, dict) else None
                if table is None or str(change.get("record")) not in table.records:
                    return _bad_knob(f"no such record to edit: {change!r}")
                try:
                    prepare(state, table, change.get("fields") or {}, typecast)
                except AirtableError as refused:
                    return _bad_knob(f"the edit {change!r} would be refused: {refused.body}")
        controls(app).schedule(NEXT_PAGE, lambda: _apply_edits(state, edits, [str(d) for d in deletes], typecast))
        return flask.jsonify({"scheduled": len(edits) + len(deletes)}), 202

    @sandbox_route(app, "/airtable/records/<record_id>", methods=["GET"])
    def raw_record(record_id: str) -> flask.Response | tuple[flask.Response, int]:
        """GET /_sandbox/airtable/records/{id}: the record, its table and when each field changed."""
        with state.lock:
            for table in state.tables:
                record = table.records.get(record_id)
                if record is not None:
                    stamps = {f.name: record.changed_at(f.id) for f in table.fields if not f.computed}
                    return flask.jsonify({"table": table.name, "record": render(state, table, record),
                                          "modified": {name: iso(stamp) for name, stamp in stamps.items() if stamp}})
        return flask.jsonify({"error": f"no record {record_id}"}), 404


def create_airtable_app(*, records: int = 200, seed: int = 7, token: str, base_id: str = DEFAULT_BASE_ID,
                        table_name: str = CHANGE_REQUESTS, releases_primary: str = "Name",
                        time_source: TimeSource = SYSTEM_TIME, behaviour: str = REAL) -> flask.Flask:
    """An Airtable sandbox: one base with "Change Requests" (``records`` seeded) and "Releases".

    ``table_name`` must be "Change Requests": relsync's examples and mappings name it.
    ``releases_primary`` names the Releases table's primary field ("Name" by default).
    ``time_source`` runs the rate limit, its penalty and the offsets' expiry, and stamps
    writes: the machine's clock unless a test passes a :class:`~sandboxes.clock.ManualTime`.
    ``behaviour`` "real" (the default) limits the rate and times iterators out; "kind" does neither.
    """
    real = is_real(behaviour)
    if len(base_id) != 17 or not base_id.startswith("app") or not base_id.isalnum():
        raise ValueError(f"base id {base_id!r} is not an Airtable base id ('app' and 14 letters or digits)")
    if table_name != CHANGE_REQUESTS:
        raise ValueError(f"the sandbox's table is {CHANGE_REQUESTS!r}, not {table_name!r}")
    requests_table, releases_table = build_tables(releases_primary)
    state = AirtableState(base_id=base_id, token=token, seed=seed, requests=requests_table, releases=releases_table,
                          user_id=airtable_id("usr", base_id), clock=Clock(floor=ANCHOR, source=time_source),
                          iterator_ttl=ITERATOR_TTL_SECONDS if real else None)
    seed_state(state, records)
    app = make_app("airtable", auth=lambda request: request.headers.get("Authorization") == f"Bearer {state.token}",
                   unauthorized=_unauthorized, throttled=_throttled(state), fault_body=_fault_body,
                   penalty_seconds=PENALTY_SECONDS, time_source=time_source, behaviour=behaviour,
                   rate_limit=RATE_LIMIT if real else None)
    app.extensions[STATE_KEY] = state

    @app.before_request
    def url_length() -> flask.Response | None:
        """Airtable refuses URLs over 16,000 characters; pyairtable then POSTs to listRecords."""
        if len(flask.request.url) > MAX_URL_LENGTH and not flask.request.path.startswith("/_sandbox"):
            raise error(414, "INVALID_REQUEST_UNKNOWN", f"The request URL is longer than {MAX_URL_LENGTH} characters")
        return None

    @app.errorhandler(AirtableError)
    def airtable_error(failure: AirtableError) -> flask.Response:
        """Any refusal, in Airtable's body."""
        return failure.response()

    @app.errorhandler(404)
    @app.errorhandler(405)
    def no_route(_: Exception) -> flask.Response:
        """A path (or method) Airtable serves nothing at: 404 NOT_FOUND."""
        return route_not_found().response()

    @app.after_request
    def json_charset(response: flask.Response) -> flask.Response:
        """Airtable names the charset on JSON answers."""
        if response.mimetype == "application/json" and "charset" not in response.content_type:
            response.content_type = "application/json; charset=utf-8"
        return response

    register_record_routes(app)
    _register_meta_routes(app, state)
    _register_knobs(app, state)
    return app


def start_airtable(records: int, seed: int, *, time_source: TimeSource = SYSTEM_TIME,
                   behaviour: str = REAL) -> tuple[RunningSandbox, dict[str, Any]]:
    """Serve a fresh Airtable sandbox with a new personal-access-token-shaped token."""
    token = f"pat{secrets.token_urlsafe(10)}.{secrets.token_hex(32)}"
    app = create_airtable_app(records=records, seed=seed, token=token, time_source=time_source, behaviour=behaviour)
    running = serve(app)
    description = {
        "url": running.url,
        "env": {"RELSYNC_AIRTABLE_TOKEN": token},
        "base": state_of(app).base_id,
        "table": CHANGE_REQUESTS,
        "releases_table": RELEASES,
    }
    return running, description


__all__ = [
    "DEFAULT_BASE_ID", "ITERATOR_TTL_SECONDS", "RATE_LIMIT", "create_airtable_app", "field_json", "start_airtable", "state_of",
    "table_json",
]
