"""The local SQLite store: opening it safely, its schema migrations and a few accessors.

Every timestamp the store holds is TEXT, UTC ISO-8601 ending in ``Z``. JSON columns
hold JSON text. Transactions are the caller's: ``with db.atomic(): ...``.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils.migrations import Migrations

from mapping import clock

RELEASE_STATES: tuple[str, ...] = ("planned", "open", "frozen", "deploying", "released", "cancelled")
OUTBOX_STATES: tuple[str, ...] = ("pending", "sending", "done", "conflict", "failed", "superseded")
"""sending: the write may have left (recorded before it does), its outcome not yet known;
superseded: the plan changed before the write went out; the row stays as a record."""
_OUTBOX_STATES_0001 = ("pending", "done", "conflict", "failed")  # what migration 0001 allowed
_OUTBOX_STATES_0003 = (*_OUTBOX_STATES_0001, "superseded")  # what migration 0003 allowed
ORIGINS: tuple[str, ...] = ("pulled", "planned", "pushed", "manual")
RUN_STATUSES: tuple[str, ...] = ("running", "ok", "partial", "failed", "locked", "config_error", "interrupted")
_RUN_STATUSES_0001 = RUN_STATUSES[:-1]  # what migration 0001 allowed
RUN_KINDS: tuple[str, ...] = ("sync", "plan")
GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first audit row."""

MIGRATIONS = Migrations("relsync")


def _check(column: str, values: tuple[str, ...]) -> str:
    return f"check ({column} in ({', '.join(repr(value) for value in values)}))"


@MIGRATIONS(name="0001_initial")
def _initial(db: sqlite_utils.Database) -> None:
    # Plain SQL rather than table.create(): composite keys, foreign keys, CHECKs and
    # triggers are all visible in one place. No STRICT tables: relsync must open on the
    # older SQLite builds that long-term-support distributions ship.
    db.executescript(
        f"""
        create table change_requests (
            key text primary key,
            source text not null,
            system text not null,
            native_id text not null,
            native_key text,
            url text,
            title text,
            description text,
            type text,
            department text,
            requester text,
            owner text,
            priority text,
            status text,
            source_status text,
            release text,
            created_at text,
            updated_at text,
            source_version text,
            deleted_at text,
            content_hash text,
            raw text,
            first_seen_at text,
            last_pulled_at text
        );
        create unique index change_requests_source_native_id on change_requests (source, native_id);
        create index change_requests_status on change_requests (status);
        create index change_requests_release on change_requests (release);

        create table releases (
            id text primary key,
            name text not null unique,
            train text not null,
            deploy_at text not null,
            freeze_at text not null,
            capacity integer not null,
            state text not null {_check("state", RELEASE_STATES)}
        );
        create index releases_train_deploy_at on releases (train, deploy_at);

        create table release_phases (
            release text not null references releases (id),
            phase text not null,
            starts text not null,
            ends text not null,
            owner text,
            primary key (release, phase)
        );

        create table assignments (
            request text primary key references change_requests (key),
            release text not null references releases (id),
            pinned integer not null default 0 check (pinned in (0, 1)),
            reason text,
            assigned_by text,
            assigned_at text
        );
        create index assignments_release on assignments (release);

        create table sync_state (
            source text not null,
            stream text not null,
            watermark text,
            updated_at text,
            primary key (source, stream)
        );

        create table outbox (
            id integer primary key,
            request text not null,
            source text not null,
            system text not null,
            field text not null,
            value text,
            base text,
            base_version text,
            attempts integer not null default 0,
            state text not null default 'pending' {_check("state", _OUTBOX_STATES_0001)},
            last_error text,
            run integer,
            created_at text,
            updated_at text,
            unique (request, field, value)
        );
        create index outbox_state on outbox (state);

        -- AUTOINCREMENT: sqlite_sequence then remembers the highest id ever written,
        -- which lets verify_chain notice rows cut from the end of the chain.
        create table audit (
            id integer primary key autoincrement,
            at text not null,
            run integer,
            actor text not null,
            origin text not null {_check("origin", ORIGINS)},
            request text,
            system text,
            field text,
            old text,
            new text,
            prev_hash text not null,
            hash text not null
        );
        create index audit_request on audit (request);
        create trigger audit_no_update before update on audit
        begin
            select raise(abort, 'audit is append-only');
        end;
        create trigger audit_no_delete before delete on audit
        begin
            select raise(abort, 'audit is append-only');
        end;

        create table runs (
            id integer primary key,
            started_at text not null,
            ended_at text,
            status text not null {_check("status", _RUN_STATUSES_0001)},
            exit_code integer,
            counts text,
            api_calls text,
            message text
        );
        """
    )


@MIGRATIONS(name="0002_affected_object")
def _affected_object(db: sqlite_utils.Database) -> None:
    # What a request changes (object, table, component), for the release clash check.
    db.execute("alter table change_requests add column affected text")
    db.execute("create index change_requests_affected on change_requests (affected)")


