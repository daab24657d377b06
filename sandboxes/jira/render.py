"""JSON for the Jira sandbox (issues, users, statuses, versions, changelog) and ``fields`` rules.

Shapes follow Atlassian's REST reference; the issue ``description`` is Atlassian
Document Format in v3 and a plain string in v2.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from typing import Any

from sandboxes.jira.data import (
    CATEGORIES,
    COMPONENT_BY_ID,
    COMPONENTS,
    DEPARTMENT,
    DEPENDS_ON,
    FIELD_NAMES,
    ISSUE_FIELDS,
    PLANNED_DEPLOY,
    PRIORITIES,
    PROJECT_ID,
    RELEASE_PHASE,
    REQUEST_TYPE,
    REQUESTED_ON,
    STATUS_BY_KEY,
    Component,
    Issue,
    JiraState,
    LinkType,
    Status,
    User,
    Version,
    option_id,
)

ID_ONLY = frozenset({"id", "key", "issuekey"})
ISSUE_EXPAND = "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations"


def jira_time(moment: dt.datetime, zone: dt.tzinfo) -> str:
    """Jira's timestamp format, e.g. ``2026-11-20T10:15:30.123+0000``, in the profile zone."""
    local = moment.astimezone(zone)
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}" + local.strftime("%z")


def avatar_urls(seed: str) -> dict[str, str]:
    """Avatar URLs in the four sizes Atlassian returns."""
    base = f"https://avatar-management.example/avatars/{hashlib.md5(seed.encode()).hexdigest()[:12]}"
    return {f"{n}x{n}": f"{base}?s={n}" for n in (48, 24, 16, 32)}


def user_json(user: User | None, base: str, *, with_email: bool = False) -> dict[str, Any] | None:
    """A user object; Jira Cloud hides emailAddress from others by default, so it is omitted."""
    if user is None:
        return None
    body: dict[str, Any] = {"self": f"{base}/user?accountId={user.account_id}", "accountId": user.account_id}
    if with_email:
        body["emailAddress"] = user.email
    body.update({"avatarUrls": avatar_urls(user.account_id), "displayName": user.name, "active": True,
                 "timeZone": user.zone, "accountType": "atlassian"})
    return body


def status_json(status: Status, base: str) -> dict[str, Any]:
    """A status object with its category."""
    cat_id, cat_name, color = CATEGORIES[status.category]
    return {
        "self": f"{base}/status/{status.id}", "description": "", "iconUrl": f"{base.split('/rest/')[0]}/images/icons/statuses/generic.png",
        "name": status.name, "id": status.id,
        "statusCategory": {"self": f"{base}/statuscategory/{cat_id}", "id": cat_id, "key": status.category,
                           "colorName": color, "name": cat_name},
    }


def priority_json(name: str, base: str) -> dict[str, Any]:
    """A priority object."""
    ident = next(i for i, n in PRIORITIES if n == name)
    return {"self": f"{base}/priority/{ident}", "iconUrl": f"{base.split('/rest/')[0]}/images/icons/priorities/{name.lower()}.svg",
            "name": name, "id": ident}


def issuetype_json(base: str) -> dict[str, Any]:
    """The one issue type."""
    return {"self": f"{base}/issuetype/10010", "id": "10010", "description": "A request to change a business system.",
            "iconUrl": f"{base.split('/rest/')[0]}/images/icons/issuetypes/task.svg", "name": "Change Request",
            "subtask": False, "avatarId": 10318, "hierarchyLevel": 0}


def version_json(version: Version, base: str, *, full: bool = True) -> dict[str, Any]:
    """A version; ``full`` adds the project-level attributes Get versions returns."""
    body: dict[str, Any] = {"self": f"{base}/version/{version.id}", "id": str(version.id)}
    if version.description:
        body["description"] = version.description
    body.update({"name": version.name, "archived": version.archived, "released": version.released})
    if version.start_date:
        body["startDate"] = version.start_date.isoformat()
    if version.release_date:
        body["releaseDate"] = version.release_date.isoformat()
    if full:
        if version.release_date:
            body["userReleaseDate"] = version.release_date.strftime("%d/%b/%y")
        body["projectId"] = PROJECT_ID
    return body


def option_json(field_id: str, value: str | None, base: str) -> dict[str, Any] | None:
    """A select option as an issue field value."""
    if value is None:
        return None
    ident = option_id(field_id, value)
    return {"self": f"{base}/customFieldOption/{ident}", "value": value, "id": ident}


