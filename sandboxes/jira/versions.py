"""Jira project versions (fix versions): list, create, read and update, with Jira's validation."""
from __future__ import annotations

import datetime as dt
from typing import Any

import flask

from sandboxes.jira.data import JiraState, Version
from sandboxes.jira.http import api_route, jira_error, read_body, require_project, root_url
from sandboxes.jira.render import version_json


def _version_date(body: dict[str, Any], name: str, errors: dict[str, str]) -> dt.date | None:
    raw = body.get(name)
    if raw in (None, ""):
        return None
    try:
        return dt.date.fromisoformat(str(raw))
    except ValueError:
        errors[name] = f"The {'release' if name == 'releaseDate' else 'start'} date is invalid. Use the format yyyy-MM-dd."
        return None


def _version_changes(state: JiraState, body: Any, current: Version | None) -> dict[str, Any]:
    """Validated attributes for a created or updated version, or Jira's 400."""
    if not isinstance(body, dict):
        raise jira_error(400, ["Invalid request payload. Refer to the REST API documentation and try again."])
    errors: dict[str, str] = {}
    changes: dict[str, Any] = {}
    if current is None or "name" in body:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            errors["name"] = "You must specify a valid version name"
        elif len(name) > 255:
            errors["name"] = "The version name must not exceed 255 characters."
        elif any(v.name.lower() == name.strip().lower() and v is not current for v in state.versions.values()):
            errors["name"] = "A version with this name already exists in this project."
        else:
            changes["name"] = name.strip()
    if current is None:
        project = body.get("projectId", body.get("project"))
        if project is None or (str(project).upper() != state.project_key and str(project) != "10000"):
            errors["project"] = "You must specify a valid project."
    for date_field, attribute in (("releaseDate", "release_date"), ("startDate", "start_date")):
        if date_field in body:
            changes[attribute] = _version_date(body, date_field, errors)
    for flag in ("released", "archived"):
        if flag in body:
            changes[flag] = bool(body[flag])
    if "description" in body:
        changes["description"] = str(body["description"] or "")
    if errors:
        raise jira_error(400, errors=errors)
    return changes


def register_version_routes(app: flask.Flask, state: JiraState) -> None:
    """GET project/{project}/versions, POST version, GET and PUT version/{id}."""
    @api_route(app, "/project/<project>/versions", ["GET"])
    def project_versions(api: str, project: str) -> flask.Response:
        """GET project/{project}/versions: every version, oldest first."""
        require_project(state, project)
        base = f"{root_url()}/rest/api/{api}"
        with state.lock:
            return flask.jsonify([version_json(v, base) for v in sorted(state.versions.values(), key=lambda v: v.id)])

    @api_route(app, "/version", ["POST"])
    def create_version(api: str) -> tuple[flask.Response, int]:
        """POST version: create a version; 201 with it."""
        body = read_body()
        with state.lock:
            changes = _version_changes(state, body, None)
            version = Version(state.next_version_id, **changes)
            state.versions[version.id] = version
            state.next_version_id += 1
            state.touch()
            return flask.jsonify(version_json(version, f"{root_url()}/rest/api/{api}")), 201

    @api_route(app, "/version/<version_id>", ["GET", "PUT"])
    def version(api: str, version_id: str) -> flask.Response:
        """GET or PUT version/{id}."""
        with state.lock:
            found = state.versions.get(int(version_id)) if version_id.isdigit() else None
            if found is None:
                raise jira_error(404, [f"Could not find version for id '{version_id}'"])
            if flask.request.method == "PUT":
                for attribute, value in _version_changes(state, read_body(), found).items():
                    setattr(found, attribute, value)
                state.touch()
            return flask.jsonify(version_json(found, f"{root_url()}/rest/api/{api}"))


__all__ = ["register_version_routes"]
