"""Telling relsync's own writes from people's edits when records come back (sync.echoes), on a real store."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from sync.echoes import is_old_view, sent_writes, settle_in_flight
from sync.ingest import AUDITED_FIELDS
from sync.store import open_store

KEY = "jira:OPS-1"
OLD = {"key": KEY, "release": "BS 2", "source_status": "Scheduled", "status": "scheduled", "title": "t",
       "source_version": "2026-12-01T10:00:05.000+0000"}


@pytest.fixture
def db(tmp_path: Path) -> sqlite_utils.Database:
    store = open_store(tmp_path / "relsync.db")
    store.execute("insert into change_requests (key, source, system, native_id) values (?, 'jira', 'jira', '1')", [KEY])
    return store


def outbox(db: sqlite_utils.Database, field: str, value: Any, base: Any, state: str, sent: bool = True) -> int:
    return db.table("outbox").insert({
        "request": KEY, "source": "jira", "system": "jira", "field": field, "value": json.dumps(value),
        "base": json.dumps(base), "state": state, "attempts": 1, "sent_at": "2026-12-01T10:00:04.000Z" if sent else None,
    }).last_pk


def pulled(**changes: Any) -> dict[str, Any]:
    return {**OLD, **changes}


def test_an_older_version_is_an_old_view_and_a_newer_one_is_news(db: sqlite_utils.Database) -> None:
    assert is_old_view(OLD, pulled(release="BS 1", source_version="2026-12-01T10:00:01.000+0000"), [], AUDITED_FIELDS)
    assert not is_old_view(OLD, pulled(release="BS 1", source_version="2026-12-01T10:00:09.000+0000"), [], AUDITED_FIELDS)
    assert not is_old_view(OLD, pulled(release="BS 1", source_version=None), [], AUDITED_FIELDS)


def test_the_same_version_showing_what_relsync_wrote_over_is_an_old_view_and_anything_else_is_not(db) -> None:
    outbox(db, "release", "BS 2", "BS 1", "done")
    sent = sent_writes(db, [KEY])[KEY]
    assert is_old_view(OLD, pulled(release="BS 1"), sent, AUDITED_FIELDS)  # the index before relsync's write
    assert not is_old_view(OLD, pulled(release="BS 1", title="edited"), sent, AUDITED_FIELDS)
    assert not is_old_view(OLD, pulled(release="Human Pick"), sent, AUDITED_FIELDS)


def test_a_write_in_flight_whose_value_came_back_landed_and_is_relsyncs(db: sqlite_utils.Database) -> None:
    row = outbox(db, "status", "Scheduled", "Approved", "sending")

    settled = settle_in_flight(db, pulled(), sent_writes(db, [KEY])[KEY], run_id=3, now="2026-12-01T10:01:00.000Z")

    assert settled.echoed == {"source_status", "status"}
    assert [(e.actor, e.origin, e.field, e.old, e.new) for e in settled.events] == [
        ("relsync", "pushed", "status", "Approved", "Scheduled")]
    assert db.table("outbox").get(row)["state"] == "done"


@pytest.mark.parametrize(("state", "shown", "after"), [
    ("sending", "Approved", "pending"),  # the base still shows: it did not land, send it again
    ("sending", "Rejected", "conflict"),  # a person's value: theirs stands
    ("failed", "Scheduled", "done"),  # a timeout that applied it after all
    ("failed", "Approved", "failed"),  # refused: the next push decides
    ("pending", "Rejected", "pending"),
])
def test_unconfirmed_writes_are_settled_by_what_the_pull_shows(db, state: str, shown: str, after: str) -> None:
    row = outbox(db, "status", "Scheduled", "Approved", state)

    settled = settle_in_flight(db, pulled(source_status=shown), sent_writes(db, [KEY])[KEY], run_id=3, now="x")

    assert db.table("outbox").get(row)["state"] == after
    assert bool(settled.events) == (after == "done")


def test_a_write_that_never_left_is_not_taken_for_an_echo(db: sqlite_utils.Database) -> None:
    outbox(db, "status", "Scheduled", "Approved", "pending", sent=False)
    assert sent_writes(db, [KEY]) == {}
