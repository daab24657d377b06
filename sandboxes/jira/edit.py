"""Writes to the Jira sandbox: create, edit, transition, each validated the way Jira does.

Validation collects every problem before changing anything, and reports them in Jira's
``{"errorMessages": [...], "errors": {field: message}}`` body. A write that changes
something stamps ``updated`` from the clock and appends one changelog entry authored
by the account that made the request, and goes to the search index, which shows it
after the index lag. Callers hold ``state.lock``.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sandboxes.jira.data import (
    COMPONENT_BY_ID,
    COMPONENT_BY_NAME,
    DEPARTMENT,
    DEPENDS_ON,
    FIELD_NAMES,
    FIRST_ISSUE_ID,
    OPTIONS,
    PLANNED_DEPLOY,
    PRIORITIES,
    PROJECT_ID,
    RELEASE_PHASE,
    REQUEST_TYPE,
    REQUESTED_ON,
    STATUS_BY_KEY,
    TEXT_LIMIT,
    TRANSITIONS,
    Issue,
    JiraState,
    User,
    option_id,
    option_value,
    status_item,
)
from sandboxes.jira.render import adf_to_text

MULTI = {"labels": "set,add,remove", "fixVersions": "set,add,remove", "components": "set,add,remove"}
EDITABLE = ("summary", "description", "priority", "assignee", "reporter", "labels", "fixVersions", "components", DEPARTMENT,
            REQUEST_TYPE, REQUESTED_ON, DEPENDS_ON, RELEASE_PHASE, PLANNED_DEPLOY)
INVALID_PAYLOAD = "Invalid request payload. Refer to the REST API documentation and try again."


class EditError(Exception):
    """A refused write, carrying Jira's error body."""

    def __init__(self, errors: dict[str, str] | None = None, messages: list[str] | None = None) -> None:
        self.errors = errors or {}
        self.messages = messages or []
        super().__init__(str(self.body()))

    def body(self) -> dict[str, Any]:
        """The JSON Jira answers with."""
        return {"errorMessages": self.messages, "errors": self.errors}


def _unknown(name: str) -> str:
    return f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."


