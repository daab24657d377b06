"""The request list: filters, order and the backlog's reasons, checked against plain SQL."""
from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator

import pytest
import sqlite_utils

from mapping import clock
from mapping.model import PRIORITIES
from reports.requests import RequestFilter, list_requests, reason_kind, requests_csv
from sync.store import open_store
from tests.reports.conftest import History


@pytest.fixture
def db(history: History) -> Iterator[sqlite_utils.Database]:
    store = open_store(history.config.store, create=False)
    yield store
    store.close()


def keys(db, where: str = "1", params: dict | None = None) -> set[str]:
    return {row["key"] for row in db.query(
        "select r.key from change_requests r left join assignments a on a.request = r.key "
        f"left join releases rel on rel.id = a.release where r.deleted_at is null and {where}", params or {})}


def listed(db, **wanted) -> set[str]:
    return {row["key"] for row in list_requests(db, RequestFilter(**wanted))}


def test_without_filters_every_live_request_is_listed_in_planning_order(db):
    rows = list_requests(db)
    assert {row["key"] for row in rows} == keys(db)
    order = [(PRIORITIES.index(r["priority"]) if r["priority"] else 4, r["created_at"]) for r in rows]
    assert order == sorted(order)
    assert [r["key"] for r in list_requests(db, sort="created", reverse=True)] == [
        row["key"] for row in db.query("select key from change_requests where deleted_at is null "
                                       "order by created_at desc, key desc")]


def test_each_filter_matches_sql(db):
    assert listed(db, status=["scheduled", "approved"]) == keys(db, "r.status in ('scheduled', 'approved')")
    assert listed(db, department=["sales ops"]) == keys(db, "r.department = 'Sales Ops'") != set()
    assert listed(db, type=["INTEGRATION"]) == keys(db, "r.type = 'Integration'") != set()
    assert listed(db, priority=["critical"]) == keys(db, "r.priority = 'critical'")
    assert listed(db, source=["jira"]) == keys(db) and listed(db, source=["airtable"]) == set()
    release = next(db.query("select id, name from releases where state = 'open' and train = 'business-systems' "
                            "order by deploy_at limit 1"))
    in_it = keys(db, "a.release = :id", {"id": release["id"]})
    assert listed(db, release=[release["name"]]) == listed(db, release=[release["id"]]) == in_it != set()
    since, until = clock.parse("2026-07-01T00:00:00Z"), clock.parse("2026-09-01T00:00:00Z")
    assert listed(db, since=since, until=until) == keys(
        db, "julianday(r.created_at) >= julianday(:s) and julianday(r.created_at) < julianday(:u)",
        {"s": clock.stamp(since), "u": clock.stamp(until)}) != set()
    assert listed(db, status=["scheduled"], department=["Sales Ops"]) == keys(
        db, "r.status = 'scheduled' and r.department = 'Sales Ops'")
    assert listed(db, quarantined=True) == set()


def test_unplanned_lists_the_backlog_with_age_and_the_planners_reason(db, history):
    now = history.last_sync + dt.timedelta(days=1)
    rows = list_requests(db, RequestFilter(unplanned=True), sort="age", now=now)
    expected = {row["key"]: row for row in db.query(
        "select r.key, w.reason, julianday(:now) - julianday(coalesce((select min(at) from audit e where "
        "e.request = r.key and e.origin = 'pulled' and (e.new = json_quote('approved') or "
        "json_extract(e.new, '$.status') = 'approved')), r.created_at)) as age "
        "from change_requests r left join waiting w on w.request = r.key where r.status = 'approved' "
        "and r.deleted_at is null and r.key not in (select request from assignments)", {"now": clock.stamp(now)})}
    assert {row["key"] for row in rows} == set(expected) != set()
    for row in rows:
        assert row["age_days"] == pytest.approx(expected[row["key"]]["age"], abs=0.06)
        assert row["reason"] == expected[row["key"]]["reason"]
        assert row["reason_kind"] in ("capacity", "department quota", "capacity and quota")
    assert [row["age_days"] for row in rows] == sorted((row["age_days"] for row in rows), reverse=True)
    # The tight train: four seats, one of them for Sales Ops.
    assert any("full (4/4)" in row["reason"] or "quota" in row["reason"] for row in rows)
    assert all(row["age_days"] is None for row in list_requests(db, RequestFilter(status=["scheduled"])))


def test_reason_kinds():
    assert [reason_kind(text) for text in (
        None, "no train takes it (priority high, department IT, type none, source jira)",
        "status new is not eligible (approved, scheduled)", "freeze: no release is open (before its freeze)",
        "capacity: BS 1 full (4/4)", "department quota: BS 1 has no room in the Sales Ops quota (1)",
    )] == ["not planned yet", "no matching train", "not eligible", "freeze", "capacity", "department quota"]


def test_csv_parses_back_to_the_same_rows(db):
    rows = list_requests(db, RequestFilter(status=["scheduled", "approved"]))
    parsed = list(csv.DictReader(io.StringIO(requests_csv(rows))))
    assert [row["key"] for row in parsed] == [row["key"] for row in rows]
    assert [row["title"] for row in parsed] == [row["title"] or "" for row in rows]
    assert [row["release"] for row in parsed] == [row["release"] or "" for row in rows]


def test_quarantined_lists_held_records_stored_or_not(tmp_path):
    store = open_store(tmp_path / "relsync.db")
    store["change_requests"].insert_all([
        {"key": "jira:OPS-1", "source": "jira", "system": "jira", "native_id": "1", "title": "held, last good values",
         "status": "approved", "created_at": "2026-11-02T09:00:00.000Z"},
        {"key": "jira:OPS-2", "source": "jira", "system": "jira", "native_id": "2", "title": "fine",
         "status": "new", "created_at": "2026-11-03T09:00:00.000Z"},
    ])
    held = {"run": 1, "first_seen_at": "2026-11-20T10:00:00.000Z", "last_seen_at": "2026-11-20T10:00:00.000Z",
            "mapping": "m", "record": "{}"}
    store["quarantine"].insert_all([
        {"request": "jira:OPS-1", "source": "jira", "native_id": "1", "field": "fields.status.name",
         "error": "'Parked' is not in the map", **held},
        {"request": "airtable:recNEW", "source": "airtable", "native_id": "recNEW", "field": "fields.Title",
         "error": "required value is missing", **held},
    ])
    rows = list_requests(store, RequestFilter(quarantined=True), sort="key")
    assert [(r["key"], r["quarantined"]) for r in rows] == [
        ("airtable:recNEW", "fields.Title required value is missing"),
        ("jira:OPS-1", "fields.status.name 'Parked' is not in the map"),
    ]
    assert rows[1]["reason_kind"] == "not planned yet"  # approved, and no planning pass has seen it
    assert [r["key"] for r in list_requests(store, RequestFilter(source=["AIRTABLE"]))] == ["airtable:recNEW"]
    store.close()
