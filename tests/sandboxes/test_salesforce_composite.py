"""The Salesforce sandbox's Composite resource, driven through simple-salesforce's ``restful``.

What it is modelled on (looked up, not guessed): the REST API Developer Guide's "Send
Multiple Requests Using Composite", Composite Request Body and Composite Subrequest Result:
up to 25 subrequests of method, url, referenceId and optional body and httpHeaders
("any header supported by the requested resource" except Accept, Authorization and
Content-Type, which are inherited; setting one fails the whole request with 400);
``@{referenceId.field}`` reaches an earlier answer; the answer is HTTP 200 with
``compositeResponse`` of ``{body, httpHeaders, httpStatusCode, referenceId}``; "The
entire series of requests counts as a single call toward your API limits". With
``allOrNone`` "the entire composite request is rolled back" and "all other subrequests
return the 400 HTTP status code", with PROCESSING_HALTED "The transaction was rolled back
since another operation in the same transaction failed." (bodies in CumulusCI, revoman and
other public clients); without it only dependent subrequests fail, with PROCESSING_HALTED
"Invalid reference specified. No value for ... found in ..." (developer guide examples). A
create answers 201 with ``Location``. Over 25 subrequests:
``{"errorCode":"LIMIT_EXCEEDED","message":"The request can’t contain more than 25 operations."}``
in a compositeResponse (logged by guardian/support-service-lambdas PR 766). The 412 for
If-Unmodified-Since is the single-record PATCH's (REST guide, Conditional Request Headers).
A GET naming ``fields`` answers them and the Id after them (the guide's example answer:
FirstName, LastName, Id), which is what ``@{ref.Id}`` reaches.
"""
from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from sandboxes.clock import SYSTEM_TIME
from sandboxes.salesforce.values import make_id
from sandboxes.seed import seed_requests
from tests.sandboxes.conftest import SALESFORCE_RECORDS, SEED, Org, running_org

SEEDS = seed_requests(SALESFORCE_RECORDS, SEED)
V = "/services/data/v59.0"
ROLLED_BACK = [{"errorCode": "PROCESSING_HALTED",
                "message": "The transaction was rolled back since another operation in the same transaction failed."}]


@pytest.fixture
def org(tmp_path: Path) -> Iterator[Org]:
    """A Salesforce sandbox with the real defaults."""
    yield from running_org(tmp_path, SYSTEM_TIME)


def case(seq: int) -> str:
    return make_id("500", seq)


def releases(sf: Salesforce, seqs: range) -> dict[int, Any]:
    """Release__c of Cases ``seqs`` as the org has them now."""
    return {seq: sf.Case.get(case(seq))["Release__c"] for seq in seqs}


def http_date(moment: dt.datetime) -> str:
    return email.utils.format_datetime(moment, usegmt=True)


def composite(sf: Salesforce, subrequests: list[dict[str, Any]], **options: Any) -> list[dict[str, Any]]:
    answer = sf.restful("composite", method="POST", json={**options, "compositeRequest": subrequests})
    assert answer is not None
    return answer["compositeResponse"]


def patch(ref: str, seq: int, fields: dict[str, Any], since: dt.datetime | None = None) -> dict[str, Any]:
    sub: dict[str, Any] = {"method": "PATCH", "url": f"{V}/sobjects/Case/{case(seq)}", "referenceId": ref, "body": fields}
    if since is not None:
        sub["httpHeaders"] = {"If-Unmodified-Since": http_date(since)}
    return sub


def test_reads_and_conditional_writes_in_one_call(org: Org) -> None:
    sf = org.login()
    stale_release = sf.Case.get(case(2))["Release__c"]
    used = org.knob("/salesforce/state", method="GET")["api_usage"]["used"]
    org.knob("/calls/reset")
    fresh, stale = SEEDS[0], SEEDS[1]
    answers = composite(sf, [
        {"method": "GET", "url": f"{V}/sobjects/Case/{case(1)}?fields=Subject,Release__c", "referenceId": "before"},
        patch("write", 1, {"Release__c": "2026.12"}, since=fresh.updated + dt.timedelta(seconds=1)),
        patch("stale", 2, {"Release__c": "2026.12"}, since=stale.updated - dt.timedelta(days=1)),
        {"method": "GET", "url": f"{V}/sobjects/Case/@{{before.Id}}?fields=Release__c", "referenceId": "after"},
        {"method": "GET", "url": f"{V}/sobjects/Case/@{{stale.id}}", "referenceId": "dependent"},
        {"method": "POST", "url": f"{V}/sobjects/Case", "referenceId": "made",
         "body": {"Subject": "Made in a composite call", "Description": "@{before.Subject}"}},
    ])
    assert org.knob("/calls", method="GET")["calls"] == {"POST /services/data/v{version}/composite": 1}
    assert org.knob("/salesforce/state", method="GET")["api_usage"]["used"] == used + 1  # one call against the limit
    assert [a["referenceId"] for a in answers] == ["before", "write", "stale", "after", "dependent", "made"]
    assert [a["httpStatusCode"] for a in answers] == [200, 204, 412, 200, 400, 201]
    before, write, refused, after, dependent, made = answers
    assert before["body"]["Subject"] == fresh.title
    assert before["httpHeaders"]["Last-Modified"].endswith(" GMT")
    assert write["body"] is None and write["httpHeaders"] == {}
    assert refused["body"][0]["errorCode"] == "PRECONDITION_FAILED"  # modified since: not written
    assert after["body"]["Release__c"] == "2026.12"
    assert dependent["body"][0]["errorCode"] == "PROCESSING_HALTED" and "stale" in dependent["body"][0]["message"]
    assert made["httpHeaders"]["Location"] == f"{V}/sobjects/Case/{made['body']['id']}" and made["body"]["success"]
    assert sf.Case.get(made["body"]["id"])["Description"] == fresh.title  # the reference was resolved
    assert sf.Case.get(case(2))["Release__c"] == stale_release


