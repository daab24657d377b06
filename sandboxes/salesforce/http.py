"""HTTP plumbing shared by the Salesforce sandbox's route modules: error bodies, versions, auth.

Salesforce answers REST errors with a JSON array of ``{"message", "errorCode"}`` objects
(``fields`` too when a field is to blame), ``application/json;charset=UTF-8``; a bad or
expired session (one idle past the org's session timeout included) is 401 ``Session expired or invalid`` / INVALID_SESSION_ID with
``WWW-Authenticate: Token``.
"""
from __future__ import annotations

import email.utils
import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import flask

from sandboxes.salesforce.data import ACTING_USER, SalesforceState

STATE_KEY = "relsync_sandbox_salesforce"
API_VERSIONS = tuple(f"{v}.0" for v in range(31, 67))
"""Summer '14 (31.0) to Spring '26 (66.0)."""
NOT_FOUND = "The requested resource does not exist"
_SEASONS = ("Winter", "Spring", "Summer")


class SalesforceHttpError(Exception):
    """An error answer in Salesforce's body (a list of error objects, or an OAuth error object)."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}
        super().__init__(f"{status}: {body}")


def sf_error(status: int, code: str, message: str, fields: list[str] | None = None) -> SalesforceHttpError:
    """The usual ``[{"message", "errorCode"[, "fields"]}]`` refusal."""
    entry: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        entry["fields"] = fields
    return SalesforceHttpError(status, [entry])


def render_error(error: SalesforceHttpError) -> flask.Response:
    """The response for a refusal."""
    response = flask.Response(json.dumps(error.body, ensure_ascii=False), status=error.status,
                              content_type="application/json;charset=UTF-8")
    response.headers.update(error.headers)
    return response


def state_of(app: flask.Flask) -> SalesforceState:
    """The org state of a Salesforce sandbox app."""
    return app.extensions[STATE_KEY]


def root_url() -> str:
    """The instance URL as the client called it (https://127.0.0.1:PORT)."""
    return flask.request.host_url.rstrip("/")


def version_label(version: str) -> str:
    """The release name of an API version: 59.0 is "Winter '24"."""
    offset = int(float(version)) - 59
    return f"{_SEASONS[offset % 3]} '{24 + offset // 3}"


def versions_body() -> list[dict[str, str]]:
    """The Versions resource: every served API version, oldest first."""
    return [{"label": version_label(v), "url": f"/services/data/v{v}", "version": v} for v in API_VERSIONS]


def read_json() -> Any:
    """The request's JSON body, or Salesforce's JSON_PARSER_ERROR."""
    raw = flask.request.get_data(as_text=True)
    try:
        return json.loads(raw)
    except ValueError as problem:
        line, column = getattr(problem, "lineno", 1), getattr(problem, "colno", 1)
        found = raw[getattr(problem, "pos", 0) : getattr(problem, "pos", 0) + 1] or "EOF"
        raise sf_error(400, "JSON_PARSER_ERROR",
                       f"Unexpected character ('{found}'): was expecting a JSON value at [line:{line}, column:{column}]") from None


def authorized(state: SalesforceState) -> Callable[[flask.Request], bool]:
    """The auth gate: Bearer (or OAuth) access tokens; the token endpoint and Versions are public."""

    def check(request: flask.Request) -> bool:
        """Whether ``request`` may pass."""
        if request.path.startswith("/services/oauth2/") or request.path.rstrip("/") == "/services/data":
            return True
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "oauth"):
            return False
        with state.lock:
            alive = state.session_alive(token.strip())
            ACTING_USER.set(state.sessions.users.get(token.strip()) if alive else None)
            return alive

    return check


def unauthorized() -> flask.Response:
    """401 INVALID_SESSION_ID."""
    return render_error(SalesforceHttpError(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
                                            {"WWW-Authenticate": "Token"}))


def throttled(seconds: float) -> flask.Response:
    """The rate-limit knob as Salesforce's concurrency limit: 403 REQUEST_LIMIT_EXCEEDED, no Retry-After.

    Salesforce has no per-second REST limit and never answers 429; too many long-running
    requests at once are refused with "ConcurrentPerOrgLongTxn Limit exceeded." (transient),
    unlike the daily "TotalRequests Limit exceeded." (not transient).
    """
    return render_error(sf_error(403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded."))


def fault_body(status: int) -> list[dict[str, str]]:
    """The body of an injected fault."""
    if status >= 500:
        code = "SERVER_UNAVAILABLE" if status == 503 else "UNKNOWN_EXCEPTION"
        return [{"message": "An unexpected error occurred. Please include this ErrorId if you contact support: "
                            "1297460142-41234 (-1188397405)" if code == "UNKNOWN_EXCEPTION"
                 else "Server temporarily unavailable", "errorCode": code}]
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return [{"message": phrase, "errorCode": phrase.upper().replace(" ", "_")}]


def http_date(moment: Any) -> str:
    """An RFC 7231 date (``Mon, 20 May 2013 20:49:32 GMT``)."""
    return email.utils.format_datetime(moment, usegmt=True)


def parse_http_date(text: str) -> Any:
    """An HTTP date (GMT or a US zone abbreviation, as Salesforce documents), or None."""
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None or moment.tzinfo is None:
        return None
    return moment