class _Values:
    """Turns request values into stored values, collecting Jira's messages."""

    def __init__(self, state: JiraState, api: str) -> None:
        self.state, self.api = state, api
        self.errors: dict[str, str] = {}

    def convert(self, name: str, value: Any) -> Any:
        handler = getattr(self, f"_{name}", None) or (lambda v: self._option(name, v))
        return handler(value)

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(name, message)

    def _summary(self, value: Any) -> Any:
        if not isinstance(value, str) or not value.strip():
            return self.fail("summary", "You must specify a summary of the issue.")
        if "\n" in value or "\r" in value:
            return self.fail("summary", "The summary is invalid because it contains newline characters.")
        if len(value) > 255:
            return self.fail("summary", "Summary must be less than 255 characters.")
        return value

    def _description(self, value: Any) -> Any:
        if value is None:
            return (None, None)
        if self.api == "2":
            if not isinstance(value, str):
                return self.fail("description", "Operation value must be a string")
            return (value, None)
        if not (isinstance(value, dict) and value.get("type") == "doc" and isinstance(value.get("content"), list)):
            return self.fail("description", "Operation value must be an Atlassian Document (see the Atlassian Document Format)")
        return (adf_to_text(value), value)

    def _priority(self, value: Any) -> Any:
        if isinstance(value, dict):
            for ident, name in PRIORITIES:
                if value.get("id") == ident or value.get("name") == name:
                    return name
        return self.fail("priority", "The priority selected is invalid.")

    def _user(self, name: str, value: Any) -> Any:
        if value is None:
            if name == "reporter":
                return self.fail("reporter", "Reporter is required.")
            return None
        ident = value.get("accountId") if isinstance(value, dict) else None
        if ident in self.state.users:
            return ident
        return self.fail(name, f"User '{ident}' does not exist.")

    def _assignee(self, value: Any) -> Any:
        return self._user("assignee", value)

    def _reporter(self, value: Any) -> Any:
        return self._user("reporter", value)

    def _labels(self, value: Any) -> Any:
        labels = value if isinstance(value, list) else [value]
        for label in labels:
            if not isinstance(label, str) or not label:
                return self.fail("labels", "The label must be a non-empty string.")
            if any(ch.isspace() for ch in label):
                return self.fail("labels", f"The label '{label}' contains spaces which is invalid.")
        return labels

    def _fixVersions(self, value: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        ids = []
        for item in items:
            item = item if isinstance(item, dict) else {}
            if "id" in item:
                if str(item["id"]).isdigit() and int(item["id"]) in self.state.versions:
                    ids.append(int(item["id"]))
                    continue
                return self.fail("fixVersions", f"Version id '{item['id']}' is not valid")
            match = [v.id for v in self.state.versions.values() if v.name == item.get("name")]
            if not match:
                return self.fail("fixVersions", f"Version name '{item.get('name')}' is not valid")
            ids.append(match[0])
        return ids

    def _components(self, value: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        ids = []
        for item in items:
            item = item if isinstance(item, dict) else {}
            if "id" in item:
                if str(item["id"]).isdigit() and int(item["id"]) in COMPONENT_BY_ID:
                    ids.append(int(item["id"]))
                    continue
                return self.fail("components", f"Component id '{item['id']}' is not valid")
            found = COMPONENT_BY_NAME.get(item.get("name"))  # type: ignore[arg-type]
            if found is None:
                return self.fail("components", f"Component name '{item.get('name')}' is not valid")
            ids.append(found.id)
        return list(dict.fromkeys(ids))

    def _customfield_10072(self, value: Any) -> Any:
        return self._text(REQUESTED_ON, value)

    def _customfield_10073(self, value: Any) -> Any:
        return self._text(DEPENDS_ON, value)

    def _customfield_10081(self, value: Any) -> Any:
        return self._text(RELEASE_PHASE, value)

    def _customfield_10080(self, value: Any) -> Any:
        """A date picker takes ``YYYY-MM-DD`` (null clears it)."""
        if value is None:
            return None
        try:
            return dt.datetime.strptime(value, "%Y-%m-%d").date().isoformat()
        except (TypeError, ValueError):
            return self.fail(PLANNED_DEPLOY, f"Error parsing date string: {value}")

    def _text(self, name: str, value: Any) -> Any:
        """A single-line text field: any text up to 255 characters; empty clears it."""
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            return self.fail(name, "Operation value must be a string")
        if len(value) > TEXT_LIMIT:
            return self.fail(name, f"The entered text is too long. It exceeds the allowed limit of {TEXT_LIMIT} characters.")
        return value

    def _option(self, name: str, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, dict) and "id" in value:
            found = option_value(name, str(value["id"]))
            return found if found else self.fail(name, f"Option id '{value['id']}' is not valid")
        wanted = value.get("value") if isinstance(value, dict) else None
        if option_id(name, str(wanted)) is None:
            return self.fail(name, f"Option value '{wanted}' is not valid")
        return wanted


_ATTRS = {"summary": "summary", "priority": "priority", "assignee": "assignee", "reporter": "reporter",
          "labels": "labels", "fixVersions": "fix_versions", "components": "components",
          DEPARTMENT: "department", REQUEST_TYPE: "request_type", REQUESTED_ON: "requested_on", DEPENDS_ON: "depends_on",
          RELEASE_PHASE: "release_phase", PLANNED_DEPLOY: "planned_deploy"}


def _current(issue: Issue, name: str) -> Any:
    if name == "description":
        return (issue.description, issue.description_adf)
    value = getattr(issue, _ATTRS[name])
    return list(value) if isinstance(value, list) else value


def _desired(state: JiraState, issue: Issue, body: dict[str, Any], api: str) -> dict[str, Any]:
    """The new value of every field the request touches, or EditError."""
    fields, update = body.get("fields") or {}, body.get("update") or {}
    if not isinstance(fields, dict) or not isinstance(update, dict):
        raise EditError(messages=[INVALID_PAYLOAD])
    messages = [f"Field '{n}' cannot appear in both 'fields' and 'update'" for n in fields if n in update]
    values = _Values(state, api)
    desired: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in EDITABLE:
            values.fail(name, _unknown(name))
        elif name not in update:
            desired[name] = values.convert(name, value)
    for name, operations in update.items():
        if name not in EDITABLE:
            values.fail(name, _unknown(name))
            continue
        allowed = MULTI.get(name, "set")
        result = _current(issue, name)
        for operation in operations if isinstance(operations, list) else [operations]:
            verb, value = next(iter(operation.items())) if isinstance(operation, dict) and len(operation) == 1 else (None, None)
            if verb not in allowed.split(","):
                messages.append(
                    f"Field with id' {name}' and name '{FIELD_NAMES.get(name, name)}' does not support operation "
                    f"'{verb}' Supported operation(s) are: '{allowed}'"
                )
                break
            converted = values.convert(name, value)
            if verb == "set":
                result = converted
            elif verb == "add" and converted is not None:
                result = result + [v for v in converted if v not in result]
            elif verb == "remove" and converted is not None:
                result = [v for v in result if v not in converted]
        desired[name] = result
    if messages or values.errors:
        raise EditError(values.errors, messages)
    return desired


def _items(state: JiraState, issue: Issue, desired: dict[str, Any]) -> list[dict[str, Any]]:
    """Changelog items for the differences between ``issue`` and ``desired``."""
    items = []
    for name, new in desired.items():
        old = _current(issue, name)
        if name == "description":
            if old[0] != new[0]:
                items.append(_item("description", "jira", old[0], new[0]))
        elif name in ("summary",) and old != new:
            items.append(_item(name, "jira", old, new))
        elif name == "priority" and old != new:
            ids = {n: i for i, n in PRIORITIES}
            items.append(_item("priority", "jira", old, new, ids.get(old), ids.get(new)))
        elif name in ("assignee", "reporter") and old != new:
            display = {u: state.users[u].name for u in (old, new) if u}
            items.append(_item(name, "jira", display.get(old), display.get(new), old, new))
        elif name == "labels" and sorted(old) != sorted(new):
            items.append(_item("labels", "jira", " ".join(sorted(old)) or None, " ".join(sorted(new)) or None))
        elif name == "fixVersions":
            for gone in [v for v in old if v not in new]:
                items.append({**_item("Fix Version", "jira", state.versions[gone].name, None, str(gone), None), "fieldId": "fixVersions"})
            for added in [v for v in new if v not in old]:
                items.append({**_item("Fix Version", "jira", None, state.versions[added].name, None, str(added)), "fieldId": "fixVersions"})
        elif name == "components":
            for gone in [c for c in old if c not in new]:
                items.append({**_item("Component", "jira", COMPONENT_BY_ID[gone].name, None, str(gone), None), "fieldId": "components"})
            for added in [c for c in new if c not in old]:
                items.append({**_item("Component", "jira", None, COMPONENT_BY_ID[added].name, None, str(added)), "fieldId": "components"})
        elif name in (REQUESTED_ON, DEPENDS_ON, RELEASE_PHASE) and old != new:
            items.append({**_item(FIELD_NAMES[name], "custom", old, new), "fieldId": name})
        elif name == PLANNED_DEPLOY and old != new:  # a date records its values in from/to as well
            items.append({**_item(FIELD_NAMES[name], "custom", old, new, old, new), "fieldId": name})
        elif name in OPTIONS and old != new:
            item = _item(OPTIONS[name][0], "custom", old, new, old and option_id(name, old), new and option_id(name, new))
            items.append({**item, "fieldId": name})
    return items


def _item(field: str, kind: str, old: Any, new: Any, old_id: Any = None, new_id: Any = None) -> dict[str, Any]:
    return {"field": field, "fieldtype": kind, "fieldId": field, "from": old_id, "fromString": old,
            "to": new_id, "toString": new}


def _store(issue: Issue, desired: dict[str, Any]) -> None:
    for name, value in desired.items():
        if name == "description":
            issue.description, issue.description_adf = value
        else:
            setattr(issue, _ATTRS[name], value)


def record(state: JiraState, issue: Issue, author: User, items: list[dict[str, Any]]) -> None:
    """Stamp ``updated``, append one changelog entry for ``items`` and send the issue to the index."""
    now = state.clock.now()
    issue.updated = now
    issue.history.append({"id": state.next_history_id, "author": author.account_id, "created": now, "items": items})
    state.next_history_id += 1
    state.index.changed(issue)
    state.touch()


def edit_issue(state: JiraState, issue: Issue, body: Any, *, api: str, author: User) -> bool:
    """Apply an Edit issue request; return whether anything changed."""
    if not isinstance(body, dict):
        raise EditError(messages=[INVALID_PAYLOAD])
    if issue.id in state.locked:  # a read-only status: Jira finds no field on the (absent) edit screen
        touched = [*(body.get("fields") or {}), *(body.get("update") or {})]
        raise EditError({name: _unknown(name) for name in touched})
    desired = _desired(state, issue, body, api)
    items = _items(state, issue, desired)
    if items:
        state.index.before_change(issue)
    _store(issue, desired)
    if items:
        record(state, issue, author, items)
    return bool(items)


def create_issue(state: JiraState, body: Any, *, api: str, author: User) -> Issue:
    """Apply a Create issue request and return the new issue (status Open, no changelog yet)."""
    fields = body.get("fields") if isinstance(body, dict) else None
    if not isinstance(fields, dict):
        raise EditError(messages=[INVALID_PAYLOAD])
    errors: dict[str, str] = {}
    project = fields.get("project")
    if not isinstance(project, dict):
        project = {}
    if str(project.get("id")) != str(PROJECT_ID) and str(project.get("key", "")).upper() != state.project_key:
        errors["project"] = "Specify a valid project ID or key"
    kind = fields.get("issuetype") if isinstance(fields.get("issuetype"), dict) else None
    if not kind:
        errors["issuetype"] = "Specify an issue type"
    elif str(kind.get("id")) != "10010" and kind.get("name") != "Change Request":
        errors["issuetype"] = "The issue type selected is invalid."
    if "summary" not in fields:
        errors["summary"] = "You must specify a summary of the issue."
    number = state.next_number
    issue = Issue(
        id=FIRST_ISSUE_ID + number - 1, key=f"{state.project_key}-{number}", summary="", description=None,
        description_adf=None, status="new", priority="Medium", department=None, request_type=None,
        reporter=author.account_id, assignee=None, labels=[], fix_versions=[], created=state.clock.peek(),
        updated=state.clock.peek(),
    )
    rest = {k: v for k, v in fields.items() if k not in ("project", "issuetype")}
    try:
        desired = _desired(state, issue, {"fields": rest}, api)
    except EditError as error:
        raise EditError({**errors, **error.errors}, error.messages) from None
    if errors:
        raise EditError(errors)
    _store(issue, desired)
    issue.created = issue.updated = state.clock.now()
    state.next_number += 1
    state.issues[issue.id] = issue
    state.by_key[issue.key] = issue.id
    state.index.changed(issue)
    state.touch()
    return issue


def available_transitions(issue: Issue) -> list:
    """The transitions leaving the issue's current status."""
    return [t for t in TRANSITIONS if issue.status in t.sources]


def transition_issue(state: JiraState, issue: Issue, body: Any, *, author: User) -> None:
    """Apply a Transition issue request."""
    wanted = body.get("transition") if isinstance(body, dict) else None
    if not isinstance(wanted, dict) or wanted.get("id") is None:
        raise EditError(messages=["Missing 'transition' identifier"])
    ident = str(wanted["id"])
    if not ident.lstrip("-").isdigit():
        raise EditError(messages=["'transition' identifier must be an integer"])
    match = [t for t in available_transitions(issue) if t.id == ident]
    if not match:
        raise EditError(messages=[f"Transition id '{ident}' is not valid for this issue."])
    # No transition here has a screen, so any field set during it is refused.
    extra = {**(body.get("fields") or {}), **{k: v for k, v in (body.get("update") or {}).items() if k != "comment"}}
    if extra:
        raise EditError({name: _unknown(name) for name in extra})
    source, target = STATUS_BY_KEY[issue.status], STATUS_BY_KEY[match[0].target]
    state.index.before_change(issue)
    issue.status = target.key
    record(state, issue, author, [status_item(source, target)])
