"""The PostgreSQL store on a real server: the SQLite store's schema and history, append-only audit, one hash chain."""
from __future__ import annotations

import sqlite3

import psycopg
import pytest

from sync.audit import AuditEvent, append_events, verify_chain
from sync.pg_migrations import PG_MIGRATIONS
from sync.pg_store import PostgresStore, applied_migrations, apply_migrations, connect
from sync.pg_store import verify_chain as verify_pg_chain
from sync.store import open_store
from sync.store_copy import TABLES, SqliteStore, copy_store
from sync.store_location import PASSWORD_ENV, ChainBroken, StoreConnectError, StoreLocationError


@pytest.fixture
def pg(pg_url):
    """A migrated PostgreSQL store, open."""
    store = PostgresStore.open(pg_url)
    yield store
    store.close()


@pytest.fixture
def sqlite_store(tmp_path):
    """A SQLite store with 120 chained audit events (some with JSON values and non-ASCII text)."""
    db = open_store(tmp_path / "relsync.db")
    events = [AuditEvent(at=f"2026-11-20T09:{n // 60:02d}:{n % 60:02d}.{n:03d}Z", run=n // 50 or None, actor="jira",
                         origin="pulled", request=f"jira:OPS-{n % 7}", system="jira", field="title",
                         old={"n": n - 1, "é": [1.5, None]} if n % 3 else None, new=f"titre n°{n} ✓")
              for n in range(1, 121)]
    with db.atomic():
        append_events(db, events)
    yield SqliteStore(str(tmp_path / "relsync.db"), db)
    db.close()


def test_the_migration_history_is_the_sqlite_stores_by_name(pg, tmp_path):
    sqlite = SqliteStore("x", open_store(tmp_path / "x.db"))

    assert pg.migrations() == sqlite.migrations()
    assert pg.migrations()[0] == "0001_initial" and len(pg.migrations()) >= 13
    assert apply_migrations(pg.connection) == []  # a second opening applies nothing


def test_tables_and_columns_are_the_sqlite_stores(pg, tmp_path):
    sqlite = SqliteStore("x", open_store(tmp_path / "x.db"))

    assert pg.tables() == sqlite.tables() == set(TABLES)
    for table in TABLES:
        assert set(pg.columns(table)) == set(sqlite.columns(table)), table
        assert pg.primary_key(table) == sqlite.db.table(table).pks, table


def test_checks_refuse_what_sqlite_refuses(pg):
    with pytest.raises(psycopg.errors.CheckViolation):
        pg.connection.execute("insert into outbox (request, source, system, field, state) values ('a', 'b', 'c', 'd', 'sent')")
    with pytest.raises(psycopg.errors.CheckViolation):
        pg.connection.execute("insert into runs (started_at, status, kind) values ('x', 'ok', 'nightly')")
    pg.connection.execute("insert into outbox (request, source, system, field, state) values ('a', 'b', 'c', 'd', 'superseded')")
    pg.connection.execute("insert into runs (started_at, status) values ('x', 'interrupted')")
    assert pg.connection.execute("select kind from runs").fetchall() == [("sync",)]


def test_the_audit_is_append_only(pg, sqlite_store):
    copy_store(sqlite_store, pg)

    for statement in ("update audit set actor = 'me' where id = 3", "delete from audit where id = 120", "truncate audit"):
        with pytest.raises(psycopg.errors.RaiseException, match="audit is append-only"):
            pg.connection.execute(statement)
    assert pg.count("audit") == 120


def test_a_chain_verified_on_sqlite_verifies_identically_on_postgresql(pg, sqlite_store):
    on_sqlite = verify_chain(sqlite_store.db)

    copy_store(sqlite_store, pg)

    assert on_sqlite.ok and on_sqlite.checked == 120
    assert verify_pg_chain(pg.connection) == on_sqlite
    assert verify_pg_chain(pg.connection, on_sqlite.anchor).ok
    stored = pg.connection.execute("select at, old, new, hash from audit where id = 2").fetchone()
    assert stored == sqlite_store.db.execute("select at, old, new, hash from audit where id = 2").fetchone()


def test_a_row_tampered_in_postgresql_is_found_at_that_row(pg, sqlite_store):
    copy_store(sqlite_store, pg)
    anchor = verify_pg_chain(pg.connection).anchor

    # What an owner of the database could do: switch the guard off, edit, switch it back on.
    pg.connection.execute("alter table audit disable trigger audit_no_update")
    pg.connection.execute("update audit set new = '\"a different title\"' where id = 57")
    pg.connection.execute("alter table audit enable trigger audit_no_update")

    report = verify_pg_chain(pg.connection)
    assert not report.ok and report.first_bad_id == 57 and report.head_id == 56
    assert "row 57: its content does not match its hash" in report.reason
    assert verify_pg_chain(pg.connection, anchor).first_bad_id == 57


