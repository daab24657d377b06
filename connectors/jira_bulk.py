"""Jira Cloud's bulk operations: one job sets one value on up to 1,000 issues.

The ``jira`` library has no methods for them; they go through its authenticated session
and the connector's ``ApiCalls`` (retried, classified, counted) like every other call.

- ``POST bulk/issues/fields``: ``selectedIssueIdsOrKeys`` (up to 1,000), ``selectedActions``
  (the field ids edited) and ``editedFieldsInput``; a fix version goes in
  ``multipleVersionPickerFields`` with ``bulkEditMultiSelectFieldOption`` REPLACE (or
  REMOVE_ALL to clear it); a date picker in ``datePickerFields`` (``formattedDate`` as ``d/MMM/yy``,
  empty to clear) and a single-line text field in ``singleLineTextFields``. Jira answers 201
  with a ``taskId``.
- ``GET bulk/issues/transition?issueIdsOrKeys=...``: per workflow, the transitions the issues
  have in common; ``POST bulk/issues/transition``: ``bulkTransitionInputs``, one
  ``{selectedIssueIdsOrKeys, transitionId}`` per group of issues sharing a transition.
- ``GET bulk/queue/{taskId}``: the job's ``status`` (ENQUEUED, RUNNING, COMPLETE, FAILED,
  CANCEL_REQUESTED, CANCELLED, DEAD) and, once complete, ``processedAccessibleIssues`` (issue
  ids), ``failedAccessibleIssues`` (issue id -> reasons) and ``invalidOrInaccessibleIssueCount``.
  It is polled with a growing wait (POLL_WAITS) until it is done, never past the run's deadline.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from jira import JIRA

from connectors.calls import ApiCalls
from connectors.errors import FatalError

JOB_SIZE = 1000
"""Issues one bulk job may name (Jira refuses more with a 400)."""
EXPECTED_POLLS = 3
"""Polls a job is priced at in ``relsync plan``: Jira's jobs are seldom done at the first or second."""
POLL_WAITS = (0.1, 0.2, 0.5, 1.0, 2.0, 4.0, 8.0)
"""Seconds waited before each poll of a job (a small job is often done within a second); the last repeats."""
FINISHED = ("COMPLETE", "FAILED", "CANCELLED", "DEAD")


@dataclass(frozen=True)
class JobResult:
    """What a finished job did: its status, the issue ids it changed, and why it failed the others."""

    task: str
    status: str
    processed: frozenset[str]
    failed: dict[str, list[str]]


def chunks(items: list[Any], size: int = JOB_SIZE) -> Iterator[list[Any]]:
    """``items`` in consecutive lists of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


EditInput = tuple[str, str, dict[str, Any]]
"""One field of a bulk edit: its ``editedFieldsInput`` group, its field id (a selected action), its entry."""


def versions_input(version_id: str | None) -> EditInput:
    """Make ``version_id`` the only fix version (None: no fix version)."""
    option = {"fieldId": "fixVersions", "bulkEditMultiSelectFieldOption": "REPLACE" if version_id else "REMOVE_ALL",
              "versions": [{"versionId": version_id}] if version_id else []}
    return "multipleVersionPickerFields", "fixVersions", option


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def jira_date(day: dt.date) -> str:
    """``day`` as Jira's ``d/MMM/yy`` (English month names, whatever the machine's locale)."""
    return f"{day.day}/{MONTHS[day.month - 1]}/{day:%y}"


def field_input(field_id: str, value: str | None, *, date: bool) -> EditInput:
    """Set a plain custom field: a date picker (``value`` is ``YYYY-MM-DD``, sent as Jira's ``d/MMM/yy``)
    or a single-line text field; None clears it."""
    if date:
        formatted = jira_date(dt.date.fromisoformat(value)) if value else ""
        return "datePickerFields", field_id, {"fieldId": field_id, "date": {"formattedDate": formatted}}
    return "singleLineTextFields", field_id, {"fieldId": field_id, "text": value or ""}


def edit_body(keys: list[str], inputs: list[EditInput]) -> dict[str, Any]:
    """The body of one bulk edit giving ``keys`` every field in ``inputs``."""
    edited: dict[str, list[dict[str, Any]]] = {}
    for group, _, entry in inputs:
        edited.setdefault(group, []).append(entry)
    return {"selectedIssueIdsOrKeys": keys, "selectedActions": [action for _, action, _ in inputs],
            "editedFieldsInput": edited, "sendBulkNotification": False}


def transitions_to(target: str, available: dict[str, Any]) -> tuple[str | None, list[str]]:
    """The id of the transition leading to ``target`` in a ``GET bulk/issues/transition`` answer, and every target named."""
    offered = [t for workflow in available.get("availableTransitions") or [] for t in workflow.get("transitions") or []]
    chosen = next((t for t in offered if (t.get("to") or {}).get("statusName") == target), None)
    names = sorted({(t.get("to") or {}).get("statusName", "?") for t in offered})
    return (str(chosen["transitionId"]) if chosen else None), names


class BulkJobs:
    """Submits bulk jobs and polls them until done, through one source's ``ApiCalls``."""

    def __init__(self, calls: ApiCalls, client: Callable[[], JIRA]) -> None:
        self.calls = calls
        self._client = client

    def _submit(self, resource: str, body: dict[str, Any]) -> str:
        client = self._client()
        url = client._get_url(resource)
        answer = self.calls(lambda: client._session.post(url, data=json.dumps(body))).json()
        if not isinstance(answer, dict) or not answer.get("taskId"):
            raise FatalError("jira", f"{resource} answered without a taskId")
        return str(answer["taskId"])

    def edit(self, keys: list[str], inputs: list[EditInput]) -> JobResult:
        """Give ``keys`` (at most 1,000) the fields in ``inputs`` in one job; its outcome."""
        return self.wait(self._submit("bulk/issues/fields", edit_body(keys, inputs)))

    def transition(self, inputs: list[tuple[list[str], str]]) -> JobResult:
        """Move each group of issues by its transition id, all in one job (1,000 issues at most); its outcome."""
        body = {"bulkTransitionInputs": [{"selectedIssueIdsOrKeys": keys, "transitionId": ident} for keys, ident in inputs],
                "sendBulkNotification": False}
        return self.wait(self._submit("bulk/issues/transition", body))

    def available(self, keys: list[str]) -> dict[str, Any]:
        """``GET bulk/issues/transition`` for ``keys`` (at most 1,000)."""
        client = self._client()
        url = client._get_url("bulk/issues/transition")
        answer: dict[str, Any] = self.calls(
            lambda: client._session.get(url, params={"issueIdsOrKeys": ",".join(keys)})).json()
        return answer

    def wait(self, task: str) -> JobResult:
        """Poll ``bulk/queue/{task}`` with a growing wait until the job is done (the run's deadline ends the wait)."""
        client = self._client()
        url = client._get_url(f"bulk/queue/{task}")
        policy = self.calls.policy
        polls = 0
        while True:
            pause = POLL_WAITS[min(polls, len(POLL_WAITS) - 1)]
            if policy.deadline.left() <= pause:
                raise policy.deadline.reached("jira")
            policy.sleep(pause)
            progress = self.calls(lambda: client._session.get(url)).json()
            polls += 1
            status = str(progress.get("status") or "")
            if status in FINISHED:
                failed = {str(k): [str(m) for m in v] for k, v in (progress.get("failedAccessibleIssues") or {}).items()}
                processed = frozenset(str(i) for i in progress.get("processedAccessibleIssues") or [])
                return JobResult(task, status, processed, failed)
