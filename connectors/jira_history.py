"""Reading an issue's changelog after relsync wrote to it: did the write overwrite someone's edit?

Jira has no conditional writes. relsync reads what an issue shows, then writes; an edit
that lands between the two would be silently replaced. The changelog tells: relsync's
own history entry records what its write replaced. When that is not what the compare
read showed, someone changed the field in between, and the entry names their value,
which relsync puts back (a conflict, not an overwrite).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mapping import clock

FIELD_IDS = {"release": "fixVersions", "status": "status"}
"""The changelog ``fieldId`` of each engine field relsync writes to Jira."""


@dataclass(frozen=True)
class Overwritten:
    """A person's value that relsync's write replaced: what they set, and what puts it back."""

    value: str | None
    """As the engine compares it: the first fix version's name, or the status name."""
    restore: tuple[str, ...]
    """Fix version ids to set again (a release), or the status name (a status)."""


def since(histories: Iterable[dict[str, Any]], moment: str | None) -> list[dict[str, Any]]:
    """The history entries created after ``moment`` (all when None), oldest first."""
    start = clock.parse(moment) if moment else None
    later = [h for h in histories if start is None or clock.parse(h["created"]) > start]
    return sorted(later, key=lambda h: (clock.parse(h["created"]), int(h["id"])))


def _items(history: dict[str, Any], field_id: str) -> list[dict[str, Any]]:
    return [item for item in history.get("items") or [] if item.get("fieldId") == field_id]


def _is_ours(field: str, value: Any, items: list[dict[str, Any]]) -> bool:
    if field == "status":
        return any(item.get("toString") == value for item in items)
    added = [item.get("toString") for item in items if item.get("to")]
    return value in added if value is not None else not added


def entry_of(field: str, value: Any, histories: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last history entry in which ``field`` became ``value``: relsync's write of it."""
    field_id = FIELD_IDS[field]
    for history in reversed(histories):
        items = _items(history, field_id)
        if items and _is_ours(field, value, items):
            return history
    return None


def overwritten(field: str, value: Any, base: Any, histories: list[dict[str, Any]]) -> Overwritten | None:
    """The edit relsync's write of ``value`` replaced, when it was not ``base`` (what the compare read showed).

    ``histories`` are the issue's entries since the compare read, oldest first. None: the
    write replaced ``base`` as expected, or left no entry to judge by.
    """
    entry = entry_of(field, value, histories)
    if entry is None:
        return None
    items = _items(entry, FIELD_IDS[field])
    if field == "status":
        before = items[0].get("fromString")
        return None if before == base else Overwritten(before, (before,) if before else ())
    removed = [item for item in items if item.get("from")]
    before = removed[0].get("fromString") if removed else None
    return None if before == base else Overwritten(before, tuple(str(item["from"]) for item in removed))
