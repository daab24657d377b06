"""The Airtable sandbox over real HTTP, driven by the real client (pyairtable 3.5.1).

What each behaviour is modelled on (looked up, not guessed):
- Paging: pages of up to 100 (``pageSize`` "100 is the maximum"), ``offset`` values like
  ``itrSJ1l4jlPyxEG6c/recxxx`` (support.airtable.com, "Getting started with Airtable's Web
  API"). Expired iterators: "the client will receive a 422 response with error message
  LIST_RECORDS_ITERATOR_NOT_AVAILABLE. It may then restart iteration" (list-records docs,
  quoted in simonw/airtable-export#7); the body is ``{"error":{"type":
  "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"}}`` with no message (julien040/anyquery Airtable
  plugin README). Whether an iterator sees later edits is not documented: the sandbox walks
  the ids matched when it opened and renders them as they are now.
- Rate limit: 5 requests per second per base, then 429 and "wait 30 seconds before
  subsequent requests will succeed" (support.airtable.com, "Managing API call limits").
  The errors page words the body as a ``{"error": {...}}`` object, but real 429s observed
  in 2024-2025 are ``{"errors":[{"error":"RATE_LIMIT_REACHED","message":"Rate limit
  exceeded. Please try again later"}]}`` (PipedreamHQ/pipedream#10130,
  hackclub/hackatime#299); the sandbox sends the observed body, with no Retry-After
  (none is documented for 429) unless a knob asks for one.
- Recorded api.airtable.com traffic (grouparoo/grouparoo nock fixtures, Dec 2021): a
  deleted record answers 404 ``{"error":{"type":"MODEL_ID_NOT_FOUND","message":"Record not
  found"}}``; writing a computed field answers 422 INVALID_VALUE_FOR_COLUMN ``Field "X"
  cannot accept a value because the field is computed``; batch delete answers
  ``{"records":[{"deleted":true,"id":...}]}``; createdTime and lastModifiedTime carry whole
  seconds (``.000Z``) and a new record's lastModifiedTime equals its createdTime; the
  metadata API lists fields as type/options/id/name, choices with id/name/color, views with
  id/name/type, and bases with permissionLevel.
- Other real bodies: 401 ``AUTHENTICATION_REQUIRED``/"Authentication required" for a wrong
  key (nicolasnascimento/SwiftAirtable#2); 403 ``INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND``
  for a base or table the token cannot see (airtable.com/developers/web/api/errors);
  ``UNKNOWN_FIELD_NAME`` 'Unknown field name: "Status"'; ``INVALID_MULTIPLE_CHOICE_OPTIONS``
  'Insufficient permissions to create new select option ""NON-REPRO""' (doubled quotes);
  ``INVALID_VALUE_FOR_COLUMN`` 'Field "X" cannot accept the provided value', which is
  also what a date field says to a full timestamp (Make's Airtable notes); "Value is not an
  array of record IDs." (ngocnicholas/airtable.net#86); ``ROW_DOES_NOT_EXIST`` "Record ID
  recX does not exist in this table" for a batch update (domdomegg/airtable-mcp-server#28);
  "You must provide an array of up to 10 record objects" (n8n's Airtable node matches on
  it); DELETE with a bare ``records=`` answers 422 ``INVALID_RECORDS`` '"records" must be
  an array of up to 10 record IDs.' (pyairtable issue #94), and a single bare ``fields=``
  answers INVALID_REQUEST_UNKNOWN "Invalid request: parameter validation failed. Check
  your request data." while repeating it works (Airtable community, "Error requesting a
  single field"); 503 ``RETRIABLE_ERROR`` (errors page).
- Upserts: ``performUpsert.fieldsToMergeOn`` with ``createdRecords``/``updatedRecords`` in
  the answer (Airtable community announcement "New beta: REST API Upserts").
- pyairtable 3.5.1's own code: batches chunked by 10 (``MAX_RECORDS_PER_REQUEST``); a GET
  whose URL reaches 16,000 characters (``MAX_URL_LENGTH``) becomes ``POST .../listRecords``
  with ``timeZone``/``userLocale`` left in the query; ``fields[]``, ``sort[i][field]``,
  ``recordMetadata[]=commentCount``; ``Base.schema()`` asks for ``include=visibleFieldIds``;
  its sample field schemas give the createdTime/lastModifiedTime/date options.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from pyairtable import Api, Table
from pyairtable.formulas import (
    GTE,
    IS_AFTER,
    LAST_MODIFIED_TIME,
    Field,
    match,
    to_formula_str,
)

from sandboxes.airtable.app import create_airtable_app, start_airtable
from sandboxes.airtable.data import SEED_STATUS, airtable_id
from sandboxes.clock import ManualTime
from sandboxes.seed import seed_requests
from sandboxes.server import RunningSandbox, start_sandboxes

RECORDS = 250
SEED = 7
SEEDS = seed_requests(RECORDS, SEED)
LIST = "GET /v0/{base_id}/{table}"
STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.000Z$")
RATE_LIMITED = {"errors": [{"error": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded. Please try again later"}]}


def rec(seq: int) -> str:
    return airtable_id("rec", SEED, "Change Requests", seq)


def ids_where(predicate: Any) -> set[str]:
    return {rec(s.seq) for s in SEEDS if predicate(s)}


class Sandbox:
    """A running sandbox with its description, the real client and a raw session."""

    def __init__(self, running: RunningSandbox, description: dict[str, Any]) -> None:
        self.running, self.url, self.base = running, running.url, description["base"]
        self.token = description["env"]["RELSYNC_AIRTABLE_TOKEN"]
        self.api = Api(self.token, endpoint_url=self.url, retry_strategy=None)
        self.table: Table = self.api.table(self.base, description["table"])
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {self.token}"
        self.records_url = f"{self.url}/v0/{self.base}/Change%20Requests"

    def knob(self, path: str, body: Any = None, method: str = "POST") -> Any:
        response = requests.request(method, f"{self.url}/_sandbox{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json() if response.content else None

    def calls(self) -> dict[str, int]:
        return self.knob("/calls", method="GET")["calls"]

    def reset_calls(self) -> None:
        requests.post(f"{self.url}/_sandbox/calls/reset", timeout=10).raise_for_status()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A fresh, kind Airtable sandbox per test (250 seeded requests).

    Kind, because these tests send bursts no real client may send: Airtable's 5 requests a
    second would answer them 429. The real defaults are tested in test_airtable_real.py.
    """
    running, description = start_airtable(RECORDS, SEED, behaviour="kind")
    try:
        yield Sandbox(running, description)
    finally:
        running.stop()


