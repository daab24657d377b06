"""A Jira Cloud REST API fake (v3, and v2 for the same routes) for tests and the demo.

The real ``jira`` client library talks to it unchanged. Routes, bodies, paging and
error messages follow Atlassian's REST reference and what Jira Cloud answers; the
sources for each behaviour are named in tests/sandbox/test_jira_sandbox.py.
State lives on the app: ``app.extensions["relsync_sandbox"]`` is the :class:`JiraState`.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import secrets
import zoneinfo
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import flask

from sandboxes.core import controls, make_app, sandbox_route
from sandboxes.jira.data import (
    COMPONENTS,
    PRIORITIES,
    SERVER_VERSION,
    STATUS_BY_KEY,
    STATUSES,
    JiraState,
    Version,
    field_catalog,
)
from sandboxes.jira.edit import (
    EditError,
    available_transitions,
    create_issue,
    edit_issue,
    transition_issue,
)
from sandboxes.jira.http import (
    STATE_KEY,
    JiraHttpError,
    api_route,
    caller,
    find_issue_or_404,
    jira_error,
    problem,
    read_body,
    require_project,
    root_url,
    state_of,
)
from sandboxes.jira.jql import JqlError
from sandboxes.jira.reads import register_read_routes
from sandboxes.jira.render import (
    component_json,
    issue_json,
    issuetype_json,
    jira_time,
    parse_fields,
    priority_json,
    project_json,
    select_fields,
    status_json,
    user_json,
    version_json,
)
from sandboxes.serving import RunningSandbox, serve

NOT_AUTHENTICATED = "Client must be authenticated to access this resource."
RATE_LIMITED = "The request has been rate-limited. Please try again later."
REMOVED_SEARCH = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)


def _authorized(state: JiraState) -> Callable[[flask.Request], bool]:
    def check(request: flask.Request) -> bool:
        """Basic email:token or Bearer token; serverInfo is public."""
        if request.path.endswith("/serverInfo"):
            return True  # Jira answers serverInfo to anyone
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return value.strip() == state.token
        if scheme.lower() == "basic":
            try:
                email, _, token = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            return email.lower() == state.email.lower() and token == state.token
        return False

    return check


def _unauthorized() -> flask.Response:
    # Jira Cloud answers 401 with this one sentence, not JSON, and names its OAuth realm.
    wants_json = "application/json" in flask.request.headers.get("Accept", "")
    response = flask.Response(NOT_AUTHENTICATED, status=401,
                              content_type="application/json;charset=UTF-8" if wants_json else "text/html;charset=UTF-8")
    response.headers["WWW-Authenticate"] = f'OAuth realm="{quote(root_url(), safe="")}"'
    if flask.request.headers.get("Authorization"):
        response.headers["X-Seraph-LoginReason"] = "AUTHENTICATED_FAILED"
    return response


def _throttled(seconds: float) -> flask.Response:
    limit = controls(flask.current_app).limiter.limit
    response = flask.jsonify({"errorMessages": [RATE_LIMITED], "errors": {}, "status": 429})
    response.status_code = 429
    reset = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
    response.headers.update({
        "Retry-After": str(int(seconds)),
        "X-RateLimit-Limit": str(limit.requests if limit else 0),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%MZ"),
        "RateLimit-Reason": "jira-burst-based",
    })
    return response


def _fault_body(status: int) -> dict[str, Any]:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return {"errorMessages": [phrase], "errors": {}}


def create_jira_app(
    *, records: int = 200, seed: int = 7, email: str, token: str, project: str = "OPS", timezone: str = "UTC"
) -> flask.Flask:
    """A Jira Cloud sandbox seeded with ``records`` change requests OPS-1..OPS-N."""
    state = JiraState(records=records, seed=seed, email=email, token=token, project=project, timezone=timezone)
    app = make_app("jira", auth=_authorized(state), unauthorized=_unauthorized, throttled=_throttled, fault_body=_fault_body)
    app.extensions[STATE_KEY] = state

    @app.errorhandler(JiraHttpError)
    def jira_http_error(error: JiraHttpError) -> flask.Response:
        """Render a refusal in the body Jira uses for it."""
        response = flask.Response(json.dumps(error.body, ensure_ascii=False), status=error.status, mimetype=error.mimetype)
        response.headers.update(error.headers)
        return response

    @app.errorhandler(EditError)
    def edit_error(error: EditError) -> flask.Response:
        """A refused write: 400 with errorMessages and per-field errors."""
        return jira_http_error(JiraHttpError(400, error.body()))

    @app.errorhandler(JqlError)
    def jql_error(error: JqlError) -> flask.Response:
        """A refused query: 400 with Jira's JQL messages."""
        return jira_http_error(jira_error(400, error.messages))

    @app.errorhandler(404)
    def no_endpoint(_: Exception) -> flask.Response:
        """A path Jira serves nothing at: RFC 7807 404."""
        return jira_http_error(problem(404, f"No endpoint {flask.request.method} {flask.request.path}."))

    @app.errorhandler(405)
    def no_method(error: Exception) -> flask.Response:
        """A method the route does not take: RFC 7807 405 with Allow."""
        refusal = problem(405, f"Method '{flask.request.method}' is not supported.")
        allowed = getattr(error, "valid_methods", None) or []
        refusal.headers["Allow"] = ", ".join(m for m in allowed if m not in ("HEAD", "OPTIONS"))
        return jira_http_error(refusal)

    @app.after_request
    def json_charset(response: flask.Response) -> flask.Response:
        """Jira names the charset on every JSON answer."""
        if response.mimetype in ("application/json", "application/problem+json") and "charset" not in response.content_type:
            response.content_type = f"{response.mimetype};charset=UTF-8"
        return response

    _register_meta_routes(app, state)
    _register_issue_routes(app, state)
    _register_version_routes(app, state)
    register_read_routes(app, state)
    _register_knobs(app, state)
    return app