@MIGRATIONS(name="0003_outbox_superseded")
def _outbox_superseded(db: sqlite_utils.Database) -> None:
    # SQLite cannot change a CHECK constraint in place: rebuild the table, rows kept.
    db.executescript(
        f"""
        create table outbox_new (
            id integer primary key,
            request text not null,
            source text not null,
            system text not null,
            field text not null,
            value text,
            base text,
            base_version text,
            attempts integer not null default 0,
            state text not null default 'pending' {_check("state", _OUTBOX_STATES_0003)},
            last_error text,
            run integer,
            created_at text,
            updated_at text,
            unique (request, field, value)
        );
        insert into outbox_new select id, request, source, system, field, value, base, base_version,
            attempts, state, last_error, run, created_at, updated_at from outbox;
        drop table outbox;
        alter table outbox_new rename to outbox;
        create index outbox_state on outbox (state);
        """
    )


_SECONDS_TEXT = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]Z"
"""A moment written to the second, as releases, phases, watermarks and runs were before 0004."""

_MOMENTS = {
    "change_requests": ("created_at", "updated_at", "deleted_at", "first_seen_at", "last_pulled_at"),
    "releases": ("deploy_at", "freeze_at"),
    "release_phases": ("starts", "ends"),
    "assignments": ("assigned_at",),
    "sync_state": ("updated_at",),
    "outbox": ("created_at", "updated_at"),  # sent_at came with 0005, at millisecond precision
    "runs": ("started_at", "ended_at"),
}
"""Every moment column but the audit's, which is append-only and was always written to the millisecond."""


@MIGRATIONS(name="0004_millisecond_moments")
def _millisecond_moments(db: sqlite_utils.Database) -> None:
    # One precision everywhere, so moments compare correctly as text in SQL as well:
    # "2026-12-08T18:00:00Z" sorts after "2026-12-08T18:00:00.500Z".
    for table, columns in _MOMENTS.items():
        for column in columns:
            db.execute(
                f"update {table} set {column} = substr({column}, 1, 19) || '.000Z' where {column} glob ?",
                [_SECONDS_TEXT],
            )


@MIGRATIONS(name="0005_outbox_write_ahead")
def _outbox_write_ahead(db: sqlite_utils.Database) -> None:
    # A write is recorded as 'sending' (with the moment it left) before it leaves, so
    # after a crash its value coming back on the next pull is known as relsync's own.
    db.executescript(
        f"""
        create table outbox_new (
            id integer primary key,
            request text not null,
            source text not null,
            system text not null,
            field text not null,
            value text,
            base text,
            base_version text,
            attempts integer not null default 0,
            state text not null default 'pending' {_check("state", OUTBOX_STATES)},
            last_error text,
            run integer,
            created_at text,
            updated_at text,
            sent_at text,
            unique (request, field, value)
        );
        insert into outbox_new (id, request, source, system, field, value, base, base_version, attempts, state,
            last_error, run, created_at, updated_at)
            select id, request, source, system, field, value, base, base_version, attempts, state,
            last_error, run, created_at, updated_at from outbox;
        drop table outbox;
        alter table outbox_new rename to outbox;
        create index outbox_state on outbox (state);
        create index outbox_request on outbox (request);
        """
    )


@MIGRATIONS(name="0006_quarantine")
def _quarantine(db: sqlite_utils.Database) -> None:
    # Records the mapping cannot translate, held back while the rest of their source syncs.
    # The record as last pulled is kept so that a fixed mapping can release it without
    # waiting for the record to change; ``mapping`` is the fingerprint it last failed under.
    db.executescript(
        """
        create table quarantine (
            request text primary key,
            source text not null,
            native_id text not null,
            field text,
            error text not null,
            run integer,
            first_seen_at text not null,
            last_seen_at text not null,
            mapping text not null,
            record text not null
        );
        create unique index quarantine_source_native_id on quarantine (source, native_id);
        """
    )


@MIGRATIONS(name="0007_run_interrupted")
def _run_interrupted(db: sqlite_utils.Database) -> None:
    # A run stopped by SIGINT/SIGTERM at a safe point is recorded as 'interrupted'; a run
    # says what it was (a sync, or a `relsync plan` dry run that only pulled).
    db.executescript(
        f"""
        create table runs_new (
            id integer primary key,
            kind text not null default 'sync' {_check("kind", RUN_KINDS)},
            started_at text not null,
            ended_at text,
            status text not null {_check("status", RUN_STATUSES)},
            exit_code integer,
            counts text,
            api_calls text,
            message text
        );
        insert into runs_new (id, kind, started_at, ended_at, status, exit_code, counts, api_calls, message)
            select id, case when counts like '%"dry_run": true%' then 'plan' else 'sync' end,
            started_at, ended_at, status, exit_code, counts, api_calls, message from runs;
        drop table runs;
        alter table runs_new rename to runs;
        """
    )


