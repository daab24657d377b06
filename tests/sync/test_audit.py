"""The audit trail: append-only, hash-chained, and tampering is found."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess

import psycopg
import pytest

from sync.audit import Anchor, AnchorError, AuditEvent, append_events, request_history, verify_chain
from sync.db import Database
from sync.store import open_database, open_store
from sync.store_location import PASSWORD_ENV, is_postgres
from tests.conftest import store_location


def event(n: int, request: str = "jira:OPS-1", **changes) -> AuditEvent:
    fields = {
        "at": f"2026-11-20T09:{n // 60:02d}:{n % 60:02d}Z", "run": 1, "actor": "jira", "origin": "pulled",
        "request": request, "system": "jira", "field": "title", "old": f"title {n - 1}", "new": f"title {n}",
    }
    return AuditEvent(**(fields | changes))


@pytest.fixture
def path(tmp_path, store_kind, request):
    """Where the store is: a SQLite file, then a PostgreSQL database."""
    return store_location(store_kind, tmp_path, request)


def five_events(location) -> Database:
    db = open_database(location)
    with db.atomic():
        append_events(db, [event(n) for n in range(1, 6)])
    return db


@pytest.fixture
def store(path):
    db = five_events(path)
    yield db
    db.close()


@pytest.fixture
def sqlite_path(tmp_path):
    return tmp_path / "relsync.db"


@pytest.fixture
def sqlite_store(sqlite_path):
    db = five_events(sqlite_path)
    yield db
    db.close()


def tamper(path, *statements: str) -> None:
    """What someone with the database's own tools could do: drop the guards, then edit."""
    if is_postgres(str(path)):
        with psycopg.connect(str(path), password=os.environ[PASSWORD_ENV], autocommit=True) as conn:
            conn.execute("drop trigger audit_no_update on audit")
            conn.execute("drop trigger audit_no_delete on audit")
            for statement in statements:
                conn.execute(statement)
        return
    conn = sqlite3.connect(path)
    conn.execute("drop trigger audit_no_update")
    conn.execute("drop trigger audit_no_delete")
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def count(db: Database) -> int:
    return int(db.execute("select count(*) from audit").fetchone()[0])


def test_each_row_hashes_its_content_onto_the_previous_hash(store):
    rows = list(store.query("select * from audit order by id"))
    assert [row["id"] for row in rows] == [1, 2, 3, 4, 5]
    prev = "0" * 64
    for row in rows:
        content = {name: row[name] for name in ("id", "at", "run", "actor", "origin", "request", "system", "field", "old", "new")}
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert row["prev_hash"] == prev
        assert row["hash"] == hashlib.sha256((prev + canonical).encode()).hexdigest()
        prev = row["hash"]
    assert rows[0]["old"] == '"title 0"'  # old/new are JSON text


def test_intact_chain_verifies(store):
    report = verify_chain(store)
    assert (report.ok, report.checked, report.first_bad_id) == (True, 5, None)
    assert report.head == store.execute("select hash from audit where id = 5").fetchone()[0]


def test_empty_chain_verifies():
    with open_store(":memory:") as db:
        report = verify_chain(db)
    assert (report.ok, report.checked, report.head) == (True, 0, "0" * 64)


def test_chain_continues_across_calls_and_survives_a_rolled_back_page(store):
    with pytest.raises(RuntimeError):
        with store.atomic():
            append_events(store, [event(6)])
            raise RuntimeError("page failed")
    with store.atomic():
        append_events(store, [event(7), event(8)])
        append_events(store, [])
    assert [row["id"] for row in store.query("select id from audit")] == [1, 2, 3, 4, 5, 6, 7]
    assert verify_chain(store).ok


def test_append_refuses_to_commit_on_its_own(store):
    with pytest.raises(RuntimeError, match="inside the caller's transaction"):
        append_events(store, [event(6)])
    assert count(store) == 5


