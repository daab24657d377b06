"""The Composite resource: ``POST /services/data/vXX.X/composite``, up to 25 subrequests in one call.

As the REST API Developer Guide describes it: ``compositeRequest`` holds subrequests of
``method``, ``url`` (``/services/data/vXX.X/...``), ``referenceId`` (letters, digits and
underscores, starting with a letter or digit) and optionally ``body`` and ``httpHeaders``
(any header the resource takes, such as ``If-Unmodified-Since``, but not Accept,
Authorization or Content-Type, which come from the top-level request). Later
subrequests may use ``@{referenceId.field}`` (and ``[n]``) to reach earlier answers. The
answer is HTTP 200 with ``compositeResponse``: per subrequest ``body``, ``httpHeaders``,
``httpStatusCode`` and ``referenceId``. With ``allOrNone`` a failed subrequest rolls every
change back and every other subrequest answers 400 PROCESSING_HALTED "The transaction was
rolled back since another operation in the same transaction failed."; without it, only
subrequests that refer to a failed one fail. The whole call counts as one API request.

Served here: sObject Rows (create, read, update, delete) and query/queryAll. More than 25
subrequests answers 400 LIMIT_EXCEEDED "The request can’t contain more than 25
operations." as observed; the wording of the other refusals of a malformed request is
the sandbox's own.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import flask

from sandboxes.salesforce.data import SalesforceState
from sandboxes.salesforce.http import API_VERSIONS, NOT_FOUND, SalesforceHttpError, read_json, sf_error
from sandboxes.salesforce.query import DEFAULT_BATCH, run_query
from sandboxes.salesforce.rows import Answer, create_row, delete_row, read_row, update_row

MAX_SUBREQUESTS, MAX_QUERIES = 25, 5
METHODS = ("POST", "PUT", "PATCH", "GET", "DELETE")
INHERITED = frozenset({"accept", "authorization", "content-type"})
REFERENCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]*\Z")
REFERENCE = re.compile(r"@\{([A-Za-z0-9][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")
ROLLED_BACK = "The transaction was rolled back since another operation in the same transaction failed."
TOO_MANY = f"The request can’t contain more than {MAX_SUBREQUESTS} operations."
_ROW = re.compile(r"/services/data/v(?P<version>[^/]+)/sobjects/(?P<name>\w+)(?:/(?P<id>\w+))?/?\Z")
_QUERY = re.compile(r"/services/data/v(?P<version>[^/]+)/(?P<endpoint>query|queryAll)/?\Z")
_BULKY = re.compile(r"/services/data/v[^/]+/(query|queryAll|composite/sobjects)\b")


class Unresolved(Exception):
    """A ``@{...}`` reference to an answer that is not there."""


def _invalid(message: str) -> SalesforceHttpError:
    return sf_error(400, "INVALID_INPUT", message)


def _subrequests(body: Any) -> tuple[list[dict[str, Any]], bool]:
    """The checked subrequests and ``allOrNone``; a malformed request is refused before anything runs."""
    if not isinstance(body, dict) or not isinstance(body.get("compositeRequest"), list) or not body["compositeRequest"]:
        raise sf_error(400, "JSON_PARSER_ERROR", "The request body must be an object with a non-empty compositeRequest array")
    subrequests = body["compositeRequest"]
    if len(subrequests) > MAX_SUBREQUESTS:
        raise SalesforceHttpError(400, {"compositeResponse": [{
            "body": [{"errorCode": "LIMIT_EXCEEDED", "message": TOO_MANY}], "httpHeaders": {}, "httpStatusCode": 400,
            "referenceId": None}]})
    if not isinstance(body.get("allOrNone", False), bool):
        raise _invalid("allOrNone must be true or false")
    seen: set[str] = set()
    for number, sub in enumerate(subrequests, start=1):
        if not isinstance(sub, dict) or sub.get("method") not in METHODS or not isinstance(sub.get("url"), str):
            raise _invalid(f"Subrequest {number} needs a method ({', '.join(METHODS)}) and a url")
        ref = sub.get("referenceId")
        if not isinstance(ref, str) or not REFERENCE_ID.match(ref):
            raise _invalid(f"Subrequest {number}: the referenceId {ref!r} must start with a letter or a number, and it "
                           "can contain only letters, numbers and underscores ('_').")
        if ref in seen:
            raise _invalid(f"Duplicate referenceId {ref!r}: each subrequest needs its own")
        seen.add(ref)
        if not sub["url"].startswith("/services/data/v"):
            raise _invalid(f"Subrequest {ref}: the url must start with /services/data/vXX.X/")
        headers = sub.get("httpHeaders") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise _invalid(f"Subrequest {ref}: httpHeaders must map header names to strings")
        inherited = sorted(h for h in headers if h.lower() in INHERITED)
        if inherited:
            raise _invalid(f"Subrequest {ref} may not set {', '.join(inherited)}: it comes from the composite request")
    if sum(1 for sub in subrequests if _BULKY.match(sub["url"])) > MAX_QUERIES:
        raise sf_error(400, "LIMIT_EXCEEDED", f"A composite request can contain up to {MAX_QUERIES} query or sObject "
                                              "Collections subrequests")
    return subrequests, body.get("allOrNone", False)


def _lookup(answers: dict[str, Any], ref: str, path: str, text: str) -> Any:
    if ref not in answers:
        raise Unresolved(f"Invalid reference specified. No value for {text[2:-1]} found in {ref}. Provided referenceId "
                         f"('{ref}') doesn't match any referenceId of a successful earlier subrequest.")
    value = answers[ref]
    for step in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path):
        name, index = step
        try:
            value = value[name] if name else value[int(index)]
        except (KeyError, IndexError, TypeError):
            raise Unresolved(f"Invalid reference specified. No value for {text[2:-1]} found in {ref}.") from None
    return value


def _resolve(value: Any, answers: dict[str, Any]) -> Any:
    """``value`` with every ``@{ref.path}`` replaced by the earlier answer's value."""
    if isinstance(value, dict):
        return {k: _resolve(v, answers) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, answers) for v in value]
    if not isinstance(value, str):
        return value
    whole = REFERENCE.fullmatch(value)
    if whole:
        return _lookup(answers, whole.group(1), whole.group(2), value)
    return REFERENCE.sub(lambda m: str(_lookup(answers, m.group(1), m.group(2), m.group(0))), value)


