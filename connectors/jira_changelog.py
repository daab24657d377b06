"""Importing Jira's changelog: ``POST /rest/api/3/changelog/bulkfetch`` for the issues updated since the last import.

One call names up to 1,000 issues (ids or keys) and up to 10 field ids; its answer is
paged by ``nextPageToken`` (absent on the last page), entries oldest first, grouped by
issue under ``issueChangeLogs[].changeHistories[]``, each with its ``author``
(``displayName``), ``created`` and ``items`` (``fieldId``, ``fromString``, ``toString``).
More than 10 mapped fields take one call per 10 for every 1,000 issues. A Fix Version
change is logged as one item per version removed or added; they are joined here into
one change of the release.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from config.schema import JiraSource
from connectors.history import BudgetSpent, HistoryBudget, HistoryEntry, HistoryPage, HistoryTarget, mapped_paths
from connectors.paging import iter_pages
from mapping import clock

ISSUES_PER_CALL = 1000
FIELDS_PER_CALL = 10
PAGE_SIZE = 1000
SYSTEM = "jira"
RELEASE_FIELD = "fixVersions"


def changelog_fields(config: JiraSource) -> dict[str, str]:
    """Changelog ``fieldId`` -> relsync field, for every mapped field (``fields.<id>...`` paths) and the release."""
    fields: dict[str, str] = {}
    for name, path in mapped_paths(config).items():
        parts = path.split(".")
        if name == "depends_on":
            continue  # links and reference fields: relsync's own pulled diffs audit them, no call spent
        if name == "release" and config.write.release is not None:
            fields[RELEASE_FIELD] = "release"
        elif len(parts) >= 2 and parts[0] == "fields":
            fields.setdefault(parts[1], name)
    return fields


def calls_needed(issues: int, fields: int) -> int:
    """The fewest calls importing ``issues`` issues' history of ``fields`` fields takes (one page each)."""
    return math.ceil(issues / ISSUES_PER_CALL) * math.ceil(fields / FIELDS_PER_CALL) if issues and fields else 0


def _entries(log: dict[str, Any], fields: dict[str, str]) -> list[HistoryEntry]:
    """One issue's history records as entries, one per mapped field changed."""
    found: list[HistoryEntry] = []
    issue = str(log["issueId"])
    for history in log.get("changeHistories") or []:
        by_field: dict[str, list[dict[str, Any]]] = {}
        for item in history.get("items") or []:
            if item.get("fieldId") in fields:
                by_field.setdefault(item["fieldId"], []).append(item)
        author = (history.get("author") or {}).get("displayName") or "unknown Jira user"
        at = clock.stamp(clock.parse(history["created"]))
        for field_id, items in by_field.items():
            removed = [i["fromString"] for i in items if i.get("fromString") is not None]
            added = [i["toString"] for i in items if i.get("toString") is not None]
            old, new = (", ".join(removed) or None), (", ".join(added) or None)
            found.append(HistoryEntry(issue, str(history["id"]), fields[field_id], field_id, old, new, at, author))
    return found


def _read(post: Callable[[str, dict[str, Any]], Any], ids: list[str], chunk: dict[str, str],
          budget: HistoryBudget) -> list[HistoryEntry]:
    """Every page of one call's changelogs: ``ids`` issues, the ``chunk`` fields."""

    def fetch(token: str | None) -> dict[str, Any]:
        if not budget.take():
            raise BudgetSpent
        body: dict[str, Any] = {"issueIdsOrKeys": ids, "fieldIds": sorted(chunk), "maxResults": PAGE_SIZE}
        return post("changelog/bulkfetch", body | ({"nextPageToken": token} if token else {}))

    return [entry for answer in iter_pages(SYSTEM, fetch, "nextPageToken")
            for log in answer.get("issueChangeLogs") or [] for entry in _entries(log, chunk)]


def read_changelogs(post: Callable[[str, dict[str, Any]], Any], config: JiraSource, targets: Iterable[HistoryTarget],
                    budget: HistoryBudget) -> Iterator[HistoryPage]:
    """One page per 1,000 issues (in the order given, taken 1,000 at a time), each complete for its issues.

    A group whose calls the budget cannot pay for all is dropped whole (BudgetSpent): its
    issues are asked for again next run.
    """
    fields = changelog_fields(config)
    field_ids = sorted(fields)
    found = iter(targets)
    done = 0
    while group := list(itertools.islice(found, ISSUES_PER_CALL)):
        ids = [t.native_id for t in group]
        before = budget.spent
        entries = [entry for at in range(0, len(field_ids), FIELDS_PER_CALL)
                   for entry in _read(post, ids, {f: fields[f] for f in field_ids[at:at + FIELDS_PER_CALL]}, budget)]
        done += len(group)
        yield HistoryPage(entries, None, done, budget.spent - before)
