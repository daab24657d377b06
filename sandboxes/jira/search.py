"""Search and changelog reads for the Jira sandbox: JQL fields, page tokens, paging.

Page tokens are opaque to clients but, like Jira's, only good for the query that issued
them: they carry the query's fingerprint, an offset and the token generation, signed
with the sandbox's secret. Each page re-runs the query against the search index (see
:mod:`sandboxes.jira.index`), so records edited while a client pages shift position
exactly as Atlassian documents for its own search. With short pages on, a page stops
once its issues' JSON passes ``SHORT_PAGE_BYTES``: Jira "may return fewer items per page
where a large number of fields are requested", and never fewer than one.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from sandboxes.jira.data import (
    CATEGORIES,
    COMPONENT_BY_ID,
    COMPONENTS,
    DEPARTMENT,
    OPTIONS,
    PRIORITIES,
    PRIORITY_RANK,
    PROJECT_ID,
    REQUEST_TYPE,
    STATUSES,
    Issue,
    JiraState,
    User,
)
from sandboxes.jira.jql import JqlError
from sandboxes.jira.jql_eval import (
    CompiledQuery,
    FieldBinding,
    JqlContext,
    compile_query,
)

UNBOUNDED = "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
BAD_TOKEN = "The nextPageToken is invalid or has expired. Restart the search without a nextPageToken."
SHORT_PAGE_BYTES = 100_000
"""With short pages, the JSON of a page's issues stops growing past this many bytes."""
MANY_FIELDS = 20
"""More named fields than this is "a large number of fields": Jira then shortens search pages."""
COSTLY_EXPANDS = frozenset({"renderedFields", "changelog", "versionedRepresentations", "operations", "editmeta", "transitions"})


def asks_much(requested: list[str] | None, expand: set[str]) -> bool:
    """Whether a search asks for so much that Jira returns fewer issues a page than asked.

    Jira documents that search/jql "may return fewer items per page where a large number
    of fields or properties are requested": every field (``*all``, or the navigable ones,
    also the default), more than ``MANY_FIELDS`` named ones, or a costly expansion.
    """
    named = [f for f in requested or [] if not f.startswith("-")]
    return (not named or any(f.startswith("*") for f in named) or len(named) > MANY_FIELDS
            or bool(COSTLY_EXPANDS & expand))
_CACHE_SIZE = 32


class TokenError(Exception):
    """A page token the sandbox did not issue for this query, or one it has expired."""


def _epoch_ms(issue_time: Any) -> int:
    return int(issue_time.timestamp() * 1000)


def _date_binding(alias: str, attribute: str) -> FieldBinding:
    """A date field (created, updated) under one of its JQL names, ordered by time."""
    return FieldBinding(alias, "date", lambda i: _epoch_ms(getattr(i, attribute)), sort=lambda i: _epoch_ms(getattr(i, attribute)))


def _value_error(text: str, name: str) -> JqlError:
    return JqlError(f"The value '{text}' does not exist for the field '{name}'.")