def test_update_and_delete_are_refused(store):
    refused = (sqlite3.IntegrityError, psycopg.errors.RaiseException)  # each database's error for a trigger's refusal
    with pytest.raises(refused, match="audit is append-only"):
        store.execute("update audit set new = '\"x\"' where id = 3")
    with pytest.raises(refused, match="audit is append-only"):
        store.execute("delete from audit where id = 5")
    assert verify_chain(store).ok


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="needs the sqlite3 shell")
def test_sqlite3_shell_edit_is_refused_and_found_once_the_trigger_is_dropped(sqlite_store, sqlite_path):
    store, path = sqlite_store, sqlite_path
    refused = subprocess.run(
        ["sqlite3", str(path), "update audit set new='\"x\"' where id=3"], capture_output=True, text=True
    )
    assert refused.returncode != 0 and "append-only" in refused.stderr
    subprocess.run(
        ["sqlite3", str(path), "drop trigger audit_no_update; update audit set new='\"x\"' where id=3"],
        check=True,
    )
    report = verify_chain(store)
    assert (report.ok, report.first_bad_id, report.checked) == (False, 3, 2)
    assert "altered" in report.reason


def test_altered_field_is_found(store, path):
    tamper(path, "update audit set actor = 'someone else' where id = 4")
    report = verify_chain(store)
    assert (report.ok, report.first_bad_id) == (False, 4)


def test_deleted_row_is_found(store, path):
    tamper(path, "delete from audit where id = 2")
    report = verify_chain(store)
    assert (report.ok, report.first_bad_id) == (False, 3)
    assert "deleted, inserted or reordered" in report.reason


def test_rows_cut_from_the_end_are_found(store, path):
    tamper(path, "delete from audit where id >= 4")
    report = verify_chain(store)
    assert (report.ok, report.checked, report.first_bad_id) == (False, 3, 4)
    assert "deleted from the end" in report.reason


def test_reordered_rows_are_found(store, path):
    # Swap rows 2 and 3 whole, hashes included.
    row2, row3 = store.query("select id, at, old, new, prev_hash, hash from audit where id in (2, 3) order by id")
    tamper(
        path,
        *(
            f"update audit set at = '{b['at']}', old = '{b['old']}', new = '{b['new']}', "
            f"prev_hash = '{b['prev_hash']}', hash = '{b['hash']}' where id = {a['id']}"
            for a, b in ((row2, row3), (row3, row2))
        ),
    )
    report = verify_chain(store)
    assert (report.ok, report.first_bad_id) == (False, 2)


