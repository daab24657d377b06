"""The Salesforce sandbox's real defaults (batch sizes, sessions, cursors), SOQL fractions and describe.

What each behaviour is modelled on (looked up, not guessed):
- batchSize: "There is no guarantee that the requested batch size is the actual batch
  size"; "The system sometimes creates batches that are larger or smaller than the
  specified size to maximize performance" (REST API Guide, Query Options Header; SOAP API
  Guide, QueryOptions). The sandbox serves 50 %, 80 %, 100 % or 125 % of the size asked
  (at most 2,000), derived from the seed, the query and the offset.
- Sessions "automatically expire after the amount of time specified in the Security
  Controls setup area ... (default two hours)" of inactivity, then INVALID_SESSION_ID
  (Metadata API Guide, "Error Handling for Session Expiration"; Session Settings).
- "Each locator and its associated results are available for two days after the initial
  query executes" (Salesforce Help 000384958, INVALID_QUERY_LOCATOR); "There isn't a
  limit on the number of open cursors" since API 56.0 (App Limits Cheatsheet, "API Query
  Cursor Limits"). The older 15-minute inactivity rule no longer applies.
- SOQL dateTime literals: the reference lists whole seconds only, but the API accepts
  fractions: ``CreatedDate >= 2022-12-01T10:47:53.299852-06:00`` runs (IlluminatedCloud
  issue 2280), and integrations send ``isoformat(timespec='microseconds')`` (rapid7
  insightconnect-plugins PR 2960). simple-salesforce's ``format_soql`` drops them ("a
  datetime literal that is not naive and without MS"), so a query built by hand may carry them.
- ``compoundFieldName``: "If this field is a component field of a compound field, this
  property contains the top-level compound field. Otherwise, the value of this property is
  null" (UI API Field; the same attribute in DescribeSObjectResult since API 30.0); User's
  FirstName and LastName are components of Name.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceMalformedRequest

from sandboxes.clock import ManualTime
from sandboxes.salesforce.data import CURSOR_LIFETIME_SECONDS, SESSION_TIMEOUT_SECONDS
from tests.sandboxes.conftest import SALESFORCE_RECORDS as RECORDS
from tests.sandboxes.conftest import SEED, Org, running_org

ALL = RECORDS + RECORDS // 25  # the change requests and the support Cases beside them


@pytest.fixture
def clock() -> ManualTime:
    """The org's time: it moves only when a test advances it."""
    return ManualTime()


@pytest.fixture
def org(tmp_path: Path, clock: ManualTime) -> Iterator[Org]:
    """A Salesforce sandbox with the real defaults on ``clock``."""
    yield from running_org(tmp_path, clock)


def batch_sizes(sf: Salesforce, soql: str, batch: int) -> list[int]:
    page = sf.query(soql, headers={"Sforce-Query-Options": f"batchSize={batch}"})
    sizes = [len(page["records"])]
    while not page["done"]:
        page = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True)
        sizes.append(len(page["records"]))
    return sizes


def test_batches_differ_from_the_size_asked_and_repeat_per_seed(tmp_path: Path, org: Org, clock: ManualTime) -> None:
    sf = org.login()
    soql = "SELECT Id FROM Case ORDER BY Id"
    sizes = batch_sizes(sf, soql, 200)
    assert sum(sizes) == ALL and all(0 < size <= 2000 for size in sizes)
    assert any(size != 200 for size in sizes[:-1])  # not the size asked, and not only at the end
    assert batch_sizes(sf, soql, 200) == sizes  # the same query pages the same way
    records = sf.query_all(soql)["records"]
    assert len(records) == ALL == len({r["Id"] for r in records})  # nothing lost or repeated
    for twin in running_org(tmp_path, clock, seed=SEED):
        assert batch_sizes(twin.login(), soql, 200) == sizes  # and so does another org with the same seed
    for kind in running_org(tmp_path, clock, "kind"):
        assert batch_sizes(kind.login(), soql, 200) == [200, 200, ALL - 400]


