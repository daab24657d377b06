"""Writing back: compare each write with what the source shows now, then send the rest in batches.

Every connector pushes the same way; only reading a record's current values and sending
a batch differ by vendor, and those come in as callables. The engine's ``release`` and
``status`` go to vendor fields named by ``targets``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from config.fieldmap import WriteTargets
from connectors.base import Journal, Write, WriteResult

Shown = Mapping[str, Any]
"""What one record shows now, by target field (values as the connector compares them)."""

ReadCurrent = Callable[[list[str], list[str]], Mapping[str, Shown]]
"""``read(records, fields)``: what each record shows now in ``fields``; a record left out is gone."""


@dataclass(frozen=True)
class Pending:
    """Writes to one record that passed the compare, and what the record showed then."""

    record: str
    writes: list[Write]
    shown: Shown


SendBatch = Callable[[list[Pending]], list[WriteResult]]
"""``send(batch)``: write a batch of records, one result per write; refusals are results."""

Verify = Callable[[list[Pending], list[WriteResult]], list[WriteResult]]
"""``verify(sent, results)``: the results again, once the source was asked whether someone's edit
landed between the compare read and the write (it is then put back and the write is a conflict)."""


def compare(write: Write, shown: Any, system: str, label: str) -> WriteResult | None:
    """Compare before writing: None when ``write`` should go out.

    ``shown`` is what the source shows now. Already showing the value is done;
    showing something other than what the last pull saw means someone changed it
    since: a conflict, recorded and not overwritten.
    """
    if shown == write.value:
        return WriteResult(write, "ok", "already set", current=shown)
    if shown != write.base:
        message = f"{label} changed in {system} since the last pull: {write.base!r} -> {shown!r}"
        return WriteResult(write, "conflict", message, current=shown)
    return None


def write_targets(release: str | None, status: str | None, write: WriteTargets | None = None) -> dict[str, str]:
    """Engine field -> the vendor field its writes go to; a field with no target is left out.

    With ``write``, its plain fields (the planned date, the phase) too.
    """
    plain = {name: target.field for name, target in write.field_targets().items()} if write else {}
    return {field: target for field, target in (("release", release), ("status", status)) if target} | plain


def hold_with_conflicts(outcomes: list[WriteResult], outstanding: list[Write], system: str, label: str) -> list[Write]:
    """Writes to a record someone changed since the pull are all held, not just the changed field.

    A person who rejected a request after the pull must not see its release set
    anyway: the record waits for the next pull, where the plan sees what they did.
    """
    changed = [r for r in outcomes if r.outcome == "conflict"]
    if not changed or not outstanding:
        return outstanding
    fields = ", ".join(r.write.field for r in changed)
    message = f"{label}: held, because {fields} changed in {system} since the last pull; written after the next pull if still wanted"
    outcomes += [WriteResult(w, "conflict", message) for w in outstanding]
    return []


def compare_record(
    rid: str, writes: list[Write], shown: Shown, targets: Mapping[str, str], system: str,
    version_of: Callable[[Shown], str | None] | None = None,
) -> tuple[list[WriteResult], list[Write]]:
    """One record's writes against what it shows: the outcomes known now, and the writes still to send."""
    outcomes: list[WriteResult] = []
    outstanding: list[Write] = []
    for write in writes:
        target = targets[write.field]
        done = compare(write, shown.get(target), system, f"{rid} {target}")
        if done is None:
            outstanding.append(write)
        elif done.outcome == "ok" and version_of is not None:
            outcomes.append(dataclasses.replace(done, version=version_of(shown)))
        else:
            outcomes.append(done)
    return outcomes, hold_with_conflicts(outcomes, outstanding, system, rid)


class _Silent:
    """A journal that keeps nothing (pushes whose caller records the results itself)."""

    def sending(self, writes: list[Write]) -> None:
        """Nothing to record."""

    def settled(self, results: list[WriteResult]) -> None:
        """Nothing to record."""


def calls_for(records: int, per_call: int) -> int:
    """Calls needed for ``records`` at ``per_call`` a call."""
    return -(-records // per_call)


def by_native_id(write: Write) -> str:
    """The record a write goes to, by native id (the default)."""
    return write.native_id


def compare_then_send(
    writes: list[Write],
    *,
    system: str,
    targets: Mapping[str, str],
    read: ReadCurrent,
    read_batch: int,
    send: SendBatch,
    send_batch: int,
    gone: str,
    record: Callable[[Write], str] = by_native_id,
    journal: Journal | None = None,
    verify: Verify | None = None,
    version_of: Callable[[Shown], str | None] | None = None,
) -> list[WriteResult]:
    """Push ``writes``: one result per write, whatever the source refuses.

    A write to a field with no target fails. The others are grouped by ``record(write)``
    and read ``read_batch`` records a call; a record the read leaves out fails its writes
    with ``gone`` (``{}`` is the record). Each write is compared with what its record
    shows (``system`` names the source in conflict messages); what is still to write goes
    out through ``send``, ``send_batch`` records a call, each batch as soon as it is full,
    so a record is written soon after it was compared. One changed field holds every
    write to its record (see ``hold_with_conflicts``). ``journal`` hears each batch
    before it leaves and every outcome as soon as it is known. With ``verify``, what
    one read's worth of records was sent is checked after it went out, before it counts.
    ``version_of`` reads a record's version from what it shows, so a value found already
    set is known to be there as of that version.
    """
    journal = journal or _Silent()
    results: list[WriteResult] = []
    unverified: list[tuple[list[Pending], list[WriteResult]]] = []

    def sent(batch: list[Pending]) -> None:
        journal.sending([w for p in batch for w in p.writes])
        answered = send(batch)
        if verify is None:
            journal.settled(answered)
            results.extend(answered)
        else:
            unverified.append((batch, answered))

    def verified() -> None:
        if unverified and verify is not None:
            checked = verify([p for batch, _ in unverified for p in batch], [r for _, answered in unverified for r in answered])
            unverified.clear()
            journal.settled(checked)
            results.extend(checked)

    by_record: dict[str, list[Write]] = {}
    for write in writes:
        if write.field in targets:
            by_record.setdefault(record(write), []).append(write)
        else:
            results.append(WriteResult(write, "failed", f"relsync has no {system} field configured for {write.field!r}"))
    journal.settled(list(results))
    fields = sorted({targets[w.field] for ws in by_record.values() for w in ws})
    records = list(by_record)
    queued: list[Pending] = []
    try:
        for start in range(0, len(records), read_batch):
            chunk = records[start : start + read_batch]
            current = read(chunk, fields)
            compared: list[WriteResult] = []
            for rid in chunk:
                shown = current.get(rid)
                if shown is None:
                    compared += [WriteResult(w, "failed", gone.format(rid)) for w in by_record[rid]]
                    continue
                outcomes, outstanding = compare_record(rid, by_record[rid], shown, targets, system, version_of)
                compared += outcomes
                if outstanding:
                    queued.append(Pending(rid, outstanding, shown))
            journal.settled(compared)
            results += compared
            while len(queued) >= send_batch:
                sent(queued[:send_batch])
                del queued[:send_batch]
            verified()
        if queued:
            sent(queued)
        verified()
    except BaseException:
        # Stopped midway (a deadline, a breaker, a crash of our own): what went out and was
        # answered stands as answered, though not yet checked for overwrites.
        unchecked = [r for _, answered in unverified for r in answered]
        journal.settled(unchecked)
        results.extend(unchecked)
        raise
    return results
