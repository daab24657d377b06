"""The Jira site's metadata a run needs: its server info and its field list, kept between runs.

The ``jira`` library asks ``serverInfo`` (is this Jira Cloud, which version) and, before
its first search, ``field`` (to translate field names into ids). Both change rarely, so
they are kept in the store for ``metadata_cache_hours`` and a run in which nothing
changed costs one search. A search refused for a field Jira does not know (a 400 naming
a field) while the field list came from the cache asks for both again, once.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.base import SourceCache
from connectors.errors import FatalError

SERVER_INFO = "jira.serverInfo"
FIELD_IDS = "jira.fieldIds"
"""Clause name -> field id, as the jira library keeps it (``JIRA._fields_cache``)."""


def field_ids(fields: list[dict[str, Any]]) -> dict[str, str]:
    """Clause name -> field id, built from ``GET field`` the way the jira library builds it."""
    return {name: field["id"] for field in fields for name in field.get("clauseNames") or []}


def names_a_field(error: Exception) -> bool:
    """A refusal that may come from metadata gone stale: a 400 whose message names a field."""
    return isinstance(error, FatalError) and error.status == 400 and "field" in error.message.lower()


class SiteMetadata:
    """Server info and field ids: from the cache while fresh, else asked (and kept)."""

    def __init__(self, cache: SourceCache | None, hours: float) -> None:
        self.cache = cache
        self.hours = hours
        self.cached: set[str] = set()
        """Keys this run took from the cache rather than from Jira."""

    def _get(self, key: str, ask: Callable[[], Any]) -> Any:
        if self.cache is not None and self.hours > 0:
            kept = self.cache.get(key)
            if kept:
                self.cached.add(key)
                return kept
        value = ask()
        self.cached.discard(key)
        if self.cache is not None and self.hours > 0 and value:
            self.cache.put(key, value, hours=self.hours)
        return value

    def server_info(self, ask: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The site's ``serverInfo``."""
        info: dict[str, Any] = self._get(SERVER_INFO, ask)
        return info

    def field_ids(self, ask: Callable[[], list[dict[str, Any]]]) -> dict[str, str]:
        """Clause name -> field id."""
        ids: dict[str, str] = self._get(FIELD_IDS, lambda: field_ids(ask()))
        return ids

    def stale(self) -> bool:
        """Forget what this run took from the cache; True if there was any (worth asking again)."""
        if not self.cached:
            return False
        for key in sorted(self.cached):
            if self.cache is not None:
                self.cache.drop(key)
        self.cached.clear()
        return True
