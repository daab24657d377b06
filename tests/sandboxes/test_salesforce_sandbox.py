"""The Salesforce sandbox over real HTTPS (its own trustme CA), driven by the real simple-salesforce 1.12.

What each behaviour is modelled on (looked up, not guessed):
- Token endpoint: response keys access_token, signature, scope, instance_url, id, token_type
  "Bearer", issued_at (ms) (Salesforce client-credentials flow examples; jsforce TokenResponse);
  signature = Base64 HMAC-SHA256 of id + issued_at keyed by the client secret (OAuth docs).
  Errors: {"error": "invalid_client", "error_description": "invalid client credentials"}
  (restforce issue 338), "invalid_client_id"/"client identifier invalid" (omniphx/forrest 184),
  "invalid_grant"/"authentication failure" (forrest 364). simple-salesforce sends client
  credentials as HTTP Basic and only to https://<domain>.salesforce.com (login.py), so relsync
  posts to the token endpoint itself; simple_salesforce.login.token_login is used here as-is.
- 401: [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}] with
  WWW-Authenticate: Token (restforce issue 284, a logged response).
- Query: totalSize/done/nextRecordsUrl/records; nextRecordsUrl like
  /services/data/v59.0/query/01gD0000002HU6KIAW-2000; up to 2,000 per batch; Sforce-Query-Options
  batchSize default 2,000, minimum 200, maximum 2,000 (REST guide: Query, Query Options Header).
- Expired cursor: 400 [{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}]
  (SOAP fault text "INVALID_QUERY_LOCATOR: invalid query locator"; a logged REST body). Cursors
  live two days and their locators start "0r8" (Salesforce Help 000384958); the old cap of 10
  open cursors per user was lifted in API 56.0 (App Limits Cheatsheet).
- Polymorphic Owner resolves to the "Name" entity (fflib-apex-common PR 137; Salesforce
  Inspector issue 95 shows attributes.type "Name" for queue-capable owners).
- Writes: "No such column 'X' on sobject of type Case" (INVALID_FIELD, fields []); "Unable to
  create/update fields: X. Please check the security settings of this field and verify that it
  is read/write for your profile or permission set." (verbb/formie issue 1981); "Department: bad
  value for restricted picklist field: X" with fields [API name] (public integration docs);
  "Provided external ID field does not exist or is not accessible: X" (404 NOT_FOUND);
  "Account ID: id value of incorrect type: X" (MALFORMED_ID).
- Conditional requests: If-Unmodified-Since compares to the record's last modified date, 412
  Precondition Failed (REST guide: Conditional Request Headers). The 412 body is not documented;
  the sandbox answers [{"errorCode": "PRECONDITION_FAILED", "message": ...}].
- sObject Collections: at most 200 records, SaveResults in request order, failed results carry
  no id (Force.com-Toolkit-for-NET issue 307); over 200: EXCEEDED_ID_LIMIT "record limit reached.
  cannot submit more than 200 records into this call" (django-salesforce 328, Salesforce
  Inspector 134); rolled-back records: ALL_OR_NONE_OPERATION_ROLLED_BACK "Record rolled back
  because not all records were valid and the request was using AllOrNone header".
- Get Updated: last 30 days; Get Deleted: last 15 days; start/end truncated to the minute;
  {"ids", "latestDateCovered"} and {"deletedRecords": [{"id", "deletedDate"}],
  "earliestDateAvailable", "latestDateCovered"} (REST guide: sObject Get Updated/Deleted, and the
  JSON example with "2013-05-07T22:07:19.000+0000"); INVALID_REPLICATION_DATE outside the window
  (SOAP getUpdated rules). The exact message of that error is the sandbox's own.
- Sforce-Limit-Info: api-usage=USED/MAX on every REST response except Versions (Limit Info
  Header); past the allocation 403 [{"message": "TotalRequests Limit exceeded.", "errorCode":
  "REQUEST_LIMIT_EXCEEDED"}] (SalesforceLabs/OrgCheck 181, jetstream 868). Salesforce never answers
  429; too many concurrent long requests get 403 "ConcurrentPerOrgLongTxn Limit exceeded." with the
  same errorCode (vendor integration error tables; logged bodies in public test suites), which is
  what the core rate-limit knob answers here.
- Salesforce keeps dateTimes to the second (salesforce.stackexchange 234824), so writes in one
  second share a modstamp: the (SystemModstamp, Id) tie-break is needed.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask
import pytest
import requests
import trustme
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from simple_salesforce.login import token_login

from sandboxes.salesforce.app import create_salesforce_app, start_salesforce
from sandboxes.salesforce.schema import CASE_STATUSES
from sandboxes.salesforce.values import id_suffix, make_id
from sandboxes.seed import DEPARTMENTS, seed_requests
from sandboxes.server import RunningSandbox, serve

CLIENT_ID = "3MVG9relsyncSandboxConsumerKey"
CLIENT_SECRET = "sandbox-consumer-secret"
PASSWORD = "correct horse battery"
RECORDS, SEED = 450, 7
SUPPORT = RECORDS // 25
SEEDS = seed_requests(RECORDS, SEED)
CHANGE_IDS = [make_id("500", r.seq) for r in SEEDS]
NOT_REJECTED = [make_id("500", r.seq) for r in SEEDS if r.status != "rejected"]
UTC = dt.UTC


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    """One CA and server certificate for the module; the CA as a PEM file for clients."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return context, path


@pytest.fixture
def org(authority: tuple[ssl.SSLContext, Path]) -> Iterator[RunningSandbox]:
    """A fresh org per test (450 change-request Cases and 18 support Cases)."""
    app = create_salesforce_app(records=RECORDS, seed=SEED, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                password=PASSWORD)
    with serve(app, ssl_context=authority[0]) as running:
        yield running