def test_all_or_none_rolls_every_change_back(org: Org) -> None:
    sf = org.login()
    count, seeded = sf.query("SELECT COUNT() FROM Case")["totalSize"], releases(sf, range(3, 7))
    answers = composite(sf, [
        patch("first", 3, {"Release__c": "2026.12"}),
        {"method": "POST", "url": f"{V}/sobjects/Case", "referenceId": "made", "body": {"Subject": "Rolled back"}},
        {"method": "DELETE", "url": f"{V}/sobjects/Case/{case(4)}", "referenceId": "gone"},
        patch("stale", 5, {"Release__c": "2026.12"}, since=SEEDS[4].updated - dt.timedelta(days=1)),
        patch("never", 6, {"Release__c": "2026.12"}),
    ], allOrNone=True)
    assert [a["httpStatusCode"] for a in answers] == [400, 400, 400, 412, 400]
    assert [a["body"] for a in answers if a["referenceId"] != "stale"] == [ROLLED_BACK] * 4
    assert answers[3]["body"][0]["errorCode"] == "PRECONDITION_FAILED"
    assert releases(sf, range(3, 7)) == seeded and sf.Case.get(case(4))["Subject"] == SEEDS[3].title  # not deleted
    assert sf.Case.get(case(3))["LastModifiedDate"].startswith(SEEDS[2].updated.strftime("%Y-%m-%dT%H:%M:%S"))
    assert sf.query("SELECT COUNT() FROM Case")["totalSize"] == count  # the created Case is gone again


def test_queries_and_errors_of_the_resources_named(org: Org) -> None:
    sf = org.login()
    answers = composite(sf, [
        {"method": "GET", "url": f"{V}/query?q=SELECT+Id,Subject+FROM+Case+WHERE+CaseNumber='00001001'", "referenceId": "q"},
        {"method": "GET", "url": f"{V}/sobjects/Case/@{{q.records[0].Id}}?fields=Subject", "referenceId": "byRef"},
        {"method": "PATCH", "url": f"{V}/sobjects/Case/{case(7)}", "referenceId": "bad", "body": {"Nope__c": 1}},
        {"method": "GET", "url": f"{V}/sobjects/Case/{case(99999)}", "referenceId": "missing"},
        {"method": "GET", "url": "/services/data/v12.0/limits", "referenceId": "old"},
    ])
    assert [a["httpStatusCode"] for a in answers] == [200, 200, 400, 404, 404]
    assert answers[0]["body"]["totalSize"] == 1 and answers[1]["body"]["Subject"] == SEEDS[0].title
    assert answers[2]["body"][0]["errorCode"] == "INVALID_FIELD"


@pytest.mark.parametrize(("subrequests", "code"), [
    ([patch(f"p{n}", 1 + n % 5, {"Release__c": "x"}) for n in range(26)], "LIMIT_EXCEEDED"),
    ([{**patch("h", 1, {}), "httpHeaders": {"Content-Type": "application/json"}}], "INVALID_INPUT"),
    ([patch("bad-ref", 1, {})], "INVALID_INPUT"),
    ([patch("twice", 1, {}), patch("twice", 2, {})], "INVALID_INPUT"),
    ([{"method": "FETCH", "url": f"{V}/sobjects/Case/{case(1)}", "referenceId": "m"}], "INVALID_INPUT"),
    ([{"method": "GET", "url": f"{V}/query?q=SELECT+Id+FROM+Case", "referenceId": f"q{n}"} for n in range(6)],
     "LIMIT_EXCEEDED"),
])
def test_a_malformed_request_runs_nothing(org: Org, subrequests: list[dict[str, Any]], code: str) -> None:
    sf = org.login()
    seeded = releases(sf, range(1, 6))
    with pytest.raises(SalesforceMalformedRequest) as refused:
        composite(sf, subrequests)
    assert refused.value.status == 400
    content = refused.value.content
    errors = content["compositeResponse"][0]["body"] if isinstance(content, dict) else content
    assert errors[0]["errorCode"] == code
    if len(subrequests) > 25:
        assert errors == [{"errorCode": "LIMIT_EXCEEDED", "message": "The request can’t contain more than 25 operations."}]
    assert releases(sf, range(1, 6)) == seeded