@pytest.fixture
def clock() -> ManualTime:
    """The time of :func:`timed_sandbox`: it moves only when the test advances it."""
    return ManualTime()


@pytest.fixture
def timed_sandbox(clock: ManualTime) -> Iterator[Sandbox]:
    """A fresh Airtable sandbox whose rate limit, penalty and offset expiry run on ``clock``."""
    running, description = start_airtable(RECORDS, SEED, time_source=clock)
    try:
        yield Sandbox(running, description)
    finally:
        running.stop()


def refusal(call: Any) -> requests.Response:
    with pytest.raises(requests.HTTPError) as caught:
        call()
    return caught.value.response


def test_paging_visits_every_record_once_in_pages_of_100(sandbox: Sandbox) -> None:
    sandbox.reset_calls()
    pages = list(sandbox.table.iterate(page_size=100))
    ids = [r["id"] for page in pages for r in page]
    assert [len(p) for p in pages] == [100, 100, 50]
    assert len(set(ids)) == RECORDS and set(ids) == ids_where(lambda s: True)
    assert ids[:3] == [rec(1), rec(2), rec(3)]  # no sort: creation order
    assert sandbox.calls() == {LIST: 3}
    first = sandbox.http.get(sandbox.records_url).json()
    assert len(first["records"]) == 100 and re.fullmatch(r"itr[0-9A-Za-z]{14}/rec[0-9A-Za-z]{14}", first["offset"])
    assert first["offset"].endswith("/" + rec(101))
    assert [r["id"] for r in sandbox.table.all()] == ids
    capped = list(sandbox.table.iterate(page_size=60, max_records=150))
    assert [len(p) for p in capped] == [60, 60, 30]
    for bad in (0, 101, "ten"):
        answer = sandbox.http.get(sandbox.records_url, params={"pageSize": bad})
        assert answer.status_code == 422 and answer.json()["error"]["type"] == "INVALID_REQUEST_UNKNOWN"


def test_records_have_created_time_and_omit_empty_fields(sandbox: Sandbox) -> None:
    ownerless = next(s for s in SEEDS if s.owner is None)
    record = sandbox.table.get(rec(ownerless.seq))
    assert "Owner" not in record["fields"] and "Release Link" not in record["fields"]
    assert record["createdTime"] == ownerless.created.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert record["fields"]["Created"] == record["createdTime"]
    assert record["fields"]["Last Modified"] == ownerless.updated.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert record["fields"]["Status"] == SEED_STATUS[ownerless.status]
    created = sandbox.table.create({"Title": "Empty things", "Owner": "", "Release Link": [], "Release": None})
    assert set(created["fields"]) == {"Title", "Created", "Last Modified"}
    assert STAMP.match(created["createdTime"]) and created["fields"]["Last Modified"] == created["createdTime"]
    cleared = sandbox.table.update(rec(1), {"Owner": "", "Description": None})
    assert "Owner" not in cleared["fields"] and "Description" not in cleared["fields"]
    assert cleared["fields"]["Title"] == SEEDS[0].title


