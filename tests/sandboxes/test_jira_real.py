"""The Jira sandbox's real defaults (short pages, a lagging search index) and issue bulkfetch.

What each behaviour is modelled on (looked up, not guessed):
- search/jql ``maxResults``: "To manage page size, Jira may return fewer items per page
  where a large number of fields are requested. The greatest number of items returned
  per page is achieved when requesting id or key only" (Atlassian REST reference, as
  quoted by jira.js's SearchForIssuesUsingJql docs). The sandbox cuts a page once its
  issues' JSON passes 100,000 bytes, and never returns an empty page with a token.
- "The API doesn't provide read-after-write consistency by default ... The delay might
  vary from a few seconds to minutes ... The majority of modifications are shown within
  seconds" and ``reconcileIssues`` gives consistent results for the issues it names
  (Atlassian, "Search After Write with Search And Reconcile"); "Read-after-write is only
  supported for up to 50 issues using the reconcileIssues param" (JRACLOUD-96208; Workato's
  Jira connector: "Provide up to 50 issue IDs"). The sandbox lags 5 s by default; the
  wording of its refusal of 51 ids is its own.
- ``POST /rest/api/3/issue/bulkfetch``: up to 100 issues, or 1,000 when ``fields`` names at
  most 100 fields explicitly, none multi-valued, and ``expand`` holds none of changelog,
  editmeta, operations, renderedFields, transitions or versionedRepresentations; issues in
  ascending id order; an id that does not match is looked up case-insensitively (Atlassian
  reference via jira.js's bulkFetchIssues docs). ``issueErrors`` is only for issues that
  could not be fetched for a retriable reason: "Issues which aren't found or that the user
  doesn't have permission to view won't be returned in this list" (BulkIssueResults schema,
  jira_v3_openapi), and a live check found a missing key omitted silently with
  ``"issueErrors": []`` (a public userscript's design notes). The wording of the limit
  refusals is the sandbox's own.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from jira import JIRA, JIRAError

from sandboxes.clock import ManualTime
from sandboxes.jira.app import create_jira_app
from sandboxes.jira.data import ACCOUNT_ZONES
from sandboxes.jira.search import SHORT_PAGE_BYTES
from sandboxes.seed import seed_requests
from sandboxes.server import RunningSandbox, serve, start_sandboxes
from tests.sandboxes.conftest import calls, knob

RECORDS, SEED, LAG = 250, 7, 5.0
SEEDS = seed_requests(RECORDS, SEED)
ZONE = ACCOUNT_ZONES[SEED % len(ACCOUNT_ZONES)]  # the integration account's profile zone, by seed
EMAIL, TOKEN = "relsync@example.com", "sandbox-token"


@pytest.fixture
def clock() -> ManualTime:
    """The sandbox's time: it moves only when a test advances it."""
    return ManualTime()


@pytest.fixture
def jira(clock: ManualTime) -> Iterator[tuple[RunningSandbox, JIRA]]:
    """A Jira sandbox with the real defaults on ``clock``, and the real client."""
    with serve(create_jira_app(records=RECORDS, seed=SEED, email=EMAIL, token=TOKEN, time_source=clock)) as running:
        yield running, JIRA(server=running.url, basic_auth=(EMAIL, TOKEN), max_retries=0, options={"rest_api_version": "3"})


@pytest.fixture
def http_session() -> requests.Session:
    """Plain HTTP with the sandbox's credentials, for parameters the client does not send."""
    session = requests.Session()
    session.auth = (EMAIL, TOKEN)
    return session


def pages_of(client: JIRA, jql: str, fields: list[str], *, post: bool = False, reconcile: list[int] | None = None,
             max_results: int = 100) -> list[dict[str, Any]]:
    pages, token = [], None
    while True:
        page = client.enhanced_search_issues(jql, nextPageToken=token, maxResults=max_results, fields=fields,
                                             reconcileIssues=reconcile, json_result=True, use_post=post)
        pages.append(page)
        token = page.get("nextPageToken")
        if not token:
            return pages


