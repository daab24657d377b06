"""The store: a private WAL file, the migrated schema and the run/watermark accessors."""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
import stat

import psycopg
import pytest

from sync.db import insert, upsert
from sync.store import (
    finish_run,
    get_watermark,
    open_database,
    open_store,
    set_watermark,
    start_run,
)
from tests.conftest import store_location

NOW = dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


INTEGRITY = (sqlite3.IntegrityError, psycopg.IntegrityError)
"""Each database's error for a row its keys or checks refuse."""


@pytest.fixture
def sqlite_store(tmp_path):
    db = open_store(tmp_path / "relsync.db")
    yield db
    db.close()


@pytest.fixture
def store(tmp_path, store_kind, request):
    """The store: a SQLite file, then a PostgreSQL database."""
    db = open_database(store_location(store_kind, tmp_path, request))
    yield db
    db.close()


def one(db, sql: str, params=()) -> dict:
    return next(db.query(sql, params))


def count(db, table: str) -> int:
    return int(db.execute(f"select count(*) from {table}").fetchone()[0])


def test_new_store_file_is_private_even_with_a_permissive_umask(tmp_path):
    old = os.umask(0o000)
    try:
        db = open_store(tmp_path / "relsync.db")
        with db.atomic():
            set_watermark(db, "jira", "requests", "1")
    finally:
        os.umask(old)
    assert mode(tmp_path / "relsync.db") == 0o600
    # SQLite creates the WAL sidecars with the database file's mode.
    assert mode(tmp_path / "relsync.db-wal") == 0o600
    assert mode(tmp_path / "relsync.db-shm") == 0o600
    db.close()


def test_existing_world_readable_store_is_tightened(tmp_path):
    path = tmp_path / "relsync.db"
    open_store(path).close()
    os.chmod(path, 0o644)
    open_store(path).close()
    assert mode(path) == 0o600


def test_store_uses_wal_foreign_keys_and_a_busy_timeout(sqlite_store):
    store = sqlite_store
    assert store.journal_mode == "wal"
    assert store.execute("pragma foreign_keys").fetchone()[0] == 1
    assert store.execute("pragma busy_timeout").fetchone()[0] == 10_000


def test_migrations_are_named_recorded_and_applied_once(tmp_path):
    path = tmp_path / "relsync.db"
    open_store(path).close()
    db = open_store(path)
    applied = [(row["migration_set"], row["name"]) for row in db["_sqlite_migrations"].rows]
    assert applied == [
        ("relsync", "0001_initial"), ("relsync", "0002_affected_object"), ("relsync", "0003_outbox_superseded"),
        ("relsync", "0004_millisecond_moments"), ("relsync", "0005_outbox_write_ahead"), ("relsync", "0006_quarantine"),
        ("relsync", "0007_run_interrupted"), ("relsync", "0008_release_lifecycle"), ("relsync", "0009_waiting"),
        ("relsync", "0010_depends_on"), ("relsync", "0011_source_history"), ("relsync", "0012_source_cache"),
        ("relsync", "0013_written_fields"), ("relsync", "0014_run_sources"),
        ("relsync", "0015_source_moment"),
    ]
    db.close()


