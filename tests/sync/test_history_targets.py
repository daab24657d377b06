"""The history import's targets: read from the store a page at a time, in version order, whatever the vendors' offsets."""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pytest
import sqlite_utils

from connectors.history import BudgetSpent, HistoryBudget, HistoryPage, HistoryTarget
from mapping import clock
from sync import history
from sync.migrations import MIGRATIONS
from sync.store import get_watermark, open_store, start_run

SOURCE = "crm"

# Salesforce "+0000", Airtable "Z", Jira with the site's offset, ISO "+05:30", whole seconds that tie, and
# versions missing or unreadable (they sort first).
VERSIONS = {
    "a": "2026-11-20T10:15:30.000+0000",
    "b": "2026-11-20T10:15:30.000Z",
    "c": "2026-11-20T05:15:30.000-0500",  # the same second as a and b
    "d": "2026-11-20T15:45:29.999+05:30",  # a millisecond before them
    "e": "2026-11-20T10:15:31Z",
    "f": "2026-11-20T11:15:30.5+0100",
    "g": None,
    "h": "yesterday",
    "i": "2026-11-19T23:00:00.000-0300",  # the next day in UTC, sorting last
    "j": "2026-11-20T10:15:30.000+0000",
}


def store_with(versions: dict[str, str | None], deleted: Iterable[str] = ()) -> sqlite_utils.Database:
    db = open_store(":memory:")
    db["change_requests"].insert_all(
        [{"key": f"{SOURCE}:{native_id}", "source": SOURCE, "system": "salesforce", "native_id": native_id,
          "native_key": native_id.upper(), "status": "new", "source_version": version,
          "source_moment": history.version_moment(version),
          "deleted_at": "2026-11-21T00:00:00.000Z" if native_id in deleted else None}
         for native_id, version in versions.items()])
    return db


def sorted_in_python(versions: dict[str, str | None], mark: str | None, deleted: Iterable[str] = ()) -> list[str]:
    """The order the import used before the store kept moments: every live record read, parsed, sorted in memory."""
    moment, ids = history._read_mark(mark)
    found = []
    for native_id, version in versions.items():
        stamp = history.version_moment(version)
        if native_id not in deleted and (stamp > moment or (stamp == moment and native_id not in ids)):
            found.append((stamp, native_id))
    return [native_id for _, native_id in sorted(found)]


@pytest.mark.parametrize("mark", [None, "2026-11-20T10:15:30.000Z|a", "2026-11-20T10:15:30.000Z|a,b,c,j",
                                  "1970-01-01T00:00:00.000Z|g", "2026-11-20T10:15:31.000Z|e"])
@pytest.mark.parametrize("page", [1, 2, 3, 1000])
def test_targets_come_in_version_order_across_offsets_and_ties_as_sorting_in_memory_did(mark, page):
    db = store_with(VERSIONS, deleted=["f"])

    found = [t.native_id for t in history.targets(db, SOURCE, mark, page=page)]

    assert found == sorted_in_python(VERSIONS, mark, deleted=["f"])
    assert history.pending(db, SOURCE, mark) == len(found)


def test_a_record_saved_later_in_the_marks_second_is_still_asked_for():
    db = store_with({"a": "2026-11-20T10:15:30.000+0000", "b": "2026-11-20T10:15:30.000Z"})
    mark = "2026-11-20T10:15:30.000Z|a,b"
    assert list(history.targets(db, SOURCE, mark)) == []
    db["change_requests"].insert({"key": f"{SOURCE}:0", "source": SOURCE, "system": "salesforce", "native_id": "0",
                                  "status": "new", "source_version": "2026-11-20T10:15:30.000+0000",
                                  "source_moment": "2026-11-20T10:15:30.000Z"})

    assert [t.native_id for t in history.targets(db, SOURCE, mark)] == ["0"]  # its id sorts before the covered ones


def reads_of_targets(db: sqlite_utils.Database) -> list[str]:
    """Every statement that reads targets from the store, as SQLite runs them."""
    seen: list[str] = []
    db.conn.set_trace_callback(lambda sql: seen.append(sql) if "order by source_moment" in sql else None)
    return seen


def test_targets_are_read_a_page_at_a_time_as_they_are_taken():
    versions = {f"r{n:04d}": f"2026-11-{1 + n // 100:02d}T10:{n % 60:02d}:00.000+0000" for n in range(2500)}
    db = store_with(versions)
    reads = reads_of_targets(db)

    found = history.targets(db, SOURCE, None, page=1000)
    first = list(itertools.islice(found, 10))
    assert len(reads) == 1 and len(first) == 10  # nothing more is read until it is taken
    rest = list(found)

    assert len(reads) == 3  # 1,000 + 1,000 + 500: the last, short page ends it
    assert [t.native_id for t in first + rest] == sorted_in_python(versions, None)