def field_lookup(state: JiraState, author: User) -> Callable[[str], FieldBinding | None]:
    """The JQL fields the sandbox understands, for ``author`` (whom currentUser() means)."""

    def by_name(table: dict[str, Any], name: str) -> Callable[[str], Any]:
        def resolve(text: str) -> Any:
            found = table.get(text.lower())
            if found is None:
                raise _value_error(text, name)
            return found

        return resolve

    def project(text: str) -> int:
        if text.upper() == state.project_key or text == str(PROJECT_ID) or text.lower() == state.project_name.lower():
            return PROJECT_ID
        raise _value_error(text, "project")

    def issue_ref(name: str) -> Callable[[str], int]:
        def resolve(text: str) -> int:
            if text.isdigit():
                if int(text) in state.issues:
                    return int(text)
            elif not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*-\d+", text):
                raise JqlError(f"The issue key '{text}' for field '{name}' is invalid.")
            found = state.find_issue(text)
            if found is None:
                raise JqlError(f"An issue with key '{text}' does not exist for field '{name}'.")
            return found.id

        return resolve

    def user(text: str, name: str) -> str:
        # Jira Cloud JQL names users by account id, or by an exact email address.
        for candidate in state.users.values():
            if text == candidate.account_id or text.lower() == candidate.email.lower():
                return candidate.account_id
        raise _value_error(text, name)

    def versions_of(released: bool) -> Callable[[], frozenset[int]]:
        return lambda: frozenset(v.id for v in state.versions.values() if v.released == released and not v.archived)

    def version(text: str) -> int:
        for candidate in state.versions.values():
            if text.lower() == candidate.name.lower() or text == str(candidate.id):
                return candidate.id
        raise _value_error(text, "fixVersion")

    def component(text: str) -> int:
        for candidate in COMPONENTS:
            if text.lower() == candidate.name.lower() or text == str(candidate.id):
                return candidate.id
        raise _value_error(text, "component")

    def option(field_id: str, name: str) -> Callable[[str], str]:
        def resolve(text: str) -> str:
            for value in OPTIONS[field_id][1]:
                if value.lower() == text.lower():
                    return value
            raise JqlError(f"The option '{text}' for field '{name}' does not exist.")

        return resolve

    status_order = {s.key: i for i, s in enumerate(STATUSES)}
    statuses = {s.name.lower(): s.key for s in STATUSES} | {s.id: s.key for s in STATUSES}
    categories = {}
    for key, (ident, name, _) in CATEGORIES.items():
        categories.update({key: key, name.lower(): key, str(ident): key})
    priorities = {n.lower(): PRIORITY_RANK[n] for _, n in PRIORITIES} | {i: PRIORITY_RANK[n] for i, n in PRIORITIES}
    me = {"currentuser": lambda: author.account_id}

    def user_binding(name: str) -> FieldBinding:
        return FieldBinding(name, "value", lambda i: getattr(i, name), lambda t: user(t, name),
                            sort=lambda i: _display(state, getattr(i, name)), functions=me)

    def select(field_id: str, name: str) -> FieldBinding:
        attribute = "department" if field_id == DEPARTMENT else "request_type"
        return FieldBinding(name, "value", lambda i: getattr(i, attribute), option(field_id, name),
                            sort=lambda i: getattr(i, attribute))

    table: dict[str, FieldBinding] = {
        "project": FieldBinding("project", "value", lambda i: PROJECT_ID, project, sort=lambda i: state.project_key),
        "status": FieldBinding("status", "value", lambda i: i.status, by_name(statuses, "status"),
                               sort=lambda i: status_order[i.status]),
        "statuscategory": FieldBinding("statusCategory", "value", lambda i: _category(i), by_name(categories, "statusCategory"),
                                       sort=_category),
        "priority": FieldBinding("priority", "value", lambda i: PRIORITY_RANK[i.priority], by_name(priorities, "priority"),
                                 ordered=True, sort=lambda i: PRIORITY_RANK[i.priority]),
        "fixversion": FieldBinding("fixVersion", "value", lambda i: frozenset(i.fix_versions), version, multi=True,
                                   sort=lambda i: min(i.fix_versions) if i.fix_versions else None,
                                   functions={"releasedversions": versions_of(True), "unreleasedversions": versions_of(False)}),
        "component": FieldBinding("component", "value", lambda i: frozenset(i.components), component, multi=True,
                                  sort=lambda i: min(COMPONENT_BY_ID[c].name for c in i.components) if i.components else None),
        "labels": FieldBinding("labels", "value", lambda i: frozenset(i.labels), lambda t: t, multi=True,
                               sort=lambda i: min(i.labels) if i.labels else None),
        "summary": FieldBinding("summary", "text", lambda i: i.summary, sort=lambda i: i.summary.lower()),
        "description": FieldBinding("description", "text", lambda i: i.description),
        "text": FieldBinding("text", "text", lambda i: f"{i.summary}\n{i.description or ''}"),
        "assignee": user_binding("assignee"),
        "reporter": user_binding("reporter"),
        "cf[10070]": select(DEPARTMENT, "Department"),
        "department": select(DEPARTMENT, "Department"),
        "cf[10071]": select(REQUEST_TYPE, "Request Type"),
        "request type": select(REQUEST_TYPE, "Request Type"),
    }
    for alias in ("issuetype", "type"):
        table[alias] = FieldBinding(alias, "value", lambda i: "10010",
                                    by_name({"change request": "10010", "10010": "10010"}, alias), sort=lambda i: "Change Request")
    for alias in ("key", "issuekey", "issue", "id"):
        table[alias] = FieldBinding(alias, "value", lambda i: i.id, issue_ref(alias), ordered=True, sort=lambda i: i.id)
    for alias, attribute in (("created", "created"), ("createddate", "created"), ("updated", "updated"), ("updateddate", "updated")):
        table[alias] = _date_binding(alias, attribute)
    return lambda name: table.get(name.lower())