def test_schema_has_the_documented_tables_and_columns(sqlite_store):
    store = sqlite_store
    expected = {
        "change_requests": [
            "key", "source", "system", "native_id", "native_key", "url", "title", "description",
            "type", "department", "requester", "owner", "priority", "status", "source_status",
            "release", "created_at", "updated_at", "source_version", "deleted_at", "content_hash",
            "raw", "first_seen_at", "last_pulled_at", "affected", "depends_on",
        ],
        "releases": ["id", "name", "train", "deploy_at", "freeze_at", "capacity", "state", "cancelled_by", "cancel_reason",
                     "revision", "requires_signoff", "held_since"],
        "phase_signoffs": ["release", "phase", "signed_by", "note", "signed_at", "recorded_by"],
        "release_phases": ["release", "phase", "starts", "ends", "owner"],
        "assignments": ["request", "release", "pinned", "reason", "assigned_by", "assigned_at"],
        "sync_state": ["source", "stream", "watermark", "updated_at"],
        "outbox": [
            "id", "request", "source", "system", "field", "value", "base", "base_version",
            "attempts", "state", "last_error", "run", "created_at", "updated_at", "sent_at",
        ],
        "audit": [
            "id", "at", "run", "actor", "origin", "request", "system", "field", "old", "new",
            "prev_hash", "hash",
        ],
        "runs": ["id", "kind", "started_at", "ended_at", "status", "exit_code", "counts", "api_calls", "message", "sources"],
        "quarantine": [
            "request", "source", "native_id", "field", "error", "run", "first_seen_at", "last_seen_at",
            "mapping", "record",
        ],
        "waiting": ["request", "reason", "since", "updated_at"],
        "source_cache": ["source", "key", "value", "fetched_at", "expires_at"],
    }
    expected["change_requests"] += ["source_planned_date", "source_phase", "source_moment"]
    for table, columns in expected.items():
        assert store[table].columns_dict.keys() == set(columns), table
        assert [c.name for c in store[table].columns] == columns, table
    assert store["release_phases"].pks == ["release", "phase"]
    assert store["sync_state"].pks == ["source", "stream"]
    assert store["source_cache"].pks == ["source", "key"]
    unique = {tuple(index.columns) for index in store["change_requests"].indexes if index.unique}
    assert ("source", "native_id") in unique
    indexed = {tuple(index.columns) for index in store["change_requests"].indexes}
    assert {("status",), ("release",)} <= indexed


def _request(db, key="jira:1", native_id="1") -> None:
    insert(db, "change_requests", {"key": key, "source": "jira", "system": "jira", "native_id": native_id})


def _release(db, release_id="BS-20261201", name="BS 2026-12-01", state="open") -> None:
    insert(
        db, "releases", {
            "id": release_id, "name": name, "train": "BS", "deploy_at": "2026-12-01T18:00:00Z",
            "freeze_at": "2026-11-28T18:00:00Z", "capacity": 10, "state": state,
        }
    )


def test_a_source_record_is_stored_once(store):
    _request(store)
    with pytest.raises(INTEGRITY):
        _request(store, key="jira:1-again", native_id="1")


def test_assignments_must_point_at_a_stored_request_and_release(store):
    _request(store)
    _release(store)
    insert(store, "assignments", {"request": "jira:1", "release": "BS-20261201", "pinned": 1})
    with pytest.raises(INTEGRITY):
        insert(store, "assignments", {"request": "jira:2", "release": "BS-20261201"})
    with pytest.raises(INTEGRITY):
        upsert(store, "assignments", [{"request": "jira:1", "release": "BS-29990101"}], key="request")
    with pytest.raises(INTEGRITY):
        insert(store, "release_phases",
            {"release": "nope", "phase": "testing", "starts": "x", "ends": "y", "owner": "qa"}
        )


def test_vocabulary_columns_refuse_unknown_values(store):
    with pytest.raises(INTEGRITY):
        _release(store, state="shipped")
    with pytest.raises(INTEGRITY):
        insert(store, "runs", {"started_at": "2026-11-20T09:30:00Z", "status": "done"})
    with pytest.raises(INTEGRITY):
        insert(store, "outbox",
            {"request": "jira:1", "source": "jira", "system": "jira", "field": "release", "state": "sent"}
        )


def test_outbox_holds_one_row_per_request_field_and_desired_value(store):
    row = {"request": "jira:1", "source": "jira", "system": "jira", "field": "release", "value": '"BS 2026-12-01"'}
    insert(store, "outbox", row)
    assert one(store, "select * from outbox where id = 1")["attempts"] == 0
    assert one(store, "select * from outbox where id = 1")["state"] == "pending"
    with pytest.raises(INTEGRITY):
        insert(store, "outbox", row)
    insert(store, "outbox", row | {"value": '"BS 2026-12-15"'})
    assert count(store, "outbox") == 2


