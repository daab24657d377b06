"""Quarantine in the store: records the mapping refuses are held, audited, and released.

Pages go through ``ingest.store_page`` into a real SQLite file with the Jira example
mapping, as the engine stores them; the vendor round trips are in the per-system tests.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from config.loader import load_config
from config.schema import FieldMapping
from connectors.base import Page
from mapping.fields import SourceMapping
from mapping.model import SourceRecord
from reports.views import quarantine_lines
from sync import ingest, outbox, quarantine
from sync.audit import request_history, verify_chain
from sync.store import get_watermark, open_store

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "examples" / "jira.yaml"
UNMAPPED = ("source value 'Blocked' is not mapped and no default is set; add it to sources.jira.fields.status.map "
            "(mapped now: 'Open', 'Triage', 'Approved', 'Scheduled', 'In Progress', 'In Testing', 'Deployed', "
            "'Closed', 'Rejected')")


def issue(number: int, *, updated: str = "2026-11-21T08:00:00.000+0000", **fields) -> SourceRecord:
    raw = {
        "id": str(10000 + number),
        "key": f"OPS-{number}",
        "fields": {
            "summary": f"Change request {number}",
            "status": {"name": "Approved"},
            "priority": {"name": "High"},
            "created": "2026-11-20T10:15:30.123+0000",
            "updated": updated,
            "fixVersions": [],
        },
    }
    raw["fields"].update(fields)
    return SourceRecord(raw["id"], raw["key"], None, updated, raw)


@pytest.fixture
def jira() -> SourceMapping:
    config = load_config(EXAMPLE)
    return SourceMapping("jira", "jira", config.sources["jira"].fields, config.sources["jira"].write,
                         config_path="sources.jira")


@pytest.fixture
def db(tmp_path):
    store = open_store(tmp_path / "relsync.db")
    yield store
    store.close()


def store(db, mapping, run, records, *, watermark=None, deleted=(), now=None):
    now = now or f"2026-11-2{run}T09:00:00.000Z"
    page = Page(records=list(records), watermark=watermark, deleted=list(deleted))
    return ingest.store_page(db, source="jira", mapping=mapping, page=page, run_id=run, now=now)


def row(db, key):
    return next(iter(db.query("select * from change_requests where key = ?", [key])), None)


def held(db):
    return {r["request"]: r for r in quarantine.held_records(db)}


def changes(db, key):
    return [(e["run"], e["field"], e["old"], e["new"]) for e in request_history(db, key) if e["field"] != "*"]


def test_a_bad_record_is_held_audited_and_released_while_the_page_goes_on(db, jira):
    store(db, jira, 1, [issue(1), issue(2)], watermark="2026-11-21T08:00:00.000Z")

    # OPS-1 turns bad, OPS-3 arrives bad, OPS-2 changes: the page and its watermark are stored.
    counts = store(db, jira, 2, [
        issue(1, status={"name": "Blocked"}, summary="Renamed while blocked", updated="2026-11-22T08:00:00.000+0000"),
        issue(2, priority={"name": "Low"}, updated="2026-11-22T08:01:00.000+0000"),
        issue(3, summary="", updated="2026-11-22T08:02:00.000+0000"),
    ], watermark="2026-11-22T08:02:00.000Z")

    assert (counts.pulled, counts.created, counts.changed) == (3, 0, 1)
    assert get_watermark(db, "jira", ingest.STREAM) == "2026-11-22T08:02:00.000Z"
    assert row(db, "jira:OPS-2")["priority"] == "low"
    kept = row(db, "jira:OPS-1")  # its last good values
    assert (kept["title"], kept["status"], kept["source_version"]) == (
        "Change request 1", "approved", "2026-11-21T08:00:00.000+0000")
    assert row(db, "jira:OPS-3") is None
    assert {key: (r["source"], r["native_id"], r["field"], r["error"], r["run"], r["first_seen_at"], r["last_seen_at"])
            for key, r in held(db).items()} == {
        "jira:OPS-1": ("jira", "10001", "fields.status.name", UNMAPPED, 2, "2026-11-22T09:00:00.000Z",
                       "2026-11-22T09:00:00.000Z"),
        "jira:OPS-3": ("jira", "10003", "fields.summary", "required value is missing", 2, "2026-11-22T09:00:00.000Z",
                       "2026-11-22T09:00:00.000Z"),
    }
    assert quarantine.messages(quarantine.held_records(db)) == [
        f"quarantined jira:OPS-1 fields.status.name: {UNMAPPED}",
        "quarantined jira:OPS-3 fields.summary: required value is missing",
    ]
    assert changes(db, "jira:OPS-1") == [(2, "quarantine", None, {"field": "fields.status.name", "error": UNMAPPED})]

    # Pulled again, still bad: seen again, no new audit event.
    store(db, jira, 3, [issue(1, status={"name": "Blocked"}, updated="2026-11-23T08:00:00.000+0000")])
    assert (held(db)["jira:OPS-1"]["first_seen_at"], held(db)["jira:OPS-1"]["last_seen_at"]) == (
        "2026-11-22T09:00:00.000Z", "2026-11-23T09:00:00.000Z")
    assert len(changes(db, "jira:OPS-1")) == 1

    # Fixed: both leave quarantine, and their changes are audited like any other.
    store(db, jira, 4, [
        issue(1, status={"name": "Triage"}, summary="Renamed while blocked", updated="2026-11-24T08:00:00.000+0000"),
        issue(3, summary="Now with a title", updated="2026-11-24T08:01:00.000+0000"),
    ])

    assert held(db) == {}
    assert (row(db, "jira:OPS-1")["title"], row(db, "jira:OPS-1")["status"]) == ("Renamed while blocked", "triaged")
    assert changes(db, "jira:OPS-1") == [
        (2, "quarantine", None, {"field": "fields.status.name", "error": UNMAPPED}),
        (4, "title", "Change request 1", "Renamed while blocked"),
        (4, "status", "approved", "triaged"),
        (4, "source_status", "Approved", "Triage"),
        (4, "quarantine", {"field": "fields.status.name", "error": UNMAPPED}, None),
    ]
    history = request_history(db, "jira:OPS-3")
    assert [(e["run"], e["field"]) for e in history] == [(2, "quarantine"), (4, "*"), (4, "quarantine")]
    assert history[1]["new"]["title"] == "Now with a title" and history[2]["new"] is None
    assert all(e["actor"] == "jira" and e["origin"] == "pulled" for e in history)
    assert verify_chain(db).ok


def test_a_changed_error_is_audited_and_a_deleted_record_leaves_quarantine(db, jira):
    store(db, jira, 1, [issue(5, status={"name": "Blocked"})])
    store(db, jira, 2, [issue(5, created="20 Nov 2026", updated="2026-11-22T08:00:00.000+0000")])

    converted = ("datetime expects a date-time with a time zone like 2026-11-20T10:15:30.123+0000, "
                 "got '20 Nov 2026'")
    assert (held(db)["jira:OPS-5"]["field"], held(db)["jira:OPS-5"]["error"]) == ("fields.created", converted)

    store(db, jira, 3, [], deleted=["10005"])

    assert held(db) == {}
    assert changes(db, "jira:OPS-5") == [
        (1, "quarantine", None, {"field": "fields.status.name", "error": UNMAPPED}),
        (2, "quarantine", {"field": "fields.status.name", "error": UNMAPPED},
         {"field": "fields.created", "error": converted}),
        (3, "quarantine", {"field": "fields.created", "error": converted}, None),
    ]
    assert verify_chain(db).ok


def test_a_mapping_fixed_in_the_config_releases_the_held_record_on_the_next_page(db, jira):
    store(db, jira, 1, [issue(6, status={"name": "Blocked"}), issue(7, summary="")])
    fields = jira.fields.model_dump(exclude_none=True)
    fields["status"]["map"]["Blocked"] = "triaged"
    fixed = SourceMapping("jira", "jira", FieldMapping.model_validate(fields), jira.write, config_path="sources.jira")
    assert fixed.fingerprint() != jira.fingerprint()

    # Neither record changed in Jira, so neither is in the page; the held copy is translated again.
    counts = store(db, fixed, 2, [issue(8)])

    assert (counts.pulled, counts.created) == (1, 2)
    assert (row(db, "jira:OPS-6")["status"], row(db, "jira:OPS-6")["source_status"]) == ("triaged", "Blocked")
    assert list(held(db)) == ["jira:OPS-7"]  # a missing title is the record's to fix
    seven = next(iter(db.query("select * from quarantine where request = 'jira:OPS-7'")))
    assert seven["mapping"] == fixed.fingerprint()  # tried under this mapping: not again until it changes
    assert (seven["run"], seven["last_seen_at"]) == (1, "2026-11-21T09:00:00.000Z")  # retried, not pulled
    assert json.loads(seven["record"])["raw"]["key"] == "OPS-7"
    assert [e["field"] for e in request_history(db, "jira:OPS-6")] == ["quarantine", "*", "quarantine"]
    assert len(request_history(db, "jira:OPS-7")) == 1  # same error: no new event


def test_a_held_request_gets_no_write_back_until_it_is_released(db, jira):
    store(db, jira, 1, [issue(9), issue(10)])
    db.table("releases").insert({"id": "BS-20261201", "name": "BS 2026.12.01", "train": "bs", "capacity": 10,
                                 "deploy_at": "2026-12-01T18:00:00.000Z", "freeze_at": "2026-11-28T18:00:00.000Z",
                                 "state": "open"})
    for key in ("jira:OPS-9", "jira:OPS-10"):
        db.table("assignments").insert({"request": key, "release": "BS-20261201", "pinned": 0})
    now = "2026-11-21T10:00:00.000Z"

    def wanted():
        return sorted((w.request, w.field, w.value) for w in outbox.wanted_writes(db, {"jira": jira}, now=now))

    expected = [(key, field, value) for key in ("jira:OPS-10", "jira:OPS-9") for field, value in (
        ("phase", "scheduled"), ("planned_date", "2026-12-01"), ("release", "BS 2026.12.01"), ("status", "Scheduled"))]
    assert wanted() == expected
    store(db, jira, 2, [issue(9, summary="", updated="2026-11-22T08:00:00.000+0000")])
    assert wanted() == expected[:4]
    store(db, jira, 3, [issue(9, updated="2026-11-23T08:00:00.000+0000")])
    assert wanted() == expected


def test_run_messages_name_the_first_records_and_count_the_rest():
    rows = [{"request": f"airtable:rec{n}", "field": "fields.Title", "error": "required value is missing"}
            for n in range(7)]
    assert quarantine.messages(rows) == [
        *(f"quarantined airtable:rec{n} fields.Title: required value is missing" for n in range(5)),
        "quarantined 2 more (relsync status lists them)",
    ]
    assert quarantine.messages(rows[:5]) == quarantine.messages(rows)[:5]


def test_the_fingerprint_follows_the_field_mapping_only(jira):
    same = SourceMapping("jira", "jira", copy.deepcopy(jira.fields), jira.write, config_path="elsewhere")
    assert same.fingerprint() == jira.fingerprint()
    other = SourceMapping("crm", "jira", jira.fields, jira.write)
    assert other.fingerprint() != jira.fingerprint()


def test_status_text_lists_the_held_records_and_caps_a_long_list():
    rows = [{"request": f"salesforce:500{n:02}", "field": "Status", "error": "source value 'Bogus' is not mapped",
             "first_seen_at": "2026-11-22T09:00:00.000Z"} for n in range(23)]
    assert quarantine_lines([]) == ["quarantine: empty"]
    lines = quarantine_lines(rows)
    assert lines[0] == "quarantined records (23), held back until fixed in their source or in the mapping:"
    assert lines[1] == "  salesforce:50000 Status: source value 'Bogus' is not mapped (since 2026-11-22 09:00)"
    assert len(lines) == 22 and lines[-1] == "  and 3 more (--json lists all)"