def test_a_session_ends_after_two_idle_hours(org: Org, clock: ManualTime) -> None:
    sf = org.login()
    assert sf.query("SELECT COUNT() FROM Case")["totalSize"] == ALL
    clock.advance(SESSION_TIMEOUT_SECONDS)
    assert sf.query("SELECT COUNT() FROM Case")["totalSize"] == ALL  # idle exactly the timeout: alive, and renewed
    clock.advance(SESSION_TIMEOUT_SECONDS + 0.001)
    with pytest.raises(SalesforceExpiredSession) as expired:
        sf.query("SELECT COUNT() FROM Case")
    assert expired.value.content == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    assert org.login().query("SELECT COUNT() FROM Case")["totalSize"] == ALL  # a new token works


def test_a_cursor_lives_two_days_from_its_query(org: Org, clock: ManualTime) -> None:
    first = org.login().query("SELECT Id FROM Case", headers={"Sforce-Query-Options": "batchSize=200"})
    clock.advance(CURSOR_LIFETIME_SECONDS)
    second = org.login().query_more(first["nextRecordsUrl"], identifier_is_url=True)  # sessions end sooner: log in again
    assert second["records"]
    clock.advance(0.001)
    with pytest.raises(SalesforceMalformedRequest) as expired:
        org.login().query_more(second["nextRecordsUrl"], identifier_is_url=True)
    assert expired.value.content == [{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}]


def test_the_kind_profile_keeps_sessions_and_cursors(tmp_path: Path, clock: ManualTime) -> None:
    for org in running_org(tmp_path, clock, "kind"):
        sf = org.login()
        first = sf.query("SELECT Id FROM Case", headers={"Sforce-Query-Options": "batchSize=200"})
        clock.advance(30 * 86400)
        assert len(sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)["records"]) == 200
        shown = org.knob("/config", method="GET")
        assert shown["behaviour"] == "kind" and shown["salesforce"] == {
            "session_timeout_seconds": None, "cursor_lifetime_seconds": None, "exact_batches": True}


def test_config_shows_the_real_defaults_and_changes_them(org: Org, clock: ManualTime) -> None:
    assert org.knob("/config", method="GET")["salesforce"] == {
        "session_timeout_seconds": SESSION_TIMEOUT_SECONDS, "cursor_lifetime_seconds": CURSOR_LIFETIME_SECONDS,
        "exact_batches": False}
    sf = org.login()
    assert org.knob("/salesforce/config", {"session_timeout_seconds": 900})["session_timeout_seconds"] == 900
    clock.advance(900.001)  # an org with the shortest timeout Salesforce allows (15 minutes)
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT COUNT() FROM Case")
    refused = org.http.post(f"{org.running.url}/_sandbox/salesforce/config", json={"cursor_lifetime_seconds": "soon"})
    assert refused.status_code == 400 and "cursor_lifetime_seconds" in refused.json()["error"]


def test_datetime_literals_take_up_to_six_fractional_digits(org: Org) -> None:
    sf = org.login()
    since = dt.datetime(2026, 9, 1, 12, 30, 15, 299852, tzinfo=dt.UTC)
    whole = sf.query(f"SELECT Id FROM Case WHERE SystemModstamp >= {since.replace(microsecond=0):%Y-%m-%dT%H:%M:%SZ}")
    micro = sf.query(f"SELECT Id FROM Case WHERE SystemModstamp >= {since.isoformat()}")  # ...15.299852+00:00
    assert micro["totalSize"] == whole["totalSize"] > 0  # compared to the second, as Salesforce keeps them
    assert sf.query(format_soql("SELECT Id FROM Case WHERE SystemModstamp >= {}", since))["totalSize"] == whole["totalSize"]
    with pytest.raises(SalesforceMalformedRequest) as seven:
        sf.query("SELECT Id FROM Case WHERE SystemModstamp >= 2026-09-01T12:30:15.2998521Z")
    assert seven.value.content[0]["errorCode"] == "MALFORMED_QUERY"


def test_describe_names_the_compound_field_of_each_component(org: Org) -> None:
    sf = org.login()
    users = {f["name"]: f for f in sf.User.describe()["fields"]}
    assert users["FirstName"]["compoundFieldName"] == users["LastName"]["compoundFieldName"] == "Name"
    assert users["Name"]["compoundFieldName"] is None and users["Email"]["compoundFieldName"] is None
    assert all(f["compoundFieldName"] is None for f in sf.Case.describe()["fields"])
    me = sf.query("SELECT FirstName, LastName, Name FROM User WHERE Email = 'relsync@example.com'")["records"][0]
    assert (me["FirstName"], me["LastName"], me["Name"]) == ("Relsync", "Integration", "Relsync Integration")