def test_fields_by_name_or_id_and_returned_by_id(sandbox: Sandbox) -> None:
    status_id = sandbox.table.schema().field("Status").id
    records = sandbox.table.all(fields=["Title", status_id], max_records=20)
    # Airtable leaves empty cells out: a seeded row without a title or a status has fewer keys.
    expected = [{"Title"} - ({"Title"} if s.quirks.no_title else set()) | ({"Status"} if not s.quirks.no_status else set())
                for s in SEEDS[:20]]
    assert [set(r["fields"]) for r in records] == expected and {"Title", "Status"} in expected
    by_id = sandbox.table.all(fields=["Title"], max_records=5, use_field_ids=True)
    title_id = sandbox.table.schema().field("Title").id
    assert all(set(r["fields"]) == {title_id} for r in by_id)
    answer = refusal(lambda: sandbox.table.all(fields=["Title", "Nope"]))
    assert answer.status_code == 422 and answer.json() == {"error": {"type": "UNKNOWN_FIELD_NAME", "message": 'Unknown field name: "Nope"'}}
    single = sandbox.http.get(sandbox.records_url, params={"fields": "Title"})  # no [] and only once: not an array
    assert single.status_code == 422 and single.json()["error"]["type"] == "INVALID_REQUEST_UNKNOWN"
    repeated = sandbox.http.get(sandbox.records_url, params=[("fields", "Title"), ("fields", "Owner"), ("maxRecords", 3)])
    assert repeated.status_code == 200 and all(set(r["fields"]) <= {"Title", "Owner"} for r in repeated.json()["records"])


def test_formulas_from_pyairtable_helpers_select_exactly(sandbox: Sandbox) -> None:
    formula = match({"Status": "Approved", "Priority": "High"})
    found = {r["id"] for r in sandbox.table.all(formula=formula)}
    assert found and found == ids_where(lambda s: s.status == "approved" and not s.quirks.no_status and s.priority == "high")
    quoted_title = next(s.title for s in SEEDS if "'" in s.title and '"' not in s.title)
    assert "\\'" in to_formula_str(match({"Title": quoted_title}))  # pyairtable escapes the quotes
    found = {r["id"] for r in sandbox.table.all(formula=match({"Title": quoted_title}))}
    assert found and found == ids_where(lambda s: s.title == quoted_title and not s.quirks.no_title)
    since = dt.datetime(2026, 8, 1, tzinfo=dt.UTC)
    found = {r["id"] for r in sandbox.table.all(formula=GTE(Field("Created"), since))}
    assert found == ids_where(lambda s: s.created.replace(microsecond=0) >= since)
    found = {r["id"] for r in sandbox.table.all(formula="AND(NOT({Owner} = ''), FIND('Dashboard', {Request Type}))")}
    assert found == ids_where(lambda s: s.owner is not None and "Dashboard" in f"{s.request_type}, {s.quirks.extra_type}")


@pytest.mark.parametrize(("formula", "detail"), [
    ("NOPE({Title})", "Invalid formula. Please check your formula text."),
    ("{Title} = 'unterminated", "Invalid formula. Please check your formula text."),
    ("AND({Date Added} > 1, {Status} = 'New')", "Unknown field names: date added"),
])
def test_unsupported_formulas_are_refused_never_ignored(sandbox: Sandbox, formula: str, detail: str) -> None:
    answer = refusal(lambda: sandbox.table.all(formula=formula))
    assert answer.status_code == 422
    message = f"The formula for filtering records is invalid: {detail}"
    assert answer.json() == {"error": {"type": "INVALID_FILTER_BY_FORMULA", "message": message}}


def test_sort_follows_choice_order_then_record_id(sandbox: Sandbox) -> None:
    records = sandbox.table.all(sort=["Priority", "-Created"], fields=["Priority"])
    order = ["critical", "high", "medium", "low"]
    expected = sorted(SEEDS, key=lambda s: rec(s.seq))
    expected.sort(key=lambda s: s.created.replace(microsecond=0), reverse=True)
    expected.sort(key=lambda s: order.index(s.priority))
    assert [r["id"] for r in records] == [rec(s.seq) for s in expected]
    answer = sandbox.http.get(sandbox.records_url, params={"sort[0][field]": "Title", "sort[0][direction]": "up"})
    assert answer.status_code == 422


