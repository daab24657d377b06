"""Jira Cloud's bulk issue operations: asynchronous edits and transitions of up to 1,000 issues.

As Atlassian's REST reference describes them (the "Issue bulk operations" group):

- ``POST bulk/issues/fields`` ``{selectedIssueIdsOrKeys, selectedActions, editedFieldsInput,
  sendBulkNotification}``: one set of field values for up to 1,000 issues; 201 ``{"taskId"}``.
  ``fixVersions`` goes in ``editedFieldsInput.multipleVersionPickerFields[]`` as
  ``{fieldId, bulkEditMultiSelectFieldOption: ADD|REMOVE|REPLACE|REMOVE_ALL, versions: [{versionId}]}``;
  a date picker in ``datePickerFields[]`` as ``{fieldId, date: {formattedDate}}`` (``d/MMM/yy`` or
  ``dd-mm-yyyy``; empty clears it); a single-line text field in ``singleLineTextFields[]`` as
  ``{fieldId, text}``.
- ``POST bulk/issues/transition`` ``{bulkTransitionInputs: [{selectedIssueIdsOrKeys, transitionId}],
  sendBulkNotification}``: 201 ``{"taskId"}``.
- ``GET bulk/issues/transition?issueIdsOrKeys=A,B``: ``availableTransitions[]`` per workflow, each
  with its ``issues`` (keys), ``isTransitionsFiltered`` and the ``transitions`` common to all of
  them (``transitionId``, ``transitionName``, ``to: {statusId, statusName}``).
- ``GET bulk/queue/{taskId}``: ``taskId``, ``status`` (ENQUEUED, RUNNING, COMPLETE, FAILED,
  CANCEL_REQUESTED, CANCELLED, DEAD), ``progressPercent``, ``created``/``started``/``updated``
  (epoch ms), ``submittedBy``, ``totalIssueCount`` and, once complete,
  ``processedAccessibleIssues`` (ids), ``failedAccessibleIssues`` (id -> reasons) and
  ``invalidOrInaccessibleIssueCount``.

A task runs on the server whether or not anyone polls it, as Jira's do: the sandbox carries
it out when it is submitted, issue by issue, under the same rules as single edits and
transitions (permissions, a locked issue, a transition the issue's status does not have):
a refused issue fails alone, with the message a single request would have had. Its
progress still answers ``polls_before_done`` polls (default 2: ENQUEUED, then RUNNING)
before the poll that finds it COMPLETE with the outcome, so a client that dies after
submitting leaves the issues changed and the task finished. More than 1,000 issues is a 400.
"""
from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from typing import Any

import flask

from sandboxes.core import sandbox_route
from sandboxes.jira.data import (
    DEPENDS_ON,
    PLANNED_DEPLOY,
    RELEASE_PHASE,
    REQUESTED_ON,
    STATUS_BY_KEY,
    TRANSITIONS,
    Issue,
    JiraState,
    User,
)
from sandboxes.jira.edit import EditError, available_transitions, edit_issue, transition_issue
from sandboxes.jira.http import api_route, caller, jira_error, read_body
from sandboxes.jira.permissions import NO_EDIT, NOT_ON_SCREEN, WORKFLOW_REFUSED, grants_of

MAX_ISSUES = 1000
TOO_MANY = "The number of issues selected exceeds the limit of {limit}. Select fewer issues and try again."
NO_ISSUES = "Select at least one issue to perform the bulk operation."
BULK_KEY = "relsync_sandbox_jira_bulk"
MULTI_OPTIONS = ("ADD", "REMOVE", "REPLACE", "REMOVE_ALL")
EDITED_KINDS = {"multipleVersionPickerFields": ("fixVersions",), "datePickerFields": (PLANNED_DEPLOY,),
                "singleLineTextFields": (RELEASE_PHASE, REQUESTED_ON, DEPENDS_ON)}
"""The ``editedFieldsInput`` groups this sandbox's bulk edit takes, and the fields each may name."""