def _register_meta_routes(app: flask.Flask, state: JiraState) -> None:
    @api_route(app, "/serverInfo", ["GET"])
    def server_info(api: str) -> flask.Response:
        """GET serverInfo: version, build and deployment type (Cloud)."""
        return flask.jsonify({
            "baseUrl": root_url(), "displayUrl": root_url(), "version": ".".join(map(str, SERVER_VERSION)) + "-SNAPSHOT",
            "versionNumbers": SERVER_VERSION, "deploymentType": "Cloud", "buildNumber": 100293,
            "buildDate": "2026-11-01T00:00:00.000+0000", "serverTime": jira_time(state.clock.peek(), state.zone()),
            "scmInfo": "5e2f1c0a9b7d", "serverTitle": "Jira", "defaultLocale": {"locale": "en_US"},
        })

    @api_route(app, "/myself", ["GET"])
    def myself(api: str) -> flask.Response:
        """GET myself: the authenticated account, email included."""
        body = user_json(caller(state), f"{root_url()}/rest/api/{api}", with_email=True) or {}
        body.update({"timeZone": state.timezone, "locale": "en_US", "groups": {"size": 2, "items": []},
                     "applicationRoles": {"size": 1, "items": []}, "expand": "groups,applicationRoles"})
        return flask.jsonify(body)

    @api_route(app, "/field", ["GET"])
    def fields(api: str) -> flask.Response:
        """GET field: system and custom fields with clause names."""
        return flask.jsonify(field_catalog())

    @api_route(app, "/issuetype", ["GET"])
    def issue_types(api: str) -> flask.Response:
        """GET issuetype: the one issue type."""
        return flask.jsonify([issuetype_json(f"{root_url()}/rest/api/{api}")])

    @api_route(app, "/priority", ["GET"])
    def priorities(api: str) -> flask.Response:
        """GET priority: Highest to Lowest."""
        return flask.jsonify([priority_json(name, f"{root_url()}/rest/api/{api}") for _, name in PRIORITIES])

    @api_route(app, "/status", ["GET"])
    def statuses(api: str) -> flask.Response:
        """GET status: the workflow's statuses."""
        return flask.jsonify([status_json(s, f"{root_url()}/rest/api/{api}") for s in STATUSES])

    @api_route(app, "/project", ["GET"])
    def projects(api: str) -> flask.Response:
        """GET project: the one project."""
        return flask.jsonify([project_json(state, f"{root_url()}/rest/api/{api}")])

    @api_route(app, "/project/<project>", ["GET"])
    def project(api: str, project: str) -> flask.Response:
        """GET project/{project}: the project with issue types and versions."""
        require_project(state, project)
        with state.lock:
            return flask.jsonify(project_json(state, f"{root_url()}/rest/api/{api}", full=True))

    @api_route(app, "/project/<project>/components", ["GET"])
    def project_components(api: str, project: str) -> flask.Response:
        """GET project/{project}/components: every component of the project (not paged)."""
        require_project(state, project)
        base = f"{root_url()}/rest/api/{api}"
        return flask.jsonify([component_json(c, base, state) for c in COMPONENTS])