def test_creates_go_in_batches_of_ten(sandbox: Sandbox) -> None:
    sandbox.reset_calls()
    made = sandbox.table.batch_create([{"Title": f"Bulk {n}", "Status": "New"} for n in range(25)])
    assert len({r["id"] for r in made}) == 25 and [r["fields"]["Title"] for r in made] == [f"Bulk {n}" for n in range(25)]
    assert sandbox.calls() == {"POST /v0/{base_id}/{table}": 3}
    too_many = sandbox.http.post(sandbox.records_url, json={"records": [{"fields": {"Title": "x"}}] * 11})
    assert too_many.status_code == 422
    assert too_many.json() == {"error": {"type": "INVALID_RECORDS", "message": "You must provide an array of up to 10 record objects."}}
    missing = sandbox.http.post(sandbox.records_url, json={"Title": "no fields wrapper"})
    assert missing.status_code == 422 and missing.json()["error"]["type"] == "INVALID_REQUEST_MISSING_FIELDS"
    assert len(sandbox.table.all(fields=["Title"])) == RECORDS + 25


def test_batch_update_patch_merges_and_put_replaces(sandbox: Sandbox) -> None:
    sandbox.reset_calls()
    targets = [rec(n) for n in range(1, 13)]
    bot = {"email": "release.bot@example.com"}
    updated = sandbox.table.batch_update([{"id": t, "fields": {"Owner": bot}} for t in targets])
    assert [r["id"] for r in updated] == targets
    assert all(r["fields"]["Owner"]["email"] == "release.bot@example.com" for r in updated)
    assert all(r["fields"].get("Title") == (None if SEEDS[n].quirks.no_title else SEEDS[n].title) for n, r in enumerate(updated))
    assert sandbox.calls() == {"PATCH /v0/{base_id}/{table}": 2}
    replaced = sandbox.table.batch_update([{"id": rec(1), "fields": {"Status": "Scheduled"}}], replace=True)[0]
    assert set(replaced["fields"]) == {"Status", "Created", "Last Modified"}
    missing = {"id": "recAAAAAAAAAAAAAA", "fields": {"Owner": {"email": "x@example.com"}}}
    answer = sandbox.http.patch(sandbox.records_url, json={"records": [missing]})
    assert answer.status_code == 422
    assert answer.json() == {"error": {"type": "ROW_DOES_NOT_EXIST", "message": "Record ID recAAAAAAAAAAAAAA does not exist in this table"}}
    assert sandbox.table.get(rec(2))["fields"]["Owner"] == {**bot, "id": sandbox.table.get(rec(2))["fields"]["Owner"]["id"],
                                                           "name": "release.bot"}  # the failed batch changed nothing
    named = refusal(lambda: sandbox.table.update(rec(3), {"Owner": "Release Bot"}))  # a collaborator is not a name
    assert named.status_code == 422 and named.json()["error"]["type"] == "INVALID_VALUE_FOR_COLUMN"


def test_upsert_creates_or_updates_by_merge_fields(sandbox: Sandbox) -> None:
    titles = [s.title for s in SEEDS]
    unique = next(s for s in SEEDS if titles.count(s.title) == 1 and not s.quirks.no_title and not s.quirks.no_status)
    result = sandbox.table.batch_upsert(
        [{"fields": {"Title": unique.title, "Description": "Upserted"}},
         {"fields": {"Title": "Brand new request", "Status": "New"}}],
        key_fields=["Title"],
    )
    assert result["updatedRecords"] == [rec(unique.seq)]
    assert len(result["createdRecords"]) == 1 and result["createdRecords"][0] == result["records"][1]["id"]
    assert result["records"][0]["fields"]["Description"] == "Upserted"
    assert result["records"][0]["fields"]["Status"] == SEED_STATUS[unique.status]  # PATCH upsert keeps other fields
    sandbox.table.batch_create([{"Title": "Twin"}, {"Title": "Twin"}])
    answer = refusal(lambda: sandbox.table.batch_upsert([{"fields": {"Title": "Twin", "Description": "x"}}], key_fields=["Title"]))
    assert answer.status_code == 422


