"""The Jira Cloud sandbox, driven over real HTTP by the real ``jira`` client (jira 3.10).

What each behaviour is modelled on (looked up, not guessed):
- search/jql: paged by ``nextPageToken`` until it is absent, no ``total``; ``maxResults``
  defaults to 50, is refused outside 1-5000, and pages hold at most 100 issues unless only
  id/key are asked for (Atlassian REST reference: "It returns max 5000 issues" when
  requesting id or key only); with no ``fields`` only issue ids come back (Atlassian's
  reference, and integrators' migration notes: "returns only the issue id by default").
- A query with no restriction is refused: "Unbounded JQL queries are not allowed here.
  Please add a search restriction to your query." (quoted in many public reports).
- /rest/api/{2,3}/search answer 410 with the CHANGE-2046 sentence, verbatim from reports.
- Unknown issue: "Issue does not exist or you do not have permission to see it."; bad
  fields on edit: "Field 'x' cannot be set. It is not on the appropriate screen, or
  unknown." (Atlassian's REST functional tests); "The summary is invalid because it
  contains newline characters." (the jira client's own autofix code); "Version name 'x'
  is not valid"; "A version with this name already exists in this project."; "Transition
  id 'x' is not valid for this issue."; "No project could be found with key 'x'."
- 401 body "Client must be authenticated to access this resource." with an OAuth realm;
  429 with Retry-After, X-RateLimit-* and RateLimit-Reason (Atlassian's rate-limiting page).
- Pages re-run the query, so edits during paging shift records (Atlassian KB
  "Inconsistent paginated API search result while using JQL").
"""
from __future__ import annotations

import datetime as dt
import functools
import time
from typing import Any

import pytest
import requests
from jira import JIRA, JIRAError

from sandboxes.clock import ManualTime
from sandboxes.jira.app import create_jira_app
from sandboxes.seed import SeedRequest, seed_requests
from sandboxes.server import RunningSandbox, serve
from tests.sandboxes.conftest import RECORDS, SEED, calls, knob

