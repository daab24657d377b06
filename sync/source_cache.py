"""The store's ``source_cache``: metadata a connector keeps between runs, with an expiry.

A connector reads and writes it from the thread that pulls, and a SQLite connection
belongs to the thread that opened it: the cache is read whole when the run starts, kept
in memory, and what changed is written back by ``save`` from the run's own thread.
"""
from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

from mapping import clock
from sync.db import Database, upsert


class StoreCache:
    """One source's rows of ``source_cache``, as the ``SourceCache`` a connector is given."""

    def __init__(self, db: Database, source: str, *, now: dt.datetime | None = None) -> None:
        self.source = source
        self._now = now
        self._lock = threading.Lock()
        self._rows: dict[str, dict[str, str]] = {
            row["key"]: row for row in db.query("select * from source_cache where source = ?", [source])}
        self._changed: set[str] = set()

    def _moment(self) -> dt.datetime:
        return self._now or clock.now()

    def get(self, key: str) -> Any | None:
        """The value kept under ``key``, or None when there is none or it expired."""
        with self._lock:
            row = self._rows.get(key)
        if row is None or clock.parse(row["expires_at"]) <= self._moment():
            return None
        return json.loads(row["value"])

    def put(self, key: str, value: Any, *, hours: float) -> None:
        """Keep ``value`` under ``key`` for ``hours`` (0: not kept past this run)."""
        moment = self._moment()
        row = {"source": self.source, "key": key, "value": json.dumps(value, sort_keys=True),
               "fetched_at": clock.stamp(moment), "expires_at": clock.stamp(moment + dt.timedelta(hours=hours))}
        with self._lock:
            self._rows[key] = row
            self._changed.add(key)

    def drop(self, key: str) -> None:
        """Forget ``key``."""
        with self._lock:
            if self._rows.pop(key, None) is not None or key in self._changed:
                self._changed.add(key)

    def save(self, db: Database) -> None:
        """Write what changed since the last save (in the thread that owns ``db``)."""
        with self._lock:
            changed, self._changed = self._changed, set()
            rows = [self._rows[key] for key in sorted(changed) if key in self._rows]
            gone = sorted(key for key in changed if key not in self._rows)
        if not changed:
            return
        with db.atomic():
            for key in gone:
                db.execute("delete from source_cache where source = ? and key = ?", [self.source, key])
            if rows:
                upsert(db, "source_cache", rows, key=("source", "key"))