def test_delete_one_and_in_batches(sandbox: Sandbox) -> None:
    assert sandbox.table.delete(rec(1)) == {"deleted": True, "id": rec(1)}
    gone = refusal(lambda: sandbox.table.get(rec(1)))
    assert gone.status_code == 404 and gone.json() == {"error": {"type": "MODEL_ID_NOT_FOUND", "message": "Record not found"}}
    sandbox.reset_calls()
    deleted = sandbox.table.batch_delete([rec(n) for n in range(2, 14)])
    assert [d["id"] for d in deleted] == [rec(n) for n in range(2, 14)] and all(d["deleted"] is True for d in deleted)
    assert sandbox.calls() == {"DELETE /v0/{base_id}/{table}": 2}
    too_many = sandbox.http.delete(sandbox.records_url, params={"records[]": [rec(n) for n in range(20, 31)]})
    bare = sandbox.http.delete(sandbox.records_url, params={"records": rec(20)})
    for answer in (too_many, bare):
        assert answer.status_code == 422
        assert answer.json() == {"error": {"type": "INVALID_RECORDS", "message": '"records" must be an array of up to 10 record IDs.'}}
    assert len(sandbox.table.all(fields=["Title"])) == RECORDS - 13


def test_single_select_choices_are_enforced_unless_typecast(sandbox: Sandbox) -> None:
    answer = refusal(lambda: sandbox.table.create({"Title": "Blocked one", "Status": "Blocked"}))
    assert answer.status_code == 422
    assert answer.json() == {"error": {"type": "INVALID_MULTIPLE_CHOICE_OPTIONS",
                                       "message": 'Insufficient permissions to create new select option ""Blocked""'}}
    assert "Blocked" not in [c.name for c in sandbox.table.schema(force=True).field("Status").options.choices]
    made = sandbox.table.create({"Title": "Blocked one", "Status": "Blocked", "Release Select": "2026.12"}, typecast=True)
    assert made["fields"]["Status"] == "Blocked"
    schema = sandbox.api.base(sandbox.base).schema(force=True).table("Change Requests")
    choices = schema.field("Status").options.choices
    assert [c.name for c in choices][-1] == "Blocked" and choices[-1].id.startswith("sel") and choices[-1].color
    assert "2026.12" in [c.name for c in schema.field("Release Select").options.choices]


def test_links_take_record_ids_or_names_with_typecast(sandbox: Sandbox) -> None:
    releases = sandbox.api.table(sandbox.base, "Releases")
    first = releases.all(sort=["Deploy Date"])[0]
    linked = sandbox.table.update(rec(3), {"Release Link": [first["id"]]})
    assert linked["fields"]["Release Link"] == [first["id"]]
    answer = refusal(lambda: sandbox.table.update(rec(3), {"Release Link": ["2026.12"]}))
    assert answer.status_code == 422
    assert answer.json()["error"] == {"type": "INVALID_VALUE_FOR_COLUMN", "message": "Value is not an array of record IDs."}
    typed = sandbox.table.update(rec(3), {"Release Link": ["2026.12", first["fields"]["Name"]]}, typecast=True)
    new_release = releases.first(formula=match({"Name": "2026.12"}))
    assert new_release is not None and typed["fields"]["Release Link"] == [new_release["id"], first["id"]]
    found = sandbox.table.all(formula="FIND('2026.12', {Release Link})", fields=["Title"])
    assert [r["id"] for r in found] == [rec(3)]


def test_last_modified_moves_on_writes_and_formula_finds_the_edited(sandbox: Sandbox) -> None:
    seeded = sandbox.table.all(fields=["Last Modified", "Created"])
    latest = max(r["fields"]["Last Modified"] for r in seeded)
    ana = {"email": "ana.costa@example.com", "name": "Ana Costa"}
    edited = {rec(10): {"Owner": ana}, rec(120): {"Owner": ana}, rec(240): {"Title": "Retitled"}}
    for record_id, fields in edited.items():
        after = sandbox.table.update(record_id, fields)
        assert after["fields"]["Last Modified"] > latest and STAMP.match(after["fields"]["Last Modified"])
        assert after["fields"]["Created"] == next(r for r in seeded if r["id"] == record_id)["fields"]["Created"]
    formula = IS_AFTER(LAST_MODIFIED_TIME(), latest)
    assert {r["id"] for r in sandbox.table.all(formula=formula)} == set(edited)
    owners = sandbox.table.all(formula=f"IS_AFTER(LAST_MODIFIED_TIME({{Owner}}), '{latest}')")
    assert {r["id"] for r in owners} == {rec(10), rec(120)}
    sandbox.knob("/airtable/config", {"timestamp_precision": "millisecond"})
    stamps = [sandbox.table.update(rec(10), {"Owner": {"email": f"owner{n}@example.com"}})["fields"]["Last Modified"] for n in range(3)]
    assert stamps[0] < stamps[1] < stamps[2]  # distinct to the millisecond


