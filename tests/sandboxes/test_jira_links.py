"""Issue links in the Jira sandbox, as Atlassian's issue-linking model describes them.

From developer.atlassian.com "Jira issue linking model": GET issueLinkType lists types with
a name and inward/outward descriptions (Blocks: inward "is blocked by", outward "blocks");
on GET issue a link carries either ``inwardIssue`` (label it with the type's ``inward``)
or ``outwardIssue`` (label it with ``outward``). Creating a link with ``inwardIssue`` X and
``outwardIssue`` Y under Blocks makes X block Y (the behaviour reported against clients
that swapped the two, atlassian/atlassian-mcp-server#112).
"""
from __future__ import annotations

import requests
from jira import JIRA

from sandboxes.server import RunningSandbox


def test_a_blocks_link_reads_back_from_both_sides(client: JIRA, jira_sandbox: RunningSandbox, http: requests.Session) -> None:
    types = {t.name: (t.inward, t.outward) for t in client.issue_link_types()}
    assert types["Blocks"] == ("is blocked by", "blocks")
    before = client.issue("OPS-1", fields="updated").fields.updated

    client.create_issue_link("Blocks", inwardIssue="OPS-2", outwardIssue="OPS-1")  # OPS-2 blocks OPS-1

    blocked = client.issue("OPS-1", fields="issuelinks,updated").fields
    assert [(link.type.inward, link.inwardIssue.key) for link in blocked.issuelinks] == [("is blocked by", "OPS-2")]
    assert blocked.updated > before
    blocker = client.issue("OPS-2", fields="issuelinks").fields.issuelinks
    assert [(link.type.outward, link.outwardIssue.key) for link in blocker] == [("blocks", "OPS-1")]
    # The changelog says it in words, on both issues.
    history = http.get(f"{jira_sandbox.url}/rest/api/3/issue/OPS-1/changelog", timeout=10).json()["values"]
    assert history[-1]["items"][0]["toString"] == "This issue is blocked by OPS-2"


def test_linking_an_unknown_issue_or_type_is_refused(client: JIRA, jira_sandbox: RunningSandbox, http: requests.Session) -> None:
    url = f"{jira_sandbox.url}/rest/api/3/issueLink"
    missing = http.post(url, json={"type": {"name": "Blocks"}, "inwardIssue": {"key": "OPS-99999"},
                                   "outwardIssue": {"key": "OPS-1"}}, timeout=10)
    assert missing.status_code == 404 and "does not exist" in missing.json()["errorMessages"][0]
    wrong = http.post(url, json={"type": {"name": "Precedes"}, "inwardIssue": {"key": "OPS-2"},
                                 "outwardIssue": {"key": "OPS-1"}}, timeout=10)
    assert wrong.status_code == 404 and "No issue link type with name 'Precedes'" in wrong.json()["errorMessages"][0]