def _register_issue_routes(app: flask.Flask, state: JiraState) -> None:
    @api_route(app, "/issue", ["POST"])
    def create(api: str) -> tuple[flask.Response, int]:
        """POST issue: create; 201 with id, key and self."""
        body = read_body()
        with state.lock:
            issue = create_issue(state, body, api=api, author=caller(state))
        return flask.jsonify({"id": str(issue.id), "key": issue.key, "self": f"{root_url()}/rest/api/{api}/issue/{issue.id}"}), 201

    @api_route(app, "/issue/<key>", ["GET"])
    def get_issue(api: str, key: str) -> flask.Response:
        """GET issue/{key}: the issue with the fields asked for (all by default)."""
        args = flask.request.args
        requested = parse_fields(args.getlist("fields")) if "fields" in args else None
        expand = {e.strip() for e in args.get("expand", "").split(",") if e.strip()}
        with state.lock:
            issue = find_issue_or_404(state, key)
            fields = select_fields(requested, default="*all")
            return flask.jsonify(issue_json(state, issue, root=root_url(), api=api, fields=fields, expand=expand))

    @api_route(app, "/issue/<key>", ["PUT"])
    def edit(api: str, key: str) -> flask.Response:
        """PUT issue/{key}: edit via fields/update; 204, or 200 with returnIssue."""
        body = read_body()
        with state.lock:
            issue = find_issue_or_404(state, key)
            edit_issue(state, issue, body, api=api, author=caller(state))
            if flask.request.args.get("returnIssue", "false").lower() == "true":
                fields = select_fields(None, default="*all")
                return flask.jsonify(issue_json(state, issue, root=root_url(), api=api, fields=fields))
        return flask.Response(status=204)

    @api_route(app, "/issue/<key>", ["DELETE"])
    def delete(api: str, key: str) -> flask.Response:
        """DELETE issue/{key}: 204."""
        with state.lock:
            issue = find_issue_or_404(state, key)
            del state.issues[issue.id]
            del state.by_key[issue.key]
            state.touch()
        return flask.Response(status=204)

    @api_route(app, "/issue/<key>/transitions", ["GET"])
    def transitions(api: str, key: str) -> flask.Response:
        """GET issue/{key}/transitions: those leaving the current status."""
        base = f"{root_url()}/rest/api/{api}"
        wanted = flask.request.args.get("transitionId")
        with_fields = "transitions.fields" in flask.request.args.get("expand", "")
        with state.lock:
            issue = find_issue_or_404(state, key)
            listed = []
            for transition in available_transitions(issue):
                if wanted and transition.id != wanted:
                    continue
                entry = {"id": transition.id, "name": transition.name, "to": status_json(STATUS_BY_KEY[transition.target], base),
                         "hasScreen": False, "isGlobal": False, "isInitial": False, "isAvailable": True,
                         "isConditional": False, "isLooped": False}
                if with_fields:
                    entry["fields"] = {}
                listed.append(entry)
        return flask.jsonify({"expand": "transitions", "transitions": listed})

    @api_route(app, "/issue/<key>/transitions", ["POST"])
    def do_transition(api: str, key: str) -> flask.Response:
        """POST issue/{key}/transitions: move the issue; 204."""
        body = read_body()
        with state.lock:
            issue = find_issue_or_404(state, key)
            transition_issue(state, issue, body, author=caller(state))
        return flask.Response(status=204)

    @api_route(app, "/search", ["GET", "POST"])
    def removed_search(api: str) -> flask.Response:
        """GET or POST search: removed from Jira Cloud (CHANGE-2046), 410 Gone."""
        raise jira_error(410, [REMOVED_SEARCH])


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


