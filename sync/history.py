"""Importing each source's own history into the audit: who changed which mapped field, and when.

Runs in ``relsync sync`` after the pulls: for every source whose pull did not fail, the
connector reads its system's history (Jira's changelog of the issues updated since the
last import; Salesforce's field history recorded since then) within the run's budget of
API calls (``sources.<name>.history_max_calls``), and each complete page is stored in one
transaction with its watermarks. Entries become audit events of origin ``history`` with
the person's name as actor and the source's own display values. An entry already
imported is skipped (``imported_history``), and an entry recording relsync's own write
(the outbox sent that value to that field) is matched to that push, never imported as
a person's change. Airtable's API has no history: its timeline is relsync's own
observed changes.
"""
from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from connectors.base import Connector
from connectors.history import BudgetSpent, HistoryBudget, HistoryEntry, HistoryPage, HistoryTarget
from mapping.model import UNREAD_VERSION_MOMENT, version_moment
from sync.audit import AuditEvent, append_events, audit_json
from sync.db import Database, insert_all
from sync.store import get_watermark, set_watermark

READ = "history"
"""sync_state stream: where the source's history was read up to (Salesforce: the last CreatedDate read)."""
RECORDS = "history-records"
"""sync_state stream: ``moment|id,id``: the latest record version imported, and the records of that version covered."""
WRITTEN = ("release", "status")
PAGE = 1000
"""Records read from the store at a time, for the history import's targets."""
log = logging.getLogger(__name__)


class HistorySource(Protocol):
    """What the import needs of a configured source."""

    name: str
    connector: Connector


@dataclass
class HistoryCounts:
    """What one source's history import did."""

    records: int = 0
    imported: int = 0
    matched: int = 0
    """Entries that were relsync's own writes, matched to its pushes."""
    known: int = 0
    """Entries imported before (or of records relsync does not hold)."""
    calls: int = 0
    complete: bool = True
    notes: list[str] = field(default_factory=list)


def _read_mark(mark: str | None) -> tuple[str, set[str]]:
    """The records mark: the latest version imported and the records of exactly that version already covered."""
    moment, _, ids = (mark or UNREAD_VERSION_MOMENT).partition("|")
    return moment, set(filter(None, ids.split(",")))


def _mark(previous: str | None, covered: Sequence[HistoryTarget]) -> str | None:
    """The records mark once ``covered`` (in version order, following those the ``previous`` mark covers) are imported.

    Versions tie (Salesforce's modstamps have whole seconds): a record saved later in the
    same second as the mark, whatever its id, must still be asked for. So the mark keeps
    the ids already covered at its moment rather than an id to continue after.
    """
    if not covered:
        return previous
    moment, ids = _read_mark(previous)
    latest = version_moment(covered[-1].version)
    done = {t.native_id for t in covered if version_moment(t.version) == latest}
    return f"{latest}|{','.join(sorted(done | ids if latest == moment else done))}"


_LIVE = "from change_requests where source = ? and deleted_at is null"


def _pending(db: Database) -> str:
    """SQL: the live records of a source updated since the records mark (its moment, the ids covered at it)."""
    return f"{_LIVE} and source_moment >= ? and not (source_moment = ? and native_id in ({db.json_values}))"


def _fill_moments(db: Database, source: str) -> None:
    """Give a moment to every live record whose version was written without one (relsync's push records the version)."""
    while True:
        with db.atomic():
            rows = db.execute(f"select key, source_version {_LIVE} and source_moment is null limit ?",
                              [source, PAGE]).fetchall()
            db.executemany("update change_requests set source_moment = ? where key = ?",
                           [(version_moment(version), key) for key, version in rows])
        if len(rows) < PAGE:
            return


def targets(db: Database, source: str, mark: str | None = None, *, page: int = 0) -> Iterator[HistoryTarget]:
    """The source's live records updated since ``mark`` (the records mark), in version order, read ``page`` at a time.

    Each read continues after the last record read (keyset on the index of live records by
    version), so memory holds one page whatever the number of records.
    """
    moment, ids = _read_mark(mark)
    after = (moment, "")
    size = page or PAGE
    while True:
        rows = db.execute(
            f"select source_moment, native_id, native_key, source_version {_LIVE} "
            "and (source_moment, native_id) > (?, ?) order by source_moment, native_id limit ?",
            [source, *after, size]).fetchall()
        for version, native_id, native_key, source_version in rows:
            if version != moment or native_id not in ids:
                yield HistoryTarget(native_id, native_key, source_version)
        if len(rows) < size:
            return
        after = (rows[-1][0], rows[-1][1])


