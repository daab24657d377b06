"""Reading Jira's changelog after a write: which edit did relsync's write replace?"""
from __future__ import annotations

from typing import Any

from connectors.jira_history import Overwritten, entry_of, overwritten, since


def history(ident: int, created: str, *items: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(ident), "created": created, "items": list(items)}


def status(before: str, after: str) -> dict[str, Any]:
    return {"field": "status", "fieldId": "status", "fromString": before, "toString": after, "from": "1", "to": "2"}


def version(removed: tuple[str, str] | None = None, added: tuple[str, str] | None = None) -> dict[str, Any]:
    """A Fix Version item: one version removed or one added, as Jira logs each separately."""
    ident_from, name_from = removed or (None, None)
    ident_to, name_to = added or (None, None)
    return {"field": "Fix Version", "fieldId": "fixVersions", "from": ident_from, "fromString": name_from,
            "to": ident_to, "toString": name_to}


T0, T1, T2, T3 = (f"2026-12-01T10:00:0{n}.000+0000" for n in range(4))


def test_since_keeps_entries_after_the_read_oldest_first_with_ids_breaking_ties() -> None:
    entries = [history(7, T2), history(5, T1), history(6, T2), history(4, T0)]
    assert [h["id"] for h in since(entries, T0)] == ["5", "6", "7"]
    assert [h["id"] for h in since(entries, None)] == ["4", "5", "6", "7"]


def test_a_status_write_that_replaced_the_value_read_overwrote_nothing() -> None:
    entries = [history(1, T1, status("Approved", "Scheduled"))]
    assert overwritten("status", "Scheduled", "Approved", entries) is None
    assert entry_of("status", "Scheduled", entries) == entries[0]


def test_a_status_set_between_the_read_and_the_write_is_what_the_write_replaced() -> None:
    entries = [history(1, T1, status("Approved", "Rejected")), history(2, T2, status("Rejected", "Scheduled"))]
    assert overwritten("status", "Scheduled", "Approved", entries) == Overwritten("Rejected", ("Rejected",))


def test_a_release_write_names_every_version_it_removed_to_put_back() -> None:
    # Read: BS 1. Meanwhile a person set 2026.11 and Human Pick; relsync then set BS 2.
    entries = [
        history(1, T1, version(removed=("101", "BS 1")), version(added=("9", "2026.11")), version(added=("10", "Human Pick"))),
        history(2, T2, version(removed=("9", "2026.11")), version(removed=("10", "Human Pick")), version(added=("102", "BS 2"))),
    ]
    assert overwritten("fixVersions", "BS 2", "BS 1", entries) == Overwritten("2026.11", ("9", "10"))


def test_a_release_cleared_as_planned_and_a_write_with_no_entry_are_left_alone() -> None:
    cleared = [history(1, T1, version(removed=("101", "BS 1")))]
    assert overwritten("fixVersions", None, "BS 1", cleared) is None
    assert overwritten("fixVersions", "BS 2", "BS 1", [history(1, T3, status("Approved", "Scheduled"))]) is None


def plain(field_id: str, before: str | None, after: str | None, *, dated: bool = False) -> dict[str, Any]:
    """A custom field's item: a date records its values in from/to as well, a text field only in the strings."""
    return {"field": field_id, "fieldId": field_id, "from": before if dated else None, "fromString": before,
            "to": after if dated else None, "toString": after}


def test_a_plain_field_write_is_found_by_its_value_and_names_a_date_someone_set_meanwhile() -> None:
    date = "customfield_10080"
    as_planned = [history(1, T1, plain(date, "2026-12-08", "2026-12-22", dated=True))]
    assert overwritten(date, "2026-12-22", "2026-12-08", as_planned) is None
    assert entry_of(date, "2026-12-22", as_planned) == as_planned[0]
    # A person typed 2026-12-10 after relsync read 2026-12-08; relsync's write replaced it.
    replaced = [history(1, T1, plain(date, "2026-12-08", "2026-12-10", dated=True)),
                history(2, T2, plain(date, "2026-12-10", "2026-12-22", dated=True))]
    assert overwritten(date, "2026-12-22", "2026-12-08", replaced) == Overwritten("2026-12-10", ("2026-12-10",))


def test_a_cleared_text_field_is_relsyncs_write_when_its_entry_ends_empty() -> None:
    phase = "customfield_10081"
    cleared = [history(1, T1, plain(phase, "testing", None))]
    assert entry_of(phase, None, cleared) == cleared[0]
    assert overwritten(phase, None, "testing", cleared) is None
    assert overwritten(phase, None, "development", cleared) == Overwritten("testing", ("testing",))
