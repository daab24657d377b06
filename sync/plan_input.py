"""What the planner reads from the store, and the waiting reasons it writes back, in memory
that does not grow with the store.

The requests are read one row at a time. Those the planner must see whole are kept:
every request in a release (or pinned), every one in a dependency (either side), every
one a train takes for its priority. Of the unassigned rest, a ``releases.kinds.Sample``
keeps the first of each kind up to what its train can seat, and one example of each
look among those it leaves out; the requests left out are told what their example is
told, written in batches as the rows are read once more (``save_waiting``).
"""
from __future__ import annotations

import itertools
import operator
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from config.trains import Train
from mapping import clock
from releases.candidate import Candidate, may_move
from releases.kinds import EXAMPLE_PREFIX, LOOKS, Kinds, Looks, Sample, sample_part
from releases.planner import PlannedRelease
from sync.db import Database

__all__ = ["PlanInput", "ReferenceIndex", "read_plan_input", "save_waiting"]

BATCH = 5000
"""Waiting reasons written at a time."""

_looks = operator.itemgetter(*LOOKS)
_COLUMNS = (
    "select r.key, r.source, r.status, r.priority, r.department, r.type, r.created_at, r.deleted_at, r.depends_on, "
    "a.release, a.pinned from change_requests r left join assignments a on a.request = r.key"
)


@dataclass
class PlanInput:
    """The requests the planner sees, and what speaks for the ones it does not."""

    candidates: list[Candidate]
    """Every request the planner must see, and the examples (keys starting ``EXAMPLE_PREFIX``)."""
    examples: dict[Looks, Candidate]
    left_out: int
    """How many requests the examples speak for."""
    seen: frozenset[str]
    """Keys of the requests the planner sees (whole or kept by the sample): none of them is left out."""
    undated: list[str]
    """``key ('value')`` of each request whose created_at is not a date-time with a time zone:
    planned as of an unknown age (last of its priority), not left out of the plan."""


def read_plan_input(db: Database, plans: Sequence[tuple[Train, Sequence[PlannedRelease]]]) -> PlanInput:
    """The planner's requests (see the module docstring), their dependencies resolved."""
    naming = {row["key"]: (row["depends_on"], row["source"]) for row in db.query(
        "select key, source, depends_on from change_requests where depends_on is not null and depends_on != ''")}
    resolved: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    if naming:
        resolve = ReferenceIndex(
            db.scan("select key, source, native_id, native_key from change_requests"),
            wanted={ref for text, _ in naming.values() for ref in ReferenceIndex.refs(text)},
        )
        for key, (text, source) in naming.items():
            keys, unknown = resolve(text, source)
            resolved[key] = tuple(k for k in keys if k != key), unknown
    linked = set(resolved) | {prerequisite for keys, _ in resolved.values() for prerequisite in keys}
    sample = Sample(Kinds(plans))
    whole: list[Candidate] = []
    undated: list[str] = []
    for row in db.scan(_COLUMNS):
        candidate = _candidate(row, resolved.get(row["key"]), undated)
        where = sample_part(candidate, linked=candidate.key in linked)
        if where == "whole":
            whole.append(candidate)
        elif where == "sample":
            sample.add(candidate)
    seen = [*whole, *sample.kept()]
    examples = sample.examples()
    return PlanInput(candidates=[*seen, *examples.values()], examples=examples, left_out=sample.left,
                     seen=frozenset(c.key for c in seen), undated=undated)


def _candidate(row: dict[str, Any], dependencies: tuple[tuple[str, ...], tuple[str, ...]] | None,
               undated: list[str]) -> Candidate:
    depends_on, unknown = dependencies or ((), ())

    def made(created: str) -> Candidate:
        return Candidate(
            key=row["key"],
            status=sys.intern(row["status"]),
            priority=_shared(row["priority"]),
            created_at=created,
            release=_shared(row["release"]),
            pinned=bool(row["pinned"]),
            deleted=row["deleted_at"] is not None,
            department=_shared(row["department"]),
            type=_shared(row["type"]),
            source=_shared(row["source"]),
            depends_on=depends_on,
            unknown=unknown,
        )

    created = row["created_at"] or ""
    try:
        return made(created)
    except ValueError:
        if not created or _readable(created):
            raise  # a status or priority outside the vocabulary: the mapping lets none through
    # A mapping that reads created_at without ``convert: datetime`` can store any text: the
    # request is planned all the same, as of an unknown age, and the run says which one.
    undated.append(f"{row['key']} ({created!r})")
    return made("")