def summaries(client: JIRA, jql: str, *, post: bool = False, reconcile: list[int] | None = None) -> dict[str, str]:
    return {i["key"]: i["fields"]["summary"] for p in pages_of(client, jql, ["summary"], post=post, reconcile=reconcile)
            for i in p["issues"]}


def bulkfetch(client: JIRA, body: dict[str, Any]) -> requests.Response:
    """POST issue/bulkfetch through the client's own session (the library has no method for it)."""
    try:
        return client._session.post(client._get_url("issue/bulkfetch"), data=json.dumps(body))
    except JIRAError as refusal:
        return refusal.response


def test_many_fields_make_short_pages_that_are_never_empty(jira: tuple[RunningSandbox, JIRA]) -> None:
    running, client = jira
    knob(running, "/calls/reset")
    counted = {"GET /rest/api/3/field": 1}  # the client reads the field list once, to translate names
    for post in (False, True):
        pages = pages_of(client, "project = OPS ORDER BY key", ["*navigable"], post=post)
        counted[f"{'POST' if post else 'GET'} /rest/api/3/search/jql"] = len(pages)
        sizes = [len(p["issues"]) for p in pages]
        assert sum(sizes) == RECORDS and all(0 < size < 100 for size in sizes)  # short, and a short page is not the end
        assert all("nextPageToken" in p for p in pages[:-1]) and pages[-1]["isLast"] is True
        for page in pages:
            weight = sum(len(json.dumps(i, ensure_ascii=False).encode()) for i in page["issues"])
            assert weight <= SHORT_PAGE_BYTES  # the page stops before its issues' JSON passes the budget
    assert [len(p["issues"]) for p in pages_of(client, "project = OPS ORDER BY key", ["summary"])] == [100, 100, 50]
    # A dozen named fields, with a rich-text description, is not "a large number": full pages.
    some = ["summary", "description", "issuetype", "status", "priority", "reporter", "assignee", "fixVersions",
            "components", "updated", "created", "labels"]
    assert [len(p["issues"]) for p in pages_of(client, "project = OPS ORDER BY key", some)] == [100, 100, 50]
    many = [*some, *(f"customfield_{10000 + n}" for n in range(9))]  # more than 20 named fields
    short = pages_of(client, "project = OPS ORDER BY key", many)
    assert len(short) > 3 and sum(len(p["issues"]) for p in short) == RECORDS
    keys_only = pages_of(client, "project = OPS", ["key"], max_results=5000)
    assert [len(p["issues"]) for p in keys_only] == [RECORDS]  # id or key only: up to 5,000 a page
    counted["GET /rest/api/3/search/jql"] += 3 + 3 + len(short) + 1
    assert calls(running)["calls"] == counted


def test_search_shows_writes_only_after_the_index_lag(jira: tuple[RunningSandbox, JIRA], clock: ManualTime) -> None:
    running, client = jira
    approved = next(f"OPS-{s.seq}" for s in SEEDS if s.status == "approved")
    client.issue("OPS-2").update(fields={"summary": "Lagging summary"})
    client.transition_issue(approved, "31")  # Approved -> Scheduled
    made = client.create_issue(fields={"project": {"key": "OPS"}, "issuetype": {"name": "Change Request"},
                                       "summary": "Brand new request"})
    client.issue("OPS-4").delete()
    assert client.issue("OPS-2").fields.summary == "Lagging summary"  # Get issue reads the store
    scheduled = f"project = OPS AND status = Scheduled AND key = {approved}"
    for post in (False, True):
        seen = summaries(client, "project = OPS", post=post)
        assert seen["OPS-2"] == SEEDS[1].title and made.key not in seen and "OPS-4" in seen  # as it was 5 s ago
        assert summaries(client, 'project = OPS AND summary ~ "Lagging"', post=post) == {}
        assert summaries(client, scheduled, post=post) == {}
    clock.advance(LAG - 0.001)
    assert summaries(client, 'project = OPS AND summary ~ "Lagging"') == {}
    clock.advance(0.001)  # the writes are now exactly LAG seconds old: indexed
    seen = summaries(client, "project = OPS")
    assert seen["OPS-2"] == "Lagging summary" and seen[made.key] == "Brand new request" and "OPS-4" not in seen
    assert summaries(client, 'project = OPS AND summary ~ "Lagging"', post=True) == {"OPS-2": "Lagging summary"}
    assert list(summaries(client, scheduled)) == [approved]