@dataclass
class BatchReader:
    """A connector reading by record, a batch at a time, as Jira's changelog reader does."""

    batch: int
    calls_per_batch: int = 1
    asked: list[list[str]] = field(default_factory=list)
    history_kind: str = "by record"

    def history(self, targets: Iterable[HistoryTarget], since: str | None, budget: HistoryBudget) -> Iterator[HistoryPage]:
        found = iter(targets)
        done = 0
        while group := list(itertools.islice(found, self.batch)):
            for _ in range(self.calls_per_batch):
                if not budget.take():
                    raise BudgetSpent
            self.asked.append([t.native_id for t in group])
            done += len(group)
            yield HistoryPage([], None, done, self.calls_per_batch)

    def history_estimate(self, targets: int) -> int:
        return -(-targets // self.batch)


@dataclass
class Source:
    name: str
    connector: BatchReader


def test_an_import_over_many_records_asks_for_each_once_in_order_and_marks_the_last(monkeypatch):
    monkeypatch.setattr(history, "PAGE", 7)  # many store pages, none aligned with the reader's batches
    versions = {f"r{n:03d}": f"2026-11-20T10:{n // 3 % 60:02d}:{n // 180:02d}.000{'Z' if n % 2 else '+0000'}"
                for n in range(300)}  # three records a second: ties everywhere
    db = store_with(versions)
    reader = BatchReader(batch=40)
    run_id = start_run(db)

    counts = history.import_history(db, Source(SOURCE, reader), system="salesforce", run_id=run_id, max_calls=100)

    assert counts.records == 300 and counts.complete and counts.calls == 8
    assert [n for group in reader.asked for n in group] == sorted_in_python(versions, None)
    assert [len(group) for group in reader.asked] == [40] * 7 + [20]
    last = max(history.version_moment(v) for v in versions.values())
    tied = sorted(n for n, v in versions.items() if history.version_moment(v) == last)
    assert get_watermark(db, SOURCE, history.RECORDS) == f"{last}|{','.join(tied)}"
    again = history.import_history(db, Source(SOURCE, BatchReader(batch=40)), system="salesforce", run_id=run_id,
                                   max_calls=100)
    assert again.records == 0 and again.calls == 0


def test_an_import_cut_by_its_budget_continues_after_the_last_complete_batch_across_a_tie(monkeypatch):
    monkeypatch.setattr(history, "PAGE", 4)
    versions = {"a": "2026-11-20T10:00:00.000Z", "b": "2026-11-20T10:00:01.000+0000", "c": "2026-11-20T10:00:01Z",
                "d": "2026-11-20T05:00:01.000-0500", "e": "2026-11-20T10:00:02.000Z"}
    db = store_with(versions)
    run_id = start_run(db)

    first = history.import_history(db, Source(SOURCE, cut := BatchReader(batch=2)), system="salesforce",
                                   run_id=run_id, max_calls=2)

    assert not first.complete and cut.asked == [["a", "b"], ["c", "d"]]
    assert get_watermark(db, SOURCE, history.RECORDS) == "2026-11-20T10:00:01.000Z|b,c,d"
    rest = BatchReader(batch=2)
    second = history.import_history(db, Source(SOURCE, rest), system="salesforce", run_id=run_id, max_calls=2)
    assert second.complete and second.records == 1 and rest.asked == [["e"]]


def test_a_version_written_without_its_moment_is_read_again_before_the_import():
    db = store_with({"a": "2026-11-20T10:00:00.000Z", "b": "2026-11-20T10:00:05.000Z"})
    mark = "2026-11-20T10:00:05.000Z|b"
    # relsync's push records the version the source answered, without its moment.
    db.execute("update change_requests set source_version = ? where key = ?", ["2026-11-20T11:00:00.000+0100", f"{SOURCE}:a"])
    db.execute("update change_requests set source_version = ? where key = ?", ["2026-11-20T10:30:00.000+0000", f"{SOURCE}:b"])
    db.conn.commit()
    assert [r["source_moment"] for r in db.query("select source_moment from change_requests order by key")] == [None, None]
    assert history.pending(db, SOURCE, mark) == 2  # counted while the moments wait

    history._fill_moments(db, SOURCE)

    assert [r["source_moment"] for r in db.query("select source_moment from change_requests order by key")] == [
        "2026-11-20T10:00:00.000Z", "2026-11-20T10:30:00.000Z"]
    assert [t.native_id for t in history.targets(db, SOURCE, mark)] == ["b"]


def test_the_migration_gives_every_stored_request_its_versions_moment(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    MIGRATIONS.apply(old, stop_before="0015_source_moment")
    old["change_requests"].insert_all(
        [{"key": f"{SOURCE}:{native_id}", "source": SOURCE, "system": "salesforce", "native_id": native_id,
          "status": "new", "source_version": version} for native_id, version in VERSIONS.items()])
    old.close()

    db = open_store(path)

    moments = {row["native_id"]: row["source_moment"] for row in db.query("select native_id, source_moment from change_requests")}
    assert moments == {native_id: history.version_moment(version) for native_id, version in VERSIONS.items()}
    assert moments["c"] == moments["a"] == clock.stamp(clock.parse(VERSIONS["b"] or ""))
    assert moments["g"] == moments["h"] == "1970-01-01T00:00:00.000Z"
    assert [t.native_id for t in history.targets(db, SOURCE)] == sorted_in_python(VERSIONS, None)
    plan = " ".join(str(row) for row in db.execute(
        "explain query plan select native_id from change_requests where source = ? and deleted_at is null "
        "and (source_moment, native_id) > (?, ?) order by source_moment, native_id limit 10", [SOURCE, "", ""]))
    assert "change_requests_live_moment" in plan and "TEMP B-TREE" not in plan