@dataclass
class Task:
    """One submitted bulk operation: what it will do to each issue, and how far it got."""

    task_id: str
    submitted_by: User
    work: list[tuple[int | None, dict[str, Any]]]
    """(issue id, or None for one that does not exist or cannot be seen; the operation for it)."""
    created: int
    polls_left: int
    status: str = "ENQUEUED"
    started: int | None = None
    updated: int | None = None
    processed: list[int] = field(default_factory=list)
    failed: dict[str, list[str]] = field(default_factory=dict)
    invalid: int = 0


@dataclass
class BulkState:
    """The sandbox's bulk tasks, and how many polls each takes."""

    tasks: dict[str, Task] = field(default_factory=dict)
    ids: itertools.count = field(default_factory=lambda: itertools.count(10000))
    polls_before_done: int = 2


def _issue_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        raise jira_error(400, ["selectedIssueIdsOrKeys must be a list of issue ids or keys."])
    return [str(v) for v in value]


def _limit(count: int) -> None:
    if count == 0:
        raise jira_error(400, [NO_ISSUES])
    if count > MAX_ISSUES:
        raise jira_error(400, [TOO_MANY.format(limit=MAX_ISSUES)])


def _fields_edit(state: JiraState, body: dict[str, Any]) -> dict[str, Any]:
    """The single-edit body a bulk edit stands for: fix versions (REPLACE -> set, ...), date pickers
    and single-line text fields. Every selected action needs its value in ``editedFieldsInput``."""
    actions = body.get("selectedActions")
    edited = body.get("editedFieldsInput") or {}
    if not isinstance(actions, list) or not actions or not isinstance(edited, dict):
        raise jira_error(400, ["selectedActions and editedFieldsInput are required."])
    given = {kind: {str(p.get("fieldId")): p for p in edited.get(kind) or [] if isinstance(p, dict)} for kind in EDITED_KINDS}
    fields: dict[str, Any] = {}
    update: dict[str, Any] = {}
    for action in actions:
        kind = next((k for k in EDITED_KINDS if action in given[k] and action in EDITED_KINDS[k]), None)
        if kind is None:
            raise jira_error(400, [f"The field '{action}' is not supported by this sandbox's bulk edit, or has no value "
                                   "in editedFieldsInput."])
        value = given[kind][action]
        if kind == "multipleVersionPickerFields":
            update["fixVersions"] = [_versions_operation(state, value)]
        elif kind == "datePickerFields":
            fields[action] = _bulk_date(action, (value.get("date") or {}).get("formattedDate"))
        else:
            fields[action] = value.get("text") or None
    return {"fields": fields, "update": update}


def _versions_operation(state: JiraState, picker: dict[str, Any]) -> dict[str, Any]:
    option = picker.get("bulkEditMultiSelectFieldOption")
    if option not in MULTI_OPTIONS:
        raise jira_error(400, [f"bulkEditMultiSelectFieldOption must be one of {', '.join(MULTI_OPTIONS)}."])
    ids = [str((v or {}).get("versionId")) for v in picker.get("versions") or []]
    unknown = [i for i in ids if not i.isdigit() or int(i) not in state.versions]
    if unknown:
        raise jira_error(400, [f"Version id '{unknown[0]}' is not valid"])
    versions = [{"id": i} for i in ids]
    verb = {"ADD": "add", "REMOVE": "remove", "REPLACE": "set", "REMOVE_ALL": "set"}[option]
    return {verb: [] if option == "REMOVE_ALL" else versions}


def _bulk_date(field_id: str, formatted: Any) -> str | None:
    """A bulk edit's ``formattedDate``: ``d/MMM/yy`` or ``dd-mm-yyyy`` as the reference says; empty clears."""
    if formatted in (None, ""):
        return None
    for shape in ("%d/%b/%y", "%d-%m-%Y"):
        try:
            return dt.datetime.strptime(str(formatted), shape).date().isoformat()
        except ValueError:
            continue
    raise jira_error(400, [f"The date '{formatted}' for field '{field_id}' is not in the format d/MMM/yy or dd-mm-yyyy."])


