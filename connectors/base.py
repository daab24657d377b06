"""The shape every connector shares: the records it yields, the writes it applies, and the
``Connector`` protocol the engine and the dry run are typed against."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypedDict

from connectors.errors import ConnectorError
from connectors.history import HistoryBudget, HistoryPage, HistoryTarget
from mapping.model import SourceRecord

__all__ = ["Connector", "Estimate", "Journal", "Kept", "Page", "Permission", "ReadSecret", "SourceCache", "SourceCheck",
           "SourceRecord", "Write", "WriteResult"]

ReadSecret = Callable[[str, str], str]
"""``read_secret(environment variable, auth key)``: the secret, or a config error naming the key."""


class SourceCache(Protocol):
    """Metadata a connector keeps between runs (server info, field lists), each value with an expiry.

    Never secrets: the store holds it. Safe to call from the thread that pulls.
    """

    def get(self, key: str) -> Any | None:
        """The value kept under ``key``, or None when there is none or it expired."""
        ...

    def put(self, key: str, value: Any, *, hours: float) -> None:
        """Keep ``value`` (JSON-ready) under ``key`` for ``hours``."""
        ...

    def drop(self, key: str) -> None:
        """Forget ``key`` (the source said it is stale)."""
        ...


@dataclass(frozen=True)
class Kept:
    """What a connector may keep between runs: a metadata cache (in the store) and a token file (beside it)."""

    cache: SourceCache | None = None
    token_file: Path | None = None
    """Where an access token is kept (mode 0600); never in the store, a log or an output."""


@dataclass(frozen=True)
class Page:
    """A page of pulled records and the watermark reached once it is stored.

    ``deleted`` holds native ids the source reports as removed.
    """

    records: list[SourceRecord]
    watermark: str | None
    deleted: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Write:
    """One engine-owned field to set on one source record.

    ``value`` is the native value to write (already reverse-mapped);
    ``base`` is the native value the source showed at the last pull; the
    connector refuses to write when the source no longer shows ``base``.
    """

    native_id: str
    native_key: str | None
    field: str
    value: Any
    base: Any


@dataclass(frozen=True)
class WriteResult:
    """What became of one Write: ``ok``, ``conflict``, ``failed``, or ``pending`` (not tried to the end
    this run: the run's deadline passed or the source kept failing; the next run sends it)."""

    write: Write
    outcome: str
    message: str | None = None
    current: Any = None
    version: str | None = None
    """The record's version (as its pulls report it) once this write landed, when the source tells."""


class Journal(Protocol):
    """Where a push records its writes as they go: the write-ahead half of the outbox.

    ``sending`` is called right before writes leave and must be durable when it
    returns, so a process killed while they are in flight still knows they may have
    landed. ``settled`` hears outcomes as soon as they are known, batch by batch.
    """

    def sending(self, writes: list[Write]) -> None:
        """These writes are about to leave."""
        ...

    def settled(self, results: list[WriteResult]) -> None:
        """These writes' outcomes are known."""
        ...


class Estimate(TypedDict):
    """The API calls a push would make: in all, by kind, and what that means against the system's limit."""

    calls: int
    by_kind: dict[str, int]
    limit: str


@dataclass(frozen=True)
class Permission:
    """One permission relsync needs in a source, and whether the source says the account has it.

    ``granted`` is None when the source's API does not tell. A missing ``required``
    permission is a problem (writes of that kind fail); a missing optional one is a warning.
    """

    name: str
    needed_for: str
    granted: bool | None
    required: bool = True
    consequence: str = ""

    def line(self) -> str:
        """One line for ``relsync check --online``."""
        state = {True: "granted", False: "missing", None: "not reported by the API"}[self.granted]
        text = f"permission {self.name} ({self.needed_for}): {state}"
        return f"{text}; {self.consequence}" if self.granted is False and self.consequence else text


@dataclass
class SourceCheck:
    """What ``relsync check --online`` found in one source: problems, and each permission relsync needs."""

    problems: list[str] = field(default_factory=list)
    permissions: list[Permission] = field(default_factory=list)
    reached: bool = True
    """False when the source's host could not be reached at all (refused, DNS, connect timeout)."""
    field_types: dict[str, str] = field(default_factory=dict)
    """Each source field's type as the system's metadata gives it (name or id -> type), for the shape check."""
    choices: dict[str, list[str]] = field(default_factory=dict)
    """Fields that take only listed values (a Salesforce restricted picklist, an Airtable single select): their values."""

    def all_problems(self) -> list[str]:
        """The problems, missing required permissions included."""
        return self.problems + [p.line() for p in self.permissions if p.granted is False and p.required]

    def warnings(self) -> list[str]:
        """Missing permissions relsync can do without, at a cost the line names."""
        return [p.line() for p in self.permissions if p.granted is False and not p.required]


class Connector(Protocol):
    """A source system, seen from the engine and the dry run."""

    name: str
    """The source's name in the configuration (``sources.<name>``)."""
    system: str
    """``jira``, ``airtable`` or ``salesforce``."""

    @property
    def reconcile_every_hours(self) -> float | None:
        """How often a full reconcile of record ids is due; None when the connector needs no cadence."""
        ...

    def pull(self, since: str | None) -> Iterator[Page]:
        """Yield pages of records changed at or after ``since`` (None: all)."""
        ...

    def reconcile(self, known: Callable[[], set[str]], *, due: bool, since: str | None = None) -> list[str] | None:
        """Of the ``known()`` native ids, those the source no longer has; None when not checked this run.

        ``known`` reads the ids from the store only when asked: most runs need none of them;
        each call gives a new set, which the connector may cross ids off. Called after
        ``pull``. ``due`` says the cadence has come round; ``since`` is when the last
        reconcile's pull began (None: never reconciled).
        """
        ...

    def push(self, writes: list[Write], journal: Journal | None = None) -> list[WriteResult]:
        """Apply writes in the largest batches the API allows; never raise per record.

        Every write's outcome is both returned and, as it becomes known, told to ``journal``.
        """
        ...

    def estimate(self, writes: list[Write]) -> Estimate:
        """The calls ``push(writes)`` would make when nothing changed in between."""
        ...

    def check(self, statuses: list[str]) -> SourceCheck:
        """Check credentials, fields, the status values and the permissions relsync needs against the live system."""
        ...

    def call_counts(self) -> dict[str, int]:
        """API calls made by this connector so far, by kind."""
        ...

    def stopped(self) -> ConnectorError | None:
        """Why this run sends nothing more to the source (its deadline passed, its breaker opened); None while it may."""
        ...

    @property
    def history_kind(self) -> str | None:
        """What the source's own history is (``Jira changelog``, ``CaseHistory``); None: its API has none."""
        ...

    def history(self, targets: Iterable[HistoryTarget], since: str | None, budget: HistoryBudget) -> Iterator[HistoryPage]:
        """Pages of the source's history of the mapped fields: of ``targets`` (records updated since the
        last import) or recorded after ``since`` (the last page's watermark), as the system can ask.

        ``targets`` are read from the store as they are taken, in version order: a reader takes
        a batch at a time and reports the records a page completes (``records_done``).
        """
        ...

    def history_estimate(self, targets: int) -> int:
        """The fewest calls ``history`` would make for ``targets`` records updated since the last import."""
        ...
