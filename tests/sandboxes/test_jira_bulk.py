"""The Jira sandbox's bulk operations, as Jira Cloud's REST reference shapes them: tasks that take polls,
per-issue failures, the 1,000-issue limit, and the permission rules of single edits."""
from __future__ import annotations

from typing import Any

import requests

from sandboxes.server import RunningSandbox
from tests.sandboxes.conftest import knob

API = "/rest/api/3"


def poll_until_done(http: requests.Session, sandbox: RunningSandbox, task: str) -> tuple[dict[str, Any], list[str]]:
    seen = []
    for _ in range(10):
        body = http.get(f"{sandbox.url}{API}/bulk/queue/{task}", timeout=10).json()
        seen.append(body["status"])
        if body["status"] == "COMPLETE":
            return body, seen
    raise AssertionError(f"task {task} never completed: {seen}")


def test_a_bulk_edit_of_fix_versions_runs_when_submitted_and_reports_done_after_polls(jira_sandbox, http, client):
    version = client.project_versions("OPS")[0]
    knob(jira_sandbox, "/jira/lock-issues", {"issues": ["OPS-3"]})  # a read-only status: its edit is refused
    body = {"selectedIssueIdsOrKeys": ["OPS-1", "OPS-2", "OPS-3", "OPS-99999"], "selectedActions": ["fixVersions"],
            "editedFieldsInput": {"multipleVersionPickerFields": [
                {"fieldId": "fixVersions", "bulkEditMultiSelectFieldOption": "REPLACE", "versions": [{"versionId": version.id}]}]},
            "sendBulkNotification": False}

    submitted = http.post(f"{jira_sandbox.url}{API}/bulk/issues/fields", json=body, timeout=10)

    assert submitted.status_code == 201
    task = submitted.json()["taskId"]
    # The task runs on the server whether or not anyone polls it (a client killed after
    # submitting leaves the issues changed): the issue shows the version before any poll.
    assert [v.name for v in client.issue("OPS-1", fields="fixVersions").fields.fixVersions] == [version.name]
    done, seen = poll_until_done(http, jira_sandbox, task)
    assert seen == ["ENQUEUED", "RUNNING", "COMPLETE"]
    assert done["progressPercent"] == 100 and done["totalIssueCount"] == 4
    one, two, three = (client.issue(k, fields="fixVersions") for k in ("OPS-1", "OPS-2", "OPS-3"))
    assert sorted(done["processedAccessibleIssues"]) == sorted([int(one.id), int(two.id)])
    assert done["failedAccessibleIssues"] == {
        three.id: ["Field 'fixVersions' cannot be set. It is not on the appropriate screen, or unknown."]}
    assert done["invalidOrInaccessibleIssueCount"] == 1
    assert [v.name for v in one.fields.fixVersions] == [version.name]
    assert [v.name for v in three.fields.fixVersions] != [version.name]
    # ... and a single edit of the locked issue is refused the same way.
    refused = http.put(f"{jira_sandbox.url}{API}/issue/OPS-3", json={"fields": {"fixVersions": []}}, timeout=10)
    assert refused.status_code == 400 and "fixVersions" in refused.json()["errors"]


def test_more_than_1000_issues_is_refused(jira_sandbox, http):
    keys = [f"OPS-{n}" for n in range(1, 1002)]
    body = {"selectedIssueIdsOrKeys": keys, "selectedActions": ["fixVersions"],
            "editedFieldsInput": {"multipleVersionPickerFields": [
                {"fieldId": "fixVersions", "bulkEditMultiSelectFieldOption": "REMOVE_ALL", "versions": []}]}}
    edit = http.post(f"{jira_sandbox.url}{API}/bulk/issues/fields", json=body, timeout=10)
    moves = http.post(f"{jira_sandbox.url}{API}/bulk/issues/transition", timeout=10,
                      json={"bulkTransitionInputs": [{"selectedIssueIdsOrKeys": keys[:600], "transitionId": "11"},
                                                     {"selectedIssueIdsOrKeys": keys[600:], "transitionId": "21"}]})

    for response in (edit, moves):
        assert response.status_code == 400
        assert response.json()["errorMessages"] == [
            "The number of issues selected exceeds the limit of 1000. Select fewer issues and try again."]


