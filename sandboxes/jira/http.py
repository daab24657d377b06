"""HTTP plumbing shared by the Jira sandbox's route modules: error bodies, bodies, routes."""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import flask

from sandboxes.jira.data import PROJECT_ID, Issue, JiraState, User

STATE_KEY = "relsync_sandbox"
NO_ISSUE = "Issue does not exist or you do not have permission to see it."
API_VERSIONS = ("2", "3")


class JiraHttpError(Exception):
    """An error answer in one of Jira's bodies."""

    def __init__(self, status: int, body: Any, *, mimetype: str = "application/json", headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.mimetype, self.headers = status, body, mimetype, headers or {}
        super().__init__(status)


def jira_error(status: int, messages: list[str] | None = None, errors: dict[str, str] | None = None) -> JiraHttpError:
    """The classic ``{"errorMessages": [...], "errors": {...}}`` refusal."""
    return JiraHttpError(status, {"errorMessages": messages or [], "errors": errors or {}})


def problem(status: int, detail: str) -> JiraHttpError:
    """Jira's RFC 7807 refusal (used for routing, media type and parameter conversion)."""
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail,
            "instance": flask.request.path}
    return JiraHttpError(status, body, mimetype="application/problem+json")


def state_of(app: flask.Flask) -> JiraState:
    """The Jira state of a sandbox app."""
    return app.extensions[STATE_KEY]


def current_state() -> JiraState:
    """The Jira state of the app serving this request."""
    return state_of(flask.current_app)


def root_url() -> str:
    """The site URL as the client called it (scheme, host and port)."""
    return flask.request.host_url.rstrip("/")


def caller(state: JiraState) -> User:
    """The account making the request: a person's, when one signed in with their own API token."""
    scheme, _, value = flask.request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            email, _, token = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return state.me
        return state.person_of(email, token) or state.me
    return state.me


def read_body() -> Any:
    """The JSON body, refused the way Jira refuses bodies it cannot read."""
    if not flask.request.mimetype or "json" not in flask.request.mimetype:
        detail = f"Content-Type '{flask.request.mimetype or 'null'}' is not supported."
        raise problem(415, detail)
    raw = flask.request.get_data(as_text=True)
    if not raw.strip():
        raise JiraHttpError(400, {"errorMessages": ["No content to map to Object due to end of input"]})
    try:
        return json.loads(raw)
    except ValueError:
        raise JiraHttpError(400, {"errorMessages": ["There was an error parsing JSON. Check that your request body is valid."]}) from None


def find_issue_or_404(state: JiraState, id_or_key: str) -> Issue:
    """The issue, or Jira's 404."""
    issue = state.find_issue(id_or_key)
    if issue is None:
        raise jira_error(404, [NO_ISSUE])
    return issue


def api_route(app: flask.Flask, rule: str, methods: list[str]) -> Callable[[Callable], Callable]:
    """Register a view under both ``/rest/api/2`` and ``/rest/api/3``; it gets ``api``."""

    def register(view: Callable) -> Callable:
        """Add ``view`` under both API versions."""
        for api in API_VERSIONS:
            app.add_url_rule(f"/rest/api/{api}{rule}", endpoint=f"{view.__name__}_v{api}", view_func=view,
                             methods=methods, defaults={"api": api})
        return view

    return register


def require_project(state: JiraState, project_key: str) -> None:
    """Raise Jira's 404 unless ``project_key`` names the sandbox project (by key or id)."""
    if project_key.upper() != state.project_key and project_key != str(PROJECT_ID):
        raise jira_error(404, [f"No project could be found with key '{project_key}'."])