def test_reconcile_issues_makes_the_named_issues_current(jira: tuple[RunningSandbox, JIRA], http_session: requests.Session) -> None:
    running, client = jira
    client.issue("OPS-2").update(fields={"summary": "Reconciled summary"})
    client.issue("OPS-3").update(fields={"summary": "Still lagging"})
    made = client.create_issue(fields={"project": {"key": "OPS"}, "issuetype": {"name": "Change Request"}, "summary": "New"})
    client.issue("OPS-4").delete()
    named = [10002, int(made.id), 10004]
    for post in (False, True):
        seen = summaries(client, "project = OPS", post=post, reconcile=named)
        assert seen["OPS-2"] == "Reconciled summary" and seen[made.key] == "New" and "OPS-4" not in seen
        assert seen["OPS-3"] == SEEDS[2].title  # not named: still as the index has it
    url = f"{running.url}/rest/api/3/search/jql"
    listed = http_session.get(url, params={"jql": "key = OPS-2", "fields": "summary", "reconcileIssues": "10002,10003"})
    assert listed.json()["issues"][0]["fields"]["summary"] == "Reconciled summary"  # a comma list works too
    too_many = list(range(10001, 10052))
    error = pytest.raises(JIRAError, client.enhanced_search_issues, "project = OPS", reconcileIssues=too_many,
                          json_result=True).value
    assert error.status_code == 400
    assert error.response.json()["errorMessages"] == ["reconcileIssues accepts at most 50 issue IDs."]
    fifty = summaries(client, "project = OPS", reconcile=too_many[:50])  # 50 is fine: OPS-1..OPS-50
    assert fifty["OPS-3"] == "Still lagging" and "OPS-4" not in fifty and made.key not in fifty
    bad = http_session.get(url, params={"jql": "project = OPS", "reconcileIssues": "OPS-2"})
    assert bad.status_code == 400 and bad.json()["detail"] == "Failed to convert 'reconcileIssues' with value: 'OPS-2'"
    posted = http_session.post(url, json={"jql": "project = OPS", "reconcileIssues": ["OPS-2"]})
    assert posted.status_code == 400


def test_bulkfetch_reads_the_store_in_id_order(jira: tuple[RunningSandbox, JIRA]) -> None:
    running, client = jira
    client.issue("OPS-7").update(fields={"summary": "Written just now"})
    knob(running, "/calls/reset")
    answer = bulkfetch(client, {"issueIdsOrKeys": ["OPS-9", "ops-7", "10003", "OPS-9999", "NOPE-1", "OPS-7"],
                                "fields": ["summary", "status"], "fieldsByKeys": False})
    assert answer.status_code == 200
    body = answer.json()
    assert [i["key"] for i in body["issues"]] == ["OPS-3", "OPS-7", "OPS-9"]  # ascending id, missing ones left out
    assert body["issueErrors"] == [] and set(body) == {"expand", "issues", "issueErrors"}
    seven = body["issues"][1]
    assert seven["fields"]["summary"] == "Written just now"  # current, while search still lags
    assert set(seven["fields"]) == {"summary", "status"} and seven["self"].endswith("/rest/api/3/issue/10007")
    assert summaries(client, "key = OPS-7")["OPS-7"] == SEEDS[6].title
    full = bulkfetch(client, {"issueIdsOrKeys": ["OPS-1"], "expand": ["changelog", "names"]}).json()["issues"][0]
    assert "description" in full["fields"] and full["changelog"]["total"] == len(full["changelog"]["histories"])
    assert full["names"]["summary"] == "Summary"
    assert calls(running)["calls"] == {"GET /rest/api/3/field": 1, "GET /rest/api/3/search/jql": 1,
                                       "POST /rest/api/3/issue/bulkfetch": 2}


