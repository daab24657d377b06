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

from dataclasses import dataclass
from typing import Any

import flask

from sandboxes.jira.data import STATUS_BY_KEY, Issue, JiraState
from sandboxes.jira.edit import record
from sandboxes.jira.http import api_route, caller, jira_error, read_body, root_url
from sandboxes.jira.render import priority_json, status_json

__all__ = ["LINK_TYPES", "LinkType", "issue_links_json", "register_link_routes"]


@dataclass(frozen=True)
class LinkType:
    """An issue link type as Jira Cloud ships it."""

    id: str
    name: str
    inward: str
    outward: str


LINK_TYPES = (
    LinkType("10000", "Blocks", "is blocked by", "blocks"),
    LinkType("10001", "Cloners", "is cloned by", "clones"),
    LinkType("10002", "Duplicate", "is duplicated by", "duplicates"),
    LinkType("10003", "Relates", "relates to", "relates to"),
)


@dataclass(frozen=True)
class Link:
    """``inward`` <type.outward> ``outward``: with Blocks, ``inward`` blocks ``outward``."""

    id: int
    type: LinkType
    inward: int
    outward: int


def _links(state: JiraState) -> list[Link]:
    return state.issue_links


def _type_json(kind: LinkType, base: str) -> dict[str, Any]:
    return {"id": kind.id, "name": kind.name, "inward": kind.inward, "outward": kind.outward,
            "self": f"{base}/issueLinkType/{kind.id}"}


def _linked_issue_json(issue: Issue, base: str) -> dict[str, Any]:
    return {"id": str(issue.id), "key": issue.key, "self": f"{base}/issue/{issue.id}",
            "fields": {"summary": issue.summary, "status": status_json(STATUS_BY_KEY[issue.status], base),
                       "priority": priority_json(issue.priority, base)}}


def issue_links_json(state: JiraState, issue: Issue, base: str) -> list[dict[str, Any]]:
    """The ``issuelinks`` field of ``issue``: each link with the issue on its other side."""
    shown = []
    for link in _links(state):
        if issue.id not in (link.inward, link.outward):
            continue
        entry: dict[str, Any] = {"id": str(link.id), "self": f"{base}/issueLink/{link.id}",
                                 "type": _type_json(link.type, base)}
        if link.outward == issue.id:
            entry["inwardIssue"] = _linked_issue_json(state.issues[link.inward], base)
        else:
            entry["outwardIssue"] = _linked_issue_json(state.issues[link.outward], base)
        shown.append(entry)
    return shown


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
        return flask.jsonify({"issueLinkTypes": [_type_json(kind, base) for kind in LINK_TYPES]})

    @api_route(app, "/issueLink", ["POST"])
    def create_link(api: str) -> tuple[flask.Response, int]:
        """POST issueLink: link two issues; 201 with an empty body."""
        body = read_body()
        if not isinstance(body, dict):
            raise jira_error(400, ["Can not deserialize the request body."])
        with state.lock:
            kind = _link_type(body)
            inward, outward = _issue(state, body, "inwardIssue"), _issue(state, body, "outwardIssue")
            links = _links(state)
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