def test_inserted_row_is_found_even_with_a_correct_hash(store, path):
    # Make room after row 2 and forge a row 3 that chains correctly onto row 2.
    row2 = store.execute("select hash from audit where id = 2").fetchone()[0]
    content = {
        "id": 3, "at": "2026-11-20T09:00:02Z", "run": 1, "actor": "jira", "origin": "pulled",
        "request": "jira:OPS-1", "system": "jira", "field": "title", "old": '"a"', "new": '"b"',
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    forged = hashlib.sha256((row2 + canonical).encode()).hexdigest()
    tamper(
        path,
        *(f"update audit set id = {n + 1} where id = {n}" for n in (5, 4, 3)),
        "insert into audit (id, at, run, actor, origin, request, system, field, old, new, prev_hash, hash) "
        f"values (3, '2026-11-20T09:00:02Z', 1, 'jira', 'pulled', 'jira:OPS-1', 'jira', 'title', '\"a\"', '\"b\"', '{row2}', '{forged}')",
    )
    report = verify_chain(store)
    assert (report.ok, report.first_bad_id) == (False, 4)


def test_a_page_of_ten_thousand_events_reads_the_chain_head_once(sqlite_store):
    store = sqlite_store
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    with store.atomic():
        append_events(store, (event(n % 3600, request=f"jira:OPS-{n}") for n in range(10_000)))
    store.conn.set_trace_callback(None)
    assert sum(s.lstrip().lower().startswith("select") for s in statements) == 1
    assert count(store) == 10_005
    assert verify_chain(store).checked == 10_005


def test_request_history_is_that_requests_events_in_order(store):
    with store.atomic():
        append_events(
            store,
            [
                event(6, request="jira:OPS-2"),
                event(7, origin="planned", actor="planner", field="release", old=None,
                      new={"release": "BS 2026-12-01", "reason": "planned: priority high"}),
            ],
        )
    history = request_history(store, "jira:OPS-1")
    assert [row["id"] for row in history] == [1, 2, 3, 4, 5, 7]
    assert history[-1]["old"] is None
    assert history[-1]["new"] == {"release": "BS 2026-12-01", "reason": "planned: priority high"}
    assert history[0]["new"] == "title 1"
    assert request_history(store, "jira:OPS-404") == []


def test_origin_must_be_one_of_the_four():
    with pytest.raises(ValueError, match="origin"):
        event(1, origin="imported")


# -- anchors: a head kept elsewhere ------------------------------------------------------


@pytest.fixture
def long_store(sqlite_path):
    db = open_store(sqlite_path)
    with db.atomic():
        append_events(db, [event(n, request=f"jira:OPS-{n % 7}") for n in range(1, 301)])
    yield db
    db.close()


def rechain(path, rows) -> None:
    """Write ``rows`` (dicts of the hashed columns) as the whole chain, every hash recomputed."""
    columns = ("id", "at", "run", "actor", "origin", "request", "system", "field", "old", "new")
    prev, chained = "0" * 64, []
    for row in rows:
        canonical = json.dumps({name: row[name] for name in columns}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256((prev + canonical).encode()).hexdigest()
        chained.append([*(row[name] for name in columns), prev, digest])
        prev = digest
    tamper(path, "delete from audit")
    conn = sqlite3.connect(path)
    conn.executemany(f"insert into audit ({', '.join(columns)}, prev_hash, hash) values ({', '.join('?' * 12)})", chained)
    conn.commit()
    conn.close()


def test_the_head_is_the_last_row_as_n_colon_hash(long_store):
    report = verify_chain(long_store)
    head_hash = long_store.execute("select hash from audit where id = 300").fetchone()[0]
    assert (report.head_id, report.head) == (300, head_hash)
    assert str(report.anchor) == f"300:{head_hash}"
    assert Anchor.parse(f"  300:{head_hash.upper()}\n") == report.anchor


def test_rows_cut_from_the_end_with_the_sequence_set_back_pass_alone_but_not_against_the_anchor(long_store, sqlite_path):
    anchor = verify_chain(long_store).anchor
    # The attack: drop the guards, delete the last 100 rows, set sqlite_sequence back to match.
    tamper(sqlite_path, "delete from audit where id > 200", "update sqlite_sequence set seq = 200 where name = 'audit'")

    alone = verify_chain(long_store)
    assert (alone.ok, alone.checked, alone.head_id) == (True, 200, 200)  # nothing inside the store can tell

    report = verify_chain(long_store, anchor)
    assert (report.ok, report.checked, report.first_bad_id, report.head_id) == (False, 200, 201, 200)
    assert report.reason == "the chain ends at row 200 but the anchor says it reached row 300 (rows were cut from the end)"


def test_a_chain_rewritten_with_fresh_hashes_fails_the_anchor(long_store, sqlite_path):
    anchor = verify_chain(long_store).anchor
    rows = list(long_store.query("select * from audit order by id"))
    rows[41]["new"] = '"quietly changed"'
    rechain(sqlite_path, rows)

    assert verify_chain(long_store).ok  # self-consistent again
    report = verify_chain(long_store, anchor)
    assert (report.ok, report.first_bad_id) == (False, 300)
    assert report.reason.startswith("row 300: its hash is ") and f"not {anchor.hash} as anchored" in report.reason


def test_an_older_anchor_is_still_reached_after_the_chain_grew(long_store):
    older = verify_chain(long_store).anchor
    with long_store.atomic():
        append_events(long_store, [event(n) for n in range(301, 311)])
    report = verify_chain(long_store, older)
    assert (report.ok, report.checked, report.head_id) == (True, 310, 310)
    assert report.anchor != older


def test_a_renumbered_tail_fails_the_anchor_it_skips(long_store, sqlite_path):
    anchor = Anchor(250, long_store.execute("select hash from audit where id = 250").fetchone()[0])
    rows = [r for r in long_store.query("select * from audit order by id") if r["id"] != 250]
    for row in rows[249:]:
        row["id"] += 1  # ids 251.. chained straight onto row 249: no gap in the hashes
    rechain(sqlite_path, rows)

    assert verify_chain(long_store).ok
    report = verify_chain(long_store, anchor)
    assert (report.ok, report.first_bad_id) == (False, 250)
    assert "row 250 of the anchor is missing" in report.reason


@pytest.mark.parametrize("text", ["", "300", "300:abc", "x:" + "0" * 64, "300:" + "g" * 64, "-1:" + "0" * 64])
def test_a_malformed_anchor_says_what_an_anchor_is(text):
    with pytest.raises(AnchorError, match=r"an anchor is N:HASH"):
        Anchor.parse(text)


def test_the_genesis_anchor(long_store):
    assert verify_chain(long_store, Anchor(0, "0" * 64)).ok
    assert not verify_chain(long_store, Anchor(0, "1" * 64)).ok
