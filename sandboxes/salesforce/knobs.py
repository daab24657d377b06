"""Test knobs of the Salesforce sandbox, under ``/_sandbox/salesforce/`` (never authenticated or counted).

- ``GET|POST config {"session_timeout_seconds"?, "cursor_lifetime_seconds"?, "exact_batches"?}``:
  how long an access token may idle and a query cursor live (null: for ever), and whether
  query batches hold exactly the ``batchSize`` asked; also under "salesforce" in ``/_sandbox/config``.
- ``POST share-modstamp {"count": N[, "object": "Case"]}``: the N most recently modified live
  records get one identical SystemModstamp (and LastModifiedDate), the current time;
  answers the stamp and the ids (in Id order), so a test can put a tie across a page.
- ``POST limits {"used": N, "max": M}``: the daily API allocation (either key optional).
- ``POST expire-locators``: every open query cursor becomes invalid.
- ``POST expire-sessions``: every access token becomes invalid (refresh tokens survive).
- ``POST refresh-token``: mint a refresh token, as a web-server flow would have handed out.
- ``POST purge-deleted``: empty the recycle bin; the delete log restarts now.
- ``POST advance-clock {"seconds": S}``: move the org's clock forward (replication windows).
- ``POST edit-during-paging {"ids": [...], "fields": {...}[, "object": ...]}``: apply this
  edit just before the next query-more page is served.
- ``POST people {"name", "email"}``: a user for a person and an access token of theirs (as if
  they had logged in), so a test edits records as that person through the real client:
  LastModifiedById and the field history's CreatedById name them.
- ``GET state``: record counts, open cursors, sessions and API usage.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import flask

from sandboxes.core import controls, sandbox_route
from sandboxes.salesforce.data import SalesforceState
from sandboxes.salesforce.query import PAGING_TRIGGER
from sandboxes.salesforce.schema import SObject
from sandboxes.salesforce.values import format_datetime
from sandboxes.salesforce.writes import WriteRefused, existing, validate


def _knob_error(message: str, status: int = 400) -> flask.Response:
    response = flask.jsonify({"error": message})
    response.status_code = status
    return response


def _body() -> dict[str, Any]:
    body = flask.request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _writable(state: SalesforceState, body: dict[str, Any]) -> SObject | None:
    obj = state.sobject(str(body.get("object") or state.object_name))
    return obj if obj is not None and obj.writable else None


def settings(state: SalesforceState) -> dict[str, Any]:
    """The Salesforce settings a test can read and change."""
    with state.lock:
        return {"session_timeout_seconds": state.session_timeout, "cursor_lifetime_seconds": state.cursor_lifetime,
                "exact_batches": state.exact_batches}


def _seconds(body: dict[str, Any], name: str, current: float | None) -> float | None:
    value = body.get(name, current)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
        raise ValueError(f"{name} is null or a number of seconds, 0 or more")
    return None if value is None else float(value)


def register_knobs(app: flask.Flask, state: SalesforceState) -> None:
    """Register the Salesforce knobs."""
    controls(app).vendor_config = lambda: settings(state)

    @sandbox_route(app, "/salesforce/config", methods=["GET", "POST"])
    def salesforce_config() -> flask.Response:
        """GET or POST /_sandbox/salesforce/config: session timeout, cursor lifetime, exact batches."""
        if flask.request.method == "POST":
            body = _body()
            try:
                timeout = _seconds(body, "session_timeout_seconds", state.session_timeout)
                lifetime = _seconds(body, "cursor_lifetime_seconds", state.cursor_lifetime)
            except ValueError as problem:
                return _knob_error(str(problem))
            with state.lock:
                state.session_timeout, state.cursor_lifetime = timeout, lifetime
                state.exact_batches = bool(body.get("exact_batches", state.exact_batches))
        return flask.jsonify(settings(state))

    @sandbox_route(app, "/salesforce/share-modstamp", methods=["POST"])
    def share_modstamp() -> flask.Response:
        """Give the N most recently modified live records one identical SystemModstamp."""
        body = _body()
        obj = _writable(state, body)
        count = body.get("count")
        if obj is None or not isinstance(count, int) or count < 1:
            return _knob_error("expected {'count': positive int[, 'object': 'Case' | 'Change_Request__c']}")
        with state.lock:
            live = state.rows(obj, include_deleted=False)
            if count > len(live):
                return _knob_error(f"only {len(live)} live {obj.name} records")
            chosen = sorted(live, key=lambda r: (r["SystemModstamp"], r["Id"]))[-count:]
            stamp = state.stamp()
            for row in chosen:
                row["SystemModstamp"] = row["LastModifiedDate"] = stamp
            ids = sorted(row["Id"] for row in chosen)
        return flask.jsonify({"modstamp": format_datetime(stamp), "ids": ids})

    @sandbox_route(app, "/salesforce/limits", methods=["POST"])
    def limits() -> flask.Response:
        """Set the daily API allocation: used and/or max."""
        body = _body()
        with state.lock:
            for key in ("used", "max"):
                if key in body:
                    if not isinstance(body[key], int) or body[key] < 0:
                        return _knob_error(f"'{key}' must be a non-negative int")
                    setattr(state.quota, key, body[key])
            return flask.jsonify({"used": state.quota.used, "max": state.quota.max})

    @sandbox_route(app, "/salesforce/expire-locators", methods=["POST"])
    def expire_locators() -> flask.Response:
        """Invalidate every open query cursor."""
        with state.lock:
            open_ones = [loc for loc in state.locators.values() if not loc.expired]
            for locator in open_ones:
                locator.expired = True
        return flask.jsonify({"expired": len(open_ones)})

    @sandbox_route(app, "/salesforce/expire-sessions", methods=["POST"])
    def expire_sessions() -> flask.Response:
        """Invalidate every access token."""
        with state.lock:
            count = len(state.sessions.access)
            state.sessions.access.clear()
        return flask.jsonify({"expired": count})

    @sandbox_route(app, "/salesforce/refresh-token", methods=["POST"])
    def refresh_token() -> flask.Response:
        """Mint a refresh token for the refresh_token grant."""
        with state.lock:
            return flask.jsonify({"refresh_token": state.issue_refresh_token()})

    @sandbox_route(app, "/salesforce/purge-deleted", methods=["POST"])
    def purge_deleted() -> flask.Response:
        """Empty the recycle bin."""
        with state.lock:
            purged = state.purge_deleted()
            return flask.jsonify({"purged": purged,
                                  "earliestDateAvailable": format_datetime(state.earliest_deleted_available())})

    @sandbox_route(app, "/salesforce/advance-clock", methods=["POST"])
    def advance_clock() -> flask.Response:
        """Move the org's clock forward by ``seconds``."""
        seconds = _body().get("seconds")
        if not isinstance(seconds, (int, float)) or seconds < 0:
            return _knob_error("expected {'seconds': non-negative number}")
        with state.lock:
            state.offset += dt.timedelta(seconds=seconds)
            return flask.jsonify({"now": format_datetime(state.now())})

    @sandbox_route(app, "/salesforce/edit-during-paging", methods=["POST"])
    def edit_during_paging() -> flask.Response:
        """Schedule an edit of some records for just before the next query-more page."""
        body = _body()
        obj = _writable(state, body)
        ids, fields = body.get("ids"), body.get("fields")
        if obj is None or not isinstance(ids, list) or not isinstance(fields, dict):
            return _knob_error("expected {'ids': [...], 'fields': {...}[, 'object': ...]}")
        with state.lock:
            try:
                rows = [existing(state, obj, ident) for ident in ids]
                plans = [(row, validate(state, obj, fields, current=row)) for row in rows]
            except WriteRefused as refusal:
                return _knob_error(str(refusal))

        def edit() -> None:
            with state.lock:
                stamp = state.stamp()
                for row, changes in plans:
                    state.update(row, changes, stamp)

        controls(app).schedule(PAGING_TRIGGER, edit)
        return flask.jsonify({"scheduled": len(plans)})

    @sandbox_route(app, "/salesforce/people", methods=["POST"])
    def add_person() -> flask.Response:
        """POST /_sandbox/salesforce/people: a person's user and a session of theirs."""
        body = _body()
        name, email = str(body.get("name") or "").strip(), str(body.get("email") or "").strip()
        if not name or "@" not in email:
            return _knob_error("give 'name' and 'email'")
        with state.lock:
            user = state.add_person(name, email)
            token = state.issue_token(user)
        response = flask.jsonify({"id": user, "name": name, "access_token": token,
                                  "instance_url": flask.request.host_url.rstrip("/")})
        response.status_code = 201
        return response

    @sandbox_route(app, "/salesforce/state", methods=["GET"])
    def summary() -> flask.Response:
        """Counts of records, cursors and sessions, and the API usage."""
        with state.lock:
            return flask.jsonify({
                "object": state.object_name,
                "records": {name: len(table) for name, table in state.tables.items()},
                "deleted": len(state.deleted_at),
                "open_locators": sum(1 for loc in state.locators.values() if not loc.expired),
                "sessions": len(state.sessions.access),
                "api_usage": {"used": state.quota.used, "max": state.quota.max},
                "now": format_datetime(state.now()),
            })
