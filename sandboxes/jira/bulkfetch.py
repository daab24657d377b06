"""``POST /rest/api/{2,3}/issue/bulkfetch``: many issues by id or key, read from the issue store.

As Atlassian's reference describes it: ``issueIdsOrKeys`` (ids and keys mixed, keys
matched case-insensitively) up to 100, or up to 1,000 when ``fields`` names at most 100
fields explicitly, none of them multi-valued, and ``expand`` asks for none of changelog,
editmeta, operations, renderedFields, transitions or versionedRepresentations; ``fields``
defaults to the navigable ones; ``properties`` takes at most 5 keys. Issues come back
in ascending id order under ``issues``; one that does not exist or cannot be seen is
left out silently, and ``issueErrors`` (for issues Jira could not fetch for a retriable
reason) is empty, as observed live. Unlike search, bulkfetch is read-after-write
consistent, which is why it suits a read just before a write.
"""
from __future__ import annotations

from typing import Any

import flask

from sandboxes.jira.data import JiraState, field_catalog
from sandboxes.jira.http import api_route, jira_error, read_body, root_url
from sandboxes.jira.render import issue_json, select_fields

BODY_KEYS = {"issueIdsOrKeys", "fields", "expand", "fieldsByKeys", "properties"}
DEFAULT_LIMIT, SHAPED_LIMIT, MAX_FIELDS, MAX_PROPERTIES = 100, 1000, 100, 5
COSTLY_EXPANDS = frozenset({"changelog", "editmeta", "operations", "renderedFields", "transitions", "versionedRepresentations"})
MULTI_VALUED = frozenset(f["id"] for f in field_catalog() if f["schema"].get("type") == "array")
INVALID_PAYLOAD = "Invalid request payload. Refer to the REST API documentation and try again."
NO_ISSUES = "issueIdsOrKeys must contain at least one issue ID or key."


def _strings(body: dict[str, Any], name: str) -> list[str]:
    """A list-of-strings member of the body ([] when absent), or Jira's 400."""
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise jira_error(400, [INVALID_PAYLOAD])
    return [item.strip() for item in value if item.strip()]


def request_limit(fields: list[str], expand: list[str]) -> int:
    """How many issues one call may ask for, given its ``fields`` and ``expand``."""
    named = [f for f in fields if not f.startswith("-") and f not in ("*all", "*navigable")]
    shaped = (bool(named) and len(named) == len(fields) and len(named) <= MAX_FIELDS
              and not MULTI_VALUED.intersection(named) and not COSTLY_EXPANDS.intersection(expand))
    return SHAPED_LIMIT if shaped else DEFAULT_LIMIT


def too_many(limit: int) -> str:
    """The refusal for a request over ``limit`` issues."""
    return (f"A maximum of {limit} issues can be requested at once. Up to {SHAPED_LIMIT} can be requested when "
            f"fields names at most {MAX_FIELDS} single-valued fields and expand includes none of "
            f"{', '.join(sorted(COSTLY_EXPANDS))}.")


def register_bulkfetch_route(app: flask.Flask, state: JiraState) -> None:
    """Add ``POST issue/bulkfetch`` to a Jira sandbox app."""

    @api_route(app, "/issue/bulkfetch", ["POST"])
    def bulkfetch(api: str) -> flask.Response:
        """POST issue/bulkfetch: the issues asked for, as the store has them now."""
        body = read_body()
        if not isinstance(body, dict) or not BODY_KEYS.issuperset(body):
            raise jira_error(400, [INVALID_PAYLOAD])
        wanted, fields, expand = _strings(body, "issueIdsOrKeys"), _strings(body, "fields"), _strings(body, "expand")
        if not isinstance(body.get("fieldsByKeys", False), bool):
            raise jira_error(400, [INVALID_PAYLOAD])
        if not wanted:
            raise jira_error(400, [NO_ISSUES])
        limit = request_limit(fields, expand)
        if len(wanted) > limit:
            raise jira_error(400, [too_many(limit)])
        if len(_strings(body, "properties")) > MAX_PROPERTIES:
            raise jira_error(400, [f"A maximum of {MAX_PROPERTIES} issue property keys can be specified."])
        chosen = select_fields(fields or None, default="*navigable")
        with state.lock:
            found = {issue.id: issue for issue in map(state.find_issue, wanted) if issue is not None}
            issues = [issue_json(state, found[ident], root=root_url(), api=api, fields=chosen, expand=set(expand))
                      for ident in sorted(found)]
        return flask.jsonify({"expand": "schema,names", "issues": issues, "issueErrors": []})


__all__ = ["register_bulkfetch_route", "request_limit"]
