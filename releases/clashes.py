"""The clash check: two requests in one release that change the same thing."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TypedDict


class Clash(TypedDict):
    """One object (a table, a component) that more than one request of a release changes."""

    object: str
    requests: list[str]


def find_clashes(requests: Iterable[tuple[str, str | None]]) -> list[Clash]:
    """Clashes among one release's requests, given as (request key, affected object).

    Objects are compared without regard to case, so "Opportunity" in Jira and
    "opportunity" in Salesforce clash; a request whose object is unknown never does.
    """
    by_object: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for key, affected in requests:
        if affected and affected.strip():
            by_object[affected.strip().casefold()].append((affected.strip(), key))
    clashes = [
        Clash(object=min(spelling for spelling, _ in group), requests=sorted(key for _, key in group))
        for group in by_object.values()
        if len(group) > 1
    ]
    return sorted(clashes, key=lambda clash: clash["object"])
