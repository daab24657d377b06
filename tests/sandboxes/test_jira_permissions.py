"""The Jira sandbox's permissions: what an ordinary integration account may do, and how Jira refuses the rest.

Modelled on (looked up, not guessed):
- ``GET mypermissions``: ``permissions`` is required since February 2019 (Atlassian change
  notice; clients then saw 400 "The 'permissions' query parameter is required."); each
  entry is ``{"id", "key", "name", "type", "description", "havePermission"}`` (the REST
  reference's example: EDIT_ISSUES is id 12, "Ability to edit issues."); 404 when the
  project is not found or the account may not view it.
- Creating a version needs Administer Projects; without it Jira answers 404 "Project with
  key 'TST' either does not exist or you do not have permission to create versions in
  it." (Atlassian's REST client integration test JerseyVersionClientTest; the Cloud
  reference lists 404 for "the user does not have the required permissions").
- Editing without Edit Issues: 403 "You do not have permission to edit issues in this
  project." (Jira's DefaultIssueService message, seen as a 403 body by integrators).
- Resolve Issues "includes the ability to set a fix version" (Jira's permission list).
- Without Transition Issues the issue lists no transitions and a transition POST is 400
  "It seems that you have tried to perform a workflow operation (...) that is not valid
  for the current state of this issue (...)" (Atlassian's TestTransitionPermission).
"""
from __future__ import annotations

import pytest
import requests
from jira import JIRA, JIRAError

from sandboxes.server import RunningSandbox
from tests.sandboxes.conftest import calls, knob

CHECKED = "BROWSE_PROJECTS,EDIT_ISSUES,RESOLVE_ISSUES,TRANSITION_ISSUES,ADMINISTER_PROJECTS"


def held(client: JIRA, keys: str = CHECKED) -> dict[str, bool]:
    answer = client.my_permissions(projectKey="OPS", permissions=keys)["permissions"]
    return {key: entry["havePermission"] for key, entry in answer.items()}


def test_mypermissions_answers_each_key_asked_for_in_jiras_shape(client: JIRA) -> None:
    answer = client.my_permissions(projectKey="OPS", permissions="EDIT_ISSUES,ADMINISTER_PROJECTS")

    assert answer == {"permissions": {
        "EDIT_ISSUES": {"id": "12", "key": "EDIT_ISSUES", "name": "Edit Issues", "type": "PROJECT",
                        "description": "Ability to edit issues.", "havePermission": True},
        "ADMINISTER_PROJECTS": {"id": "23", "key": "ADMINISTER_PROJECTS", "name": "Administer Projects", "type": "PROJECT",
                                "description": "Ability to administer a project in Jira.", "havePermission": False},
    }}


def test_the_integration_account_is_a_project_member_without_administration(client: JIRA) -> None:
    assert held(client) == {"BROWSE_PROJECTS": True, "EDIT_ISSUES": True, "RESOLVE_ISSUES": True,
                            "TRANSITION_ISSUES": True, "ADMINISTER_PROJECTS": False}


def test_mypermissions_refuses_a_request_without_keys_and_an_unseen_project(http: requests.Session,
                                                                           jira_sandbox: RunningSandbox) -> None:
    url = f"{jira_sandbox.url}/rest/api/3/mypermissions"

    bare = http.get(url, params={"projectKey": "OPS"})
    unknown = http.get(url, params={"projectKey": "NOPE", "permissions": "EDIT_ISSUES"})
    knob(jira_sandbox, "/jira/permissions", {"revoke": ["BROWSE_PROJECTS"]})
    hidden = http.get(url, params={"projectKey": "OPS", "permissions": "EDIT_ISSUES"})

    assert bare.status_code == 400 and bare.json() == {"errorMessages": ["The 'permissions' query parameter is required."],
                                                      "errors": {}}
    assert unknown.status_code == 404 and unknown.json()["errorMessages"] == ["No project could be found with key 'NOPE'."]
    assert hidden.status_code == 404


def test_creating_a_version_takes_administer_projects_granted_by_name(client: JIRA, jira_sandbox: RunningSandbox) -> None:
    with pytest.raises(JIRAError) as refused:
        client.create_version("BS 2026.12.08", "OPS")
    assert refused.value.status_code == 404
    assert refused.value.response.json() == {"errorMessages": [
        "Project with key 'OPS' either does not exist or you do not have permission to create versions in it."], "errors": {}}
    assert "BS 2026.12.08" not in {v.name for v in client.project_versions("OPS")}

    granted = knob(jira_sandbox, "/jira/permissions", {"grant": ["ADMINISTER_PROJECTS"]}).json()

    assert "ADMINISTER_PROJECTS" in granted["permissions"] and granted["email"] == "relsync@example.com"
    assert client.create_version("BS 2026.12.08", "OPS").name == "BS 2026.12.08"
    assert held(client, "ADMINISTER_PROJECTS") == {"ADMINISTER_PROJECTS": True}


