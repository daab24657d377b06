"""The shape every connector shares."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from mapping.model import SourceRecord

__all__ = ["Connector", "Page", "SourceRecord", "Write", "WriteResult", "compare"]


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
    """What became of one Write: ``ok``, ``conflict`` or ``failed``."""

    write: Write
    outcome: str
    message: str | None = None
    current: Any = None


class Connector(Protocol):
    """A source system, seen from the engine."""

    name: str
    system: str

    def pull(self, since: str | None) -> Iterator[Page]:
        """Yield pages of records changed at or after ``since`` (None: all)."""
        ...

    def push(self, writes: list[Write]) -> list[WriteResult]:
        """Apply writes in the largest batches the API allows; never raise per record."""
        ...

    def check(self) -> list[str]:
        """Check credentials, fields and values against the live system; return problems."""
        ...

    def call_counts(self) -> dict[str, int]:
        """API calls made by this connector so far, by kind."""
        ...


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
