"""compare_then_send, the push every connector shares: read what the source shows, compare, send the rest in batches.

The vendor's two hooks are plain functions over a dict standing in for the source: ``read``
answers what each record shows now, ``send`` writes a batch into it. Every call is logged,
so the tests assert exactly which reads and which batches the skeleton makes.
"""
from __future__ import annotations

from typing import Any

import pytest

from connectors.base import Write, WriteResult
from connectors.writeback import Pending, calls_for, compare, compare_then_send, write_targets

TARGETS = {"release": "Release", "status": "Status"}


class Source:
    """Records by id, each a dict of vendor fields; logs every read and every batch sent."""

    def __init__(self, records: dict[str, dict[str, Any]]) -> None:
        self.records = records
        self.log: list[tuple[str, list[str]]] = []

    def read(self, ids: list[str], fields: list[str]) -> dict[str, dict[str, Any]]:
        self.log.append(("read", list(ids)))
        self.fields_read = fields
        return {i: {f: self.records[i].get(f) for f in fields} for i in ids if i in self.records}

    def send(self, batch: list[Pending]) -> list[WriteResult]:
        self.log.append(("send", [p.record for p in batch]))
        for pending in batch:
            for write in pending.writes:
                self.records[pending.record][TARGETS[write.field]] = write.value
        return [WriteResult(w, "ok") for p in batch for w in p.writes]

    def sent(self) -> list[list[str]]:
        return [ids for kind, ids in self.log if kind == "send"]

    def reads(self) -> list[list[str]]:
        return [ids for kind, ids in self.log if kind == "read"]


def push(source: Source, writes: list[Write], *, read_batch: int = 100, send_batch: int = 10, **options: Any) -> list[WriteResult]:
    return compare_then_send(writes, system="Tracker", targets=TARGETS, read=source.read, read_batch=read_batch,
                             send=source.send, send_batch=send_batch, gone="record {} is gone", **options)


def release(record: str, value: str | None, base: str | None = None) -> Write:
    return Write(record, None, "release", value, base)


def outcomes(results: list[WriteResult]) -> dict[tuple[str, str], str]:
    return {(r.write.native_id, r.write.field): r.outcome for r in results}


def test_a_field_changed_since_the_pull_is_a_conflict_and_is_not_written():
    source = Source({"r1": {"Release": "Hotfix 7"}, "r2": {}})
    writes = [release("r1", "2026.08"), release("r2", "2026.08")]

    results = push(source, writes)

    conflict = next(r for r in results if r.write.native_id == "r1")
    assert conflict.outcome == "conflict" and conflict.current == "Hotfix 7"
    assert conflict.message == "r1 Release changed in Tracker since the last pull: None -> 'Hotfix 7'"
    assert source.records["r1"]["Release"] == "Hotfix 7"
    assert source.sent() == [["r2"]]
    assert outcomes(results) == {("r1", "release"): "conflict", ("r2", "release"): "ok"}


def test_a_value_already_shown_is_done_without_being_sent():
    source = Source({"r1": {"Release": "2026.08", "Status": "Approved"}})
    writes = [release("r1", "2026.08", base="2026.07"), Write("r1", None, "status", "Scheduled", "Approved")]

    results = push(source, writes)

    done = next(r for r in results if r.write.field == "release")
    assert (done.outcome, done.message, done.current) == ("ok", "already set", "2026.08")
    assert source.sent() == [["r1"]]
    [sent] = [r for r in results if r.message is None]
    assert sent.write.field == "status" and source.records["r1"]["Status"] == "Scheduled"


def test_writes_go_out_in_batches_of_the_vendors_size_one_entry_per_record():
    ids = [f"r{n:02d}" for n in range(25)]
    source = Source({i: {} for i in ids})
    writes = [w for i in ids for w in (release(i, "2026.08"), Write(i, None, "status", "Scheduled", None))]

    results = push(source, writes, send_batch=10)

    assert source.reads() == [ids]  # one read for 25 records at 100 a read
    assert source.sent() == [ids[:10], ids[10:20], ids[20:]]
    assert len(results) == 50 and {r.outcome for r in results} == {"ok"}
    assert source.fields_read == ["Release", "Status"]


