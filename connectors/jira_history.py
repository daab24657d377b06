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

VERSIONS = "fixVersions"
STATUS = "status"


@dataclass(frozen=True)
class Overwritten:
    """A person's value that relsync's write replaced: what they set, and what puts it back."""

    value: str | None
    """As the engine compares it: the first fix version's name, the status name, or a plain field's value."""
    restore: tuple[str, ...]
    """Fix version ids to set again (a release), or the value itself (a status or a plain field)."""


def since(histories: Iterable[dict[str, Any]], moment: str | None) -> list[dict[str, Any]]:
    """The history entries created after ``moment`` (all when None), oldest first."""
    start = clock.parse(moment) if moment else None
    later = [h for h in histories if start is None or clock.parse(h["created"]) > start]
    return sorted(later, key=lambda h: (clock.parse(h["created"]), int(h["id"])))


def _items(history: dict[str, Any], field_id: str) -> list[dict[str, Any]]:
    return [item for item in history.get("items") or [] if item.get("fieldId") == field_id]


def _plain(item: dict[str, Any], side: str) -> str | None:
    """A plain field's value on one side (``from``/``to``) of a changelog item: its id-like value
    when Jira records one (a date), else its text; empty as None."""
    value = item.get(side)
    if value in (None, ""):
        value = item.get(f"{side}String")
    return None if value in (None, "") else str(value)


def _is_ours(field_id: str, value: Any, items: list[dict[str, Any]]) -> bool:
    if field_id == STATUS:
        return any(item.get("toString") == value for item in items)
    if field_id != VERSIONS:
        return any(_plain(item, "to") == value for item in items)
    added = [item.get("toString") for item in items if item.get("to")]
    return value in added if value is not None else not added


def entry_of(field_id: str, value: Any, histories: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last history entry in which the field ``field_id`` became ``value``: relsync's write of it."""
    for history in reversed(histories):
        items = _items(history, field_id)
        if items and _is_ours(field_id, value, items):
            return history
    return None


def overwritten(field_id: str, value: Any, base: Any, histories: list[dict[str, Any]]) -> Overwritten | None:
    """The edit relsync's write of ``value`` replaced, when it was not ``base`` (what the compare read showed).

    ``histories`` are the issue's entries since the compare read, oldest first. None: the
    write replaced ``base`` as expected, or left no entry to judge by.
    """
    entry = entry_of(field_id, value, histories)
    if entry is None:
        return None
    items = _items(entry, field_id)
    if field_id != VERSIONS:
        before = items[0].get("fromString") if field_id == STATUS else _plain(items[0], "from")
        return None if before == base else Overwritten(before, (before,) if before else ())
    removed = [item for item in items if item.get("from")]
    before = removed[0].get("fromString") if removed else None
    return None if before == base else Overwritten(before, tuple(str(item["from"]) for item in removed))