def _register_version_routes(app: flask.Flask, state: JiraState) -> None:
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


def _register_knobs(app: flask.Flask, state: JiraState) -> None:
    @sandbox_route(app, "/jira/config", methods=["GET", "POST"])
    def jira_config() -> flask.Response | tuple[flask.Response, int]:
        """GET or POST /_sandbox/jira/config: profile time zone, short pages."""
        if flask.request.method == "POST":
            body = flask.request.get_json(silent=True) or {}
            with state.lock:
                if "timezone" in body:
                    try:
                        zoneinfo.ZoneInfo(str(body["timezone"]))
                    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
                        return flask.jsonify({"error": f"unknown time zone {body['timezone']!r}"}), 400
                    state.timezone = str(body["timezone"])
                if "short_pages" in body:
                    state.short_pages = bool(body["short_pages"])
        return flask.jsonify({"timezone": state.timezone, "short_pages": state.short_pages})

    @sandbox_route(app, "/jira/expire-tokens", methods=["POST"])
    def expire_tokens() -> flask.Response:
        """POST /_sandbox/jira/expire-tokens: every outstanding page token stops working."""
        with state.lock:
            state.token_generation += 1
        return flask.Response(status=204)

    @sandbox_route(app, "/jira/edit-during-paging", methods=["POST"])
    def edit_during_paging() -> tuple[flask.Response, int]:
        """POST /_sandbox/jira/edit-during-paging: edit issues just before the next search page."""
        body = flask.request.get_json(silent=True) or {}
        edits = body.get("edits") or [{"issue": key, "fields": body.get("fields") or {}} for key in body.get("issues", [])]
        if not edits:
            return flask.jsonify({"error": "give 'edits': [{'issue', 'fields'|'update'}] or 'issues' and 'fields'"}), 400

        def apply() -> None:
            """Apply the edits as the sandbox editor account."""
            with state.lock:
                for change in edits:
                    issue = state.find_issue(str(change["issue"]))
                    if issue is not None:
                        payload = {k: change[k] for k in ("fields", "update") if k in change}
                        edit_issue(state, issue, payload, api="3", author=state.editor)

        controls(app).schedule("jira.search.next_page", apply)
        return flask.jsonify({"scheduled": len(edits)}), 202

    @sandbox_route(app, "/jira/issues/<key>", methods=["GET"])
    def raw_issue(key: str) -> flask.Response:
        """GET /_sandbox/jira/issues/{key}: the issue with every field and its changelog."""
        with state.lock:
            issue = find_issue_or_404(state, key)
            fields = select_fields(None, default="*all")
            return flask.jsonify(issue_json(state, issue, root=root_url(), api="3", fields=fields, expand={"changelog"}))


__all__ = ["create_jira_app", "state_of"]


SANDBOX_EMAIL = "relsync@example.com"
JIRA_PROJECT = "OPS"


def start_jira(records: int, seed: int) -> tuple[RunningSandbox, dict[str, Any]]:
    """Serve a seeded Jira sandbox; its description names the URL, credentials (as env vars) and project."""
    token = secrets.token_urlsafe(24)
    app = create_jira_app(records=records, seed=seed, email=SANDBOX_EMAIL, token=token, project=JIRA_PROJECT)
    running = serve(app)
    description = {
        "url": running.url,
        "env": {"RELSYNC_JIRA_EMAIL": SANDBOX_EMAIL, "RELSYNC_JIRA_TOKEN": token},
        "project": JIRA_PROJECT,
    }
    return running, description