def test_computed_and_unknown_fields_and_bad_values_are_refused(sandbox: Sandbox) -> None:
    computed = refusal(lambda: sandbox.table.create({"Title": "x", "Created": "2026-01-01T00:00:00.000Z"}))
    assert computed.status_code == 422
    assert computed.json() == {
        "error": {"type": "INVALID_VALUE_FOR_COLUMN", "message": 'Field "Created" cannot accept a value because the field is computed'}}
    stamped = refusal(lambda: sandbox.table.update(rec(1), {"Last Modified": None}))
    assert stamped.json()["error"]["message"] == 'Field "Last Modified" cannot accept a value because the field is computed'
    unknown = refusal(lambda: sandbox.table.update(rec(1), {"Stauts": "New"}))
    assert unknown.json() == {"error": {"type": "UNKNOWN_FIELD_NAME", "message": 'Unknown field name: "Stauts"'}}
    timestamp = refusal(lambda: sandbox.table.update(rec(1), {"Target Date": "2026-12-01T10:00:00.000Z"}))
    assert timestamp.json() == {
        "error": {"type": "INVALID_VALUE_FOR_COLUMN", "message": 'Field "Target Date" cannot accept the provided value'}}
    assert sandbox.table.update(rec(1), {"Target Date": "2026-12-01T10:00:00.000Z"}, typecast=True)["fields"]["Target Date"] == "2026-12-01"
    number = refusal(lambda: sandbox.table.update(rec(1), {"Title": 42}))
    assert number.json()["error"]["type"] == "INVALID_VALUE_FOR_COLUMN"


def test_metadata_describes_tables_fields_and_views(sandbox: Sandbox) -> None:
    schema = sandbox.table.schema()
    assert schema.id.startswith("tbl") and len(schema.id) == 17 and schema.name == "Change Requests"
    assert schema.primary_field_id == schema.field("Title").id
    types = {f.name: f.type for f in schema.fields}
    assert types == {
        "Title": "singleLineText", "Description": "multilineText", "Department": "singleSelect", "Request Type": "multipleSelects",
        "Affected Object": "singleSelect", "Priority": "singleSelect", "Status": "singleSelect", "Requester": "singleCollaborator",
        "Requester Email": "email",
        "Owner": "singleCollaborator", "Release": "singleLineText", "Release Select": "singleSelect",
        "Release Link": "multipleRecordLinks", "Target Date": "date", "Depends On": "multipleRecordLinks",
        "Depends On Elsewhere": "singleLineText", "Planned Deploy": "date", "Release Phase": "singleLineText",
        "Attachments": "multipleAttachments", "Created": "createdTime", "Last Modified": "lastModifiedTime",
    }
    assert [c.name for c in schema.field("Priority").options.choices] == ["Critical", "High", "Medium", "Low"]
    releases = sandbox.api.table(sandbox.base, "Releases").schema()
    assert schema.field("Release Link").options.linked_table_id == releases.id
    assert [f.name for f in releases.fields] == ["Name", "Deploy Date"]
    assert schema.field("Last Modified").options.referenced_field_ids == []
    assert schema.views[0].type == "grid" and schema.views[0].visible_field_ids == [f.id for f in schema.fields]
    assert [b.id for b in sandbox.api.bases()] == [sandbox.base]
    assert sandbox.api.whoami()["id"].startswith("usr")
    again = Api(sandbox.token, endpoint_url=sandbox.url, retry_strategy=None).table(sandbox.base, "Change Requests").schema()
    assert [f.id for f in again.fields] == [f.id for f in schema.fields]  # stable ids


def test_credentials_bases_tables_and_routes(sandbox: Sandbox) -> None:
    stranger = Api("patNotTheRightToken.0000", endpoint_url=sandbox.url, retry_strategy=None)
    answer = refusal(lambda: stranger.table(sandbox.base, "Change Requests").first())
    assert answer.status_code == 401
    assert answer.json() == {"error": {"type": "AUTHENTICATION_REQUIRED", "message": "Authentication required"}}
    assert requests.get(sandbox.records_url, timeout=10).status_code == 401
    for url in (f"{sandbox.url}/v0/appNotMyBase00000/Change%20Requests", f"{sandbox.url}/v0/{sandbox.base}/Nope",
                f"{sandbox.url}/v0/meta/bases/appNotMyBase00000/tables"):
        answer = sandbox.http.get(url)
        assert answer.status_code == 403 and answer.json()["error"]["type"] == "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"
    assert sandbox.http.get(f"{sandbox.url}/v1/anything").json() == {"error": "NOT_FOUND"}
    assert sandbox.http.get(sandbox.records_url, params={"view": "Grid view", "maxRecords": 1}).status_code == 200
    view = sandbox.http.get(sandbox.records_url, params={"view": "Nope"})
    assert view.status_code == 422 and view.json()["error"]["type"] == "VIEW_NAME_NOT_FOUND"
    counted = sandbox.table.all(max_records=2, count_comments=True)
    assert all(r["commentCount"] == 0 for r in counted)