def _private_file(path: Path) -> None:
    """Create ``path`` readable by its owner only, or tighten it if it is wider."""
    # Created before SQLite opens it, so the file never exists with umask-wide
    # permissions; SQLite gives its -wal and -shm files the database file's mode.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        sidecar = Path(f"{path}{suffix}")
        if sidecar.exists() and stat.S_IMODE(sidecar.stat().st_mode) & 0o077:
            sidecar.chmod(0o600)


class StoreMissing(LookupError):
    """A command that only reads the store found none at the configured path."""


def store_problem(path: str | Path) -> str | None:
    """Why relsync could not keep its store at ``path`` (a missing folder, no permission), or None."""
    if str(path) == ":memory:":
        return None
    store = Path(path)
    if not store.parent.is_dir():
        return f"the folder {store.parent} does not exist: create it, or point `store` elsewhere"
    if store.is_dir():
        return f"{store} is a folder; `store` names the SQLite file inside one"
    writable = store if store.exists() else store.parent
    if not os.access(writable, os.W_OK):
        return f"relsync cannot write to {writable} (permission denied)"
    return None


def open_store(path: str | Path, *, busy_timeout_ms: int = 10_000, create: bool = True) -> sqlite_utils.Database:
    """Open (creating if needed, unless ``create`` is False) the store at ``path``, migrated to the current schema.

    Commands that only read (status, audit, release plans) pass ``create=False``: a
    mistyped path is then an error naming it, not an empty store that says "none".

    The file is mode 0600, in WAL mode, with foreign keys enforced and a busy timeout
    so that a reader (``relsync audit``) and a sync run wait for each other instead of
    failing. ``":memory:"`` gives a throwaway in-memory store (tests).
    """
    if str(path) != ":memory:" and not create and not Path(path).exists():
        raise StoreMissing(f"no store at {path} (the config's `store`): check the path, or run `relsync sync` to create it")
    if str(path) == ":memory:":
        db = sqlite_utils.Database(memory=True)
    else:
        _private_file(Path(path))
        db = sqlite_utils.Database(Path(path))
    db.execute(f"pragma busy_timeout = {int(busy_timeout_ms)}")
    # Must be set outside a transaction; SQLite ignores it inside one.
    db.execute("pragma foreign_keys = on")
    if not db.memory:
        db.enable_wal()
    MIGRATIONS.apply(db)
    return db


def _require_transaction(db: sqlite_utils.Database, what: str) -> None:
    # Writing outside the caller's transaction would commit on its own, splitting
    # what must be atomic (a page's rows and the watermark that page reached).
    if not db.conn.in_transaction:
        raise RuntimeError(f"{what} must be called inside the caller's transaction (with db.atomic())")


def get_watermark(db: sqlite_utils.Database, source: str, stream: str) -> str | None:
    """The stored watermark for ``source``/``stream``, or None before the first page."""
    row = db.execute(
        "select watermark from sync_state where source = ? and stream = ?", [source, stream]
    ).fetchone()
    return row[0] if row else None


def set_watermark(
    db: sqlite_utils.Database, source: str, stream: str, value: str, *, now: dt.datetime | None = None
) -> None:
    """Record ``value`` as the watermark, inside the caller's transaction (it does not commit)."""
    _require_transaction(db, "set_watermark")
    db.conn.execute(
        "insert into sync_state (source, stream, watermark, updated_at) values (?, ?, ?, ?) "
        "on conflict (source, stream) do update set "
        "watermark = excluded.watermark, updated_at = excluded.updated_at",
        [source, stream, value, clock.stamp(now)],
    )


def start_run(db: sqlite_utils.Database, *, now: dt.datetime | None = None, kind: str = "sync") -> int:
    """Insert a ``running`` runs row of ``kind`` (sync, or a plan's dry run) and return its id."""
    cursor = db.execute(
        "insert into runs (kind, started_at, status) values (?, ?, 'running')", [kind, clock.stamp(now)]
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def finish_run(
    db: sqlite_utils.Database,
    run_id: int,
    *,
    status: str,
    exit_code: int,
    counts: Mapping[str, Any],
    api_calls: Mapping[str, Any],
    message: str | None,
    now: dt.datetime | None = None,
) -> None:
    """Close the run: end time, final status, exit code, counts and API calls per system."""
    if status not in RUN_STATUSES:
        raise ValueError(f"run status {status!r} is not one of {', '.join(RUN_STATUSES)}")
    cursor = db.execute(
        "update runs set ended_at = ?, status = ?, exit_code = ?, counts = ?, api_calls = ?, "
        "message = ? where id = ?",
        [
            clock.stamp(now),
            status,
            exit_code,
            json.dumps(dict(counts), sort_keys=True),
            json.dumps(dict(api_calls), sort_keys=True),
            message,
            run_id,
        ],
    )
    if cursor.rowcount != 1:
        raise LookupError(f"no run with id {run_id}")