def _category(issue: Issue) -> str:
    return next(s.category for s in STATUSES if s.key == issue.status)


def _display(state: JiraState, ident: str | None) -> str | None:
    return state.users[ident].name.lower() if ident and ident in state.users else None


def compile_jql(state: JiraState, jql: str, author: User) -> CompiledQuery:
    """Compile ``jql`` for this sandbox (JqlError on anything Jira would refuse)."""
    context = JqlContext(timezone=state.timezone, now=state.clock.peek)
    return compile_query(jql, field_lookup(state, author), context, record_id=lambda issue: issue.id)


def ordered_ids(state: JiraState, jql: str, query: CompiledQuery, issues: dict[int, Issue]) -> list[int]:
    """Ids of ``issues`` matching ``query`` in its order; cached until data changes when they are the store's."""
    key = fingerprint(jql)
    cached = state.search_cache.get(key)
    current = issues is state.issues
    if current and cached and cached[0] == state.data_version:
        return cached[1]
    ids = [issue.id for issue in query.order([i for i in issues.values() if query.matches(i)])]
    if not current:
        return ids
    if len(state.search_cache) >= _CACHE_SIZE:
        state.search_cache.pop(next(iter(state.search_cache)))
    state.search_cache[key] = (state.data_version, ids)
    return ids


def fingerprint(text: str) -> str:
    """A short digest naming a query (or any request a token belongs to)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def issue_token(state: JiraState, scope: str, offset: int) -> str:
    """An opaque, signed page token for ``offset`` within ``scope``."""
    payload = f"{state.token_generation}.{offset}.{fingerprint(scope)}"
    signature = hmac.new(state.secret, payload.encode(), hashlib.sha256).hexdigest()[:20]
    return base64.urlsafe_b64encode(f"{payload}.{signature}".encode()).decode().rstrip("=")


def read_token(state: JiraState, scope: str, token: str) -> int:
    """The offset a token stands for; TokenError if forged, expired or for another scope."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        generation, offset, digest, signature = raw.split(".")
    except (ValueError, UnicodeDecodeError):
        raise TokenError(token) from None
    payload = f"{generation}.{offset}.{digest}"
    expected = hmac.new(state.secret, payload.encode(), hashlib.sha256).hexdigest()[:20]
    if not hmac.compare_digest(expected, signature) or generation != str(state.token_generation):
        raise TokenError(token)
    if digest != fingerprint(scope) or not offset.isdigit():
        raise TokenError(token)
    return int(offset)


def fill_page(issues: Iterable[Issue], render: Callable[[Issue], dict[str, Any]], *, budgeted: bool) -> list[dict[str, Any]]:
    """The rendered page: every issue given, or with ``budgeted`` those that fit ``SHORT_PAGE_BYTES`` (at least one)."""
    page: list[dict[str, Any]] = []
    used = 0
    for issue in issues:
        body = render(issue)
        if budgeted:
            used += len(json.dumps(body, ensure_ascii=False).encode())
            if page and used > SHORT_PAGE_BYTES:
                break
        page.append(body)
    return page


def changelog_page(state: JiraState, issue: Issue, start: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """One page of an issue's changelog, oldest first, and the total."""
    histories = state.histories(issue)
    return histories[start : start + limit], len(histories)


def bulk_histories(state: JiraState, issues: list[Issue], field_ids: list[str]) -> list[tuple[Issue, dict[str, Any]]]:
    """Every (issue, history) pair, filtered to ``field_ids``, by history date then issue id."""
    pairs = []
    for issue in issues:
        for history in state.histories(issue):
            items = [i for i in history["items"] if not field_ids or i.get("fieldId") in field_ids]
            if items:
                pairs.append((issue, {**history, "items": items}))
    pairs.sort(key=lambda pair: (pair[1]["created"], pair[0].id, pair[1]["id"]))
    return pairs