@pytest.fixture
def http(authority: tuple[ssl.SSLContext, Path]) -> requests.Session:
    """A session trusting the sandbox CA (trust_env off: REQUESTS_CA_BUNDLE would override verify)."""
    session = requests.Session()
    session.verify = str(authority[1])
    session.trust_env = False
    return session


def client_token(org: RunningSandbox, http: requests.Session) -> dict[str, Any]:
    answer = http.post(f"{org.url}/services/oauth2/token",
                       data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture
def sf(org: RunningSandbox, http: requests.Session) -> Salesforce:
    """The real client, as relsync builds it: instance URL, session id, our session, API 59.0."""
    issued = client_token(org, http)
    return Salesforce(instance_url=issued["instance_url"], session_id=issued["access_token"], session=http, version="59.0")


def knob(org: RunningSandbox, http: requests.Session, path: str, body: Any = None, method: str = "POST") -> Any:
    answer = http.request(method, f"{org.url}/_sandbox{path}", json=body)
    answer.raise_for_status()
    return answer.json() if answer.content else None


def raw(sf: Salesforce, method: str, path: str, **kwargs: Any) -> requests.Response:
    """A request with the client's headers but without its error mapping."""
    headers = {**sf.headers, **kwargs.pop("headers", {})}
    return sf.session.request(method, f"https://{sf.sf_instance}{path}", headers=headers, **kwargs)


def refusal(error_type: type[SalesforceError], call: Any) -> SalesforceError:
    with pytest.raises(error_type) as caught:
        call()
    return caught.value


def ids_where(predicate: Any) -> set[str]:
    return {make_id("500", r.seq) for r in SEEDS if predicate(r)}


def query_ids(sf: Salesforce, soql: str, **kwargs: Any) -> list[str]:
    return [r["Id"] for r in sf.query_all_iter(soql, **kwargs)]


# --- OAuth ------------------------------------------------------------------------------------


def test_start_salesforce_serves_https_with_its_own_ca(tmp_path: Path) -> None:
    running, description = start_salesforce(5, SEED)
    try:
        assert description["url"] == running.url and running.url.startswith("https://127.0.0.1:")
        assert set(description["env"]) == {"RELSYNC_SF_CLIENT_ID", "RELSYNC_SF_CLIENT_SECRET"}
        assert description["object"] == "Case" and description["record_type"] == "Change Request"
        assert description["ca_pem"].startswith("-----BEGIN CERTIFICATE-----")
        ca = tmp_path / "ca.pem"
        ca.write_text(description["ca_pem"])
        env = description["env"]
        form = {"grant_type": "client_credentials", "client_id": env["RELSYNC_SF_CLIENT_ID"],
                "client_secret": env["RELSYNC_SF_CLIENT_SECRET"]}
        untrusted = requests.Session()
        untrusted.trust_env = False
        with pytest.raises(requests.exceptions.SSLError):
            untrusted.post(f"{running.url}/services/oauth2/token", data=form)  # only the sandbox CA vouches for it
        answer = requests.post(f"{running.url}/services/oauth2/token", data=form, verify=str(ca))
        assert answer.status_code == 200 and answer.json()["instance_url"] == running.url
    finally:
        running.stop()


def test_client_credentials_token_as_documented(org: RunningSandbox, http: requests.Session) -> None:
    body = client_token(org, http)
    assert list(body) == ["access_token", "signature", "scope", "instance_url", "id", "token_type", "issued_at"]
    assert body["token_type"] == "Bearer" and body["instance_url"] == org.url and body["issued_at"].isdigit()
    assert re.fullmatch(rf"{re.escape(org.url)}/id/00D\w{{15}}/005\w{{15}}", body["id"])
    expected = hmac.new(CLIENT_SECRET.encode(), (body["id"] + body["issued_at"]).encode(), hashlib.sha256).digest()
    assert base64.b64decode(body["signature"]) == expected
    # The same grant with HTTP Basic client authentication, as simple-salesforce sends it, through its own helper.
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    token, instance = token_login(f"{org.url}/services/oauth2/token", {"grant_type": "client_credentials"}, "sandbox",
                                  CLIENT_ID, {"Authorization": f"Basic {basic}"}, None, http)
    assert instance == org.url.removeprefix("https://") and token != body["access_token"]


def test_password_and_refresh_token_grants_and_session_expiry(org: RunningSandbox, http: requests.Session) -> None:
    token, _ = token_login(f"{org.url}/services/oauth2/token",
                           {"grant_type": "password", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                            "username": "relsync@example.com", "password": PASSWORD}, "sandbox", CLIENT_ID, None, None, http)
    sf = Salesforce(instance_url=org.url, session_id=token, session=http, version="59.0")
    assert sf.query("SELECT COUNT() FROM Case")["totalSize"] == RECORDS + SUPPORT
    assert knob(org, http, "/salesforce/expire-sessions") == {"expired": 1}
    expired = refusal(SalesforceExpiredSession, lambda: sf.query("SELECT Id FROM Case LIMIT 1"))
    assert expired.status == 401
    assert expired.content == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    answer = raw(sf, "GET", "/services/data/v59.0/limits/")
    assert answer.headers["WWW-Authenticate"] == "Token" and answer.headers["Content-Type"] == "application/json;charset=UTF-8"
    refresh = knob(org, http, "/salesforce/refresh-token")["refresh_token"]
    renewed = http.post(f"{org.url}/services/oauth2/token", data={"grant_type": "refresh_token", "client_id": CLIENT_ID,
                                                                  "client_secret": CLIENT_SECRET, "refresh_token": refresh})
    assert renewed.status_code == 200 and "refresh_token" not in renewed.json()
    sf.session_id = renewed.json()["access_token"]
    sf._generate_headers()
    assert sf.query("SELECT Id FROM Case LIMIT 1")["totalSize"] == 1


@pytest.mark.parametrize(
    ("form", "error", "description"),
    [
        ({"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "wrong"},
         "invalid_client", "invalid client credentials"),
        ({"grant_type": "client_credentials", "client_id": "3MVG9nobody", "client_secret": CLIENT_SECRET},
         "invalid_client_id", "client identifier invalid"),
        ({"grant_type": "password", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
          "username": "relsync@example.com", "password": "nope"}, "invalid_grant", "authentication failure"),
        ({"grant_type": "refresh_token", "client_id": CLIENT_ID, "refresh_token": "5Aepforged"},
         "invalid_grant", "expired access/refresh token"),
        ({"grant_type": "authorization_code", "client_id": CLIENT_ID}, "unsupported_grant_type", "grant type not supported"),
    ],
)
def test_token_refusals(org: RunningSandbox, http: requests.Session, form: dict[str, str], error: str, description: str) -> None:
    answer = http.post(f"{org.url}/services/oauth2/token", data=form)
    assert answer.status_code == 400 and answer.json() == {"error": error, "error_description": description}
    with pytest.raises(SalesforceAuthenticationFailed) as caught:
        token_login(f"{org.url}/services/oauth2/token", form, "sandbox", CLIENT_ID, None, None, http)
    assert caught.value.code == error and caught.value.auth_message == description


# --- Versions, limits, describe ---------------------------------------------------------------


def test_versions_resources_and_limits(org: RunningSandbox, http: requests.Session, sf: Salesforce) -> None:
    versions = http.get(f"{org.url}/services/data/")
    assert versions.status_code == 200 and "Sforce-Limit-Info" not in versions.headers  # Versions is free and public
    listed = {v["version"]: v for v in versions.json()}
    assert listed["59.0"] == {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"}
    assert listed["62.0"]["label"] == "Winter '25" and listed["60.0"]["label"] == "Spring '24"
    resources = sf.restful("")
    assert resources["query"] == "/services/data/v59.0/query" and resources["sobjects"] == "/services/data/v59.0/sobjects"
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] == 15000
    assert limits["DailyApiRequests"]["Remaining"] == 15000 - sf.api_usage["api-usage"].used
    gone = raw(sf, "GET", "/services/data/v99.0/sobjects/")
    assert gone.status_code == 404 and gone.json() == [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]


def test_describe_lists_fields_picklists_and_record_types(sf: Salesforce) -> None:
    described = sf.Case.describe()
    assert described["name"] == "Case" and described["keyPrefix"] == "500"
    fields = {f["name"]: f for f in described["fields"]}
    department = fields["Department__c"]
    assert department["type"] == "picklist" and department["restrictedPicklist"] is True and department["custom"] is True
    assert [p["value"] for p in department["picklistValues"]] == list(DEPARTMENTS)
    assert set(department["picklistValues"][0]) == {"active", "defaultValue", "label", "validFor", "value"}
    status = fields["Status"]
    assert [p["value"] for p in status["picklistValues"]] == list(CASE_STATUSES)
    assert [p["value"] for p in status["picklistValues"] if p["defaultValue"]] == ["New"]
    assert fields["CaseNumber"]["createable"] is False and fields["CaseNumber"]["autoNumber"] is True
    assert fields["Release__c"]["length"] == 80 and fields["Release__c"]["updateable"] is True
    assert fields["Target_Date__c"]["type"] == "date" and fields["SystemModstamp"]["type"] == "datetime"
    owner = fields["OwnerId"]
    assert owner["referenceTo"] == ["Group", "User"] and owner["relationshipName"] == "Owner" and owner["polymorphicForeignKey"]
    assert fields["Description"]["filterable"] is False and fields["Description"]["type"] == "textarea"
    assert {(r["name"], r["defaultRecordTypeMapping"]) for r in described["recordTypeInfos"]} == {
        ("Change Request", True), ("Support", False)}
    names = [o["name"] for o in sf.describe()["sobjects"]]
    assert {"Case", "Change_Request__c", "User", "RecordType"} <= set(names)
    assert sf.Case.metadata()["objectDescribe"]["urls"]["rowTemplate"] == "/services/data/v59.0/sobjects/Case/{ID}"
    assert refusal(SalesforceResourceNotFound, lambda: sf.Cases.describe()).status == 404


# --- Query ------------------------------------------------------------------------------------


def test_query_pages_by_next_records_url_and_honours_batch_size(org: RunningSandbox, http: requests.Session, sf: Salesforce) -> None:
    # Exact batches (the kind setting): test_salesforce_real.py shows the real ones vary.
    assert knob(org, http, "/salesforce/config", {"exact_batches": True})["exact_batches"] is True
    knob(org, http, "/calls/reset")
    everything = query_ids(sf, "SELECT Id FROM Case")
    assert len(everything) == RECORDS + SUPPORT == len(set(everything)) and everything == sorted(everything)
    assert knob(org, http, "/calls", method="GET")["calls"] == {"GET /services/data/v{version}/query/": 1}

    first = sf.query("SELECT Id, Subject FROM Case ORDER BY Id", headers={"Sforce-Query-Options": "batchSize=200"})
    assert list(first) == ["totalSize", "done", "nextRecordsUrl", "records"]
    assert first["totalSize"] == RECORDS + SUPPORT and first["done"] is False and len(first["records"]) == 200
    assert re.fullmatch(r"/services/data/v59\.0/query/0r8\w{15}-200", first["nextRecordsUrl"])
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert len(second["records"]) == 200 and second["nextRecordsUrl"].endswith("-400")
    third = sf.query_more(second["nextRecordsUrl"], identifier_is_url=True)
    assert third["done"] is True and "nextRecordsUrl" not in third and len(third["records"]) == RECORDS + SUPPORT - 400
    paged = [r["Id"] for page in (first, second, third) for r in page["records"]]
    assert paged == everything
    assert first["records"][0] == {"attributes": {"type": "Case", "url": f"/services/data/v59.0/sobjects/Case/{CHANGE_IDS[0]}"},
                                   "Id": CHANGE_IDS[0], "Subject": SEEDS[0].title}
    # Batch sizes outside 200..2000 are brought into range.
    small = sf.query("SELECT Id FROM Case", headers={"Sforce-Query-Options": "batchSize=10"})
    assert len(small["records"]) == 200
    big = sf.query("SELECT Id FROM Case", headers={"Sforce-Query-Options": "batchSize=5000"})
    assert big["done"] is True and len(big["records"]) == RECORDS + SUPPORT


def test_shared_modstamp_across_a_page_boundary_and_the_tie_break(org: RunningSandbox, http: requests.Session, sf: Salesforce) -> None:
    shared = knob(org, http, "/salesforce/share-modstamp", {"count": 300})
    stamp = shared["modstamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000\+0000", stamp) and len(shared["ids"]) == 300
    soql = "SELECT Id, SystemModstamp FROM Case ORDER BY SystemModstamp, Id"
    first = sf.query(soql, headers={"Sforce-Query-Options": "batchSize=200"})
    tied_on_first = [r["Id"] for r in first["records"] if r["SystemModstamp"] == stamp]
    assert 0 < len(tied_on_first) < 200  # the tie starts on page one and runs on into page two
    last = first["records"][-1]
    literal = stamp.replace(".000+0000", "Z")
    resume = (f"SELECT Id FROM Case WHERE SystemModstamp > {literal} OR "
              f"(SystemModstamp = {literal} AND Id > '{last['Id']}') ORDER BY SystemModstamp, Id")
    rest = query_ids(sf, resume)
    assert rest == [i for i in shared["ids"] if i > last["Id"]] and len(rest) == 300 - len(tied_on_first)
    assert query_ids(sf, f"SELECT Id FROM Case WHERE SystemModstamp >= {literal} ORDER BY SystemModstamp, Id") == shared["ids"]


@pytest.mark.parametrize(
    ("where", "predicate"),
    [
        ("Status = 'Approved'", lambda r: r.status == "approved"),
        ("Status IN ('New', 'Triage') AND Priority = 'Critical'", lambda r: r.status in ("new", "triaged") and r.priority == "critical"),
        ("Department__c = 'Sales Ops' AND Priority != 'Low'", lambda r: r.department == "Sales Ops" and not r.quirks.no_custom_fields
         and r.priority != "low"),
        ("Subject LIKE '%dashboard%'", lambda r: "dashboard" in r.title.lower() and not r.quirks.no_title),  # null Subjects match nothing
        ("NOT (Status = 'Approved' OR Status = 'Closed')", lambda r: r.status not in ("approved", "closed")),
        ("Release__c != null", lambda r: r.status in ("deployed", "closed")),
        ("CreatedDate < 2026-07-01T00:00:00Z", lambda r: r.created < dt.datetime(2026, 7, 1, tzinfo=UTC)),
        ("LastModifiedDate >= 2026-10-01T02:00:00+02:00",
         lambda r: r.updated.replace(microsecond=0) >= dt.datetime(2026, 10, 1, tzinfo=UTC)),
        (f"SuppliedEmail = '{SEEDS[0].requester.email.upper()}'", lambda r: r.requester == SEEDS[0].requester),
    ],
)
def test_soql_filters_match_the_seeded_data(sf: Salesforce, where: str, predicate: Any) -> None:
    expected = ids_where(predicate)
    assert expected, "each filter should select something"
    assert set(query_ids(sf, f"SELECT Id FROM Case WHERE RecordType.Name = 'Change Request' AND ({where})")) == expected


def test_relationship_fields_owner_and_record_type(sf: Salesforce) -> None:
    result = sf.query(f"SELECT Id, Owner.Name, Owner.Type, RecordType.Name, CreatedBy.Name FROM Case "
                      f"WHERE Id IN ('{CHANGE_IDS[0]}', '{make_id('500', RECORDS + 1)}') ORDER BY Id")
    change, support = result["records"]
    expected_owner = SEEDS[0].owner.name if SEEDS[0].owner else "Ops Intake"
    assert change["Owner"]["Name"] == expected_owner and change["Owner"]["attributes"]["type"] == "Name"
    assert change["RecordType"] == {"attributes": {"type": "RecordType", "url": change["RecordType"]["attributes"]["url"]},
                                    "Name": "Change Request"}
    assert support["RecordType"]["Name"] == "Support" and support["Owner"]["Type"] == "Queue"
    assert support["Owner"]["attributes"]["url"].startswith("/services/data/v59.0/sobjects/Group/00G")
    assert change["CreatedBy"]["Name"] == "Intake Automation"
    assert len(query_ids(sf, "SELECT Id FROM Case WHERE RecordType.Name = 'Support'")) == SUPPORT
    unowned = ids_where(lambda r: r.owner is None)
    assert set(query_ids(sf, "SELECT Id FROM Case WHERE Owner.Type = 'Queue' AND RecordType.DeveloperName = 'Change_Request'")) == unowned
    names = [r["Owner"]["Name"] for r in sf.query_all_iter("SELECT Owner.Name FROM Case ORDER BY Owner.Name DESC")]
    assert names == sorted(names, key=str.upper, reverse=True)


def test_escaped_literals_through_format_soql(sf: Salesforce) -> None:
    subject = "Rename \"Legacy\" tier for O'Brien's team \\ Zürich\nsecond line"
    created = sf.Case.create({"Subject": subject, "Department__c": "IT"})
    assert sf.query(format_soql("SELECT Id, Subject FROM Case WHERE Subject = {}", subject))["records"] == [
        {"attributes": {"type": "Case", "url": f"/services/data/v59.0/sobjects/Case/{created['id']}"},
         "Id": created["id"], "Subject": subject}]
    like = format_soql("SELECT Id FROM Case WHERE Subject LIKE '{:like}%'", "Rename \"Legacy\" tier for O'Brien")
    assert query_ids(sf, like) == [created["id"]]
    assert query_ids(sf, format_soql("SELECT Id FROM Case WHERE Subject IN {}", [subject, "nothing"])) == [created["id"]]


def test_malformed_query_and_invalid_field_bodies(sf: Salesforce) -> None:
    unknown = refusal(SalesforceMalformedRequest, lambda: sf.query("SELECT Id, Foo FROM Case"))
    assert unknown.status == 400 and unknown.content == [{
        "message": "\nSELECT Id, Foo FROM Case\n           ^\nERROR at Row:1:Column:12\nNo such column 'Foo' on entity "
                   "'Case'. If you are attempting to use a custom field, be sure to append the '__c' after the custom "
                   "field name. Please reference your WSDL or the describe call for the appropriate names.",
        "errorCode": "INVALID_FIELD"}]
    mixed = refusal(SalesforceMalformedRequest,
                    lambda: sf.query("SELECT Id FROM Case WHERE Status = 'New' AND Priority = 'Low' OR Subject = 'x'"))
    assert mixed.content[0]["errorCode"] == "MALFORMED_QUERY" and mixed.content[0]["message"].endswith("unexpected token: 'OR'")
    quoted = refusal(SalesforceMalformedRequest, lambda: sf.query("SELECT Id FROM Case WHERE SystemModstamp > '2026-01-01'"))
    assert quoted.content == [{"message": "value of filter criterion for field 'SystemModstamp' must be of type dateTime "
                                          "and should not be enclosed in quotes", "errorCode": "INVALID_FIELD"}]
    assert refusal(SalesforceMalformedRequest, lambda: sf.query("SELECT Id FROM Ticket")).content[0]["errorCode"] == "INVALID_TYPE"
    empty = raw(sf, "GET", "/services/data/v59.0/query/")
    assert empty.status_code == 400 and empty.json()[0]["errorCode"] == "MALFORMED_QUERY"


def test_query_all_sees_deleted_records_and_query_does_not(sf: Salesforce) -> None:
    victim = CHANGE_IDS[4]
    assert sf.Case.delete(victim) == 204
    soql = f"SELECT Id, IsDeleted FROM Case WHERE Id = '{victim}'"
    assert sf.query(soql)["totalSize"] == 0
    assert sf.query_all(soql, include_deleted=True)["records"][0]["IsDeleted"] is True
    assert sf.query("SELECT COUNT() FROM Case WHERE IsDeleted = true")["totalSize"] == 0
    assert sf.query("SELECT COUNT() FROM Case", include_deleted=True)["totalSize"] == RECORDS + SUPPORT
    gone = refusal(SalesforceResourceNotFound, lambda: sf.Case.get(victim))
    assert gone.content == [{"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED"}]
    assert refusal(SalesforceResourceNotFound, lambda: sf.Case.delete(victim)).content[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_expired_query_locators_and_no_cap_on_open_ones(org: RunningSandbox, http: requests.Session, sf: Salesforce) -> None:
    # Since API 56.0 there is no limit on open cursors (the oldest of 10 used to be
    # released): Salesforce App Limits Cheatsheet, "API Query Cursor Limits".
    options = {"Sforce-Query-Options": "batchSize=200"}
    first = sf.query("SELECT Id FROM Case", headers=options)
    assert knob(org, http, "/salesforce/expire-locators") == {"expired": 1}
    stale = refusal(SalesforceMalformedRequest, lambda: sf.query_more(first["nextRecordsUrl"], identifier_is_url=True))
    assert stale.status == 400 and stale.content == [{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}]
    cursors = [sf.query("SELECT Id FROM Case", headers=options)["nextRecordsUrl"] for _ in range(11)]
    assert all(sf.query_more(cursor, identifier_is_url=True)["records"] for cursor in cursors)
    forged = cursors[-1].rsplit("-", 1)[0] + "-99999"
    assert refusal(SalesforceMalformedRequest, lambda: sf.query_more(forged, identifier_is_url=True)).status == 400


def test_edits_during_paging_show_on_later_pages(org: RunningSandbox, http: requests.Session, sf: Salesforce) -> None:
    first = sf.query("SELECT Id, Release__c FROM Case ORDER BY Id", headers={"Sforce-Query-Options": "batchSize=200"})
    later = CHANGE_IDS[250]
    knob(org, http, "/salesforce/edit-during-paging", {"ids": [later], "fields": {"Release__c": "2027.01"}})
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert {r["Id"]: r["Release__c"] for r in second["records"]}[later] == "2027.01"


# --- Records ----------------------------------------------------------------------------------


def test_create_get_update_delete(sf: Salesforce) -> None:
    created = sf.Case.create({"Subject": "Add 'Renewal Risk' to the Opportunity layout", "Department__c": "RevOps",
                              "Priority": "High", "SuppliedEmail": "ana.costa@example.com"})
    ident = created["id"]
    assert created == {"id": ident, "success": True, "errors": []}
    assert ident.startswith("5008d") and len(ident) == 18 and ident[15:] == id_suffix(ident[:15])
    record = sf.Case.get(ident[:15])  # 15-character ids are accepted on reads
    assert record["Id"] == ident and record["Status"] == "New" and record["IsDeleted"] is False
    assert record["CaseNumber"] == f"{1000 + RECORDS + SUPPORT + 1:08d}"
    assert record["RecordTypeId"] == make_id("012", 1) and record["CreatedDate"] == record["SystemModstamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000\+0000", record["CreatedDate"])
    seeded = sf.Case.get(CHANGE_IDS[0], params={"fields": "SystemModstamp,Release__c"})
    assert list(seeded) == ["attributes", "SystemModstamp", "Release__c", "Id"]  # the Id follows the fields asked for
    assert sf.Case.update(CHANGE_IDS[0], {"Release__c": "2026.12", "Release_Status__c": "Planned",
                                          "Target_Date__c": "2026-12-15"}) == 204
    after = sf.Case.get(CHANGE_IDS[0])
    assert after["Release__c"] == "2026.12" and after["Target_Date__c"] == "2026-12-15"
    assert after["SystemModstamp"] > seeded["SystemModstamp"] and after["LastModifiedDate"] == after["SystemModstamp"]
    assert after["LastModifiedById"] == make_id("005", 1)  # the integration user
    assert sf.Case.update(CHANGE_IDS[0], {"Release__c": None}) == 204 and sf.Case.get(CHANGE_IDS[0])["Release__c"] is None
    missing = refusal(SalesforceResourceNotFound, lambda: sf.Case.get("not-an-id"))
    assert missing.content == [{"message": "Provided external ID field does not exist or is not accessible: not-an-id",
                                "errorCode": "NOT_FOUND"}]
    nowhere = refusal(SalesforceResourceNotFound, lambda: sf.Case.get(make_id("500", 99_999)))
    assert nowhere.content == [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"Department__c": "Legal"}, {"message": "Department: bad value for restricted picklist field: Legal",
                                      "errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "fields": ["Department__c"]}),
        ({"Status": "Rejected", "Release__c": "2026.12"},
         {"message": "A rejected change request can't be scheduled into a release.",
          "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "fields": ["Release__c"]}),
        ({"Colour__c": "red"}, {"message": "No such column 'Colour__c' on sobject of type Case", "errorCode": "INVALID_FIELD",
                                "fields": []}),
        ({"CaseNumber": "1", "SystemModstamp": "2026-01-01T00:00:00.000+0000"},
         {"message": "Unable to create/update fields: CaseNumber, SystemModstamp. Please check the security settings of "
                     "this field and verify that it is read/write for your profile or permission set.",
          "errorCode": "INVALID_FIELD_FOR_INSERT_UPDATE", "fields": ["CaseNumber", "SystemModstamp"]}),
        ({"Release__c": "x" * 81}, {"message": f"Release: data value too large: {'x' * 81} (max length=80)",
                                    "errorCode": "STRING_TOO_LONG", "fields": ["Release__c"]}),
        ({"OwnerId": make_id("500", 1)}, {"message": f"Owner ID: id value of incorrect type: {make_id('500', 1)}",
                                          "errorCode": "FIELD_INTEGRITY_EXCEPTION", "fields": ["OwnerId"]}),
    ],
)
def test_update_validation_errors(sf: Salesforce, changes: dict[str, Any], expected: dict[str, Any]) -> None:
    before = sf.Case.get(CHANGE_IDS[1])
    error = refusal(SalesforceMalformedRequest, lambda: sf.Case.update(CHANGE_IDS[1], changes))
    assert error.status == 400 and error.content == [expected]
    assert sf.Case.get(CHANGE_IDS[1]) == before  # nothing was written


def test_if_unmodified_since_refuses_a_stale_write(sf: Salesforce) -> None:
    ident = CHANGE_IDS[2]
    answer = raw(sf, "GET", f"/services/data/v59.0/sobjects/Case/{ident}")
    seen = answer.headers["Last-Modified"]
    assert seen.endswith(" GMT")
    assert sf.Case.update(ident, {"Priority": "High"}, headers={"If-Unmodified-Since": seen}) == 204  # unchanged since: ok
    stale = refusal(SalesforceGeneralError, lambda: sf.Case.update(ident, {"Release__c": "2027.02"},
                                                                    headers={"If-Unmodified-Since": seen}))
    assert stale.status == 412 and stale.content[0]["errorCode"] == "PRECONDITION_FAILED"
    assert sf.Case.get(ident)["Release__c"] != "2027.02"
    bad = raw(sf, "PATCH", f"/services/data/v59.0/sobjects/Case/{ident}", json={"Priority": "Low"},
              headers={"If-Unmodified-Since": "yesterday"})
    assert bad.status_code == 400


# --- sObject Collections ----------------------------------------------------------------------


def collection(records: list[dict[str, Any]], all_or_none: bool = False) -> dict[str, Any]:
    return {"allOrNone": all_or_none, "records": records}


def test_collection_update_of_200_and_refusal_of_201(org: RunningSandbox, http: requests.Session, sf: Salesforce) -> None:
    batch = [{"attributes": {"type": "Case"}, "id": ident, "Release__c": "2026.12"} for ident in NOT_REJECTED[:201]]
    too_many = refusal(SalesforceMalformedRequest, lambda: sf.restful("composite/sobjects", method="PATCH",
                                                                       json=collection(batch)))
    assert too_many.content == [{"message": "record limit reached. cannot submit more than 200 records into this call",
                                 "errorCode": "EXCEEDED_ID_LIMIT"}]
    assert sf.query("SELECT COUNT() FROM Case WHERE Release__c = '2026.12'")["totalSize"] == 0
    knob(org, http, "/calls/reset")
    results = sf.restful("composite/sobjects", method="PATCH", json=collection(batch[:200]))
    assert results == [{"id": ident, "success": True, "errors": []} for ident in NOT_REJECTED[:200]]
    assert knob(org, http, "/calls", method="GET")["calls"] == {"PATCH /services/data/v{version}/composite/sobjects": 1}
    stamps = {r["SystemModstamp"] for r in sf.query_all_iter("SELECT SystemModstamp FROM Case WHERE Release__c = '2026.12'")}
    assert len(stamps) == 1  # one call, one save, one modstamp


def test_collection_partial_success_and_all_or_none_rollback(sf: Salesforce) -> None:
    good, picky, rejected = CHANGE_IDS[10], CHANGE_IDS[11], CHANGE_IDS[12]
    records = [
        {"attributes": {"type": "Case"}, "id": good, "Release__c": "2027.03"},
        {"attributes": {"type": "Case"}, "id": picky, "Department__c": "Legal"},
        {"attributes": {"type": "Case"}, "id": rejected, "Status": "Rejected", "Release__c": "2027.03"},
        {"attributes": {"type": "Case"}, "id": "500bogus", "Release__c": "2027.03"},
    ]
    rolled_back = sf.restful("composite/sobjects", method="PATCH", json=collection(records, all_or_none=True))
    rollback = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "fields": [],
                "message": "Record rolled back because not all records were valid and the request was using AllOrNone header"}
    assert rolled_back[0] == {"success": False, "errors": [rollback]}
    assert rolled_back[1] == {"success": False, "errors": [{"statusCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                                            "message": "Department: bad value for restricted picklist field: Legal",
                                                            "fields": ["Department__c"]}]}
    assert rolled_back[2]["errors"][0]["statusCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert rolled_back[3]["errors"][0] == {"statusCode": "MALFORMED_ID", "fields": ["Id"],
                                           "message": "Case ID: id value of incorrect type: 500bogus"}
    assert sf.Case.get(good)["Release__c"] != "2027.03"  # rolled back
    partial = sf.restful("composite/sobjects", method="PATCH", json=collection(records))
    assert [r["success"] for r in partial] == [True, False, False, False]
    assert partial[0] == {"id": good, "success": True, "errors": []} and all("id" not in r for r in partial[1:])
    assert sf.Case.get(good)["Release__c"] == "2027.03" and sf.Case.get(rejected)["Status"] != "Rejected"


def test_collection_create_retrieve_and_delete(sf: Salesforce) -> None:
    created = sf.restful("composite/sobjects", method="POST", json=collection([
        {"attributes": {"type": "Case"}, "Subject": "New approval flow", "Department__c": "Finance Ops"},
        {"attributes": {"type": "Change_Request__c"}, "Title__c": "Same, as a custom object", "Status__c": "Approved"},
        {"attributes": {"type": "Change_Request__c"}, "Status__c": "Approved"},
        {"Subject": "no attributes"},
    ]))
    assert [r["success"] for r in created] == [True, True, False, False]
    assert created[1]["id"].startswith("a0C")
    assert created[2]["errors"] == [{"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [Title__c]",
                                     "fields": ["Title__c"]}]
    assert created[3]["errors"][0] == {"statusCode": "INVALID_TYPE", "message": "Must send a concrete entity type.", "fields": []}
    fetched = sf.restful("composite/sobjects/Case", params={"ids": f"{created[0]['id']},{make_id('500', 99_999)}",
                                                            "fields": "Subject,Status"})
    assert fetched[0]["Subject"] == "New approval flow" and fetched[0]["Status"] == "New" and fetched[1] is None
    custom = sf.Change_Request__c.get(created[1]["id"])
    assert custom["Name"] == "CR-000001" and custom["Status__c"] == "Approved" and custom["Priority__c"] == "Medium"
    deleted = sf.restful("composite/sobjects", method="DELETE", params={"ids": f"{created[0]['id']},{created[1]['id']}"})
    assert deleted == [{"id": created[0]["id"], "success": True, "errors": []},
                       {"id": created[1]["id"], "success": True, "errors": []}]


# --- Replication, quota, counter, seed --------------------------------------------------------


def test_get_updated_and_get_deleted(org: RunningSandbox, http: requests.Session, sf: Salesforce) -> None:
    now = dt.datetime.fromisoformat(knob(org, http, "/salesforce/state", method="GET")["now"].replace("+0000", "+00:00"))
    sf.Case.update(CHANGE_IDS[20], {"Release__c": "2026.12"})
    sf.Case.delete(CHANGE_IDS[21])
    window = (now - dt.timedelta(minutes=5), now + dt.timedelta(minutes=30))
    covered_now = sf.Case.updated(*window)
    assert CHANGE_IDS[20] not in covered_now["ids"]  # the current minute is not covered yet
    knob(org, http, "/salesforce/advance-clock", {"seconds": 120})
    updated = sf.Case.updated(*window)
    assert CHANGE_IDS[20] in updated["ids"] and CHANGE_IDS[21] not in updated["ids"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:00\.000\+0000", updated["latestDateCovered"])
    deleted = sf.Case.deleted(*window)
    assert [d["id"] for d in deleted["deletedRecords"]] == [CHANGE_IDS[21]]
    assert list(deleted) == ["deletedRecords", "earliestDateAvailable", "latestDateCovered"]
    too_old = refusal(SalesforceMalformedRequest, lambda: sf.Case.updated(now - dt.timedelta(days=31), now))
    assert too_old.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    assert refusal(SalesforceMalformedRequest, lambda: sf.Case.deleted(now - dt.timedelta(days=16), now)).status == 400
    backwards = refusal(SalesforceMalformedRequest, lambda: sf.Case.updated(now, now - dt.timedelta(hours=1)))
    assert backwards.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    purged = knob(org, http, "/salesforce/purge-deleted")
    assert purged["purged"] == 1
    assert sf.query(f"SELECT COUNT() FROM Case WHERE Id = '{CHANGE_IDS[21]}'", include_deleted=True)["totalSize"] == 0
    after_purge = refusal(SalesforceMalformedRequest, lambda: sf.Case.deleted(*window))
    assert after_purge.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"  # the gap needs a full reconcile


def test_limit_info_on_every_response_and_the_daily_quota(org: RunningSandbox, http: requests.Session, sf: Salesforce) -> None:
    sf.query("SELECT Id FROM Case LIMIT 1")
    used = sf.api_usage["api-usage"].used
    refusal(SalesforceMalformedRequest, lambda: sf.query("SELECT Nope FROM Case"))
    assert sf.api_usage["api-usage"].used == used  # the client only reads the header of successes...
    failed = raw(sf, "GET", "/services/data/v59.0/query/", params={"q": "SELECT Nope FROM Case"})
    assert failed.headers["Sforce-Limit-Info"] == f"api-usage={used + 2}/15000"  # ...but errors carry and count it too
    cases = sf.Case  # each attribute access builds a new SFType, with its own api_usage
    cases.get(CHANGE_IDS[0])
    assert cases.api_usage["api-usage"].used == used + 3
    knob(org, http, "/salesforce/limits", {"used": 99, "max": 100})
    assert sf.query("SELECT Id FROM Case LIMIT 1") and sf.api_usage["api-usage"] == (100, 100)
    spent = refusal(SalesforceRefusedRequest, lambda: sf.query("SELECT Id FROM Case LIMIT 1"))
    assert spent.status == 403 and spent.content == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert raw(sf, "GET", "/services/data/v59.0/limits/").headers["Sforce-Limit-Info"] == "api-usage=100/100"
    assert http.post(f"{org.url}/services/oauth2/token", data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                                              "client_secret": CLIENT_SECRET}).status_code == 200


def test_call_counter_counts_routes_and_statuses(org: RunningSandbox, http: requests.Session, sf: Salesforce) -> None:
    knob(org, http, "/calls/reset")
    sf.query("SELECT Id FROM Case LIMIT 5")
    sf.Case.get(CHANGE_IDS[0])
    sf.Case.update(CHANGE_IDS[0], {"Priority": "Low"})
    refusal(SalesforceResourceNotFound, lambda: sf.Case.get(make_id("500", 99_999)))
    counted = knob(org, http, "/calls", method="GET")
    assert counted["calls"] == {"GET /services/data/v{version}/query/": 1,
                                "GET /services/data/v{version}/sobjects/{name}/{record_id}": 2,
                                "PATCH /services/data/v{version}/sobjects/{name}/{record_id}": 1}
    assert counted["statuses"] == {"200": 2, "204": 1, "404": 1}


def test_seed_determinism_and_the_custom_object_variant() -> None:
    def snapshot(seed: int, object_name: str = "Case") -> Any:
        app = create_salesforce_app(records=60, seed=seed, client_id="c", client_secret="s", object_name=object_name)
        state = app.extensions["relsync_sandbox_salesforce"]
        return {name: list(table.values()) for name, table in state.tables.items()}

    assert snapshot(11) == snapshot(11)
    assert snapshot(11)["Case"] != snapshot(12)["Case"]
    custom = snapshot(11, "Change_Request__c")
    assert len(custom["Change_Request__c"]) == 60 and len(custom["Case"]) == 3  # only the support cases
    first = custom["Change_Request__c"][0]
    request = seed_requests(1, 11)[0]
    assert first["Title__c"] == request.title and first["Requester_Email__c"] == request.requester.email
    assert first["Name"] == "CR-000001" and first["Id"] == make_id("a0C", 1)
    assert isinstance(create_salesforce_app(records=1, seed=1, client_id="c", client_secret="s"), flask.Flask)


def test_rate_limit_knob_answers_like_the_concurrency_limit(org: RunningSandbox, http: requests.Session, sf: Salesforce) -> None:
    knob(org, http, "/config", {"rate_limit": {"requests": 1, "per_seconds": 60}})
    sf.query("SELECT Id FROM Case LIMIT 1")
    refused = refusal(SalesforceRefusedRequest, lambda: sf.query("SELECT Id FROM Case LIMIT 1"))
    assert refused.status == 403
    assert refused.content == [{"message": "ConcurrentPerOrgLongTxn Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    knob(org, http, "/config", {"rate_limit": None})
    knob(org, http, "/faults", {"path": "/services/data/*/query/", "status": 503})
    unavailable = refusal(SalesforceGeneralError, lambda: sf.query("SELECT Id FROM Case LIMIT 1"))
    assert unavailable.status == 503 and unavailable.content[0]["errorCode"] == "SERVER_UNAVAILABLE"


def test_affected_object_picklist_on_case_and_the_custom_object(sf: Salesforce, authority: tuple[ssl.SSLContext, Path],
                                                               http: requests.Session) -> None:
    objects = ["Opportunity", "Account", "Lead", "Case", "Contact", "Quote", "Contract", "Invoice", "Campaign", "Order"]
    rows = {r["Id"]: r["Affected_Object__c"] for r in sf.query_all_iter("SELECT Id, Affected_Object__c FROM Case")}
    assert all(rows[make_id("500", r.seq)] == r.affected_object for r in SEEDS)
    assert set(query_ids(sf, "SELECT Id FROM Case WHERE Affected_Object__c = 'Lead'")) == ids_where(lambda r: r.affected_object == "Lead")
    sf.Case.update(CHANGE_IDS[0], {"Affected_Object__c": "Not In The List"})  # not restricted: any value is kept
    assert sf.Case.get(CHANGE_IDS[0])["Affected_Object__c"] == "Not In The List"
    app = create_salesforce_app(records=30, seed=SEED, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                object_name="Change_Request__c")
    with serve(app, ssl_context=authority[0]) as running:
        issued = client_token(running, http)
        custom = Salesforce(instance_url=issued["instance_url"], session_id=issued["access_token"], session=http, version="59.0")
        for client, name in ((sf, "Case"), (custom, "Change_Request__c")):
            field = {f["name"]: f for f in getattr(client, name).describe()["fields"]}["Affected_Object__c"]
            assert field["type"] == "picklist" and field["label"] == "Affected Object" and field["custom"] is True
            assert field["restrictedPicklist"] is False and [p["value"] for p in field["picklistValues"]] == objects
        records = custom.query_all("SELECT Name, Affected_Object__c FROM Change_Request__c ORDER BY Name")["records"]
        assert [r["Affected_Object__c"] for r in records] == [r.affected_object for r in SEEDS[:30]]