def test_bulk_transitions_list_what_the_issues_share_and_move_each_issue_its_own_way(jira_sandbox, http, client):
    new = [i.key for i in client.enhanced_search_issues('project = OPS AND status = "Open" ORDER BY key', maxResults=3)]
    listed = http.get(f"{jira_sandbox.url}{API}/bulk/issues/transition", params={"issueIdsOrKeys": ",".join(new)},
                      timeout=10).json()
    (workflow,) = listed["availableTransitions"]
    assert workflow["issues"] == new
    shared = {t["to"]["statusName"]: t["transitionId"] for t in workflow["transitions"]}
    assert [t["transitionName"] for t in workflow["transitions"]] == ["Triage", "Reject"]
    triage = shared["Triage"]
    client.transition_issue(new[2], str(triage))  # moved meanwhile: that issue no longer has the transition

    task = http.post(f"{jira_sandbox.url}{API}/bulk/issues/transition", timeout=10, json={
        "bulkTransitionInputs": [{"selectedIssueIdsOrKeys": new, "transitionId": str(triage)}]}).json()["taskId"]
    done, _ = poll_until_done(http, jira_sandbox, task)

    moved = {k: client.issue(k, fields="status").fields.status.name for k in new}
    assert moved == dict.fromkeys(new, "Triage")
    last = client.issue(new[2], fields="status").id
    assert done["failedAccessibleIssues"] == {last: [f"Transition id '{triage}' is not valid for this issue."]}
    assert len(done["processedAccessibleIssues"]) == 2


def test_bulk_operations_follow_the_accounts_permissions(jira_sandbox, http):
    knob(jira_sandbox, "/jira/permissions", {"revoke": ["EDIT_ISSUES", "TRANSITION_ISSUES"]})
    listed = http.get(f"{jira_sandbox.url}{API}/bulk/issues/transition", params={"issueIdsOrKeys": "OPS-1"}, timeout=10)
    assert listed.json()["availableTransitions"][0]["transitions"] == []
    body = {"selectedIssueIdsOrKeys": ["OPS-1"], "selectedActions": ["fixVersions"],
            "editedFieldsInput": {"multipleVersionPickerFields": [
                {"fieldId": "fixVersions", "bulkEditMultiSelectFieldOption": "REMOVE_ALL", "versions": []}]}}
    task = http.post(f"{jira_sandbox.url}{API}/bulk/issues/fields", json=body, timeout=10).json()["taskId"]
    done, _ = poll_until_done(http, jira_sandbox, task)
    assert list(done["failedAccessibleIssues"].values()) == [["You do not have permission to edit issues in this project."]]
    assert http.get(f"{jira_sandbox.url}{API}/bulk/queue/77", timeout=10).status_code == 404


def test_a_bulk_edit_sets_a_date_picker_and_a_text_field_with_the_version(jira_sandbox, http, client):
    # Atlassian's reference: a date picker's formattedDate is d/MMM/yy or dd-mm-yyyy, empty clears it;
    # a single-line text field takes {fieldId, text}. Issue JSON shows the date as YYYY-MM-DD.
    version = client.project_versions("OPS")[0]
    inputs = {"multipleVersionPickerFields": [{"fieldId": "fixVersions", "bulkEditMultiSelectFieldOption": "REPLACE",
                                               "versions": [{"versionId": version.id}]}],
              "datePickerFields": [{"fieldId": "customfield_10080", "date": {"formattedDate": "8/Dec/26"}}],
              "singleLineTextFields": [{"fieldId": "customfield_10081", "text": "testing"}]}
    body = {"selectedIssueIdsOrKeys": ["OPS-1", "OPS-2"], "editedFieldsInput": inputs,
            "selectedActions": ["fixVersions", "customfield_10080", "customfield_10081"]}

    submitted = http.post(f"{jira_sandbox.url}{API}/bulk/issues/fields", json=body, timeout=10)

    assert submitted.status_code == 201
    done, _ = poll_until_done(http, jira_sandbox, submitted.json()["taskId"])
    assert len(done["processedAccessibleIssues"]) == 2
    fields = client.issue("OPS-2", fields="fixVersions,customfield_10080,customfield_10081").fields
    assert ([v.name for v in fields.fixVersions], fields.customfield_10080, fields.customfield_10081) == (
        [version.name], "2026-12-08", "testing")
    iso = {**body, "selectedActions": ["customfield_10080"],
           "editedFieldsInput": {"datePickerFields": [{"fieldId": "customfield_10080", "date": {"formattedDate": "22-12-2026"}}]}}
    poll_until_done(http, jira_sandbox, http.post(f"{jira_sandbox.url}{API}/bulk/issues/fields", json=iso, timeout=10).json()["taskId"])
    assert client.issue("OPS-1", fields="customfield_10080").fields.customfield_10080 == "2026-12-22"
    wrong = {**iso, "editedFieldsInput": {"datePickerFields": [{"fieldId": "customfield_10080", "date": {"formattedDate": "2026-12-22"}}]}}
    refused = http.post(f"{jira_sandbox.url}{API}/bulk/issues/fields", json=wrong, timeout=10)
    assert refused.status_code == 400 and "d/MMM/yy" in refused.json()["errorMessages"][0]
    # A single edit takes the date as YYYY-MM-DD and refuses anything else with Jira's message.
    bad = http.put(f"{jira_sandbox.url}{API}/issue/OPS-1", json={"fields": {"customfield_10080": "8/Dec/26"}}, timeout=10)
    assert bad.status_code == 400 and bad.json()["errors"] == {"customfield_10080": "Error parsing date string: 8/Dec/26"}
