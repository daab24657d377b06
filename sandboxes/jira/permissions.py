"""Who may do what in the Jira sandbox: per-account project permissions, enforced the way Jira refuses.

Each account holds a set of permission keys for the one project. The integration
account starts as an ordinary project member would (``MEMBER``): it may browse, edit,
resolve and transition issues, but not administer the project, so it cannot create
versions. A test or the demo grants more by name, as a Jira admin would in the
project's permission scheme, through the ``/_sandbox/jira/permissions`` knob.

How Jira refuses each missing permission (Atlassian's REST reference, its REST client's
integration tests, and the services' own messages; Jira answers 404 where the account
may not see the thing at all, 403 only where it may see it but not change it):

- ``ADMINISTER_PROJECTS``, ``POST version``: 404 "Project with key 'OPS' either does not
  exist or you do not have permission to create versions in it." (the Cloud reference
  lists 404 "the user does not have the required permissions" for this operation).
- ``EDIT_ISSUES``, ``PUT issue/{key}``: 403 "You do not have permission to edit issues
  in this project."
- ``RESOLVE_ISSUES``, which "includes the ability to set a fix version": a ``fixVersions``
  edit without it is refused as a field not on the screen (400).
- ``TRANSITION_ISSUES``: the issue lists no transitions, and ``POST transitions`` is
  refused with 400 "It seems that you have tried to perform a workflow operation (...)
  that is not valid for the current state of this issue (...)".
- ``BROWSE_PROJECTS``: the project and its issues do not exist for the account (404, and
  400 "The value 'OPS' does not exist for the field 'project'." from search).

``GET mypermissions`` answers as Jira Cloud does: ``permissions`` is required (400 "The
'permissions' query parameter is required."), each key comes back with id, key, name,
type, description and ``havePermission``, and a project the account cannot browse is 404.
"""
from __future__ import annotations

import re
import threading
from typing import Any

import flask

from sandboxes.core import sandbox_route
from sandboxes.jira.data import PROJECT_ID, JiraState
from sandboxes.jira.edit import available_transitions
from sandboxes.jira.http import NO_ISSUE, JiraHttpError, api_route, caller, jira_error

CATALOG: dict[str, tuple[str, str, str, str]] = {
    # key: (id, name, type, description) as Jira's Get all permissions lists them
    "ADMINISTER": ("0", "Administer Jira", "GLOBAL", "Create and administer projects, issue types, fields, workflows, and "
                   "schemes for all projects. Users with this permission can perform most administration tasks, except: "
                   "managing users, importing data, and editing system email settings."),
    "BROWSE_PROJECTS": ("10", "Browse Projects", "PROJECT", "Ability to browse projects and the issues within them."),
    "CREATE_ISSUES": ("11", "Create Issues", "PROJECT", "Ability to create issues."),
    "EDIT_ISSUES": ("12", "Edit Issues", "PROJECT", "Ability to edit issues."),
    "ASSIGN_ISSUES": ("13", "Assign Issues", "PROJECT", "Ability to assign issues to other people."),
    "RESOLVE_ISSUES": ("14", "Resolve Issues", "PROJECT",
                       "Ability to resolve and reopen issues. This includes the ability to set a fix version."),
    "ADD_COMMENTS": ("15", "Add Comments", "PROJECT", "Ability to comment on issues."),
    "DELETE_ISSUES": ("16", "Delete Issues", "PROJECT", "Ability to delete issues."),
    "ASSIGNABLE_USER": ("17", "Assignable User", "PROJECT", "Users with this permission may be assigned to issues."),
    "CLOSE_ISSUES": ("18", "Close Issues", "PROJECT", "Ability to close issues. Often useful where your developers resolve "
                     "issues, and a QA department closes them."),
    "LINK_ISSUES": ("21", "Link Issues", "PROJECT", "Ability to link issues together and create linked issues."),
    "ADMINISTER_PROJECTS": ("23", "Administer Projects", "PROJECT", "Ability to administer a project in Jira."),
    "SCHEDULE_ISSUES": ("28", "Schedule Issues", "PROJECT", "Ability to set or edit an issue's due date."),
    "TRANSITION_ISSUES": ("46", "Transition Issues", "PROJECT", "Ability to transition issues."),
}
MEMBER = frozenset({"BROWSE_PROJECTS", "CREATE_ISSUES", "EDIT_ISSUES", "ASSIGN_ISSUES", "RESOLVE_ISSUES", "ADD_COMMENTS",
                    "ASSIGNABLE_USER", "CLOSE_ISSUES", "LINK_ISSUES", "SCHEDULE_ISSUES", "TRANSITION_ISSUES"})
