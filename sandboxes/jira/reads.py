"""The Jira sandbox's read routes: ``search/jql`` (GET and POST) and the changelog endpoints."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import flask

from sandboxes.core import controls
from sandboxes.jira.data import FIELD_NAMES, JiraState
from sandboxes.jira.http import (
    api_route,
    caller,
    find_issue_or_404,
    jira_error,
    problem,
    read_body,
    root_url,
)
from sandboxes.jira.render import (
    history_json,
    only_ids,
    parse_fields,
    search_issue_json,
    select_fields,
)
from sandboxes.jira.search import (
    BAD_TOKEN,
    UNBOUNDED,
    TokenError,
    bulk_histories,
    changelog_page,
    compile_jql,
    issue_token,
    ordered_ids,
    page_size,
    read_token,
)

SEARCH_BODY_KEYS = {"jql", "nextPageToken", "maxResults", "fields", "expand", "properties", "fieldsByKeys", "reconcileIssues", "failFast"}
MAX_RESULTS_RANGE = (1, 5000)
NEXT_PAGE_TRIGGER = "jira.search.next_page"
BULK_ISSUES_MAX, BULK_FIELDS_MAX, BULK_DEFAULT = 1000, 10, 1000


def _int_param(name: str, default: int) -> int:
    raw = flask.request.args.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise problem(400, f"Failed to convert '{name}' with value: '{raw}'") from None


def _search_params() -> dict[str, Any]:
    """The search parameters: from the query string on GET, from the JSON body on POST."""
    if flask.request.method == "POST":
        body = read_body()
        if not isinstance(body, dict) or not SEARCH_BODY_KEYS.issuperset(body):
            raise jira_error(400, ["Invalid request payload. Refer to the REST API documentation and try again."])
        fields = body.get("fields")
        return {
            "jql": body.get("jql") or "",
            "token": body.get("nextPageToken"),
            "max_results": body.get("maxResults"),
            "fields": parse_fields(fields if isinstance(fields, list) else [fields]) if fields is not None else None,
            "expand": body.get("expand") or "",
        }
    args = flask.request.args
    return {
        "jql": args.get("jql", ""),
        "token": args.get("nextPageToken"),
        "max_results": _int_param("maxResults", 50) if "maxResults" in args else None,
        "fields": parse_fields(args.getlist("fields")) if "fields" in args else None,
        "expand": args.get("expand", ""),
    }


def register_read_routes(app: flask.Flask, state: JiraState) -> None:
    """Add search and changelog routes to a Jira sandbox app."""

    @api_route(app, "/search/jql", ["GET", "POST"])
    def search(api: str) -> flask.Response:
        """GET or POST search/jql: one page of issues and the token for the next."""
        params = _search_params()
        jql, token = str(params["jql"]), params["token"]
        with state.lock:
            offset = 0
            if token:
                try:
                    offset = read_token(state, jql, str(token))
                except TokenError:
                    raise jira_error(400, [BAD_TOKEN]) from None
            asked = params["max_results"]
            if asked is not None and not (MAX_RESULTS_RANGE[0] <= int(asked) <= MAX_RESULTS_RANGE[1]):
                raise jira_error(400, [f"maxResults must be between {MAX_RESULTS_RANGE[0]} and {MAX_RESULTS_RANGE[1]}."])
            if not jql.strip():
                raise jira_error(400, [UNBOUNDED])
            query = compile_jql(state, jql, caller(state))
            if not query.bounded:
                raise jira_error(400, [UNBOUNDED])
        if token:
            # "Edit these issues before the next page": applied outside the lock, as another user would.
            controls(app).run_scheduled(NEXT_PAGE_TRIGGER)
        with state.lock:
            ids = ordered_ids(state, jql, query)
            cap = MAX_RESULTS_RANGE[1] if only_ids(params["fields"]) else 100
            size = page_size(state, 50 if asked is None else int(asked), cap, offset)
            page = [state.issues[i] for i in ids[offset : offset + size] if i in state.issues]
            expand = {e.strip() for e in str(params["expand"]).split(",") if e.strip()}
            body: dict[str, Any] = {
                "issues": [search_issue_json(state, issue, root=root_url(), api=api, requested=params["fields"], expand=expand)
                           for issue in page]
            }
            following = offset + size
            if "names" in expand:
                body["names"] = {f: FIELD_NAMES[f] for f in select_fields(params["fields"] or ["*navigable"], default="*navigable")}
            if following < len(ids):
                body["nextPageToken"] = issue_token(state, jql, following)
            body["isLast"] = following >= len(ids)
        return flask.jsonify(body)

    @api_route(app, "/issue/<key>/changelog", ["GET"])
    def changelog(api: str, key: str) -> flask.Response:
        """GET issue/{key}/changelog: the history, oldest first, paged by startAt."""
        start = max(0, _int_param("startAt", 0))
        limit = min(100, max(1, _int_param("maxResults", 100)))
        base = f"{root_url()}/rest/api/{api}"
        with state.lock:
            issue = find_issue_or_404(state, key)
            histories, total = changelog_page(state, issue, start, limit)
            url = f"{base}/issue/{key}/changelog"
            body: dict[str, Any] = {"self": f"{url}?{urlencode({'maxResults': limit, 'startAt': start})}",
                                    "maxResults": limit, "startAt": start, "total": total,
                                    "isLast": start + len(histories) >= total}
            if not body["isLast"]:
                body["nextPage"] = f"{url}?{urlencode({'maxResults': limit, 'startAt': start + limit})}"
            body["values"] = [history_json(state, h, base) for h in histories]
        return flask.jsonify(body)

    @api_route(app, "/changelog/bulkfetch", ["POST"])
    def bulk_changelog(api: str) -> flask.Response:
        """POST changelog/bulkfetch: histories of many issues, paged by nextPageToken."""
        body = read_body()
        wanted = body.get("issueIdsOrKeys") if isinstance(body, dict) else None
        if not isinstance(wanted, list) or not wanted:
            raise jira_error(400, ["issueIdsOrKeys must contain at least one issue ID or key."])
        if len(wanted) > BULK_ISSUES_MAX:
            raise jira_error(400, [f"A maximum of {BULK_ISSUES_MAX} issues can be requested at once."])
        field_ids = [str(f) for f in body.get("fieldIds") or []]
        if len(field_ids) > BULK_FIELDS_MAX:
            raise jira_error(400, [f"A maximum of {BULK_FIELDS_MAX} field IDs can be requested at once."])
        limit = body.get("maxResults", BULK_DEFAULT)
        if not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise jira_error(400, ["maxResults must be between 1 and 10000."])
        scope = f"bulk:{sorted(map(str, wanted))}:{sorted(field_ids)}"
        base = f"{root_url()}/rest/api/{api}"
        with state.lock:
            offset = 0
            if body.get("nextPageToken"):
                try:
                    offset = read_token(state, scope, str(body["nextPageToken"]))
                except TokenError:
                    raise jira_error(400, [BAD_TOKEN]) from None
            issues = [i for i in (state.find_issue(str(w)) for w in wanted) if i is not None]
            pairs = bulk_histories(state, list({i.id: i for i in issues}.values()), field_ids)
            page = pairs[offset : offset + limit]
            grouped: dict[int, dict[str, Any]] = {}
            for issue, history in page:
                entry = grouped.setdefault(issue.id, {"issueId": str(issue.id), "changeHistories": []})
                entry["changeHistories"].append(history_json(state, history, base))
            result: dict[str, Any] = {"issueChangeLogs": list(grouped.values())}
            if offset + limit < len(pairs):
                result["nextPageToken"] = issue_token(state, scope, offset + limit)
        return flask.jsonify(result)
