"""The Jira sandbox's read routes: ``search/jql`` (GET and POST), the changelog endpoints and issue bulkfetch.

Search reads the search index (a few seconds behind writes unless ``reconcileIssues``
names an issue); Get issue, bulkfetch and the changelog read the issue store.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import flask

from sandboxes.core import controls
from sandboxes.jira.bulkfetch import register_bulkfetch_route
from sandboxes.jira.data import FIELD_NAMES, Issue, JiraState
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
    asks_much,
    bulk_histories,
    changelog_page,
    compile_jql,
    fill_page,
    issue_token,
    ordered_ids,
    read_token,
)

SEARCH_BODY_KEYS = {"jql", "nextPageToken", "maxResults", "fields", "expand", "properties", "fieldsByKeys", "reconcileIssues", "failFast"}
MAX_RESULTS_RANGE = (1, 5000)
MAX_RECONCILE = 50
RECONCILE_LIMIT = f"reconcileIssues accepts at most {MAX_RECONCILE} issue IDs."
INVALID_PAYLOAD = "Invalid request payload. Refer to the REST API documentation and try again."
NEXT_PAGE_TRIGGER = "jira.search.next_page"
BULK_ISSUES_MAX, BULK_FIELDS_MAX, BULK_DEFAULT = 1000, 10, 1000


def _int_param(name: str, default: int) -> int:
    raw = flask.request.args.get(name)
    if raw is None or not raw.strip():
        return default
    return _integer(name, raw.strip())


def _search_params() -> dict[str, Any]:
    """The search parameters: from the query string on GET, from the JSON body on POST."""
    if flask.request.method == "POST":
        body = read_body()
        if not isinstance(body, dict) or not SEARCH_BODY_KEYS.issuperset(body):
            raise jira_error(400, [INVALID_PAYLOAD])
        fields = body.get("fields")
        reconcile = body.get("reconcileIssues") or []
        if not isinstance(reconcile, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in reconcile):
            raise jira_error(400, [INVALID_PAYLOAD])
        params: dict[str, Any] = {
            "jql": body.get("jql") or "",
            "token": body.get("nextPageToken"),
            "max_results": body.get("maxResults"),
            "fields": parse_fields(fields if isinstance(fields, list) else [fields]) if fields is not None else None,
            "expand": body.get("expand") or "",
            "reconcile": reconcile,
        }
    else:
        args = flask.request.args
        params = {
            "jql": args.get("jql", ""),
            "token": args.get("nextPageToken"),
            "max_results": _int_param("maxResults", 50) if "maxResults" in args else None,
            "fields": parse_fields(args.getlist("fields")) if "fields" in args else None,
            "expand": args.get("expand", ""),
            "reconcile": [_integer("reconcileIssues", raw) for raw in parse_fields(args.getlist("reconcileIssues")) or []],
        }
    if len(params["reconcile"]) > MAX_RECONCILE:
        raise jira_error(400, [RECONCILE_LIMIT])
    return params


def _integer(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise problem(400, f"Failed to convert '{name}' with value: '{raw}'") from None


def register_read_routes(app: flask.Flask, state: JiraState) -> None:
    """Add search, changelog and bulkfetch routes to a Jira sandbox app."""
    register_bulkfetch_route(app, state)

    @api_route(app, "/search/jql", ["GET", "POST"])
    def search(api: str) -> flask.Response:
        """GET or POST search/jql: one page of issues, as the index has them, and the token for the next."""
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
            issues = state.index.view(state.issues, params["reconcile"])
            ids = ordered_ids(state, jql, query, issues)
            keys_only = only_ids(params["fields"])
            size = min(50 if asked is None else int(asked), MAX_RESULTS_RANGE[1] if keys_only else 100)
            expand = {e.strip() for e in str(params["expand"]).split(",") if e.strip()}

            def render(issue: Issue) -> dict[str, Any]:
                return search_issue_json(state, issue, root=root_url(), api=api, requested=params["fields"], expand=expand)

            page = fill_page((issues[i] for i in ids[offset : offset + size]), render,
                             budgeted=state.short_pages and not keys_only and asks_much(params["fields"], expand))
            body: dict[str, Any] = {"issues": page}
            following = offset + len(page)
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
