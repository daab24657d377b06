"""What a source's own history says happened to a record: typed entries, read in bounded pages.

Each system keeps its own record of who changed which field when: Jira's changelog,
Salesforce's field history (``CaseHistory``, ``<Object>__History``). Airtable keeps none
that its API serves. A reader yields :class:`HistoryPage` s; each page is complete (the
store may take it and move its watermark) and a reader stops before it would spend more
than its run's budget of API calls.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from config.schema import Source

IMPORT_EXCLUDED = ("created_at", "updated_at")
"""Mapped fields whose every change is the record being touched, not a decision: not imported."""


@dataclass(frozen=True)
class HistoryTarget:
    """A record whose history is wanted: its native id and key and the version it was pulled at."""

    native_id: str
    native_key: str | None
    version: str | None


@dataclass(frozen=True)
class HistoryEntry:
    """One field of one record changed, as the source recorded it.

    ``field`` is relsync's name for it (``priority``, ``release``); ``native_field`` the
    source's; ``old``/``new`` the source's display values; ``entry`` the source's id of
    the history record (with ``field``, unique within the source); ``author`` the name
    of the person (or account) who made the change.
    """

    native_id: str
    entry: str
    field: str
    native_field: str
    old: str | None
    new: str | None
    at: str
    author: str


@dataclass(frozen=True)
class HistoryPage:
    """Entries the store may take together with the watermark they reach."""

    entries: list[HistoryEntry]
    watermark: str | None
    """Where the source's history was read up to (a moment), when the system reads by time."""
    records_done: int = 0
    """How many of the targets (from the first) this page completes, when the system reads by record."""
    calls: int = 0


@dataclass
class HistoryBudget:
    """The API calls one run may spend on history, and how many it has."""

    limit: int
    spent: int = 0
    notes: list[str] = field(default_factory=list)

    def take(self) -> bool:
        """Spend one call if any is left."""
        if self.spent >= self.limit:
            return False
        self.spent += 1
        return True


class BudgetSpent(Exception):
    """The run's history budget is used up: what was read so far and not yet complete is dropped."""


def mapped_paths(config: Source) -> dict[str, str]:
    """relsync field -> source path, for the fields whose history is imported (release written back included)."""
    paths: dict[str, str] = {}
    for name, spec in config.fields:
        if spec is not None and name not in IMPORT_EXCLUDED:
            paths[name] = spec.path
    if config.write.release is not None and "release" not in paths:
        paths["release"] = config.write.release.field
    return paths


def text(value: Any) -> str | None:
    """A history value as text (None stays None)."""
    return None if value is None else str(value)