def component_json(component: Component, base: str, state: JiraState | None = None) -> dict[str, Any]:
    """A component: ``self``, ``id``, ``name`` as an issue field; with ``state``, also the description
    and project-level attributes that Get project and Get project components return."""
    body: dict[str, Any] = {"self": f"{base}/component/{component.id}", "id": str(component.id), "name": component.name}
    if state is not None:
        body.update({"description": component.description, "assigneeType": "PROJECT_DEFAULT",
                     "realAssigneeType": "PROJECT_DEFAULT", "isAssigneeTypeValid": False,
                     "project": state.project_key, "projectId": PROJECT_ID})
    return body


def project_json(state: JiraState, base: str, *, full: bool = False) -> dict[str, Any]:
    """The project, short (as an issue field) or full (Get project)."""
    body: dict[str, Any] = {"self": f"{base}/project/{PROJECT_ID}", "id": str(PROJECT_ID), "key": state.project_key,
                            "name": state.project_name, "projectTypeKey": "software", "simplified": False,
                            "avatarUrls": avatar_urls(state.project_key)}
    if full:
        body = {"expand": "description,lead,issueTypes,url,projectKeys,permissions,insight", **body,
                "description": "Business-system change requests from every ops team.",
                "lead": user_json(state.me, base),
                "components": [component_json(c, base, state) for c in COMPONENTS], "issueTypes": [issuetype_json(base)],
                "assigneeType": "UNASSIGNED",
                "versions": [version_json(v, base) for v in sorted(state.versions.values(), key=lambda v: v.id)],
                "roles": {}, "projectKeys": [state.project_key], "style": "classic", "isPrivate": False, "properties": {}}
    return body


def text_to_adf(text: str) -> dict[str, Any]:
    """Plain text as an ADF document: blank lines split paragraphs, newlines are hard breaks."""
    content = []
    for paragraph in text.split("\n\n"):
        nodes: list[dict[str, Any]] = []
        for index, line in enumerate(paragraph.split("\n")):
            if index:
                nodes.append({"type": "hardBreak"})
            if line:
                nodes.append({"type": "text", "text": line})
        content.append({"type": "paragraph", "content": nodes} if nodes else {"type": "paragraph"})
    return {"type": "doc", "version": 1, "content": content}


def adf_to_text(node: Any) -> str:
    """The plain text of an ADF document (paragraph-like blocks separated by a blank line)."""
    if not isinstance(node, dict):
        return ""
    if node.get("type") == "text":
        return str(node.get("text", ""))
    if node.get("type") == "hardBreak":
        return "\n"
    parts = [adf_to_text(child) for child in node.get("content") or []]
    if node.get("type") in ("doc", "bulletList", "orderedList", "listItem", "blockquote", "panel"):
        return "\n\n".join(p for p in parts if p) if node.get("type") == "doc" else "\n".join(parts)
    return "".join(parts)


def parse_fields(raw: Iterable[str] | None) -> list[str] | None:
    """Flatten ``fields`` given as repeated params and/or comma-separated lists."""
    if raw is None:
        return None
    items = [part.strip() for value in raw for part in str(value).split(",")]
    return [item for item in items if item]


def select_fields(requested: list[str] | None, *, default: str) -> list[str]:
    """Which issue fields to return: ``*all``, ``*navigable``, ids, and ``-id`` exclusions.

    Unknown ids are ignored, as Jira does; ``default`` applies when nothing is asked.
    """
    items = requested if requested else [default]
    chosen: list[str] = []
    excluded = set()
    for item in items:
        if item.startswith("-"):
            excluded.add(item[1:])
        elif item in ("*all", "*navigable"):
            chosen.extend(ISSUE_FIELDS)
        elif item in ISSUE_FIELDS:
            chosen.append(item)
    return [f for f in dict.fromkeys(chosen) if f not in excluded]


def only_ids(requested: list[str] | None) -> bool:
    """Whether a search asks for nothing beyond id/key (Jira then pages up to 5000)."""
    return not requested or all(item in ID_ONLY for item in requested)


