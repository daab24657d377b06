"""The store's schema: the states its CHECK constraints allow, and every migration, in order.

Migrations are history: each keeps the schema text it ran with (a later change adds a
migration rather than editing one), so a store made by any release of relsync opens
into the same schema. ``sync.store`` applies them when it opens a store.
"""
from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

from mapping.model import version_moment

RELEASE_STATES: tuple[str, ...] = ("planned", "open", "frozen", "deploying", "released", "cancelled")
OUTBOX_STATES: tuple[str, ...] = ("pending", "sending", "done", "conflict", "failed", "superseded")
"""sending: the write may have left (recorded before it does), its outcome not yet known;
superseded: the plan changed before the write went out; the row stays as a record."""
_OUTBOX_STATES_0001 = ("pending", "done", "conflict", "failed")  # what migration 0001 allowed
_OUTBOX_STATES_0003 = (*_OUTBOX_STATES_0001, "superseded")  # what migration 0003 allowed
ORIGINS: tuple[str, ...] = ("pulled", "planned", "pushed", "manual", "history")
"""history: a change as the source's own history recorded it (Jira changelog, Salesforce field history)."""
_ORIGINS_0001 = ORIGINS[:4]  # what migration 0001 allowed
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
            origin text not null {_check("origin", _ORIGINS_0001)},
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


@MIGRATIONS(name="0008_release_lifecycle")
def _release_lifecycle(db: sqlite_utils.Database) -> None:
    # Who cancelled a release and why: the next plan moves its requests out with that reason.
    # ``revision`` counts the release's changes that calendar subscribers must see (moved,
    # cancelled): the .ics gives it as each event's SEQUENCE. ``requires_signoff`` (a JSON
    # list of phases, from the train) and ``phase_signoffs``: a release whose required
    # sign-offs are missing is held at its deploy time instead of counting as deployed.
    db.executescript(
        """
        alter table releases add column cancelled_by text;
        alter table releases add column cancel_reason text;
        alter table releases add column revision integer not null default 0;
        alter table releases add column requires_signoff text not null default '[]';
        alter table releases add column held_since text;

        create table phase_signoffs (
            release text not null references releases (id),
            phase text not null,
            signed_by text not null,
            note text,
            signed_at text not null,
            recorded_by text not null,
            primary key (release, phase)
        );
        """
    )


@MIGRATIONS(name="0009_waiting")
def _waiting(db: sqlite_utils.Database) -> None:
    # Why each request the planner may move is left without a release after its last
    # pass (plain text: no train takes it, not eligible, freeze, capacity, quota), and
    # since when it has been waiting. Rewritten by every planning pass.
    db.executescript(
        """
        create table waiting (
            request text primary key,
            reason text not null,
            since text not null,
            updated_at text not null
        );
        """
    )


@MIGRATIONS(name="0010_depends_on")
def _depends_on(db: sqlite_utils.Database) -> None:
    # The requests a request depends on, as its source names them (resolved when planning).
    db.execute("alter table change_requests add column depends_on text")


@MIGRATIONS(name="0011_source_history")
def _source_history(db: sqlite_utils.Database) -> None:
    # The audit takes a fifth origin, 'history'. SQLite cannot change a CHECK in place: the
    # table is rebuilt with every row, id and hash as it was (the chain hashes content, not
    # the table), its triggers and index made again, and sqlite_sequence carried over so
    # verify_chain still sees rows cut from the end. ``imported_history`` remembers each
    # source history entry imported, or matched to relsync's own write (``matched`` names its
    # outbox row, ``outbox:<id>``, each matched once), so none is imported twice.
    seq = db.execute("select seq from sqlite_sequence where name = 'audit'").fetchone()
    db.executescript(
        f"""
        create table audit_new (
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
        insert into audit_new (id, at, run, actor, origin, request, system, field, old, new, prev_hash, hash)
            select id, at, run, actor, origin, request, system, field, old, new, prev_hash, hash from audit order by id;
        drop table audit;
        alter table audit_new rename to audit;
        create index audit_request on audit (request);
        create index audit_at on audit (at);
        create trigger audit_no_update before update on audit
        begin
            select raise(abort, 'audit is append-only');
        end;
        create trigger audit_no_delete before delete on audit
        begin
            select raise(abort, 'audit is append-only');
        end;

        create table imported_history (
            source text not null,
            entry text not null,
            field text not null,
            request text not null,
            at text not null,
            audit_id integer,
            matched text,
            primary key (source, entry, field)
        );
        create index imported_history_matched on imported_history (matched);
        """
    )
    if seq is not None:
        db.execute("delete from sqlite_sequence where name in ('audit', 'audit_new')")
        db.execute("insert into sqlite_sequence (name, seq) values ('audit', ?)", [seq[0]])


@MIGRATIONS(name="0012_source_cache")
def _source_cache(db: sqlite_utils.Database) -> None:
    # What a connector may keep between runs to spare calls on a run in which nothing
    # changed (Jira's server info and field list): JSON values with the moment they go stale.
    # Never secrets: a Salesforce access token lives in a 0600 file beside the store instead.
    db.executescript(
        """
        create table source_cache (
            source text not null,
            key text not null,
            value text not null,
            fetched_at text not null,
            expires_at text not null,
            primary key (source, key)
        );
        """
    )


@MIGRATIONS(name="0013_written_fields")
def _written_fields(db: sqlite_utils.Database) -> None:
    # What the source shows in the plain fields relsync writes (write.planned_date and
    # write.phase), read on every pull like source_status, so a write is sent only when
    # the source differs from the plan and a person's edit of the field is audited.
    db.executescript(
        """
        alter table change_requests add column source_planned_date text;
        alter table change_requests add column source_phase text;
        """
    )


@MIGRATIONS(name="0014_run_sources")
def _run_sources(db: sqlite_utils.Database) -> None:
    # Runners of different sources share the store: each run names the sources whose locks
    # it held (JSON list; null for a run of every source), so a runner that takes a source's
    # lock knows a 'running' row naming that source was killed, and another runner's live
    # run of other sources is left alone.
    db.executescript("alter table runs add column sources text;")


_BACKFILL_BATCH = 10_000


@MIGRATIONS(name="0015_source_moment")
def _source_moment(db: sqlite_utils.Database) -> None:
    # Each request's version as a moment in the one shape, so that the history import reads
    # the records updated since its mark in version order, page by page, from an index;
    # the vendors' versions differ in offset format and do not sort as text. A write of
    # source_version that does not also write its moment (relsync's push, recording the
    # version the source answered) clears the moment, and the history import fills it
    # again before it reads.
    db.executescript(
        """
        alter table change_requests add column source_moment text;
        create index change_requests_live_moment on change_requests (source, source_moment, native_id)
            where deleted_at is null;
        create trigger change_requests_moment_stale after update of source_version on change_requests
            when new.source_version is not old.source_version and new.source_moment is old.source_moment
        begin
            update change_requests set source_moment = null where key = new.key;
        end;
        """
    )
    after = ""
    while True:
        rows = db.execute("select key, source_version from change_requests where key > ? order by key limit ?",
                          [after, _BACKFILL_BATCH]).fetchall()
        if not rows:
            return
        db.conn.executemany("update change_requests set source_moment = ? where key = ?",
                            [(version_moment(version), key) for key, version in rows])
        after = rows[-1][0]
