"""Migration 0009 widens the audit's origins to 'history' without breaking the hash chain."""
from __future__ import annotations

import sqlite3

import pytest

from sync.audit import AuditEvent, append_events, verify_chain
from sync.store import MIGRATIONS, Store, open_store


def event(origin: str, n: int) -> AuditEvent:
    return AuditEvent(at=f"2026-11-2{n}T09:00:00.000Z", run=1, actor="jira", origin=origin, request="jira:OPS-1",
                      system="jira", field="priority", old="low", new="high")


def test_a_store_made_before_0009_keeps_its_chain_and_takes_history_events(tmp_path):
    path = tmp_path / "old.db"
    old = Store(path)
    MIGRATIONS.apply(old, stop_before="0011_source_history")
    with old.atomic():
        append_events(old, [event("pulled", 1), event("pushed", 2), event("manual", 3)])
    with pytest.raises(sqlite3.IntegrityError):
        with old.atomic():
            append_events(old, [event("pulled", 4)])
            old.execute("insert into audit (at, actor, origin, prev_hash, hash) values ('x', 'x', 'history', 'x', 'x')")
    before = verify_chain(old)
    old.close()

    db = open_store(path)
    migrated = verify_chain(db)
    assert migrated.ok and migrated.anchor == before.anchor and migrated.checked == 3
    with db.atomic():
        append_events(db, [event("history", 5)])
    after = verify_chain(db, before.anchor)
    assert after.ok and after.checked == 4
    assert db.execute("select seq from sqlite_sequence where name = 'audit'").fetchone()[0] == 4
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("update audit set actor = 'someone' where id = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("delete from audit where id = 4")
    db.close()


def test_rows_cut_from_the_end_before_the_migration_are_still_caught_after_it(tmp_path):
    path = tmp_path / "old.db"
    old = Store(path)
    MIGRATIONS.apply(old, stop_before="0011_source_history")
    with old.atomic():
        append_events(old, [event("pulled", 1), event("pulled", 2)])
    old.execute("drop trigger audit_no_delete")
    old.execute("delete from audit where id = 2")
    old.conn.commit()
    old.close()

    db = open_store(path)
    report = verify_chain(db)
    db.close()
    assert not report.ok and report.first_bad_id == 2