def test_rate_limit_then_penalty_window(timed_sandbox: Sandbox, clock: ManualTime) -> None:
    sandbox = timed_sandbox
    sandbox.knob("/config", {"rate_limit": {"requests": 5, "per_seconds": 1, "penalty_seconds": 1.5}})
    statuses = [sandbox.http.get(sandbox.records_url, params={"maxRecords": 1}).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]  # t=0: the sixth opens the penalty, until t=1.5
    penalised = refusal(lambda: sandbox.table.first())
    assert penalised.status_code == 429 and penalised.json() == RATE_LIMITED and "Retry-After" not in penalised.headers
    clock.advance(1.499)  # the 1 s window has room again, but the penalty's last millisecond still refuses
    assert sandbox.http.get(sandbox.records_url, params={"maxRecords": 1}).status_code == 429
    clock.advance(0.001)  # t=1.5: the penalty is over
    assert sandbox.table.first() is not None
    assert sandbox.knob("/calls", method="GET")["statuses"] == {"200": 6, "429": 3}
    sandbox.knob("/airtable/config", {"retry_after_header": True})
    sandbox.knob("/config", {"rate_limit": {"requests": 1, "per_seconds": 1, "penalty_seconds": 2}})
    assert sandbox.http.get(sandbox.records_url, params={"maxRecords": 1}).status_code == 200
    assert sandbox.http.get(sandbox.records_url, params={"maxRecords": 1}).headers["Retry-After"] == "2"


def test_expired_offsets_answer_422_mid_iteration(sandbox: Sandbox) -> None:
    pages = sandbox.table.iterate(page_size=100)
    assert len(next(pages)) == 100
    assert sandbox.knob("/airtable/expire-offsets")["expired"] == 1
    answer = refusal(lambda: next(pages))
    assert answer.status_code == 422 and answer.json() == {"error": {"type": "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"}}
    garbage = sandbox.http.get(sandbox.records_url, params={"offset": "itrNotAnIterator0/rec00000000000000"})
    assert garbage.status_code == 422 and garbage.json()["error"]["type"] == "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"
    assert len(sandbox.table.all()) == RECORDS  # restarting from the beginning works


def test_an_offset_times_out_when_its_iterator_idles_longer_than_the_ttl(timed_sandbox: Sandbox, clock: ManualTime) -> None:
    # The time-out counts from the iterator's last page, not from its first: an offset
    # idle exactly the TTL still works, one idle a millisecond longer answers 422.
    sandbox = timed_sandbox
    sandbox.knob("/airtable/config", {"iterator_ttl_seconds": 2})
    pages = sandbox.table.iterate(page_size=100)
    assert len(next(pages)) == 100  # t=0: the iterator opens
    clock.advance(2)
    assert len(next(pages)) == 100  # t=2: idle exactly the TTL, still good; the page renews it
    clock.advance(2.001)
    answer = refusal(lambda: next(pages))  # t=4.001: idle 2.001 s
    assert answer.status_code == 422 and answer.json() == {"error": {"type": "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"}}
    assert len(sandbox.table.all()) == RECORDS  # starting again opens a fresh iterator


def test_edits_during_paging_neither_skip_nor_repeat(sandbox: Sandbox) -> None:
    refused = requests.post(f"{sandbox.url}/_sandbox/airtable/edit-during-paging", timeout=10,
                            json={"edits": [{"record": rec(5), "fields": {"Status": "Nope"}}]})
    assert refused.status_code == 400 and "INVALID_MULTIPLE_CHOICE_OPTIONS" in refused.json()["error"]
    edits = [{"record": rec(220), "fields": {"Title": "Edited while paging"}}, {"record": rec(5),
                                                                     "fields": {"Owner": {"email": "late.owner@example.com"}}}]
    assert sandbox.knob("/airtable/edit-during-paging", {"edits": edits, "deletes": [rec(150)]})["scheduled"] == 3
    seen = [r for page in sandbox.table.iterate(page_size=100) for r in page]
    ids = [r["id"] for r in seen]
    assert len(ids) == len(set(ids)) == RECORDS - 1 and rec(150) not in ids
    by_id = {r["id"]: r for r in seen}
    assert by_id[rec(220)]["fields"]["Title"] == "Edited while paging"  # rendered after the edit
    assert (by_id[rec(5)]["fields"].get("Owner") or {}).get("email") != "late.owner@example.com"  # page one went out before it
    latest_seed = max(s.updated for s in SEEDS).replace(microsecond=0)
    recent = sandbox.table.all(formula=IS_AFTER(LAST_MODIFIED_TIME(), latest_seed))
    assert {r["id"] for r in recent} == {rec(220), rec(5)}


