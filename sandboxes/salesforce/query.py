"""Query, QueryAll and the replication resources (sObject Get Updated / Get Deleted).

Query answers ``{"totalSize", "done", "nextRecordsUrl"?, "records"}`` with up to 2,000
records a batch (``Sforce-Query-Options: batchSize=N``, 200 to 2,000); the rest is read
through ``/services/data/vXX.X/query/<locator>-<offset>``. The batch asked for is a
preference: unless the org is kind, batches come back larger or smaller (never over
2,000, never empty before the end), the same for the same query, offset and seed. A
cursor is good for two days after its query (no cap on open cursors since API 56.0);
an expired one answers 400 INVALID_QUERY_LOCATOR "invalid query locator". Get Updated covers at most the last 30
days, Get Deleted the last 15 (or since the recycle bin was emptied); both truncate
start and end to the minute and answer INVALID_REPLICATION_DATE outside their window.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import flask

from sandboxes.core import controls
from sandboxes.salesforce.data import UPDATED_WINDOW, Locator, SalesforceState
from sandboxes.salesforce.http import NOT_FOUND, sf_error
from sandboxes.salesforce.soql import SoqlError, parse
from sandboxes.salesforce.soql_eval import bind
from sandboxes.salesforce.values import format_datetime, parse_datetime

DEFAULT_BATCH, MIN_BATCH, MAX_BATCH = 2000, 200, 2000
BATCH_FACTORS = (1.0, 0.5, 0.8, 1.25)
"""What a served batch may be, as a share of the batch asked for."""
PAGING_TRIGGER = "salesforce_query_more"


def batch_size() -> int | None:
    """The batch size asked for in Sforce-Query-Options, clamped to 200..2000 (None: not asked)."""
    header = flask.request.headers.get("Sforce-Query-Options")
    if not header:
        return None
    for option in header.split(","):
        name, _, value = option.strip().partition("=")
        if name.strip().lower() == "batchsize":
            try:
                return min(MAX_BATCH, max(MIN_BATCH, int(value.strip())))
            except ValueError:
                raise sf_error(400, "INVALID_HEADER_VALUE", f"Invalid Sforce-Query-Options batchSize: {value.strip()}") from None
    return None


def served_batch(state: SalesforceState, key: str, asked: int, offset: int) -> int:
    """How many records the batch at ``offset`` of query ``key`` holds when ``asked`` were asked for."""
    if state.exact_batches:
        return asked
    digest = hashlib.sha256(f"{state.seed}\x1f{key}\x1f{offset}\x1f{asked}".encode()).digest()
    return max(1, min(MAX_BATCH, round(asked * BATCH_FACTORS[digest[0] % len(BATCH_FACTORS)])))


def _page(state: SalesforceState, locator_id: str | None, locator: Locator, offset: int, version: str) -> dict[str, Any]:
    ids = locator.ids
    chunk = ids[offset : offset + served_batch(state, locator.key, locator.batch, offset)]
    table = state.tables[locator.bound.sobject.name]
    records = [locator.bound.render(table[i], version) for i in chunk if i in table]
    body: dict[str, Any] = {"totalSize": len(ids), "done": offset + len(chunk) >= len(ids)}
    if not body["done"]:
        body["nextRecordsUrl"] = f"/services/data/v{version}/{locator.endpoint}/{locator_id}-{offset + len(chunk)}"
    body["records"] = records
    return body


def run_query(state: SalesforceState, soql: str, *, endpoint: str, version: str, batch: int) -> dict[str, Any]:
    """Run ``soql``; the first batch, opening a cursor when there is more. Caller holds the lock."""
    try:
        bound = bind(parse(soql), state.catalog, state.lookup)
    except SoqlError as error:
        raise sf_error(400, error.code, error.message) from None
    matched = bound.run(state.rows(bound.sobject, include_deleted=endpoint == "queryAll"))
    if bound.query.count:
        return {"totalSize": len(matched), "done": True, "records": []}
    locator = Locator([row["Id"] for row in matched], bound, batch, endpoint, key=f"{endpoint}:{soql}")
    locator_id = None
    if len(matched) > served_batch(state, locator.key, batch, 0):
        locator_id = state.open_locator(locator)
    return _page(state, locator_id, locator, 0, version)


def register_query_routes(app: flask.Flask, state: SalesforceState) -> None:
    """Query, QueryAll, cursors, Get Updated and Get Deleted."""

    def query(version: str, endpoint: str) -> flask.Response:
        """GET query/?q= or queryAll/?q=: run SOQL."""
        soql = flask.request.args.get("q")
        if not soql or not soql.strip():
            raise sf_error(400, "MALFORMED_QUERY", "A query string has to be specified")
        batch = batch_size() or DEFAULT_BATCH
        with state.lock:
            return flask.jsonify(run_query(state, soql, endpoint=endpoint, version=version, batch=batch))

    def more(version: str, endpoint: str, cursor: str) -> flask.Response:
        """GET query/<locator>-<offset>: the next batch of an open cursor."""
        controls(flask.current_app).run_scheduled(PAGING_TRIGGER)
        locator_id, _, raw_offset = cursor.rpartition("-")
        with state.lock:
            locator = state.open_locator_of(locator_id)
            if locator is None or not raw_offset.isdigit() or int(raw_offset) > len(locator.ids):
                raise sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            asked = batch_size()
            if asked:
                locator.batch = asked
            return flask.jsonify(_page(state, locator_id, locator, int(raw_offset), version))

    for endpoint in ("query", "queryAll"):
        app.add_url_rule(f"/services/data/v<version>/{endpoint}/", endpoint=f"sf_{endpoint}", view_func=query,
                         methods=["GET"], strict_slashes=False, defaults={"endpoint": endpoint})
        app.add_url_rule(f"/services/data/v<version>/{endpoint}/<cursor>", endpoint=f"sf_{endpoint}_more",
                         view_func=more, methods=["GET"], defaults={"endpoint": endpoint})

    @app.get("/services/data/v<version>/sobjects/<name>/updated/", strict_slashes=False)
    def updated(version: str, name: str) -> flask.Response:
        """GET sobjects/{type}/updated/?start=&end=: ids changed in the window (last 30 days)."""
        with state.lock:
            obj, start, _end, covered = _window(state, name)
            if start < (state.now() - UPDATED_WINDOW).replace(second=0):
                raise sf_error(400, "INVALID_REPLICATION_DATE", "startDate cannot be more than 30 days ago")
            ids = [row["Id"] for row in state.rows(obj, include_deleted=False)
                   if start <= row["SystemModstamp"] < covered]
            return flask.jsonify({"ids": ids, "latestDateCovered": format_datetime(covered)})

    @app.get("/services/data/v<version>/sobjects/<name>/deleted/", strict_slashes=False)
    def deleted(version: str, name: str) -> flask.Response:
        """GET sobjects/{type}/deleted/?start=&end=: records deleted in the window (last 15 days)."""
        with state.lock:
            obj, start, _end, covered = _window(state, name)
            earliest = state.earliest_deleted_available()
            if start < earliest:
                raise sf_error(400, "INVALID_REPLICATION_DATE",
                               f"startDate is before the earliest date available ({format_datetime(earliest)})")
            found = [{"id": row["Id"], "deletedDate": format_datetime(state.deleted_at[row["Id"]])}
                     for row in state.rows(obj, include_deleted=True)
                     if row.get("IsDeleted") and start <= state.deleted_at[row["Id"]] < covered]
            return flask.jsonify({"deletedRecords": found, "earliestDateAvailable": format_datetime(earliest),
                                  "latestDateCovered": format_datetime(covered)})


def _window(state: SalesforceState, name: str) -> tuple[Any, dt.datetime, dt.datetime, dt.datetime]:
    obj = state.sobject(name)
    if obj is None or not obj.writable:
        raise sf_error(404, "NOT_FOUND", NOT_FOUND)
    raw_start, raw_end = flask.request.args.get("start", ""), flask.request.args.get("end", "")
    start, end = parse_datetime(raw_start), parse_datetime(raw_end)
    if start is None or end is None:
        raise sf_error(400, "INVALID_REPLICATION_DATE",
                       "start and end must be dateTimes in ISO 8601 format with a time zone")
    start, end = start.replace(second=0, microsecond=0), end.replace(second=0, microsecond=0)
    if start >= end:
        raise sf_error(400, "INVALID_REPLICATION_DATE", "The specified startDate must chronologically precede the "
                                                        "specified endDate")
    covered = min(end, state.now().replace(second=0))
    return obj, start, end, covered
