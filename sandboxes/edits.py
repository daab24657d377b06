"""What people do in the source systems, through the real client libraries.

The demo and the tests use these to change sandbox data the way a requester or
an admin would, so relsync sees those edits exactly as it would in production.
"""
from __future__ import annotations

import time
from typing import Any

import requests
from jira import JIRA
from pyairtable import Api, Table
from simple_salesforce import Salesforce


def jira_client(description: dict[str, Any]) -> JIRA:
    """A jira client logged in to the Jira sandbox described by ``start_sandboxes().describe()``."""
    jira = description["jira"]
    env = jira["env"]
    return JIRA(
        server=jira["url"],
        basic_auth=(env["RELSYNC_JIRA_EMAIL"], env["RELSYNC_JIRA_TOKEN"]),
        max_retries=0,
        options={"rest_api_version": "3"},
    )


def jira_client_as(description: dict[str, Any], name: str, email: str) -> JIRA:
    """A jira client signed in as a person (``name``, ``email``) with their own API token.

    The sandbox gives the person an account and a token, as a Jira admin would invite
    them; their edits then carry their name in the changelog.
    """
    jira = description["jira"]
    answer = requests.post(f"{jira['url']}/_sandbox/jira/people", json={"name": name, "email": email}, timeout=10)
    answer.raise_for_status()
    return JIRA(server=jira["url"], basic_auth=(email, answer.json()["token"]), max_retries=0,
                options={"rest_api_version": "3"})


def jira_move_to(client: JIRA, key: str, status: str) -> None:
    """Walk an issue through the workflow to ``status``, never through Rejected or Closed."""
    visited: set[str] = set()
    while True:
        current = client.issue(key, fields="status").fields.status.name
        if current == status:
            return
        visited.add(current)
        transitions = client.transitions(key)
        direct = [t for t in transitions if t["to"]["name"] == status]
        onward = [
            t for t in transitions if t["to"]["name"] not in visited | {"Rejected", "Closed"}
        ]
        step = (direct or onward or [None])[0]
        if step is None:
            raise RuntimeError(f"{key}: the workflow has no path from {current!r} to {status!r}")
        client.transition_issue(key, str(step["id"]))


def jira_new_request(
    client: JIRA, project: str, *, summary: str, priority: str, department: str, request_type: str, status: str
) -> str:
    """Create a change request as a requester would, then move it to ``status``; return its key."""
    issue = client.create_issue(
        fields={
            "project": {"key": project},
            "issuetype": {"name": "Change Request"},
            "summary": summary,
            "priority": {"name": priority},
            "customfield_10070": {"value": department},
            "customfield_10071": {"value": request_type},
            "description": {
                "type": "doc",
                "version": 1,
                "content": [{"type": "paragraph", "content": [{"type": "text", "text": summary}]}],
            },
        }
    )
    jira_move_to(client, issue.key, status)
    return issue.key


def jira_set_priority(client: JIRA, key: str, priority: str) -> None:
    """Change an issue's priority, as a triager would."""
    client.issue(key, fields="priority").update(fields={"priority": {"name": priority}})


def jira_wait_for_search(client: JIRA, jql: str, *, present: bool = True, timeout: float = 30.0) -> None:
    """Wait until Jira's search finds ``jql`` (or, ``present=False``, no longer finds it).

    Jira's search index shows writes a few seconds late; anyone who edits an issue and
    then searches for it meets the same lag.
    """
    deadline = time.monotonic() + timeout
    while bool(client.enhanced_search_issues(jql, maxResults=1, fields=["key"], json_result=True).get("issues")) != present:
        if time.monotonic() > deadline:
            raise TimeoutError(f"Jira's search still {'misses' if present else 'finds'} {jql!r} after {timeout:g} s")
        time.sleep(0.25)


def jira_wait_until_indexed(client: JIRA, *keys: str, timeout: float = 30.0) -> None:
    """Wait until Jira's search shows each issue as Get issue shows it now (its ``updated``).

    Search lags writes by a few seconds; anyone who edits an issue and then searches
    meets the same lag.
    """
    for key in keys:
        current = client.issue(key, fields="updated").fields.updated
        deadline = time.monotonic() + timeout
        while True:
            found = client.enhanced_search_issues(f'key = "{key}"', maxResults=1, fields=["updated"], json_result=True)["issues"]
            if found and found[0]["fields"]["updated"] == current:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"Jira's search still shows {key} as it was before {current} after {timeout:g} s")
            time.sleep(0.25)


def jira_grant(description: dict[str, Any], *permissions: str) -> list[str]:
    """Grant the integration account project permissions (``ADMINISTER_PROJECTS``), as a Jira admin would.

    In Jira an admin adds the account to a role that holds them in the project's
    permission scheme; the sandbox takes the grant through its permissions knob.
    Returns the keys the account now holds.
    """
    url = f"{description['jira']['url']}/_sandbox/jira/permissions"
    response = requests.post(url, json={"grant": list(permissions)}, timeout=10)
    response.raise_for_status()
    return list(response.json()["permissions"])


def airtable_table(description: dict[str, Any]) -> Table:
    """The change-request table of the Airtable sandbox, through pyairtable."""
    box = description["airtable"]
    api = Api(box["env"]["RELSYNC_AIRTABLE_TOKEN"], endpoint_url=box["url"], retry_strategy=None)
    return api.table(box["base"], box["table"])


def airtable_records(description: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every record's fields by id, read as a person's script would right after a relsync run:
    once the run's calls have left Airtable's one-second window (5 requests/s per base; a 429
    would cost a 30-second penalty)."""
    time.sleep(1.1)
    return {record["id"]: dict(record["fields"]) for record in airtable_table(description).all()}


def airtable_update(description: dict[str, Any], record_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Edit one record as a person's script would right after a relsync run (see ``airtable_records``)."""
    time.sleep(1.1)
    return dict(airtable_table(description).update(record_id, fields))


def salesforce_client(description: dict[str, Any], ca_file: str) -> Salesforce:
    """A simple-salesforce client logged in to the Salesforce sandbox (client credentials)."""
    box = description["salesforce"]
    session = requests.Session()
    session.verify = ca_file
    session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise replace the sandbox's CA
    token = session.post(
        f"{box['url']}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": box["env"]["RELSYNC_SF_CLIENT_ID"],
            "client_secret": box["env"]["RELSYNC_SF_CLIENT_SECRET"],
        },
        timeout=30,
    )
    token.raise_for_status()
    body = token.json()
    return Salesforce(instance_url=body["instance_url"], session_id=body["access_token"], session=session)


def salesforce_client_as(description: dict[str, Any], ca_file: str, name: str, email: str) -> Salesforce:
    """A simple-salesforce client on a session of a person (``name``, ``email``): their edits carry their name."""
    box = description["salesforce"]
    session = requests.Session()
    session.verify = ca_file
    session.trust_env = False
    answer = session.post(f"{box['url']}/_sandbox/salesforce/people", json={"name": name, "email": email}, timeout=30)
    answer.raise_for_status()
    body = answer.json()
    return Salesforce(instance_url=body["instance_url"], session_id=body["access_token"], session=session)