def test_an_edit_without_edit_issues_is_403_and_a_fix_version_needs_resolve_issues(
        http: requests.Session, jira_sandbox: RunningSandbox) -> None:
    url = f"{jira_sandbox.url}/rest/api/3/issue/OPS-1"
    knob(jira_sandbox, "/jira/permissions", {"revoke": ["RESOLVE_ISSUES"]})

    versions = http.put(url, json={"fields": {"fixVersions": [{"name": "2026.11"}]}})
    summary = http.put(url, json={"fields": {"summary": "Still editable"}})
    knob(jira_sandbox, "/jira/permissions", {"revoke": ["EDIT_ISSUES"]})
    refused = http.put(url, json={"fields": {"summary": "Not any more"}})

    assert versions.status_code == 400
    assert versions.json()["errors"] == {"fixVersions": "Field 'fixVersions' cannot be set. It is not on the appropriate "
                                                         "screen, or unknown."}
    assert summary.status_code == 204
    assert refused.status_code == 403
    assert refused.json() == {"errorMessages": ["You do not have permission to edit issues in this project."], "errors": {}}
    assert http.get(url, params={"fields": "summary"}).json()["fields"]["summary"] == "Still editable"


def test_without_transition_issues_no_transition_is_listed_or_made(client: JIRA, jira_sandbox: RunningSandbox) -> None:
    offered = client.transitions("OPS-1")
    status = client.issue("OPS-1", fields="status").fields.status.name
    knob(jira_sandbox, "/jira/permissions", {"revoke": ["TRANSITION_ISSUES"]})

    assert client.transitions("OPS-1") == []
    with pytest.raises(JIRAError) as refused:
        client.transition_issue("OPS-1", offered[0]["id"])

    assert refused.value.status_code == 400
    assert refused.value.response.json()["errorMessages"] == [
        f"It seems that you have tried to perform a workflow operation ({offered[0]['name']}) that is not valid for the "
        "current state of this issue (OPS-1). The likely cause is that somebody has changed the issue recently, please "
        "look at the issue history for details."]
    assert client.issue("OPS-1", fields="status").fields.status.name == status


def test_without_browse_projects_the_project_and_its_issues_do_not_exist(
        http: requests.Session, jira_sandbox: RunningSandbox) -> None:
    knob(jira_sandbox, "/jira/permissions", {"revoke": ["BROWSE_PROJECTS"]})
    api = f"{jira_sandbox.url}/rest/api/3"

    search = http.get(f"{api}/search/jql", params={"jql": 'project = "OPS"', "fields": "summary"})
    issue = http.get(f"{api}/issue/OPS-1")
    versions = http.get(f"{api}/project/OPS/versions")

    assert search.status_code == 400
    assert search.json()["errorMessages"] == ["The value 'OPS' does not exist for the field 'project'."]
    assert issue.status_code == 404
    assert issue.json()["errorMessages"] == ["Issue does not exist or you do not have permission to see it."]
    assert versions.status_code == 404 and versions.json()["errorMessages"] == ["No project could be found with key 'OPS'."]


def test_the_permissions_knob_names_unknown_keys_and_accounts(jira_sandbox: RunningSandbox) -> None:
    url = f"{jira_sandbox.url}/_sandbox/jira/permissions"

    typo = requests.post(url, json={"grant": ["ADMIN_PROJECTS"]}, timeout=10)
    stranger = requests.post(url, json={"account": "nobody@example.com", "grant": ["ADMINISTER"]}, timeout=10)
    listed = requests.get(url, timeout=10).json()

    assert typo.status_code == 400 and "ADMIN_PROJECTS" in typo.json()["error"]
    assert stranger.status_code == 400 and "nobody@example.com" in stranger.json()["error"]
    assert "ADMINISTER_PROJECTS" not in listed["permissions"] and "EDIT_ISSUES" in listed["permissions"]
    assert calls(jira_sandbox)["total"] == 0  # knobs are never counted


def test_a_fault_after_the_request_keeps_its_effect_and_answers_the_error(client: JIRA, http: requests.Session,
                                                                          jira_sandbox: RunningSandbox) -> None:
    target = client.transitions("OPS-2")[0]
    knob(jira_sandbox, "/faults", {"method": "POST", "path": "/rest/api/3/issue/OPS-2/transitions", "status": 504,
                                   "after": True})

    answer = http.post(f"{jira_sandbox.url}/rest/api/3/issue/OPS-2/transitions", json={"transition": {"id": target["id"]}})

    assert answer.status_code == 504 and answer.json() == {"errorMessages": ["Gateway Timeout"], "errors": {}}
    assert client.issue("OPS-2", fields="status").fields.status.name == target["to"]["name"]
    assert calls(jira_sandbox)["statuses"]["504"] == 1