def test_injected_faults_use_airtable_bodies(sandbox: Sandbox) -> None:
    sandbox.knob("/faults", {"method": "GET", "path": "/v0/*", "status": 503, "times": 1})
    answer = refusal(lambda: sandbox.table.first())
    assert answer.status_code == 503 and answer.json()["error"]["type"] == "RETRIABLE_ERROR"
    sandbox.knob("/faults", {"path": "/v0/*", "status": 429, "times": 1})
    assert refusal(lambda: sandbox.table.first()).json() == RATE_LIMITED
    assert sandbox.table.first() is not None


def test_long_formulas_go_through_post_list_records(sandbox: Sandbox) -> None:
    wanted = [rec(n) for n in range(1, 11)]
    decoys = [airtable_id("rec", "decoy", n) for n in range(500)]
    formula = "OR(" + ", ".join(f"RECORD_ID() = '{r}'" for r in wanted + decoys) + ")"
    sandbox.reset_calls()
    pages = list(sandbox.table.iterate(formula=formula, page_size=6, fields=["Title"], time_zone="Europe/Paris"))
    assert [r["id"] for page in pages for r in page] == wanted and [len(p) for p in pages] == [6, 4]
    assert sandbox.calls() == {"POST /v0/{base_id}/{table}/listRecords": 2}
    too_long = sandbox.http.get(sandbox.records_url, params={"filterByFormula": formula})
    assert too_long.status_code == 414


def test_seeding_is_deterministic_per_seed() -> None:
    def first_page(seed: int) -> dict[str, Any]:
        app = create_airtable_app(records=30, seed=seed, token="patTest")
        response = app.test_client().get("/v0/appRelsyncOps0001/Change%20Requests", headers={"Authorization": "Bearer patTest"})
        return response.get_json()

    assert first_page(7) == first_page(7)
    assert first_page(7)["records"][0]["id"] == rec(1)
    assert {r["id"] for r in first_page(8)["records"]}.isdisjoint(r["id"] for r in first_page(7)["records"])
    with pytest.raises(ValueError):
        create_airtable_app(records=1, token="patTest", base_id="notAnAirtableBase")


def test_relsync_sandbox_starts_airtable_with_a_fresh_token() -> None:
    with start_sandboxes(records=5, seed=SEED, systems=("airtable",)) as first, \
            start_sandboxes(records=5, seed=SEED, systems=("airtable",)) as second:
        described = first.describe()["airtable"]
        assert set(described) == {"url", "env", "base", "table", "releases_table"}
        assert described["base"] == "appRelsyncOps0001" and described["releases_table"] == "Releases"
        token = described["env"]["RELSYNC_AIRTABLE_TOKEN"]
        assert token.startswith("pat") and token != second.describe()["airtable"]["env"]["RELSYNC_AIRTABLE_TOKEN"]
        api = Api(token, endpoint_url=first.airtable.url, retry_strategy=None)
        assert len(api.table(described["base"], described["table"]).all()) == 5


def test_affected_object_is_a_seeded_single_select(sandbox: Sandbox) -> None:
    objects = ["Opportunity", "Account", "Lead", "Case", "Contact", "Quote", "Contract", "Invoice", "Campaign", "Order"]
    field = sandbox.table.schema().field("Affected Object")
    assert field.type == "singleSelect" and [c.name for c in field.options.choices] == objects
    assert all(c.id.startswith("sel") for c in field.options.choices)
    records = sandbox.table.all()
    assert len(records) == RECORDS
    by_id = {r["id"]: r["fields"] for r in records}
    assert all(by_id[rec(seed.seq)]["Affected Object"] == seed.affected_object for seed in SEEDS)
    found = sandbox.table.all(formula=match({"Affected Object": "Case"}))
    assert {r["id"] for r in found} == ids_where(lambda r: r.affected_object == "Case")
    refused = refusal(lambda: sandbox.table.update(rec(1), {"Affected Object": "Widget"}))
    assert refused.status_code == 422
    assert sandbox.table.update(rec(1), {"Affected Object": "Lead"})["fields"]["Affected Object"] == "Lead"