def test_watermark_is_none_until_set_and_then_updated_in_place(store):
    assert get_watermark(store, "jira", "requests") is None
    with store.atomic():
        set_watermark(store, "jira", "requests", "1732877091000", now=NOW)
    with store.atomic():
        set_watermark(store, "jira", "requests", "1732877099000", now=NOW)
    assert get_watermark(store, "jira", "requests") == "1732877099000"
    assert get_watermark(store, "jira", "changelog") is None
    assert list(store.query("select * from sync_state")) == [
        {"source": "jira", "stream": "requests", "watermark": "1732877099000", "updated_at": "2026-11-20T09:30:00.000Z"}
    ]


def test_watermark_commits_or_rolls_back_with_the_page(store):
    with pytest.raises(RuntimeError, match="page failed"):
        with store.atomic():
            _request(store)
            set_watermark(store, "jira", "requests", "2")
            raise RuntimeError("page failed")
    assert get_watermark(store, "jira", "requests") is None
    assert count(store, "change_requests") == 0


def test_watermark_refuses_to_commit_on_its_own(store):
    with pytest.raises(RuntimeError, match="inside the caller's transaction"):
        set_watermark(store, "jira", "requests", "1")
    assert get_watermark(store, "jira", "requests") is None


def test_a_run_is_started_then_finished(store):
    run_id = start_run(store, now=NOW)
    assert one(store, "select * from runs where id = ?", [run_id])["status"] == "running"
    finish_run(
        store, run_id, status="partial", exit_code=1, counts={"pulled": 3, "conflicts": 1},
        api_calls={"jira": 2}, message="1 write conflicted", now=NOW + dt.timedelta(seconds=42),
    )
    row = one(store, "select * from runs where id = ?", [run_id])
    assert row["started_at"] == "2026-11-20T09:30:00.000Z"
    assert row["ended_at"] == "2026-11-20T09:30:42.000Z"
    assert (row["status"], row["exit_code"], row["message"]) == ("partial", 1, "1 write conflicted")
    assert json.loads(row["counts"]) == {"pulled": 3, "conflicts": 1}
    assert json.loads(row["api_calls"]) == {"jira": 2}
    assert start_run(store) == run_id + 1


def test_finish_run_refuses_unknown_statuses_and_runs(store):
    run_id = start_run(store)
    with pytest.raises(ValueError, match="not one of"):
        finish_run(store, run_id, status="great", exit_code=0, counts={}, api_calls={}, message=None)
    with pytest.raises(LookupError):
        finish_run(store, run_id + 1, status="ok", exit_code=0, counts={}, api_calls={}, message=None)


def test_in_memory_store_for_tests():
    with open_store(":memory:") as db:
        assert "audit" in db.table_names()
        assert db.execute("pragma foreign_keys").fetchone()[0] == 1


def test_a_store_made_before_a_migration_is_upgraded_in_place(tmp_path):
    import sqlite_utils

    from sync.store import MIGRATIONS

    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    MIGRATIONS.apply(old, stop_before="0002_affected_object")
    old["change_requests"].insert({"key": "jira:OPS-1", "source": "jira", "system": "jira", "native_id": "1",
                                   "title": "kept", "status": "new"})
    old["outbox"].insert({"request": "jira:OPS-1", "source": "jira", "system": "jira", "field": "release",
                          "value": '"BS 1"', "state": "pending"})
    old.close()

    db = open_store(path)
    row = next(iter(db.query("select key, title, affected from change_requests")))
    db.execute("update outbox set state = 'superseded'")
    outbox = list(db.query("select request, value, state from outbox"))
    db.close()
    assert row == {"key": "jira:OPS-1", "title": "kept", "affected": None}
    assert outbox == [{"request": "jira:OPS-1", "value": '"BS 1"', "state": "superseded"}]