def field_value(state: JiraState, issue: Issue, field: str, base: str, api: str) -> Any:
    """One field's value as Jira renders it in API version ``api`` ("2" or "3")."""
    zone = state.zone()
    if field == "summary":
        return issue.summary
    if field == "description":
        if issue.description is None:
            return None
        if api == "2":
            return issue.description
        return issue.description_adf or text_to_adf(issue.description)
    if field == "status":
        return status_json(STATUS_BY_KEY[issue.status], base)
    if field == "priority":
        return priority_json(issue.priority, base)
    if field == "issuetype":
        return issuetype_json(base)
    if field in ("reporter", "assignee"):
        ident = getattr(issue, field)
        return user_json(state.users.get(ident) if ident else None, base)
    if field == "created":
        return jira_time(issue.created, zone)
    if field == "updated":
        return jira_time(issue.updated, zone)
    if field == "fixVersions":
        versions = [state.versions[v] for v in issue.fix_versions if v in state.versions]
        return [version_json(v, base, full=False) for v in versions]
    if field == "project":
        return project_json(state, base)
    if field == "labels":
        return sorted(issue.labels)
    if field == "components":
        return [component_json(COMPONENT_BY_ID[c], base) for c in issue.components if c in COMPONENT_BY_ID]
    if field == "issuelinks":
        return issue_links_json(state, issue, base)
    if field == DEPARTMENT:
        return option_json(DEPARTMENT, issue.department, base)
    if field == REQUEST_TYPE:
        return option_json(REQUEST_TYPE, issue.request_type, base)
    if field == REQUESTED_ON:
        return issue.requested_on
    if field == DEPENDS_ON:
        return issue.depends_on
    if field == RELEASE_PHASE:
        return issue.release_phase
    if field == PLANNED_DEPLOY:
        return issue.planned_deploy
    raise KeyError(field)


def link_type_json(kind: LinkType, base: str) -> dict[str, Any]:
    return {"id": kind.id, "name": kind.name, "inward": kind.inward, "outward": kind.outward,
            "self": f"{base}/issueLinkType/{kind.id}"}


def _linked_issue_json(issue: Issue, base: str) -> dict[str, Any]:
    return {"id": str(issue.id), "key": issue.key, "self": f"{base}/issue/{issue.id}",
            "fields": {"summary": issue.summary, "status": status_json(STATUS_BY_KEY[issue.status], base),
                       "priority": priority_json(issue.priority, base)}}


def issue_links_json(state: JiraState, issue: Issue, base: str) -> list[dict[str, Any]]:
    """The ``issuelinks`` field of ``issue``: each link with the issue on its other side."""
    shown = []
    for link in state.issue_links:
        if issue.id not in (link.inward, link.outward):
            continue
        entry: dict[str, Any] = {"id": str(link.id), "self": f"{base}/issueLink/{link.id}",
                                 "type": link_type_json(link.type, base)}
        if link.outward == issue.id:
            entry["inwardIssue"] = _linked_issue_json(state.issues[link.inward], base)
        else:
            entry["outwardIssue"] = _linked_issue_json(state.issues[link.outward], base)
        shown.append(entry)
    return shown


def issue_json(
    state: JiraState,
    issue: Issue,
    *,
    root: str,
    api: str,
    fields: list[str],
    expand: AbstractSet[str] = frozenset(),
) -> dict[str, Any]:
    """An issue as Get issue and search return it, with only the ``fields`` asked for."""
    base = f"{root}/rest/api/{api}"
    body: dict[str, Any] = {
        "expand": ISSUE_EXPAND,
        "id": str(issue.id),
        "self": f"{base}/issue/{issue.id}",
        "key": issue.key,
        "fields": {f: field_value(state, issue, f, base, api) for f in fields},
    }
    if "names" in expand:
        body["names"] = {f: FIELD_NAMES[f] for f in fields}
    if "changelog" in expand:
        # Search and Get issue embed at most a page of history, newest first; the
        # changelog endpoints are the way to read all of it.
        histories = list(reversed(state.histories(issue)))
        shown = histories[:40]
        body["changelog"] = {"startAt": 0, "maxResults": len(shown), "total": len(histories),
                             "histories": [history_json(state, h, base) for h in shown]}
    return body


def history_json(state: JiraState, history: dict[str, Any], base: str) -> dict[str, Any]:
    """A changelog entry (``author`` is stored as an account id)."""
    return {
        "id": str(history["id"]),
        "author": user_json(state.users.get(history["author"]), base),
        "created": jira_time(history["created"], state.zone()),
        "items": [dict(item) for item in history["items"]],
    }


def search_issue_json(
    state: JiraState, issue: Issue, *, root: str, api: str, requested: list[str] | None, expand: set[str]
) -> dict[str, Any]:
    """An issue in search results: just ``id`` when no fields were asked for."""
    if not requested:
        return {"id": str(issue.id)}
    # Search reports field names once, at the top of the page, not per issue.
    fields = select_fields(requested, default="*navigable")
    return issue_json(state, issue, root=root, api=api, fields=fields, expand=expand - {"names"})
