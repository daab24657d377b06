"""Issue links in the Jira sandbox: link types, ``POST issueLink`` and the ``issuelinks`` field.

As Atlassian's issue-linking model describes: a link has a type (name, inward and
outward descriptions); ``POST /rest/api/3/issueLink`` with ``inwardIssue`` X and
``outwardIssue`` Y under "Blocks" (outward "blocks", inward "is blocked by") makes X
block Y. Read back, Y's ``issuelinks`` holds the link with ``inwardIssue`` X (labelled
with the type's inward description: Y *is blocked by* X) and X's holds it with
``outwardIssue`` Y (X *blocks* Y). Creating a link stamps both issues' ``updated`` and
writes a "Link" changelog item on each, as Jira does; it needs the Link Issues
permission, which the sandbox's accounts have.
"""
from __future__ import annotations

from typing import Any

import flask

from sandboxes.jira.data import LINK_TYPES, Issue, JiraState, Link, LinkType
from sandboxes.jira.edit import record
from sandboxes.jira.http import api_route, caller, jira_error, read_body, root_url
from sandboxes.jira.render import link_type_json

__all__ = ["register_link_routes"]


def _link_type(body: dict[str, Any]) -> LinkType:
    wanted = body.get("type") or {}
    for kind in LINK_TYPES:
        if (wanted.get("id") and wanted["id"] == kind.id) or (wanted.get("name") and wanted["name"] == kind.name):
            return kind
    raise jira_error(404, [f"No issue link type with name '{wanted.get('name') or wanted.get('id')}' found."])


def _issue(state: JiraState, body: dict[str, Any], side: str) -> Issue:
    ref = body.get(side) or {}
    found = state.find_issue(str(ref.get("key") or ref.get("id") or ""))
    if found is None:
        raise jira_error(404, [f"Issue {ref.get('key') or ref.get('id')} does not exist or you do not have permission to see it."])
    return found


def register_link_routes(app: flask.Flask, state: JiraState) -> None:
    """Issue link type listing and issue link creation."""

    @api_route(app, "/issueLinkType", ["GET"])
    def link_types(api: str) -> flask.Response:
        """GET issueLinkType: every link type."""
        base = f"{root_url()}/rest/api/{api}"
        return flask.jsonify({"issueLinkTypes": [link_type_json(kind, base) for kind in LINK_TYPES]})

    @api_route(app, "/issueLink", ["POST"])
    def create_link(api: str) -> tuple[flask.Response, int]:
        """POST issueLink: link two issues; 201 with an empty body."""
        body = read_body()
        if not isinstance(body, dict):
            raise jira_error(400, ["Can not deserialize the request body."])
        with state.lock:
            kind = _link_type(body)
            inward, outward = _issue(state, body, "inwardIssue"), _issue(state, body, "outwardIssue")
            links = state.issue_links
            link = Link(10000 + len(links), kind, inward.id, outward.id)
            links.append(link)
            author = caller(state)
            for issue, other, label in ((outward, inward, kind.inward), (inward, outward, kind.outward)):
                state.index.before_change(issue)
                record(state, issue, author, [{"field": "Link", "fieldtype": "jira", "fieldId": "issuelinks",
                                               "from": None, "fromString": None, "to": other.key,
                                               "toString": f"This issue {label} {other.key}"}])
        response = flask.Response(status=201)
        response.headers["Location"] = f"{root_url()}/rest/api/{api}/issueLink/{link.id}"
        return response, 201