@pytest.mark.parametrize("in_transaction", [True, False])
def test_a_scan_reads_every_row_while_other_statements_write(store, in_transaction):
    """A scan of every request (the planner's, the push's) may be larger than memory: on
    PostgreSQL it is read in batches from a server-side cursor, and the connection writes meanwhile."""
    from sync.db import insert_all
    from sync.pg_database import SCAN_BATCH

    count = SCAN_BATCH * 2 + 7
    insert_all(store, "change_requests", [
        {"key": f"jira:OPS-{n}", "source": "jira", "system": "jira", "native_id": str(n), "title": f"t{n}"}
        for n in range(count)])
    seen: list[str] = []
    with store.atomic() if in_transaction else contextlib.nullcontext():
        for row in store.scan("select key from change_requests order by key"):
            seen.append(row["key"])
            if len(seen) % SCAN_BATCH == 1:
                store.execute("update change_requests set title = 'read' where key = ?", [row["key"]])
    assert len(seen) == count and len(set(seen)) == count
    assert one(store, "select count(*) as n from change_requests where title = 'read'")["n"] == 3


def test_moments_written_to_the_second_are_rewritten_to_the_millisecond(tmp_path):
    """A store from before 0004 held release dates to the second; in SQL they then sorted after
    every moment within that second ("...18:00:00Z" > "...18:00:00.500Z")."""
    import sqlite_utils

    from sync.store import MIGRATIONS

    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    MIGRATIONS.apply(old, stop_before="0004_millisecond_moments")
    old["releases"].insert({"id": "BS-1", "name": "BS 1", "train": "BS", "deploy_at": "2026-12-08T18:00:00Z",
                            "freeze_at": "2026-12-05T18:00:00.250Z", "capacity": 10, "state": "open"})
    old["release_phases"].insert({"release": "BS-1", "phase": "testing", "starts": "2026-12-06T09:00:00Z",
                                  "ends": "2026-12-08T18:00:00Z", "owner": None})
    old["runs"].insert({"started_at": "2026-11-20T09:30:00Z", "ended_at": None, "status": "running"})
    old.close()

    db = open_store(path)
    release = db["releases"].get("BS-1")
    phase = next(iter(db.query("select starts, ends from release_phases")))
    run = next(iter(db.query("select started_at, ended_at from runs")))
    later_in_that_second = db.execute(
        "select count(*) from releases where deploy_at <= ?", ["2026-12-08T18:00:00.500Z"]
    ).fetchone()[0]
    db.close()
    assert (release["deploy_at"], release["freeze_at"]) == ("2026-12-08T18:00:00.000Z", "2026-12-05T18:00:00.250Z")
    assert phase == {"starts": "2026-12-06T09:00:00.000Z", "ends": "2026-12-08T18:00:00.000Z"}
    assert run == {"started_at": "2026-11-20T09:30:00.000Z", "ended_at": None}
    assert later_in_that_second == 1


def test_runners_opening_a_new_store_together_apply_the_migrations_once(tmp_path):
    import subprocess
    import sys

    store = tmp_path / "relsync.db"
    code = "import sys; from sync.store import open_store; open_store(sys.argv[1]).close(); print('ok')"
    runners = [subprocess.Popen([sys.executable, "-c", code, str(store)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(6)]
    outcomes = [runner.communicate(timeout=120) for runner in runners]

    assert [runner.returncode for runner in runners] == [0] * 6, [err for _, err in outcomes]
    db = open_store(store)
    applied = [row["name"] for row in db.query("select name from _sqlite_migrations")]
    db.close()
    fresh = open_store(":memory:")
    expected = [row["name"] for row in fresh.query("select name from _sqlite_migrations")]
    fresh.close()
    assert applied == expected  # each once, in order