def _readable(created: str) -> bool:
    try:
        clock.parse(created)
    except clock.TimestampError:
        return False
    return True


def _shared(value: str | None) -> str | None:
    """One string object per distinct value (statuses, priorities, departments: a few values, many requests)."""
    return None if value is None else sys.intern(value)


def _left_out(db: Database, given: PlanInput, waiting: dict[str, str]) -> Iterator[tuple[str, str]]:
    """(key, reason) of every request the examples speak for, read from the rows once more."""
    if not given.left_out:
        return
    said = {seen: waiting[example.key] for seen, example in given.examples.items()}
    columns = ", ".join(LOOKS)
    for row in db.scan(f"select key, deleted_at, {columns} from change_requests "
                       "where key not in (select request from assignments)"):
        key = row["key"]
        if key in given.seen:
            continue
        if may_move(row["status"], pinned=False, deleted=row["deleted_at"] is not None):
            # Every such request the sample did not keep, it left out: its example's words.
            yield key, said[_looks(row)]


def save_waiting(db: Database, given: PlanInput, waiting: dict[str, str], stamp: str) -> None:
    """Replace the planner's reasons for the requests it left without a release (inside the
    caller's transaction); ``since`` survives a pass while a request keeps waiting."""
    # Every row is marked, and each request still waiting is written with this pass's stamp:
    # what stays marked waits no more.
    db.execute("update waiting set updated_at = ''")
    upsert = (
        "insert into waiting (request, reason, since, updated_at) values (?, ?, ?, ?) "
        "on conflict (request) do update set reason = excluded.reason, updated_at = excluded.updated_at"
    )
    planned = ((key, why) for key, why in waiting.items() if not key.startswith(EXAMPLE_PREFIX))
    for batch in _batches(itertools.chain(planned, _left_out(db, given, waiting))):
        db.executemany(upsert, [(key, why, stamp, stamp) for key, why in batch])
    db.execute("delete from waiting where updated_at = ''")


def _batches(rows: Iterable[tuple[str, str]]) -> Iterator[list[tuple[str, str]]]:
    batch: list[tuple[str, str]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


class ReferenceIndex:
    """Resolves the references a dependency field holds to store keys.

    A reference is a store key (``jira:OPS-12``), a key as its system shows it
    (``OPS-12``, a Salesforce CaseNumber when that is the native key), or a native id (an
    Airtable record id, a Salesforce Id in its 15- or 18-character form). A reference
    that several sources could mean resolves to the referring request's own source if
    that is one of them; one that names nothing, or stays ambiguous, is unknown.
    With ``wanted`` (``refs`` of the texts to resolve), only those are indexed.
    """

    def __init__(self, rows: Iterable[dict[str, Any]], wanted: set[str] | None = None) -> None:
        self.keys: set[str] = set()
        self.by_ref: dict[str, list[tuple[str, str]]] = {}
        for row in rows:
            if wanted is None or row["key"] in wanted:
                self.keys.add(row["key"])
            ident = row["native_id"] or ""
            short = ident[:15] if len(ident) == 18 else None  # a Salesforce Id is also written in 15 characters
            for ref in {ident, row["native_key"], short} - {None, ""}:
                if wanted is None or ref in wanted:
                    self.by_ref.setdefault(ref, []).append((row["source"], row["key"]))

    @staticmethod
    def refs(text: str | None) -> set[str]:
        """The references ``text`` names, and the 15-character form of an 18-character one: what to index."""
        found = {part.strip() for part in (text or "").split(",")} - {""}
        return found | {ref[:15] for ref in found if len(ref) == 18}

    def __call__(self, text: str | None, source: str) -> tuple[list[str], tuple[str, ...]]:
        keys: list[str] = []
        unknown: list[str] = []
        for ref in (part.strip() for part in (text or "").split(",")):
            if not ref:
                continue
            if ref in self.keys:
                keys.append(ref)
                continue
            matches = self.by_ref.get(ref) or (self.by_ref.get(ref[:15], []) if len(ref) == 18 else [])
            matches = sorted(set(matches))
            own = [key for where, key in matches if where == source]
            if len(matches) == 1:
                keys.append(matches[0][1])
            elif len(own) == 1:
                keys.append(own[0])
            else:
                unknown.append(ref)
        return list(dict.fromkeys(keys)), tuple(dict.fromkeys(unknown))