"""What an account holds unless granted more: a project member's permissions, no administration."""
GRANTS_KEY = "relsync_sandbox_jira_grants"
NO_EDIT = "You do not have permission to edit issues in this project."
NO_VERSION = "Project with key '{}' either does not exist or you do not have permission to create versions in it."
NO_VERSION_VIEW = "You must have browse project rights in order to view versions."
NO_PROJECT = "No project could be found with key '{}'."
NOT_ON_SCREEN = "Field '{}' cannot be set. It is not on the appropriate screen, or unknown."
NO_PERMISSIONS_PARAMETER = "The 'permissions' query parameter is required."
WORKFLOW_REFUSED = ("It seems that you have tried to perform a workflow operation ({}) that is not valid for the current state "
                    "of this issue ({}). The likely cause is that somebody has changed the issue recently, please look at the "
                    "issue history for details.")
_API = re.compile(r"^/rest/api/[23]")


class Grants:
    """Permission keys per account id; an account never set holds ``MEMBER``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, set[str]] = {}

    def of(self, account: str) -> frozenset[str]:
        """What ``account`` may do."""
        with self._lock:
            return frozenset(self._held.get(account, MEMBER))

    def change(self, account: str, grant: list[str], revoke: list[str]) -> frozenset[str]:
        """Grant, then revoke, keys for ``account``; return what it holds now."""
        with self._lock:
            held = self._held.setdefault(account, set(MEMBER))
            held.update(grant)
            held.difference_update(revoke)
            return frozenset(held)


def grants_of(app: flask.Flask) -> Grants:
    """The permission grants of a Jira sandbox app."""
    return app.extensions[GRANTS_KEY]


def register_permissions(app: flask.Flask, state: JiraState) -> None:
    """Add ``mypermissions``, the permissions knob, and the refusals of every guarded route."""
    grants = app.extensions[GRANTS_KEY] = Grants()

    def may(key: str) -> bool:
        return key in grants.of(caller(state).account_id)

    @app.before_request
    def guard() -> flask.Response | None:
        """Refuse a request the calling account lacks the permission for (after the gate has authenticated it)."""
        rule = flask.request.url_rule
        if rule is None or not _API.match(rule.rule):
            return None
        refusal = _refusal(state, _API.sub("", rule.rule), flask.request.method, flask.request.view_args or {}, may)
        if isinstance(refusal, JiraHttpError):
            raise refusal
        return refusal

    @api_route(app, "/mypermissions", ["GET"])
    def my_permissions(api: str) -> flask.Response:
        """GET mypermissions: whether the account holds each key asked for, in the project or issue given."""
        args = flask.request.args
        keys = [k.strip() for k in args.get("permissions", "").split(",") if k.strip()]
        if not keys:
            raise jira_error(400, [NO_PERMISSIONS_PARAMETER])
        unknown = [k for k in keys if k not in CATALOG]
        if unknown:
            raise jira_error(400, [f"Invalid permission key: {unknown[0]}"])
        project = args.get("projectKey") or args.get("projectId")
        if project is not None and (project.upper() not in (state.project_key, str(PROJECT_ID)) or not may("BROWSE_PROJECTS")):
            raise jira_error(404, [NO_PROJECT.format(project)])
        issue = args.get("issueKey") or args.get("issueId")
        if issue is not None and (state.find_issue(issue) is None or not may("BROWSE_PROJECTS")):
            raise jira_error(404, [NO_ISSUE])
        return flask.jsonify({"permissions": {key: _entry(key, may(key)) for key in keys}})

    @sandbox_route(app, "/jira/permissions", methods=["GET", "POST"])
    def permissions_knob() -> flask.Response | tuple[flask.Response, int]:
        """GET or POST /_sandbox/jira/permissions ``{"account"?, "grant"?: [keys], "revoke"?: [keys]}``.

        ``account`` is an email or account id (default: the integration account).
        """
        body = (flask.request.get_json(silent=True) or {}) if flask.request.method == "POST" else dict(flask.request.args)
        named = str(body.get("account") or state.me.email)
        account = next((u for u in state.users.values() if named in (u.account_id, u.email)), None)
        if account is None:
            return flask.jsonify({"error": f"no account {named!r}"}), 400
        grant, revoke = list(body.get("grant") or []), list(body.get("revoke") or [])
        unknown = sorted({str(k) for k in grant + revoke} - set(CATALOG))
        if unknown:
            return flask.jsonify({"error": f"unknown permission keys: {', '.join(unknown)}; known: {', '.join(CATALOG)}"}), 400
        held = grants.change(account.account_id, grant, revoke) if grant or revoke else grants.of(account.account_id)
        return flask.jsonify({"account": account.account_id, "email": account.email, "permissions": sorted(held)})


def _entry(key: str, granted: bool) -> dict[str, Any]:
    ident, name, kind, description = CATALOG[key]
    return {"id": ident, "key": key, "name": name, "type": kind, "description": description, "havePermission": granted}


def _refusal(state: JiraState, route: str, method: str, args: dict[str, Any], may: Any) -> flask.Response | JiraHttpError | None:
    """Jira's answer to ``method route`` for an account lacking its permission; None when it may go ahead."""
    if route.startswith("/project/") and not may("BROWSE_PROJECTS"):
        return jira_error(404, [NO_PROJECT.format(args.get("project", ""))])
    if route.startswith("/issue/<key>") and not may("BROWSE_PROJECTS"):
        return jira_error(404, [NO_ISSUE])
    if route == "/search/jql" and not may("BROWSE_PROJECTS"):
        jql = str(flask.request.args.get("jql") or (flask.request.get_json(silent=True) or {}).get("jql") or "")
        if re.search(rf"\b{re.escape(state.project_key)}\b", jql, re.IGNORECASE):
            return jira_error(400, [f"The value '{state.project_key}' does not exist for the field 'project'."])
        return flask.jsonify({"issues": [], "isLast": True})
    if route == "/version/<version_id>" and not may("BROWSE_PROJECTS"):
        return jira_error(404, [NO_VERSION_VIEW])
    if route == "/version" and method == "POST" and not (may("ADMINISTER_PROJECTS") and may("BROWSE_PROJECTS")):
        body = flask.request.get_json(silent=True)
        named = body.get("project") if isinstance(body, dict) else None
        return jira_error(404, [NO_VERSION.format(named or state.project_key)])
    if route == "/issue/<key>" and method == "PUT":
        if not may("EDIT_ISSUES"):
            return jira_error(403, [NO_EDIT])
        body = flask.request.get_json(silent=True)
        touched = {*((body.get("fields") or {}) if isinstance(body, dict) else {}),
                   *((body.get("update") or {}) if isinstance(body, dict) else {})}
        if "fixVersions" in touched and not may("RESOLVE_ISSUES"):
            return jira_error(400, errors={"fixVersions": NOT_ON_SCREEN.format("fixVersions")})
    if route == "/issue/<key>/transitions" and not may("TRANSITION_ISSUES"):
        if method == "GET":
            return flask.jsonify({"expand": "transitions", "transitions": []})
        return _workflow_refusal(state, args.get("key", ""))
    return None


def _workflow_refusal(state: JiraState, key: str) -> JiraHttpError | None:
    """400 for a transition the account may not make; None (the route's own answer) for an id the issue does not have."""
    body = flask.request.get_json(silent=True)
    wanted = str(((body or {}).get("transition") or {}).get("id")) if isinstance(body, dict) else ""
    with state.lock:
        issue = state.find_issue(key)
        chosen = next((t for t in available_transitions(issue) if t.id == wanted), None) if issue else None
        if issue is None or chosen is None:
            return None
        return jira_error(400, [WORKFLOW_REFUSED.format(chosen.name, issue.key)])


__all__ = ["CATALOG", "MEMBER", "Grants", "grants_of", "register_permissions"]