def _run(state: JiraState, app: flask.Flask, task: Task) -> None:
    """Carry the task out, issue by issue, as the submitting account (callers hold ``state.lock``)."""
    held = grants_of(app).of(task.submitted_by.account_id)
    for issue_id, operation in task.work:
        issue = state.issues.get(issue_id) if issue_id is not None else None
        if issue is None or "BROWSE_PROJECTS" not in held:
            task.invalid += 1
            continue
        problem = _refusal(issue, operation, held)
        if problem is None:
            try:
                if "transition" in operation:
                    transition_issue(state, issue, operation, author=task.submitted_by)
                else:
                    edit_issue(state, issue, operation, api="3", author=task.submitted_by)
            except EditError as error:
                problem = [*error.messages, *error.errors.values()]
        if problem:
            task.failed[str(issue.id)] = problem
        else:
            task.processed.append(issue.id)


def _refusal(issue: Issue, operation: dict[str, Any], held: frozenset[str]) -> list[str] | None:
    """What a single request would have been refused with for want of a permission; None when allowed."""
    if "transition" in operation:
        if "TRANSITION_ISSUES" in held:
            return None
        wanted = str(operation["transition"]["id"])
        name = next((t.name for t in TRANSITIONS if t.id == wanted), wanted)
        return [WORKFLOW_REFUSED.format(name, issue.key)]
    if "EDIT_ISSUES" not in held:
        return [NO_EDIT]
    if "fixVersions" in operation.get("update", {}) and "RESOLVE_ISSUES" not in held:
        return [NOT_ON_SCREEN.format("fixVersions")]
    return None


def _progress(task: Task) -> dict[str, Any]:
    body: dict[str, Any] = {
        "taskId": task.task_id, "status": task.status, "submittedBy": {"accountId": task.submitted_by.account_id},
        "created": task.created, "totalIssueCount": len(task.work),
        "progressPercent": {"ENQUEUED": 0, "RUNNING": 50}.get(task.status, 100),
    }
    if task.started is not None:
        body["started"] = task.started
    if task.updated is not None:
        body["updated"] = task.updated
    if task.status == "COMPLETE":
        body |= {"processedAccessibleIssues": task.processed, "failedAccessibleIssues": task.failed,
                 "invalidOrInaccessibleIssueCount": task.invalid}
    return body


