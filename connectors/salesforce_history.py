"""Importing Salesforce field history: ``CaseHistory`` for Cases, ``<Object>__History`` for a custom object.

Field history is an object of its own, read-only, queried with SOQL: ``Field`` (the
changed field's API name, a filterable picklist), ``OldValue`` and ``NewValue`` (anyType,
at most 255 characters, not filterable), ``CreatedDate``, ``CreatedById`` (and so
``CreatedBy.Name``), and the changed record: ``CaseId`` on CaseHistory, ``ParentId`` on a
custom object's history. Salesforce writes a row for each tracked field a save changes
(a lookup change writes two: the name and the id). One query from the last import's
CreatedDate (inclusive), ordered by (CreatedDate, Id), paged by ``nextRecordsUrl``; each page is one call.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from simple_salesforce import format_soql

from config.schema import SalesforceSource
from connectors.history import BudgetSpent, HistoryBudget, HistoryEntry, HistoryPage, mapped_paths, text
from connectors.paging import iter_pages
from connectors.soql import soql_datetime
from mapping import clock

SYSTEM = "salesforce"
ORDER = "CreatedDate ASC, Id ASC"


def history_object(sobject: str) -> tuple[str, str]:
    """The history object of ``sobject`` and its field naming the changed record."""
    if sobject.endswith("__c"):
        return f"{sobject[:-3]}__History", "ParentId"
    return f"{sobject}History", f"{sobject}Id"


def tracked_fields(config: SalesforceSource) -> dict[str, str]:
    """Salesforce field API name -> relsync field, for the mapped fields stored on the record itself."""
    fields: dict[str, str] = {}
    for name, path in mapped_paths(config).items():
        if "." not in path:
            fields.setdefault(path, name)
    return fields


def history_query(config: SalesforceSource, since: str | None) -> str:
    """The SOQL for history rows of the mapped fields recorded at or after ``since`` (a CreatedDate)."""
    obj, parent = history_object(config.object)
    fields = sorted(tracked_fields(config))
    where = [format_soql("Field IN {}", fields)]
    if since:
        # Inclusive: rows of the last second read may have been joined by others since (modstamps
        # have whole seconds and ids are not promised to grow); the store skips those it holds.
        where.append(f"CreatedDate >= {soql_datetime(clock.parse(since.partition('|')[0]))}")
    return (f"SELECT Id, {parent}, Field, OldValue, NewValue, CreatedDate, CreatedBy.Name FROM {obj} "
            f"WHERE {' AND '.join(where)} ORDER BY {ORDER}")


def read_field_history(query: Callable[[str | None, str], dict[str, Any]], config: SalesforceSource, since: str | None,
                       budget: HistoryBudget) -> Iterator[HistoryPage]:
    """Pages of history rows after ``since``; ``query(locator, soql)`` makes one call (query, or queryMore)."""
    fields = tracked_fields(config)
    if not fields:
        return
    _, parent = history_object(config.object)
    soql = history_query(config, since)

    def fetch(locator: str | None) -> dict[str, Any]:
        if not budget.take():
            raise BudgetSpent
        return query(locator, soql)

    for answer in iter_pages(SYSTEM, fetch, "nextRecordsUrl"):
        rows = answer.get("records") or []
        entries = [
            HistoryEntry(row[parent], row["Id"], fields[row["Field"]], row["Field"], text(row.get("OldValue")),
                         text(row.get("NewValue")), clock.stamp(clock.parse(row["CreatedDate"])),
                         (row.get("CreatedBy") or {}).get("Name") or "unknown Salesforce user")
            for row in rows if row.get("Field") in fields
        ]
        last = rows[-1] if rows else None
        watermark = clock.stamp(clock.parse(last["CreatedDate"])) if last else None
        yield HistoryPage(entries, watermark, 0, 1)