def pending(db: Database, source: str, mark: str | None) -> int:
    """How many live records of the source were updated since ``mark`` (or hold no moment yet)."""
    moment, ids = _read_mark(mark)
    found = db.execute(f"select count(*) {_pending(db)}", [source, moment, moment, json.dumps(sorted(ids))]).fetchone()[0]
    return int(found) + int(db.execute(f"select count(*) {_LIVE} and source_moment is null", [source]).fetchone()[0])


def _last_mark(db: Database, source: str, mark: str | None) -> str | None:
    """The records mark once every live record updated since ``mark`` is imported: the latest moment and its records."""
    moment, ids = _read_mark(mark)
    params = [source, moment, moment, json.dumps(sorted(ids))]
    latest = db.execute(f"select max(source_moment) {_pending(db)}", params).fetchone()[0]
    if latest is None:
        return mark
    last = [HistoryTarget(row[0], None, latest) for row in db.execute(
        f"select native_id {_pending(db)} and source_moment = ? order by native_id", [*params, latest])]
    return _mark(mark, last)


class _Handed:
    """The targets a connector has taken and not yet reported complete, in order (a reader takes a batch at a time)."""

    def __init__(self, found: Iterator[HistoryTarget]) -> None:
        self._found = found
        self._open: deque[HistoryTarget] = deque()
        self.done = 0

    def __iter__(self) -> Iterator[HistoryTarget]:
        for target in self._found:
            self._open.append(target)
            yield target

    def complete(self, records_done: int) -> list[HistoryTarget]:
        """The targets newly complete now that the first ``records_done`` are."""
        covered = [self._open.popleft() for _ in range(min(max(0, records_done - self.done), len(self._open)))]
        self.done = max(self.done, records_done)
        return covered


def estimate(db: Database, source: HistorySource, max_calls: int) -> dict[str, Any]:
    """The calls the next import would make (at least; more when the history runs to further pages), bounded by the budget."""
    kind = source.connector.history_kind
    if kind is None or max_calls == 0:
        return {"calls": 0, "records": 0, "limit": "no history API" if kind is None else "history import off"}
    records = pending(db, source.name, get_watermark(db, source.name, RECORDS))
    calls = min(source.connector.history_estimate(records), max_calls)
    return {"calls": calls, "records": records,
            "limit": f"{kind}: at most {max_calls} calls a run (sources.{source.name}.history_max_calls)"}


def import_history(db: Database, source: HistorySource, *, system: str, run_id: int,
                   max_calls: int) -> HistoryCounts:
    """Read and store one source's history since the last import, within ``max_calls`` API calls."""
    counts = HistoryCounts()
    if source.connector.history_kind is None or max_calls == 0:
        return counts
    _fill_moments(db, source.name)
    start = get_watermark(db, source.name, RECORDS)
    counts.records = pending(db, source.name, start)
    if not counts.records:
        return counts  # nothing changed since the last import: no call
    handed = _Handed(targets(db, source.name, start))
    budget = HistoryBudget(max_calls)
    try:
        for page in source.connector.history(handed, get_watermark(db, source.name, READ), budget):
            covered = handed.complete(page.records_done)
            _store_page(db, source.name, system, page, run_id, counts,
                        _mark(get_watermark(db, source.name, RECORDS), covered) if covered else None)
    except BudgetSpent:
        counts.complete = False
        counts.notes.append(f"{source.name}: history import stopped at {max_calls} API calls "
                            f"(sources.{source.name}.history_max_calls); the next run continues")
    else:
        with db.atomic():
            set_watermark(db, source.name, RECORDS, _last_mark(db, source.name, get_watermark(db, source.name, RECORDS)) or "")
    counts.calls = budget.spent
    log.info("%s: history imported, %d entries (%d relsync's own writes), %d calls", source.name, counts.imported,
             counts.matched, counts.calls)
    return counts