class Undo:
    """What the subrequests changed, to roll back when ``allOrNone`` fails."""

    def __init__(self, state: SalesforceState) -> None:
        self.state = state
        self._steps: list[Callable[[], None]] = []

    def keep(self, name: str, record_id: str) -> None:
        """Remember record ``record_id`` of ``name`` as it is, before a write."""
        obj = self.state.sobject(name)
        row = self.state.find(obj, record_id) if obj is not None and obj.writable else None
        if row is None:
            return
        saved, deleted = dict(row), self.state.deleted_at.get(row["Id"])

        def restore() -> None:
            row.clear()
            row.update(saved)
            self.state.deleted_at.pop(row["Id"], None)
            if deleted is not None:
                self.state.deleted_at[row["Id"]] = deleted

        self._steps.append(restore)

    def created(self, name: str, record_id: str) -> None:
        """Remember that record ``record_id`` of ``name`` was created."""
        table = self.state.tables[self.state.sobject(name).name]  # type: ignore[union-attr]

        def remove() -> None:
            table.pop(record_id, None)

        self._steps.append(remove)

    def roll_back(self) -> None:
        """Undo every change, latest first."""
        for step in reversed(self._steps):
            step()
        self._steps.clear()


def _run(state: SalesforceState, sub: dict[str, Any], answers: dict[str, Any], undo: Undo) -> Answer:
    """One subrequest, its references resolved, as the resource it names would answer it."""
    method, url, body = sub["method"], _resolve(sub["url"], answers), _resolve(sub.get("body"), answers)
    headers = {name.lower(): value for name, value in (sub.get("httpHeaders") or {}).items()}
    path, _, query = url.partition("?")
    args = {name: values[-1] for name, values in parse_qs(query).items()}
    row, search = _ROW.match(path), _QUERY.match(path)
    found = row or search
    version = found["version"] if found else None
    if version is None or version not in API_VERSIONS:
        raise sf_error(404, "NOT_FOUND", NOT_FOUND)
    if row and row["id"] is None and method == "POST":
        answer = create_row(state, version, row["name"], body)
        undo.created(row["name"], answer.body["id"])
        return answer
    if row and row["id"] is not None and method in ("GET", "PATCH", "DELETE"):
        if method == "GET":
            return read_row(state, version, row["name"], row["id"], args.get("fields"))
        undo.keep(row["name"], row["id"])
        if method == "PATCH":
            return update_row(state, row["name"], row["id"], body, headers.get("if-unmodified-since"))
        return delete_row(state, row["name"], row["id"])
    if search and method == "GET":
        if not args.get("q", "").strip():
            raise sf_error(400, "MALFORMED_QUERY", "A query string has to be specified")
        return Answer(200, run_query(state, args["q"], endpoint=search["endpoint"], version=version, batch=DEFAULT_BATCH))
    if row or search:
        allowed = "GET,POST" if row and row["id"] is None else "GET,PATCH,DELETE" if row else "GET"
        raise sf_error(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {allowed}")
    raise sf_error(404, "NOT_FOUND", NOT_FOUND)


def execute(state: SalesforceState, subrequests: list[dict[str, Any]], all_or_none: bool) -> list[Answer]:
    """Run the subrequests in order; caller holds the lock so no other request runs in between."""
    undo, answers = Undo(state), []
    done: dict[str, Any] = {}  # referenceId -> the answer later subrequests may refer to
    for sub in subrequests:
        try:
            answer = _run(state, sub, done, undo)
        except Unresolved as missing:
            answer = Answer(400, [{"errorCode": "PROCESSING_HALTED", "message": str(missing)}])
        except SalesforceHttpError as refusal:
            answer = Answer(refusal.status, refusal.body, dict(refusal.headers))
        answers.append(answer)
        if answer.status < 400:
            done[sub["referenceId"]] = answer.body
        elif all_or_none:
            undo.roll_back()
            halted = Answer(400, [{"errorCode": "PROCESSING_HALTED", "message": ROLLED_BACK}])
            return [a if a is answer else halted for a in answers] + [halted] * (len(subrequests) - len(answers))
    return answers


def register_composite_route(app: flask.Flask, state: SalesforceState) -> None:
    """``POST composite``."""

    @app.post("/services/data/v<version>/composite", strict_slashes=False)
    def composite(version: str) -> flask.Response:
        """POST composite: the subrequests' answers, in order."""
        subrequests, all_or_none = _subrequests(read_json())
        with state.lock:
            answers = execute(state, subrequests, all_or_none)
        return flask.jsonify({"compositeResponse": [
            {"body": a.body, "httpHeaders": a.headers, "httpStatusCode": a.status, "referenceId": sub["referenceId"]}
            for sub, a in zip(subrequests, answers, strict=True)]})


__all__ = ["execute", "register_composite_route"]
