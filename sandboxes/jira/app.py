"""A Jira Cloud REST API fake (v3, and v2 for the same routes) for tests and the demo.

The real ``jira`` client library talks to it unchanged. Routes, bodies, paging and
error messages follow Atlassian's REST reference and what Jira Cloud answers; the
sources for each behaviour are named in tests/sandboxes/test_jira_sandbox.py and
test_jira_real.py. State lives on the app: ``app.extensions["relsync_sandbox"]`` is the
:class:`JiraState`.

Defaults are Jira Cloud's ("real"): search pages stop short once their issues' JSON passes
100 KB (so many fields mean fewer issues a page, never none), and search sees the issues as
they were 5 s ago unless ``reconcileIssues`` names them; Get issue and bulkfetch read the
store. ``behaviour="kind"`` gives full pages and no lag. ``/_sandbox/jira/config`` reads and
changes both (``short_pages``, ``index_lag_seconds``).
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import secrets
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import flask

from sandboxes.behaviour import REAL
from sandboxes.clock import SYSTEM_TIME, TimeSource
from sandboxes.core import controls, make_app
from sandboxes.jira.bulk import register_bulk_routes
from sandboxes.jira.data import (
    COMPONENTS,
    PRIORITIES,
    SERVER_VERSION,
    STATUS_BY_KEY,
    STATUSES,
    JiraState,
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
from sandboxes.jira.knobs import register_knobs
from sandboxes.jira.links import register_link_routes
from sandboxes.jira.permissions import register_permissions
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
)
from sandboxes.jira.versions import register_version_routes
from sandboxes.serving import RunningSandbox, serve

NOT_AUTHENTICATED = "Client must be authenticated to access this resource."
RATE_LIMITED = "The request has been rate-limited. Please try again later."
REMOVED_SEARCH = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)


def _authorized(state: JiraState) -> Callable[[flask.Request], bool]:
    def check(request: flask.Request) -> bool:
        """Basic email:token; Bearer only through the gateway; serverInfo and tenant_info are public."""
        if request.path.endswith("/serverInfo") or request.path == TENANT_INFO:
            return True  # Jira answers both to anyone
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            # The site takes an API token only as Basic; tokens with scopes go through the gateway.
            return bool(request.environ.get(GATEWAY_KEY)) and value.strip() == state.token
        if scheme.lower() == "basic":
            try:
                email, _, token = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            return state.person_of(email, token) is not None
        return False

    return check


TENANT_INFO = "/_edge/tenant_info"
GATEWAY_PREFIX = "/ex/jira/"
GATEWAY_KEY = "relsync_sandbox.gateway"


def _gateway(wsgi_app: Any, cloud_id: str) -> Any:
    """The API as api.atlassian.com serves it to tokens with scopes: under ``/ex/jira/{cloudId}``.

    The prefix moves into SCRIPT_NAME, so the same routes answer (and are counted under
    the same names); an unknown cloud id finds no route.
    """

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith(GATEWAY_PREFIX):
            site, _, rest = path[len(GATEWAY_PREFIX):].partition("/")
            environ = {**environ, GATEWAY_KEY: True}
            if site == cloud_id:
                environ.update(SCRIPT_NAME=environ.get("SCRIPT_NAME", "") + GATEWAY_PREFIX + site, PATH_INFO="/" + rest)
        return wsgi_app(environ, start_response)

    return app


def _unauthorized() -> flask.Response:
    # Jira Cloud answers 401 with this one sentence, not JSON, and names its OAuth realm.
    wants_json = "application/json" in flask.request.headers.get("Accept", "")
    response = flask.Response(NOT_AUTHENTICATED, status=401,
                              content_type="application/json;charset=UTF-8" if wants_json else "text/html;charset=UTF-8")
    response.headers["WWW-Authenticate"] = f'OAuth realm="{quote(root_url(), safe="")}"'
    if flask.request.headers.get("Authorization"):
        response.headers["X-Seraph-LoginReason"] = "AUTHENTICATED_FAILED"
    return response


def _throttled(state: JiraState) -> Callable[[float], flask.Response]:
    def throttled(seconds: float) -> flask.Response:
        """Jira's 429: the JSON error, Retry-After and the X-RateLimit-* headers."""
        limit = controls(flask.current_app).limiter.limit
        response = flask.jsonify({"errorMessages": [RATE_LIMITED], "errors": {}, "status": 429})
        response.status_code = 429
        reset = state.clock.source.utc() + dt.timedelta(seconds=seconds)
        response.headers.update({
            "Retry-After": str(int(seconds)),
            "X-RateLimit-Limit": str(limit.requests if limit else 0),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%MZ"),
            "RateLimit-Reason": "jira-burst-based",
        })
        return response

    return throttled


def _fault_body(status: int) -> dict[str, Any]:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return {"errorMessages": [phrase], "errors": {}}


def create_jira_app(
    *, records: int = 200, seed: int = 7, email: str, token: str, project: str = "OPS", timezone: str | None = None,
    time_source: TimeSource = SYSTEM_TIME, behaviour: str = REAL,
) -> flask.Flask:
    """A Jira Cloud sandbox seeded with ``records`` change requests OPS-1..OPS-N.

    ``time_source`` runs its rate limit and search index lag and stamps its edits: the
    machine's clock unless a test passes a :class:`~sandboxes.clock.ManualTime`.
    ``behaviour`` "real" (the default) pages search short and lags it behind writes;
    "kind" does neither (see the module docstring).
    """
    state = JiraState(records=records, seed=seed, email=email, token=token, project=project, timezone=timezone,
                      time_source=time_source, behaviour=behaviour)
    app = make_app("jira", auth=_authorized(state), unauthorized=_unauthorized, throttled=_throttled(state), fault_body=_fault_body,
                   time_source=time_source, behaviour=behaviour)
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

    cloud_id = str(uuid.UUID(bytes=hashlib.blake2b(f"jira-site-{seed}".encode(), digest_size=16).digest(), version=4))
    app.config["CLOUD_ID"] = cloud_id
    app.wsgi_app = _gateway(app.wsgi_app, cloud_id)  # type: ignore[method-assign]
    app.add_url_rule(TENANT_INFO, "tenant_info", lambda: flask.jsonify({"cloudId": cloud_id}))

    _register_meta_routes(app, state)
    _register_issue_routes(app, state)
    register_version_routes(app, state)
    register_read_routes(app, state)
    register_knobs(app, state)
    register_permissions(app, state)
    register_link_routes(app, state)
    register_bulk_routes(app, state)
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
            state.index.before_change(issue)
            del state.issues[issue.id]
            del state.by_key[issue.key]
            state.index.deleted(issue)
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


__all__ = ["create_jira_app", "state_of"]


SANDBOX_EMAIL = "relsync@example.com"
JIRA_PROJECT = "OPS"


def start_jira(records: int, seed: int, *, time_source: TimeSource = SYSTEM_TIME,
               behaviour: str = REAL) -> tuple[RunningSandbox, dict[str, Any]]:
    """Serve a seeded Jira sandbox; its description names the URL, credentials (as env vars) and project."""
    token = secrets.token_urlsafe(24)
    app = create_jira_app(records=records, seed=seed, email=SANDBOX_EMAIL, token=token, project=JIRA_PROJECT,
                          time_source=time_source, behaviour=behaviour)
    running = serve(app)
    description = {
        "url": running.url,
        "env": {"RELSYNC_JIRA_EMAIL": SANDBOX_EMAIL, "RELSYNC_JIRA_TOKEN": token},
        "project": JIRA_PROJECT,
        "cloud_id": app.config["CLOUD_ID"],
    }
    return running, description