@pytest.mark.parametrize(("body", "status"), [
    ({"issueIdsOrKeys": [f"OPS-{n}" for n in range(1, 101)]}, 200),
    ({"issueIdsOrKeys": [f"OPS-{n}" for n in range(1, 102)]}, 400),
    ({"issueIdsOrKeys": [f"OPS-{n}" for n in range(1, 1001)], "fields": ["summary", "status", "updated"]}, 200),
    ({"issueIdsOrKeys": [f"OPS-{n}" for n in range(1, 1002)], "fields": ["summary"]}, 400),
    ({"issueIdsOrKeys": [f"OPS-{n}" for n in range(1, 1001)], "fields": ["summary", "fixVersions"]}, 400),
    ({"issueIdsOrKeys": [f"OPS-{n}" for n in range(1, 1001)], "fields": ["*navigable"]}, 400),
    ({"issueIdsOrKeys": [f"OPS-{n}" for n in range(1, 1001)], "fields": ["summary"], "expand": ["changelog"]}, 400),
    ({"issueIdsOrKeys": []}, 400),
    ({"issueIdsOrKeys": ["OPS-1"], "properties": ["a", "b", "c", "d", "e", "f"]}, 400),
    ({"issueIdsOrKeys": ["OPS-1"], "startAt": 0}, 400),
])
def test_bulkfetch_limits(jira: tuple[RunningSandbox, JIRA], body: dict[str, Any], status: int) -> None:
    answer = bulkfetch(jira[1], body)
    assert answer.status_code == status
    if status == 200:
        assert len(answer.json()["issues"]) == min(RECORDS, len(body["issueIdsOrKeys"]))
    else:
        assert answer.json()["errorMessages"] and answer.json()["errors"] == {}


def test_the_kind_profile_pages_full_and_searches_the_store() -> None:
    with start_sandboxes(records=RECORDS, seed=SEED, behaviour="kind") as started:
        env = started.describe()["jira"]["env"]
        client = JIRA(server=started.jira.url, basic_auth=(env["RELSYNC_JIRA_EMAIL"], env["RELSYNC_JIRA_TOKEN"]),
                      max_retries=0, options={"rest_api_version": "3"})
        assert [len(p["issues"]) for p in pages_of(client, "project = OPS ORDER BY key", ["*navigable"])] == [100, 100, 50]
        client.issue("OPS-2").update(fields={"summary": "Seen at once"})
        assert summaries(client, 'project = OPS AND summary ~ "Seen at once"') == {"OPS-2": "Seen at once"}
        shown = knob(started.jira, "/config", method="GET").json()
        assert shown["behaviour"] == "kind" and shown["jira"] == {"timezone": ZONE, "short_pages": False,
                                                                  "index_lag_seconds": 0.0}


def test_config_shows_the_real_defaults_and_changes_them(jira: tuple[RunningSandbox, JIRA], clock: ManualTime) -> None:
    running, client = jira
    shown = knob(running, "/config", method="GET").json()
    assert shown == {"behaviour": "real", "rate_limit": None, "latency_ms": 0.0,
                     "jira": {"timezone": ZONE, "short_pages": True, "index_lag_seconds": LAG}}
    assert requests.post(f"{running.url}/_sandbox/jira/config", json={"index_lag_seconds": -1}, timeout=10).status_code == 400
    client.issue("OPS-2").update(fields={"summary": "Before the change of lag"})
    assert knob(running, "/jira/config", {"index_lag_seconds": 60}).json()["index_lag_seconds"] == 60
    assert summaries(client, "key = OPS-2")["OPS-2"] == "Before the change of lag"  # a new lag starts from the store
    client.issue("OPS-2").update(fields={"summary": "After"})
    clock.advance(59.999)
    assert summaries(client, "key = OPS-2")["OPS-2"] == "Before the change of lag"
    clock.advance(0.001)
    assert summaries(client, "key = OPS-2")["OPS-2"] == "After"