SEEDS = seed_requests(RECORDS, SEED)
ALL_KEYS = {f"OPS-{n}" for n in range(1, RECORDS + 1)}
REMOVED = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)
NO_ISSUE = "Issue does not exist or you do not have permission to see it."
ADF = {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Please do it."}]}]}


def jira_time(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")


def ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def keys_where(predicate: Any) -> set[str]:
    return {f"OPS-{r.seq}" for r in SEEDS if predicate(r)}


def search_pages(client: JIRA, jql: str, fields: list[str], max_results: int = 100,
                 reconcile: list[int] | None = None) -> list[dict[str, Any]]:
    pages, token = [], None
    while True:
        page = client.enhanced_search_issues(jql, nextPageToken=token, maxResults=max_results, fields=list(fields),
                                             reconcileIssues=reconcile, json_result=True)
        pages.append(page)
        token = page.get("nextPageToken")
        if not token:
            return pages


def search_keys(client: JIRA, jql: str, reconcile: list[int] | None = None) -> list[str]:
    """Keys matching ``jql``; ``reconcile`` names issues written just now, which search would not see yet."""
    return [i["key"] for page in search_pages(client, jql, ["key"], 5000, reconcile) for i in page["issues"]]


def refused(call: Any) -> JIRAError:
    with pytest.raises(JIRAError) as caught:
        call()
    return caught.value


def test_server_info_and_myself_through_the_client(client: JIRA, jira_sandbox: RunningSandbox, credentials: tuple[str, str]) -> None:
    info = client.server_info()
    assert info["deploymentType"] == "Cloud" and client._is_cloud
    assert info["baseUrl"] == jira_sandbox.url and all(isinstance(n, int) for n in info["versionNumbers"])
    me = client.myself()
    assert me["emailAddress"] == credentials[0] and len(me["accountId"]) == 24 and me["accountType"] == "atlassian"


def test_field_list_has_system_and_custom_fields(client: JIRA) -> None:
    fields = {f["id"]: f for f in client.fields()}
    assert {"summary", "description", "status", "priority", "issuetype", "reporter", "assignee", "created", "updated",
            "fixVersions", "project", "labels", "components"} <= set(fields)
    department = fields["customfield_10070"]
    assert department["name"] == "Department" and department["custom"] is True
    assert department["clauseNames"] == ["cf[10070]", "Department"]
    select = "com.atlassian.jira.plugin.system.customfieldtypes:select"
    assert department["schema"] == {"type": "option", "custom": select, "customId": 10070}
    assert fields["customfield_10071"]["name"] == "Request Type"
    assert client._fields_cache["Department"] == "customfield_10070"  # the client translates names through this


@pytest.mark.parametrize("many_fields", [False, True])
def test_paging_visits_every_issue_exactly_once(client: JIRA, jira_sandbox: RunningSandbox, many_fields: bool) -> None:
    # Three small fields fill pages of 100; every navigable field makes pages short
    # (test_jira_real.py has the rule), and a short page is not the end.
    fields = ["*navigable"] if many_fields else ["summary", "updated", "Department"]
    knob(jira_sandbox, "/calls/reset")
    pages = search_pages(client, "project = OPS ORDER BY updated ASC", fields)
    keys = [issue["key"] for page in pages for issue in page["issues"]]
    assert len(keys) == RECORDS and set(keys) == ALL_KEYS
    assert all("nextPageToken" in p and p["isLast"] is False and p["issues"] for p in pages[:-1])
    assert "nextPageToken" not in pages[-1] and pages[-1]["isLast"] is True
    assert all("total" not in p and "startAt" not in p for p in pages)
    if many_fields:
        assert len(pages) > 3 and all(len(p["issues"]) < 100 for p in pages)
    else:
        assert [len(p["issues"]) for p in pages] == [100, 100, 50]
        assert set(pages[0]["issues"][0]["fields"]) == {"summary", "updated", "customfield_10070"}  # only what was asked for
    assert calls(jira_sandbox)["calls"] == {"GET /rest/api/3/field": 1, "GET /rest/api/3/search/jql": len(pages)}


def test_max_results_is_capped_and_range_checked(client: JIRA, http: requests.Session, jira_sandbox: RunningSandbox) -> None:
    wide = client.enhanced_search_issues("project = OPS", maxResults=1000, fields=["summary"], json_result=True)
    assert len(wide["issues"]) == 100 and wide["nextPageToken"]
    keys_only = client.enhanced_search_issues("project = OPS", maxResults=5000, fields=["key"], json_result=True)
    assert len(keys_only["issues"]) == RECORDS and keys_only["isLast"] is True
    url = f"{jira_sandbox.url}/rest/api/3/search/jql"
    for bad in (0, -1, 5001):
        answer = http.get(url, params={"jql": "project = OPS", "maxResults": bad})
        assert answer.status_code == 400 and answer.json()["errorMessages"]
    default = http.get(url, params={"jql": "project = OPS"}).json()
    assert default["issues"][:3] == [{"id": "10001"}, {"id": "10002"}, {"id": "10003"}]  # ids only by default
    assert len(default["issues"]) == 50 and default["isLast"] is False


def test_post_search_equals_get_and_refuses_fields_it_does_not_know(
    client: JIRA, http: requests.Session, jira_sandbox: RunningSandbox
) -> None:
    jql = "project = OPS AND priority = Highest ORDER BY created DESC"
    by_get = client.enhanced_search_issues(jql, maxResults=100, fields=["priority"], json_result=True)
    by_post = client.enhanced_search_issues(jql, maxResults=100, fields=["priority"], json_result=True, use_post=True)
    assert by_post == by_get and by_get["issues"]
    named = client.enhanced_search_issues(jql, maxResults=5, fields=["priority", "Department"], expand="names", json_result=True)
    assert named["names"] == {"priority": "Priority", "customfield_10070": "Department"} and "names" not in named["issues"][0]
    answer = http.post(f"{jira_sandbox.url}/rest/api/3/search/jql", json={"jql": jql, "startAt": 0})
    assert answer.status_code == 400
    assert answer.json()["errorMessages"] == ["Invalid request payload. Refer to the REST API documentation and try again."]


def test_order_by_updated_breaks_ties_deterministically(client: JIRA) -> None:
    def rows(direction: str) -> list[tuple[int, int]]:
        pages = search_pages(client, f"project = OPS ORDER BY updated {direction}", ["updated"])
        return [(ms(jira_time(i["fields"]["updated"])), int(i["id"])) for p in pages for i in p["issues"]]

    ascending = rows("ASC")
    assert ascending == sorted(ascending)
    assert len({u for u, _ in ascending}) < len(ascending)  # the seed has ties to break
    descending = rows("DESC")
    assert descending == sorted(descending, key=lambda r: (-r[0], r[1]))  # ties stay in id order
    assert rows("ASC") == ascending  # and the order is stable between runs


def test_epoch_millisecond_and_date_filters(client: JIRA, jira_sandbox: RunningSandbox) -> None:
    threshold = sorted(r.updated for r in SEEDS)[150]
    at_or_after = search_keys(client, f"project = OPS AND updated >= {ms(threshold)}")
    assert set(at_or_after) == keys_where(lambda r: r.updated >= threshold)
    assert set(search_keys(client, f"project = OPS AND updated > {ms(threshold)}")) == keys_where(lambda r: r.updated > threshold)
    # A bare date is read in the account's profile time zone.
    knob(jira_sandbox, "/jira/config", {"timezone": "Pacific/Auckland"})
    midnight = dt.datetime(2026, 9, 1, tzinfo=dt.timezone(dt.timedelta(hours=12)))
    assert set(search_keys(client, 'project = OPS AND created >= "2026-09-01"')) == keys_where(lambda r: r.created >= midnight)
    issue = client.issue("OPS-1", fields="created")
    assert jira_time(issue.fields.created) == SEEDS[0].created and issue.fields.created[-5:] in ("+1200", "+1300")


@pytest.mark.parametrize(
    ("jql", "predicate"),
    [
        ("project = OPS AND status = Approved", lambda r: r.status == "approved"),
        ("project = OPS AND status in (Open, Triage)", lambda r: r.status in ("new", "triaged")),
        ("project = OPS AND priority in (Highest, High)", lambda r: r.priority in ("critical", "high")),
        ("project = OPS AND priority > Medium AND status != Approved",
         lambda r: r.priority in ("critical", "high") and r.status != "approved"),
        ("project = OPS AND assignee is EMPTY", lambda r: r.owner is None),
        ('project = OPS AND Department = "Sales Ops"', lambda r: r.department == "Sales Ops" and not r.quirks.no_custom_fields),
        ("project = OPS AND cf[10070] = 'Sales Ops'", lambda r: r.department == "Sales Ops" and not r.quirks.no_custom_fields),
        ('"Request Type" = "Data fix" AND project = OPS',
         lambda r: r.request_type == "Data fix" and not r.quirks.no_custom_fields),
        ("project = OPS AND labels = audit", lambda r: "audit" in r.tags),
        ("project = OPS AND fixVersion is not EMPTY", lambda r: r.status in ("deployed", "closed")),
        ("key in (OPS-1, OPS-7) OR issuekey = OPS-250", lambda r: r.seq in (1, 7, 250)),
        ('project = OPS AND summary ~ "\\"Renewal Risk\\""', lambda r: "renewal risk" in r.title.lower()),
        ("project = OPS AND NOT (status = Approved OR status = Closed)", lambda r: r.status not in ("approved", "closed")),
        (f'reporter = "{SEEDS[0].requester.email}"', lambda r: r.requester == SEEDS[0].requester),
    ],
)
def test_jql_filters_match_the_seeded_data(client: JIRA, jql: str, predicate: Any) -> None:
    expected = keys_where(predicate)
    assert expected, "each filter should select something"
    assert set(search_keys(client, jql)) == expected


def test_escaped_quotes_and_unicode_in_jql(client: JIRA) -> None:
    created = client.create_issue(fields={"project": {"key": "OPS"}, "issuetype": {"name": "Change Request"},
                                          "summary": "Rename \"Legacy\" to 'Tier' for Zürich"})
    just_made = [int(created.id)]  # search shows a new issue after the index lag, or at once when reconciled
    assert search_keys(client, 'project = OPS AND summary ~ "\\"Legacy\\" Zürich"', just_made) == [created.key]
    assert search_keys(client, "project = 'OPS' AND summary ~ 'legacy'", just_made) == [created.key]


@pytest.mark.parametrize(
    ("jql", "message"),
    [
        ("project = OPS AND nosuch = 1", "Field 'nosuch' does not exist or you do not have permission to view it."),
        ("project = OPS AND assignee = nosuchFn()", "Unable to find JQL function 'nosuchFn()'."),
        ("project = OPS AND status = Bogus", "The value 'Bogus' does not exist for the field 'status'."),
        ("project = OPS AND", "Error in the JQL Query: Expecting a field name at the end of the query."),
        ("ORDER BY updated ASC", "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."),
        ("key = OPS-9999", "An issue with key 'OPS-9999' does not exist for field 'key'."),
        ("project = OPS AND status ~ Open", "The operator '~' is not supported by the 'status' field."),
        ('project = OPS AND updated >= "last week"',
         "Date value 'last week' for field 'updated' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', "
         "'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."),
    ],
)
def test_unsupported_jql_is_refused_with_jiras_body(client: JIRA, jql: str, message: str) -> None:
    error = refused(lambda: client.enhanced_search_issues(jql, maxResults=10, fields=["key"], json_result=True))
    assert error.status_code == 400
    assert error.response.json() == {"errorMessages": [message], "errors": {}}


def test_removed_search_endpoints_answer_410(http: requests.Session, jira_sandbox: RunningSandbox) -> None:
    for api in ("2", "3"):
        url = f"{jira_sandbox.url}/rest/api/{api}/search"
        for answer in (http.get(url, params={"jql": "project = OPS"}), http.post(url, json={"jql": "project = OPS"})):
            assert answer.status_code == 410
            assert answer.json() == {"errorMessages": [REMOVED], "errors": {}}


def test_page_tokens_belong_to_their_query_and_can_be_expired(client: JIRA, jira_sandbox: RunningSandbox) -> None:
    first = client.enhanced_search_issues("project = OPS ORDER BY key", maxResults=10, fields=["summary"], json_result=True)
    token = first["nextPageToken"]
    page = functools.partial(client.enhanced_search_issues, maxResults=10, fields=["summary"], json_result=True)
    for jql, bad in (("project = OPS ORDER BY updated", token), ("project = OPS ORDER BY key", "garbage")):
        error = refused(functools.partial(page, jql, nextPageToken=bad))
        assert error.status_code == 400 and error.response.json()["errorMessages"][0].startswith("The nextPageToken is invalid")
    second = page("project = OPS ORDER BY key", nextPageToken=token)
    assert [i["key"] for i in second["issues"]] == [f"OPS-{n}" for n in range(11, 21)]
    knob(jira_sandbox, "/jira/expire-tokens")
    error = refused(lambda: page("project = OPS ORDER BY key", nextPageToken=token))
    assert error.status_code == 400


def test_records_edited_during_paging_shift_like_in_jira(client: JIRA, jira_sandbox: RunningSandbox) -> None:
    # An index that keeps up with writes, so the edit shows on the very next page.
    knob(jira_sandbox, "/jira/config", {"index_lag_seconds": 0})
    jql = "project = OPS ORDER BY updated ASC"
    before = search_keys(client, jql)
    first = client.enhanced_search_issues(jql, maxResults=50, fields=["summary"], json_result=True)
    seen = [i["key"] for i in first["issues"]]
    assert seen == before[:50]
    knob(jira_sandbox, "/jira/edit-during-paging", {"edits": [{"issue": before[1], "fields": {"summary": "Edited mid-sync"}}]})
    token = first["nextPageToken"]
    while token:
        page = client.enhanced_search_issues(jql, nextPageToken=token, maxResults=50, fields=["summary"], json_result=True)
        seen += [i["key"] for i in page["issues"]]
        token = page.get("nextPageToken")
    # The edited record moved to the end and is read twice; the one that slid into page 1's range is never read.
    assert seen.count(before[1]) == 2 and seen[-1] == before[1]
    assert set(seen) == set(before) - {before[50]}
    history = client.issue(before[1], expand="changelog").raw["changelog"]["histories"][0]
    assert history["author"]["displayName"] == "Sandbox Editor" and history["items"][0]["toString"] == "Edited mid-sync"
    assert search_keys(client, jql)[-1] == before[1]  # the knob fired once, on the next page only


def test_create_edit_and_delete_through_the_client(client: JIRA, http: requests.Session, jira_sandbox: RunningSandbox) -> None:
    issue = client.create_issue(fields={
        "project": {"key": "OPS"}, "issuetype": {"name": "Change Request"}, "summary": "New field on Quote",
        "description": ADF, "priority": {"name": "High"}, "customfield_10070": {"value": "IT"}, "labels": ["audit"],
    })
    assert issue.key == f"OPS-{RECORDS + 1}"
    fetched = client.issue(issue.key)
    assert fetched.fields.status.name == "Open" and fetched.fields.priority.name == "High"
    assert fetched.raw["fields"]["description"] == ADF and fetched.fields.customfield_10070.value == "IT"
    assert fetched.fields.reporter.accountId == client.myself()["accountId"]
    assert fetched.fields.created == fetched.fields.updated
    assert client.issue(issue.key, expand="changelog").raw["changelog"]["total"] == 0  # creation is not a change
    fetched.update(fields={"summary": "New field on Quote (v2)"})
    assert client.issue(issue.key).fields.summary == "New field on Quote (v2)"
    fetched.delete()
    gone = http.get(f"{jira_sandbox.url}/rest/api/3/issue/{issue.key}")
    assert gone.status_code == 404 and gone.json() == {"errorMessages": [NO_ISSUE], "errors": {}}
    again = client.create_issue(fields={"project": {"id": "10000"}, "issuetype": {"id": "10010"}, "summary": "Another"})
    assert again.key == f"OPS-{RECORDS + 2}"  # keys are never reused


def test_invalid_edits_are_refused_field_by_field_and_change_nothing(client: JIRA) -> None:
    issue = client.issue("OPS-3")
    error = refused(lambda: issue.update(fields={
        "summary": "two\nlines", "nosuch": 1, "fixVersions": [{"name": "9999.99"}], "customfield_10070": {"value": "Nope"},
    }))
    assert error.status_code == 400
    assert error.response.json() == {"errorMessages": [], "errors": {
        "summary": "The summary is invalid because it contains newline characters.",
        "nosuch": "Field 'nosuch' cannot be set. It is not on the appropriate screen, or unknown.",
        "fixVersions": "Version name '9999.99' is not valid",
        "customfield_10070": "Option value 'Nope' is not valid",
    }}
    assert "Field 'nosuch' cannot be set" in error.text
    error = refused(lambda: issue.update(fields={"status": {"name": "Closed"}, "description": "plain text"}))
    assert error.response.json()["errors"] == {
        "status": "Field 'status' cannot be set. It is not on the appropriate screen, or unknown.",
        "description": "Operation value must be an Atlassian Document (see the Atlassian Document Format)",
    }
    error = refused(lambda: issue.update(fields={"summary": "x"}, update={"summary": [{"set": "y"}]}))
    assert error.response.json()["errorMessages"] == ["Field 'summary' cannot appear in both 'fields' and 'update'"]
    after = client.issue("OPS-3")
    assert after.fields.summary == SEEDS[2].title and after.fields.updated == issue.fields.updated


def test_a_single_line_text_field_takes_any_text_up_to_255_characters(client: JIRA, http: requests.Session,
                                                                      jira_sandbox: RunningSandbox) -> None:
    # Jira Cloud's "Text Field (single line)": free text, so a date typed into it can be anything.
    field = next(f for f in client.fields() if f["id"] == "customfield_10072")
    assert (field["name"], field["clauseNames"]) == ("Requested on", ["cf[10072]", "Requested on"])
    assert field["schema"]["custom"] == "com.atlassian.jira.plugin.system.customfieldtypes:textfield"
    issue = client.issue("OPS-4")
    assert issue.raw["fields"]["customfield_10072"] is None  # seeded issues leave it empty
    issue.update(fields={"customfield_10072": "next Tuesday"})
    assert client.issue("OPS-4").raw["fields"]["customfield_10072"] == "next Tuesday"
    items = http.get(f"{jira_sandbox.url}/rest/api/3/issue/OPS-4/changelog").json()["values"][-1]["items"]
    assert items == [{"field": "Requested on", "fieldtype": "custom", "fieldId": "customfield_10072", "from": None,
                      "fromString": None, "to": None, "toString": "next Tuesday"}]
    error = refused(lambda: issue.update(fields={"customfield_10072": "x" * 256}))
    assert error.response.json()["errors"] == {
        "customfield_10072": "The entered text is too long. It exceeds the allowed limit of 255 characters."
    }
    issue.update(fields={"customfield_10072": ""})
    assert client.issue("OPS-4").raw["fields"]["customfield_10072"] is None


def test_fix_versions_by_name_and_update_operations(client: JIRA) -> None:
    issue = client.issue("OPS-12")
    issue.update(fields={"fixVersions": [{"name": "2026.11"}]})
    assert [v.name for v in client.issue("OPS-12").fields.fixVersions] == ["2026.11"]
    assert "OPS-12" in search_keys(client, 'project = OPS AND fixVersion = "2026.11"', [10012])
    issue.update(update={"fixVersions": [{"add": {"name": "2026.10"}}, {"remove": {"name": "2026.11"}}],
                         "labels": [{"add": "exec-ask"}, {"add": "zeta"}]})
    reloaded = client.issue("OPS-12")
    assert [v.name for v in reloaded.fields.fixVersions] == ["2026.10"]
    assert reloaded.fields.labels == sorted(set(SEEDS[11].tags) | {"exec-ask", "zeta"})
    items = client.issue("OPS-12", expand="changelog").raw["changelog"]["histories"][0]["items"]
    assert {(i["field"], i["fieldId"], i["fromString"], i["toString"]) for i in items if i["fieldId"] == "fixVersions"} == {
        ("Fix Version", "fixVersions", "2026.11", None), ("Fix Version", "fixVersions", None, "2026.10")}
    error = refused(lambda: issue.update(update={"fixVersions": [{"rename": {"name": "x"}}]}))
    assert error.response.json()["errorMessages"] == [
        "Field with id' fixVersions' and name 'Fix versions' does not support operation 'rename' "
        "Supported operation(s) are: 'set,add,remove'"]


def test_versions_list_create_and_refuse_duplicates(client: JIRA, http: requests.Session, jira_sandbox: RunningSandbox) -> None:
    listed = client.project_versions("OPS")
    assert [(v.name, v.released) for v in listed] == [("2026.08", True), ("2026.09", True), ("2026.10", True), ("2026.11", False)]
    knob(jira_sandbox, "/jira/permissions", {"grant": ["ADMINISTER_PROJECTS"]})  # creating versions takes a project admin
    created = client.create_version("2026.12", "OPS", releaseDate="2026-12-15")
    assert created.raw["projectId"] == 10000 and created.released is False and created.releaseDate == "2026-12-15"
    assert [v.name for v in client.project_versions("OPS")][-1] == "2026.12"
    duplicate = http.post(f"{jira_sandbox.url}/rest/api/3/version", json={"name": "2026.12", "projectId": 10000})
    assert duplicate.status_code == 400
    assert duplicate.json() == {"errorMessages": [], "errors": {"name": "A version with this name already exists in this project."}}
    missing = http.get(f"{jira_sandbox.url}/rest/api/3/project/NOPE/versions")
    assert missing.status_code == 404 and missing.json()["errorMessages"] == ["No project could be found with key 'NOPE'."]
    released = http.put(f"{jira_sandbox.url}/rest/api/3/version/{created.id}", json={"released": True}).json()
    assert released["released"] is True and released["name"] == "2026.12"


def test_transitions_follow_the_workflow_from_the_current_status(client: JIRA) -> None:
    key = next(f"OPS-{r.seq}" for r in SEEDS if r.status == "triaged")
    offered = client.transitions(key)
    assert [(t["id"], t["name"], t["to"]["name"]) for t in offered] == [("21", "Approve", "Approved"), ("81", "Reject", "Rejected")]
    assert offered[0]["to"]["statusCategory"]["key"] == "new" and offered[0]["hasScreen"] is False
    client.transition_issue(key, "21")
    assert client.issue(key, fields="status").fields.status.name == "Approved"
    assert [t["id"] for t in client.transitions(key)] == ["31", "81"]
    error = refused(lambda: client.transition_issue(key, "61"))
    assert error.status_code == 400 and error.response.json() == {
        "errorMessages": ["Transition id '61' is not valid for this issue."], "errors": {}}
    client.transition_issue(key, "Schedule")  # by name: the client looks the id up
    assert client.issue(key, fields="status").fields.status.name == "Scheduled"


def test_every_write_advances_updated_and_lands_in_the_changelog(
    client: JIRA, http: requests.Session, jira_sandbox: RunningSandbox
) -> None:
    key = next(f"OPS-{r.seq}" for r in SEEDS if r.status == "approved")
    seed = SEEDS[int(key.split("-")[1]) - 1]
    issue = client.issue(key)
    seeded_updated = jira_time(issue.fields.updated)
    log = http.get(f"{jira_sandbox.url}/rest/api/3/issue/{key}/changelog").json()
    # Seeded history: Open -> Triage -> Approved, the last step exactly at the seeded `updated`.
    assert [h["items"][0]["toString"] for h in log["values"]] == ["Triage", "Approved"]
    assert jira_time(log["values"][-1]["created"]) == seed.updated == seeded_updated
    issue.update(fields={"summary": "Sharper title"})
    after_edit = client.issue(key)
    assert jira_time(after_edit.fields.updated) > seeded_updated
    issue.update(fields={"summary": "Sharper title"})  # no change, no history, no new modstamp
    assert client.issue(key).fields.updated == after_edit.fields.updated
    client.transition_issue(key, "31")
    after_transition = client.issue(key)
    assert jira_time(after_transition.fields.updated) > jira_time(after_edit.fields.updated)
    log = http.get(f"{jira_sandbox.url}/rest/api/3/issue/{key}/changelog").json()
    assert log["total"] == 4 and log["isLast"] is True
    edit, move = log["values"][-2:]
    assert edit["author"]["accountId"] == client.myself()["accountId"]
    assert edit["items"] == [{"field": "summary", "fieldtype": "jira", "fieldId": "summary", "from": None,
                              "fromString": seed.title, "to": None, "toString": "Sharper title"}]
    assert jira_time(move["created"]) == jira_time(after_transition.fields.updated)
    assert move["items"][0] | {"from": None, "to": None} == {"field": "status", "fieldtype": "jira", "fieldId": "status",
                                                             "from": None, "fromString": "Approved", "to": None, "toString": "Scheduled"}
    paged = http.get(f"{jira_sandbox.url}/rest/api/3/issue/{key}/changelog", params={"maxResults": 1, "startAt": 1}).json()
    assert len(paged["values"]) == 1 and paged["isLast"] is False and "startAt=2" in paged["nextPage"]
    bulk = http.post(f"{jira_sandbox.url}/rest/api/3/changelog/bulkfetch",
                     json={"issueIdsOrKeys": [key, "OPS-1"], "fieldIds": ["status"], "maxResults": 100}).json()
    mine = next(c for c in bulk["issueChangeLogs"] if c["issueId"] == after_transition.id)
    assert [h["items"][0]["toString"] for h in mine["changeHistories"]] == ["Triage", "Approved", "Scheduled"]
    assert "nextPageToken" not in bulk
    first = http.post(f"{jira_sandbox.url}/rest/api/3/changelog/bulkfetch", json={"issueIdsOrKeys": [key], "maxResults": 2}).json()
    rest = http.post(f"{jira_sandbox.url}/rest/api/3/changelog/bulkfetch",
                     json={"issueIdsOrKeys": [key], "maxResults": 2, "nextPageToken": first["nextPageToken"]}).json()
    dates = [h["created"] for page in (first, rest) for c in page["issueChangeLogs"] for h in c["changeHistories"]]
    assert len(dates) == 4 and [jira_time(d) for d in dates] == sorted(jira_time(d) for d in dates)


def test_401_without_or_with_wrong_credentials(jira_sandbox: RunningSandbox, credentials: tuple[str, str]) -> None:
    stranger = JIRA(server=jira_sandbox.url, basic_auth=(credentials[0], "wrong-token"), max_retries=0, options={"rest_api_version": "3"})
    error = refused(stranger.myself)  # the constructor's serverInfo is anonymous, as in Jira Cloud
    assert error.status_code == 401 and error.text == "Client must be authenticated to access this resource."
    assert error.response.headers["WWW-Authenticate"].startswith("OAuth realm=")
    anonymous = requests.get(f"{jira_sandbox.url}/rest/api/3/search/jql", params={"jql": "project = OPS"})
    assert anonymous.status_code == 401
    # An API token sent alone as Bearer is refused on the site (JRACLOUD-72405: Bearer is for OAuth).
    bearer = requests.get(f"{jira_sandbox.url}/rest/api/3/myself", headers={"Authorization": f"Bearer {credentials[1]}"})
    assert bearer.status_code == 401


def test_the_gateway_serves_the_api_under_ex_jira_cloud_id(sandboxes, jira_sandbox: RunningSandbox,
                                                           credentials: tuple[str, str]) -> None:
    # Atlassian: a site's cloud id is at https://<site>.atlassian.net/_edge/tenant_info, one line
    # {"cloudId": "..."}, unauthenticated; tokens with scopes call https://api.atlassian.com/ex/jira/{cloudId}/{api}
    # ("Manage API tokens for your Atlassian account"; KB "401 Unauthorized error when service account
    # accesses Jira or Confluence API"); service-account tokens may go as Bearer, without the email.
    knob(jira_sandbox, "/calls/reset")
    tenant = requests.get(f"{jira_sandbox.url}/_edge/tenant_info", timeout=10)
    cloud_id = tenant.json()["cloudId"]
    assert tenant.status_code == 200 and tenant.json() == {"cloudId": sandboxes.describe()["jira"]["cloud_id"]}
    gateway = f"{jira_sandbox.url}/ex/jira/{cloud_id}"

    bearer = requests.get(f"{gateway}/rest/api/3/myself", headers={"Authorization": f"Bearer {credentials[1]}"}, timeout=10)
    assert bearer.status_code == 200 and bearer.json()["emailAddress"] == credentials[0]
    basic = JIRA(server=gateway, basic_auth=credentials, max_retries=0, options={"rest_api_version": "3"})
    assert basic.issue("OPS-3").key == "OPS-3"
    wrong = requests.get(f"{gateway}/rest/api/3/myself", headers={"Authorization": "Bearer not-the-token"}, timeout=10)
    assert wrong.status_code == 401
    elsewhere = requests.get(f"{jira_sandbox.url}/ex/jira/{'0' * 8}-0000-4000-8000-{'0' * 12}/rest/api/3/myself",
                             headers={"Authorization": f"Bearer {credentials[1]}"}, timeout=10)
    assert elsewhere.status_code == 404
    counted = calls(jira_sandbox)["calls"]
    assert counted.pop("GET /_edge/tenant_info") == 1
    assert counted.pop("GET /rest/api/3/myself") == 2 and counted.pop("GET /rest/api/3/issue/{key}") == 1
    assert counted.pop("GET /rest/api/3/serverInfo") == 1  # the client constructor asks it
    assert list(counted) == [f"GET /ex/jira/{'0' * 8}-0000-4000-8000-{'0' * 12}/rest/api/3/myself"]


def test_call_counter_keys_by_route_and_reset(http: requests.Session, jira_sandbox: RunningSandbox) -> None:
    url = jira_sandbox.url
    knob(jira_sandbox, "/calls/reset")
    http.get(f"{url}/rest/api/3/issue/OPS-1")
    http.put(f"{url}/rest/api/3/issue/OPS-1", json={"fields": {"summary": "Counted"}})
    http.get(f"{url}/rest/api/3/search/jql", params={"jql": "project = OPS"})
    http.get(f"{url}/rest/api/3/search/jql", params={"jql": "project = OPS"})
    http.get(f"{url}/rest/api/3/nope")
    requests.get(f"{url}/rest/api/3/myself")
    assert calls(jira_sandbox) == {
        "total": 6,
        "calls": {"GET /rest/api/3/issue/{key}": 1, "GET /rest/api/3/myself": 1, "GET /rest/api/3/nope": 1,
                  "GET /rest/api/3/search/jql": 2, "PUT /rest/api/3/issue/{key}": 1},
        "statuses": {"200": 3, "204": 1, "401": 1, "404": 1},
    }
    knob(jira_sandbox, "/calls/reset")
    assert calls(jira_sandbox)["total"] == 0
    assert requests.post(f"{url}/_sandbox/jira/config", json={"timezone": "Mars/Olympus"}).status_code == 400


def test_rate_limit_answers_429_with_retry_after(client: JIRA, jira_sandbox: RunningSandbox) -> None:
    knob(jira_sandbox, "/config", {"rate_limit": {"requests": 2, "per_seconds": 60, "retry_after": 5}})
    client.issue("OPS-1")
    client.issue("OPS-2")
    error = refused(lambda: client.issue("OPS-3"))
    assert error.status_code == 429
    headers = error.response.headers
    assert headers["Retry-After"] == "5" and headers["X-RateLimit-Limit"] == "2" and headers["X-RateLimit-Remaining"] == "0"
    assert headers["RateLimit-Reason"] == "jira-burst-based" and headers["X-RateLimit-Reset"].endswith("Z")
    assert error.response.json()["errorMessages"] == ["The request has been rate-limited. Please try again later."]
    assert calls(jira_sandbox)["statuses"]["429"] == 1
    knob(jira_sandbox, "/config", {"rate_limit": None})
    assert client.issue("OPS-3").key == "OPS-3"


def test_rate_limit_reset_names_the_minute_the_window_has_room_again() -> None:
    # X-RateLimit-Reset is the sandbox's time plus Retry-After, to the minute (Jira sends
    # no seconds); the window itself is the core's: the refusal ends exactly 60 s after
    # the request that filled it.
    clock = ManualTime(dt.datetime(2026, 11, 2, 9, 59, 30, tzinfo=dt.UTC))
    with serve(create_jira_app(records=5, email="a@example.com", token="t", time_source=clock)) as running:
        jira = JIRA(server=running.url, basic_auth=("a@example.com", "t"), max_retries=0, options={"rest_api_version": "3"})
        knob(running, "/config", {"rate_limit": {"requests": 1, "per_seconds": 60}})
        jira.issue("OPS-1")  # 09:59:30
        clock.advance(20)
        headers = refused(lambda: jira.issue("OPS-2")).response.headers  # 09:59:50, 40 s before the window has room
        assert headers["Retry-After"] == "40" and headers["X-RateLimit-Reset"] == "2026-11-02T10:00Z"
        clock.advance(39.999)
        assert refused(lambda: jira.issue("OPS-2")).response.headers["Retry-After"] == "1"
        clock.advance(0.001)
        assert jira.issue("OPS-2").key == "OPS-2"  # 10:00:30
        assert calls(running)["statuses"] == {"200": 3, "429": 2}  # the client's serverInfo at start, two issues


def test_injected_faults_fire_twice_then_the_write_succeeds(client: JIRA, jira_sandbox: RunningSandbox) -> None:
    knob(jira_sandbox, "/faults", {"method": "PUT", "path": "/rest/api/3/issue/*", "status": 503, "times": 2})
    issue = client.issue("OPS-9")
    for _ in range(2):
        assert refused(lambda: issue.update(fields={"summary": "Third time lucky"})).status_code == 503
        assert client.issue("OPS-9").fields.summary == SEEDS[8].title  # a fault changes nothing
    issue.update(fields={"summary": "Third time lucky"})
    assert client.issue("OPS-9").fields.summary == "Third time lucky"
    assert calls(jira_sandbox)["calls"]["PUT /rest/api/3/issue/{key}"] == 3


def test_a_slow_answer_times_the_client_out_but_the_write_lands(jira_sandbox: RunningSandbox, credentials: tuple[str, str]) -> None:
    impatient = JIRA(server=jira_sandbox.url, basic_auth=credentials, max_retries=0, timeout=0.3, options={"rest_api_version": "3"})
    issue = impatient.issue("OPS-10")
    knob(jira_sandbox, "/faults", {"method": "PUT", "path": "/rest/api/3/issue/*", "delay_seconds": 0.8})
    with pytest.raises(requests.exceptions.Timeout):
        issue.update(fields={"summary": "Did it land?"})
    time.sleep(0.8)
    assert impatient.issue("OPS-10").fields.summary == "Did it land?"


def _raw_issues(seed: int, count: int) -> list[dict[str, Any]]:
    app = create_jira_app(records=count, seed=seed, email="a@example.com", token="t")
    with app.test_client() as web:
        return [web.get(f"/_sandbox/jira/issues/OPS-{n}").get_json() for n in range(1, count + 1)]


def test_seeded_data_is_deterministic_and_mapped_from_the_seed() -> None:
    first, again, other = _raw_issues(7, 20), _raw_issues(7, 20), _raw_issues(8, 20)
    assert first == again
    assert [i["fields"]["summary"] for i in first] != [i["fields"]["summary"] for i in other]
    statuses = {"new": "Open", "triaged": "Triage", "approved": "Approved", "in_progress": "In Progress", "testing": "In Testing",
                "deployed": "Deployed", "closed": "Closed", "rejected": "Rejected"}
    priorities = {"critical": "Highest", "high": "High", "medium": "Medium", "low": "Low"}
    seeds: list[SeedRequest] = seed_requests(20, 7)
    for raw, seed in zip(first, seeds, strict=True):
        fields = raw["fields"]
        assert raw["key"] == f"OPS-{seed.seq}" and raw["id"] == str(10000 + seed.seq)
        assert fields["summary"] == seed.title and fields["status"]["name"] == statuses[seed.status]
        assert fields["priority"]["name"] == priorities[seed.priority]
        if seed.quirks.no_custom_fields:  # an empty custom field is null, not absent
            assert fields["customfield_10070"] is None and fields["customfield_10071"] is None
        else:
            assert fields["customfield_10070"]["value"] == seed.department
            assert fields["customfield_10071"]["value"] == seed.request_type
        assert jira_time(fields["created"]) == seed.created and jira_time(fields["updated"]) == seed.updated
        # In the integration account's profile zone (Australia/Sydney for seed 7): +1000, or +1100 in summer.
        assert fields["created"][-5:] in ("+1000", "+1100") and fields["issuetype"]["name"] == "Change Request"
        assert fields["reporter"]["displayName"] == seed.requester.name and "emailAddress" not in fields["reporter"]
        assert (fields["assignee"] or {}).get("displayName") == (seed.owner.name if seed.owner else None)
        if seed.quirks.no_description:
            assert fields["description"] is None
        else:
            assert fields["description"]["type"] == "doc" and seed.description.split("\n")[0] in str(fields["description"])


def test_v2_routes_serve_the_client_default(jira_sandbox: RunningSandbox, credentials: tuple[str, str]) -> None:
    legacy = JIRA(server=jira_sandbox.url, basic_auth=credentials, max_retries=0)  # the library defaults to REST v2
    assert legacy.issue("OPS-1").fields.description == SEEDS[0].description
    error = refused(lambda: legacy.create_issue(fields={"project": {"key": "OPS"}, "issuetype": {"name": "Change Request"},
                                                       "summary": "ADF on v2", "description": ADF}))
    assert error.response.json()["errors"] == {"description": "Operation value must be a string"}
    found = legacy.enhanced_search_issues("key = OPS-2", fields=["summary"], json_result=True)
    assert found["issues"][0]["self"].endswith("/rest/api/2/issue/10002")


def test_unknown_routes_methods_and_unreadable_bodies(http: requests.Session, jira_sandbox: RunningSandbox) -> None:
    url = jira_sandbox.url
    missing = http.get(f"{url}/rest/api/3/nope")
    assert missing.status_code == 404 and missing.headers["Content-Type"].startswith("application/problem+json")
    assert missing.json()["detail"] == "No endpoint GET /rest/api/3/nope."
    patched = http.patch(f"{url}/rest/api/3/issue/OPS-1")
    assert patched.status_code == 405 and set(patched.headers["Allow"].split(", ")) == {"GET", "PUT", "DELETE"}
    no_type = http.post(f"{url}/rest/api/3/issue", data="{}")
    assert no_type.status_code == 415 and no_type.json()["detail"] == "Content-Type 'null' is not supported."
    broken = http.post(f"{url}/rest/api/3/issue", data="{", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400
    assert broken.json() == {"errorMessages": ["There was an error parsing JSON. Check that your request body is valid."]}


def test_components_carry_the_affected_object(client: JIRA, http: requests.Session, jira_sandbox: RunningSandbox) -> None:
    # Shapes from Atlassian's reference: Get project components returns the project's
    # components (self, id, name, description, assigneeType, ...); an issue's components
    # field holds {self, id, name}; Edit issue takes components by id or name.
    issue = client.issue("OPS-1")
    assert [c.name for c in issue.fields.components] == [SEEDS[0].affected_object]
    several = next(s for s in SEEDS if s.quirks.extra_object)  # some requests touch two objects
    assert [c.name for c in client.issue(f"OPS-{several.seq}").fields.components] == [
        several.affected_object, several.quirks.extra_object]
    components = client.project_components("OPS")
    names = [c.name for c in components]
    assert sorted(names) == sorted({"Opportunity", "Account", "Lead", "Case", "Contact", "Quote", "Contract", "Invoice",
                                    "Campaign", "Order"})
    by_name = {c.name: c for c in components}
    raw = http.get(f"{jira_sandbox.url}/rest/api/3/project/OPS").json()["components"]
    assert [c["id"] for c in raw] == [c.id for c in components]
    assert set(raw[0]) >= {"self", "id", "name", "description"} and raw[0]["self"].endswith(f"/component/{raw[0]['id']}")
    shown = http.get(f"{jira_sandbox.url}/rest/api/3/issue/OPS-1", params={"fields": "components"}).json()["fields"]["components"]
    assert shown == [{"self": by_name[SEEDS[0].affected_object].self, "id": by_name[SEEDS[0].affected_object].id,
                      "name": SEEDS[0].affected_object}]
    other = next(n for n in names if n != SEEDS[0].affected_object)
    issue.update(fields={"components": [{"name": other}]})
    assert [c.name for c in client.issue("OPS-1").fields.components] == [other]
    issue.update(update={"components": [{"add": {"id": by_name["Case"].id}}]})
    assert {c.name for c in client.issue("OPS-1").fields.components} == {other, "Case"}
    for bad, message in (({"name": "Widget"}, "Component name 'Widget' is not valid"), ({"id": "1"}, "Component id '1' is not valid")):
        error = refused(lambda bad=bad: issue.update(fields={"components": [bad]}))
        assert error.status_code == 400 and error.response.json()["errors"] == {"components": message}
    assert set(search_keys(client, "project = OPS AND component = Lead", [10001])) == (
        keys_where(lambda r: "Lead" in (r.affected_object, r.quirks.extra_object)) - {"OPS-1"})
    assert set(search_keys(client, 'component in (Lead, "Case")', [10001])) == (
        keys_where(lambda r: {"Lead", "Case"} & {r.affected_object, r.quirks.extra_object}) - {"OPS-1"}) | {"OPS-1"}