def register_bulk_routes(app: flask.Flask, state: JiraState) -> None:
    """Add the bulk operations, their task queue, and the ``/_sandbox/jira/bulk`` and ``lock-issues`` knobs."""
    bulk = app.extensions[BULK_KEY] = BulkState()

    def now_ms() -> int:
        return int(state.clock.source.utc().timestamp() * 1000)

    def submit(work: list[tuple[int | None, dict[str, Any]]]) -> tuple[flask.Response, int]:
        task = Task(str(next(bulk.ids)), caller(state), work, now_ms(), bulk.polls_before_done)
        with state.lock:
            bulk.tasks[task.task_id] = task
            _run(state, app, task)  # on the server, not on the client's next poll
        return flask.jsonify({"taskId": task.task_id}), 201

    def issue_id(id_or_key: str) -> int | None:
        found = state.find_issue(id_or_key)
        return found.id if found is not None else None

    @api_route(app, "/bulk/issues/fields", ["POST"])
    def bulk_edit(api: str) -> tuple[flask.Response, int]:
        """POST bulk/issues/fields: one set of field values for up to 1,000 issues; 201 with the taskId."""
        body = read_body()
        if not isinstance(body, dict):
            raise jira_error(400, ["Invalid request payload. Refer to the REST API documentation and try again."])
        selected = _issue_list(body.get("selectedIssueIdsOrKeys"))
        _limit(len(selected))
        with state.lock:
            operation = _fields_edit(state, body)
            return submit([(issue_id(ref), operation) for ref in selected])

    @api_route(app, "/bulk/issues/transition", ["POST"])
    def bulk_transition(api: str) -> tuple[flask.Response, int]:
        """POST bulk/issues/transition: a transition for each group of issues, up to 1,000 in all; 201 with the taskId."""
        body = read_body()
        inputs = body.get("bulkTransitionInputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not inputs or not all(isinstance(i, dict) for i in inputs):
            raise jira_error(400, ["bulkTransitionInputs is required."])
        groups = [(_issue_list(i.get("selectedIssueIdsOrKeys")), str(i.get("transitionId") or "")) for i in inputs]
        _limit(sum(len(refs) for refs, _ in groups))
        if any(not transition.isdigit() for _, transition in groups):
            raise jira_error(400, ["transitionId must be the id of a transition."])
        with state.lock:
            return submit([(issue_id(ref), {"transition": {"id": transition}}) for refs, transition in groups for ref in refs])

    @api_route(app, "/bulk/issues/transition", ["GET"])
    def bulk_transitions(api: str) -> flask.Response:
        """GET bulk/issues/transition: per workflow, the transitions common to all the issues asked about."""
        refs = [r.strip() for r in flask.request.args.get("issueIdsOrKeys", "").split(",") if r.strip()]
        _limit(len(refs))
        held = grants_of(app).of(caller(state).account_id)
        with state.lock:
            issues = [i for i in (state.find_issue(r) for r in refs) if i is not None and "BROWSE_PROJECTS" in held]
            common: set[str] | None = None
            for issue in issues:
                ids = {t.id for t in available_transitions(issue)} if "TRANSITION_ISSUES" in held else set()
                common = ids if common is None else common & ids
        transitions = [{"transitionId": int(t.id), "transitionName": t.name,
                        "to": {"statusId": int(STATUS_BY_KEY[t.target].id), "statusName": STATUS_BY_KEY[t.target].name}}
                       for t in TRANSITIONS if t.id in (common or set())]
        workflows = [{"issues": [i.key for i in issues], "isTransitionsFiltered": False, "transitions": transitions}]
        return flask.jsonify({"availableTransitions": workflows if issues else []})

    @api_route(app, "/bulk/queue/<task_id>", ["GET"])
    def progress(api: str, task_id: str) -> flask.Response:
        """GET bulk/queue/{taskId}: the task's progress; after ``polls_before_done`` polls, its outcome."""
        with state.lock:
            task = bulk.tasks.get(task_id)
            if task is None:
                raise jira_error(404, [f"Task with id {task_id} not found."])
            if task.status in ("ENQUEUED", "RUNNING"):
                if task.polls_left > 0:
                    task.polls_left -= 1
                    if task.status == "ENQUEUED" and task.polls_left < bulk.polls_before_done - 1:
                        task.status, task.started = "RUNNING", now_ms()
                    task.updated = now_ms()
                else:
                    task.started = task.started or now_ms()
                    task.status, task.updated = "COMPLETE", now_ms()
            return flask.jsonify(_progress(task))

    @sandbox_route(app, "/jira/bulk", methods=["GET", "POST"])
    def bulk_knob() -> flask.Response | tuple[flask.Response, int]:
        """GET or POST /_sandbox/jira/bulk ``{"polls_before_done": n}``: how many polls a task answers unfinished."""
        if flask.request.method == "POST":
            polls = (flask.request.get_json(silent=True) or {}).get("polls_before_done", bulk.polls_before_done)
            if isinstance(polls, bool) or not isinstance(polls, int) or polls < 0:
                return flask.jsonify({"error": "polls_before_done is a whole number, 0 or more"}), 400
            bulk.polls_before_done = polls
        return flask.jsonify({"polls_before_done": bulk.polls_before_done, "tasks": len(bulk.tasks)})

    @sandbox_route(app, "/jira/lock-issues", methods=["POST"])
    def lock_issues() -> flask.Response | tuple[flask.Response, int]:
        """POST /_sandbox/jira/lock-issues ``{"issues": [keys], "locked": true}``: issues whose status makes them
        read-only (the workflow property ``jira.issue.editable = false``): every edit of them is refused."""
        body = flask.request.get_json(silent=True) or {}
        with state.lock:
            found = [state.find_issue(str(ref)) for ref in body.get("issues") or []]
            if any(issue is None for issue in found):
                return flask.jsonify({"error": "no such issue"}), 400
            ids = {issue.id for issue in found if issue is not None}
            state.locked = state.locked | ids if body.get("locked", True) else state.locked - ids
            return flask.jsonify({"locked": sorted(state.issues[i].key for i in state.locked)})


__all__ = ["MAX_ISSUES", "register_bulk_routes"]