def test_rows_cut_from_the_end_in_postgresql_are_found(pg, sqlite_store):
    copy_store(sqlite_store, pg)

    pg.connection.execute("alter table audit disable trigger audit_no_delete")
    pg.connection.execute("delete from audit where id > 100")

    report = verify_pg_chain(pg.connection)
    assert not report.ok and report.first_bad_id == 101 and "rows were deleted from the end" in report.reason


def test_a_chain_cut_from_the_end_in_sqlite_fails_identically_after_the_copy(pg, sqlite_store):
    conn = sqlite3.connect(sqlite_store.name)
    conn.execute("drop trigger audit_no_delete")
    conn.execute("delete from audit where id > 110")  # sqlite_sequence still says 120
    conn.commit()
    conn.close()
    on_sqlite = verify_chain(sqlite_store.db)

    with pytest.raises(ChainBroken, match=r"rows were copied, but .* \(rows were deleted from the end\)"):
        copy_store(sqlite_store, pg)

    assert not on_sqlite.ok and on_sqlite.first_bad_id == 111
    assert verify_pg_chain(pg.connection) == on_sqlite


def test_identity_ids_continue_after_the_copied_ones(pg, sqlite_store):
    with sqlite_store.db.atomic():
        for n in range(3):
            sqlite_store.db.execute("insert into runs (started_at, status) values (?, 'ok')", [f"2026-11-2{n}T00:00:00.000Z"])
    copy_store(sqlite_store, pg)

    row = pg.connection.execute("insert into runs (started_at, status) values ('x', 'running') returning id").fetchone()
    assert row == (4,)


def test_a_password_in_the_url_is_refused_without_repeating_it(pg_url):
    with_password = pg_url.replace("@", ":hunter2-secret@", 1)

    with pytest.raises(StoreLocationError, match=PASSWORD_ENV) as refused:
        connect(with_password)
    assert "hunter2-secret" not in str(refused.value)
    with pytest.raises(StoreLocationError):
        connect(pg_url + "?password=hunter2-secret")


def test_a_wrong_password_names_the_url_not_the_password(pg_url, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "not-the-password-x9")

    with pytest.raises(StoreConnectError) as failed:
        connect(pg_url)
    assert pg_url in str(failed.value) and "password authentication failed" in str(failed.value)
    assert "not-the-password-x9" not in str(failed.value)


def test_the_password_comes_from_the_environment_variable_named(pg_url, postgres_server, monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    with pytest.raises(StoreConnectError, match=f"{PASSWORD_ENV}, which is not set"):
        connect(pg_url)

    connection = connect(pg_url, password_env="OTHER_NAME", env={"OTHER_NAME": postgres_server.password})
    assert applied_migrations(connection) == []
    connection.close()


def test_runners_opening_a_new_database_together_apply_the_migrations_once(pg_url):
    import subprocess
    import sys
    import time

    # Each process loads everything first, then all open the store at the same moment.
    code = ("import sys, time; from sync.store import open_database; import sync.pg_database; "
            "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); open_database(sys.argv[1]).close(); print('ok')")
    start = str(time.time() + 4)
    runners = [subprocess.Popen([sys.executable, "-c", code, pg_url, start], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(6)]
    outcomes = [runner.communicate(timeout=120) for runner in runners]

    assert [runner.returncode for runner in runners] == [0] * 6, [err for _, err in outcomes]
    connection = connect(pg_url)
    try:
        applied = applied_migrations(connection)
    finally:
        connection.close()
    assert applied == [name for name, _ in PG_MIGRATIONS]  # each once, in order


def test_0015_gives_stored_requests_their_moments_and_a_version_written_alone_clears_its_moment(pg_url, monkeypatch):
    from sync import pg_store
    from sync.pg_migrations import PG_MIGRATIONS

    before = [step for step in PG_MIGRATIONS if step[0] < "0015"]
    connection = connect(pg_url)
    try:
        monkeypatch.setattr(pg_store, "PG_MIGRATIONS", before)
        apply_migrations(connection)
        connection.execute("insert into change_requests (key, source, system, native_id, status, source_version) values "
                           "('crm:a', 'crm', 'salesforce', 'a', 'new', '2026-11-20T05:15:30.000-0500'), "
                           "('crm:b', 'crm', 'salesforce', 'b', 'new', null)")
        monkeypatch.setattr(pg_store, "PG_MIGRATIONS", PG_MIGRATIONS)

        assert apply_migrations(connection) == ["0015_source_moment"]

        moments = connection.execute("select key, source_moment from change_requests order by key").fetchall()
        assert moments == [("crm:a", "2026-11-20T10:15:30.000Z"), ("crm:b", "1970-01-01T00:00:00.000Z")]
        connection.execute("update change_requests set source_version = '2026-11-21T00:00:00.000Z' where key = 'crm:a'")
        connection.execute("update change_requests set source_version = '2026-11-21T00:00:00.000Z', "
                           "source_moment = '2026-11-21T00:00:00.000Z' where key = 'crm:b'")
        moments = connection.execute("select key, source_moment from change_requests order by key").fetchall()
        assert moments == [("crm:a", None), ("crm:b", "2026-11-21T00:00:00.000Z")]
    finally:
        connection.close()