def _store_page(db: Database, source: str, system: str, page: HistoryPage, run_id: int,
                counts: HistoryCounts, records_mark: str | None) -> None:
    """One complete page: new entries as audit events, relsync's own writes matched, watermarks moved."""
    with db.atomic():
        keys = {row["native_id"]: row["key"] for row in db.query(
            f"select native_id, key from change_requests where source = ? and native_id in ({db.json_values})",
            [source, json.dumps(sorted({e.native_id for e in page.entries}))])}
        seen = {(row["entry"], row["field"]) for row in db.query(
            f"select entry, field from imported_history where source = ? and entry in ({db.json_values})",
            [source, json.dumps(sorted({e.entry for e in page.entries}))])}
        events: list[AuditEvent] = []
        rows: list[dict[str, Any]] = []
        pushes = _Pushes(db, {key for e in page.entries if e.field in WRITTEN and (key := keys.get(e.native_id))})
        for entry in sorted(page.entries, key=lambda e: (e.at, e.entry, e.field)):
            key = keys.get(entry.native_id)
            if key is None or (entry.entry, entry.field) in seen:
                counts.known += 1
                continue
            seen.add((entry.entry, entry.field))
            row = {"source": source, "entry": entry.entry, "field": entry.field, "request": key, "at": entry.at,
                   "audit_id": None, "matched": None}
            write = pushes.own_write(key, entry)
            if write is not None:
                counts.matched += 1
                rows.append(row | {"audit_id": pushes.event(key, entry), "matched": f"outbox:{write}"})
                continue
            counts.imported += 1
            rows.append(row)
            events.append(AuditEvent(at=entry.at, run=run_id, actor=entry.author, origin="history", request=key,
                                     system=system, field=entry.field, old=entry.old, new=entry.new))
        head = db.execute("select coalesce(max(id), 0) from audit").fetchone()[0]
        append_events(db, events)
        for offset, row in enumerate(r for r in rows if r["matched"] is None):
            row["audit_id"] = head + offset + 1
        if rows:
            insert_all(db, "imported_history", rows)
        if page.watermark:
            set_watermark(db, source, READ, page.watermark)
        if records_mark is not None:
            set_watermark(db, source, RECORDS, records_mark)


class _Pushes:
    """relsync's sent writes and pushed audit events of a page's requests, read once for the page.

    An entry of a written field that records a value relsync sent is relsync's own write
    (``own_write``), matched to the audit event of that push (``event``); each write is
    matched once, so a person who later sets a value relsync once wrote is a person's change.
    """

    def __init__(self, db: Database, requests: set[str]) -> None:
        wanted = json.dumps(sorted(requests))
        self.sent: dict[tuple[str, str, str], list[int]] = {}
        self.taken: set[int] = set()
        self.pushed: dict[tuple[str, str, str], int] = {}
        if not requests:
            return  # no entry of a field relsync writes: nothing to read
        for row in db.query(f"select id, request, field, value from outbox where sent_at is not null "
                            f"and request in ({db.json_values}) order by id", [wanted]):
            self.sent.setdefault((row["request"], row["field"], row["value"]), []).append(int(row["id"]))
        marks = json.dumps([f"outbox:{n}" for ids in self.sent.values() for n in ids])
        self.taken = {int(row["matched"].partition(":")[2]) for row in db.query(
            f"select matched from imported_history where matched in ({db.json_values})", [marks])}
        self.pushed = {(row["request"], row["field"], row["new"]): int(row["id"]) for row in db.query(
            f"select request, field, new, max(id) as id from audit where origin = 'pushed' "
            f"and request in ({db.json_values}) group by request, field, new", [wanted])}

    def own_write(self, key: str, entry: HistoryEntry) -> int | None:
        """The outbox row of relsync's write this entry records (taken from now on), or None: a person's change."""
        if entry.field not in WRITTEN:
            return None
        for outbox_id in self.sent.get((key, entry.field, json.dumps(entry.new)), []):
            if outbox_id not in self.taken:
                self.taken.add(outbox_id)
                return outbox_id
        return None

    def event(self, key: str, entry: HistoryEntry) -> int | None:
        """The audit id of relsync's push of this value, if recorded."""
        return self.pushed.get((key, entry.field, audit_json(entry.new)))


def import_sources(db: Database, sources: dict[str, Any], *, skip: set[str], run_id: int,
                   limits: dict[str, int]) -> tuple[dict[str, HistoryCounts], dict[str, BaseException]]:
    """Import every source's history but those in ``skip`` (their pull failed); a failing import stops alone."""
    done: dict[str, HistoryCounts] = {}
    failures: dict[str, BaseException] = {}
    for name, source in sources.items():
        if name in skip:
            continue
        try:
            done[name] = import_history(db, source, system=source.mapping.system, run_id=run_id,
                                        max_calls=limits.get(name, 0))
        except Exception as error:  # the pull's records stay stored; the next run imports again
            log.debug("%s: history import failed: %s", name, error)
            failures[name] = error
    return done, failures