def test_reads_are_chunked_and_each_batch_goes_out_as_soon_as_it_is_full():
    ids = [f"r{n}" for n in range(7)]
    source = Source({i: {} for i in ids})

    push(source, [release(i, "2026.08") for i in ids], read_batch=3, send_batch=2)

    assert source.log == [
        ("read", ["r0", "r1", "r2"]), ("send", ["r0", "r1"]),
        ("read", ["r3", "r4", "r5"]), ("send", ["r2", "r3"]), ("send", ["r4", "r5"]),
        ("read", ["r6"]), ("send", ["r6"]),
    ]
    assert len(source.sent()) == calls_for(len(ids), 2)  # as few sends as one batching of all the records


def test_a_record_the_source_no_longer_has_fails_alone():
    source = Source({"r1": {}})

    results = push(source, [release("r1", "2026.08"), release("r9", "2026.08")])

    assert outcomes(results) == {("r1", "release"): "ok", ("r9", "release"): "failed"}
    assert next(r.message for r in results if r.write.native_id == "r9") == "record r9 is gone"
    assert source.sent() == [["r1"]]


def test_a_field_with_no_target_fails_without_a_read():
    source = Source({"r1": {}})

    [result] = push(source, [Write("r1", None, "owner", "Ana", None)])

    assert result.outcome == "failed"
    assert result.message == "relsync has no Tracker field configured for 'owner'"
    assert source.log == []


def test_records_can_be_keyed_by_native_key():
    source = Source({"OPS-1": {}})
    writes = [Write("10001", "OPS-1", "release", "2026.08", None), Write("10001", "OPS-1", "status", "Scheduled", None)]

    results = push(source, writes, record=lambda w: w.native_key or w.native_id)

    assert source.reads() == [["OPS-1"]] and source.sent() == [["OPS-1"]]
    assert source.records["OPS-1"] == {"Release": "2026.08", "Status": "Scheduled"}
    assert [r.outcome for r in results] == ["ok", "ok"]


def test_a_batch_refused_by_the_source_reports_its_writes_as_the_vendor_sends_them():
    source = Source({"r1": {}, "r2": {}})

    def refuse(batch: list[Pending]) -> list[WriteResult]:
        return [WriteResult(w, "failed", f"{p.record}: refused") for p in batch for w in p.writes]

    results = compare_then_send([release("r1", "x"), release("r2", "y")], system="Tracker", targets=TARGETS, read=source.read,
                                read_batch=100, send=refuse, send_batch=10, gone="gone {}")

    assert [(r.outcome, r.message) for r in results] == [("failed", "r1: refused"), ("failed", "r2: refused")]


@pytest.mark.parametrize(
    ("shown", "value", "base", "expected"),
    [("A", "A", None, "ok"), ("B", "A", "B", None), (None, "A", None, None), ("C", "A", "B", "conflict"), (None, "A", "B", "conflict")],
)
def test_compare(shown, value, base, expected):
    result = compare(Write("r1", None, "release", value, base), shown, "Tracker", "r1 Release")

    assert (result.outcome if result else None) == expected


def test_write_targets_leave_out_unconfigured_fields():
    assert write_targets("Release", "Status") == {"release": "Release", "status": "Status"}
    assert write_targets(None, "Status") == {"status": "Status"}
    assert write_targets("", None) == {}


@pytest.mark.parametrize(("records", "per_call", "calls"), [(0, 10, 0), (1, 10, 1), (10, 10, 1), (11, 10, 2), (450, 200, 3)])
def test_calls_for(records, per_call, calls):
    assert calls_for(records, per_call) == calls
