"""``relsync plan``: what the next sync would change, without writing to any source.

It pulls (so the plan is made on current data, exactly as ``relsync sync`` would
make it), then plans and computes the write-backs inside a transaction that is
rolled back. Per release: who moves in or out and why. Per system: the exact
writes (record, field, old -> new) and the API calls they would cost, weighed
against that system's limits; per source, the calls its history import would make.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from config.schema import Config
from connectors.base import Connector, Estimate, Write
from mapping import clock
from releases.clashes import Clash
from sync import engine, history, outbox
from sync.db import Database
from sync.lock import whole_store
from sync.schedule import all_clashes
from sync.store import finish_run, open_database, start_run


class _Rollback(Exception):
    """Raised inside the transaction to undo the plan once it has been read."""


@dataclass
class DryRun:
    """The plan a sync would apply."""

    releases: list[dict[str, Any]] = field(default_factory=list)
    moves: list[dict[str, Any]] = field(default_factory=list)
    writes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    costs: dict[str, Estimate] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    clashes: dict[str, list[Clash]] = field(default_factory=dict)
    history: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per source, the calls its history import would make next (at least; bounded by history_max_calls)."""
    natives: dict[str, tuple[str, str | None]] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"releases": self.releases, "moves": self.moves, "writes": self.writes, "costs": self.costs,
                "history": self.history, "clashes": self.clashes, "messages": self.messages}


def dry_run(config: Config, *, env: Mapping[str, str] | None = None, now: dt.datetime | None = None) -> DryRun:
    """Pull, then plan and diff without keeping the plan or writing to any source."""
    now = now or clock.now()
    result = DryRun()
    with whole_store(config.store, config.sources, env):
        db = open_database(config.store, env=env)
        try:
            sources = engine.build_sources(config, env if env is not None else os.environ, db=db)
            run_id = start_run(db, kind="plan")
            pulled = engine.pull_sources(db, sources, run_id=run_id)
            engine.save_caches(db, sources)
            result.messages = [f"{n}: {engine.describe(e)}" for n, e in pulled.failures.items()]
            finish_run(db, run_id, status="ok" if not pulled.failures else "failed", exit_code=0,
                       counts={"pulled": {n: vars(c) for n, c in pulled.counts.items()}, "dry_run": True},
                       api_calls={n: s.connector.call_counts() for n, s in sources.items()},
                       message="relsync plan: pulled only; nothing planned or written")
            try:
                with db.atomic():
                    _read_plan(db, config, sources, now, result)
                    raise _Rollback
            except _Rollback:
                pass
            for name, writes in result.writes.items():
                result.costs[name] = estimate(sources[name].connector, writes, result.natives)
            for name, source in sources.items():
                if name not in pulled.failures:
                    result.history[name] = history.estimate(db, source, config.sources[name].history_max_calls)
        finally:
            db.close()
    return result


def _read_plan(db: Database, config: Config, sources: dict[str, engine.Source], now: dt.datetime, result: DryRun) -> None:
    before = {r["request"]: r["release"] for r in db.query("select request, release from assignments")}
    engine.plan(db, config, run_id=0, now=now)
    after = {r["request"]: (r["release"], r["reason"]) for r in db.query("select request, release, reason from assignments")}
    names = {r["id"]: r["name"] for r in db.query("select id, name from releases")}
    for key in sorted(set(before) | set(after)):
        old, (new, reason) = before.get(key), after.get(key, (None, None))
        if old != new:
            result.moves.append({"request": key, "from": names.get(old), "to": names.get(new),
                                 "reason": reason or _left_reason(db, key)})
    result.releases = engine.schedule.release_plan(db)
    result.clashes = all_clashes(db)
    wanted = outbox.wanted_writes(db, {n: s.mapping for n, s in sources.items()}, now=clock.stamp(now),
                                  zones=engine.train_zones(config))
    natives = {r["key"]: (r["native_id"], r["native_key"]) for r in db.query(
        f"select key, native_id, native_key from change_requests where key in ({db.json_values})",
        [json.dumps(sorted({w.request for w in wanted}))])}
    for w in wanted:
        if w.source in sources:
            native_id, native_key = natives[w.request]
            result.writes.setdefault(w.source, []).append(
                {"request": w.request, "record": native_key or native_id, "field": w.field, "old": w.base, "new": w.value}
            )
    result.natives = {w.request: natives[w.request] for w in wanted}


def _left_reason(db: Database, key: str) -> str | None:
    """Why the plan took ``key`` out of its release, as plain text (the audit keeps it inside JSON)."""
    rows = list(db.query(
        "select new from audit where request = ? and origin = 'planned' order by id desc limit 1", [key]))
    if not rows:
        return None
    planned = json.loads(rows[0]["new"]) if rows[0]["new"] else None
    if isinstance(planned, dict):
        return str(planned.get("reason") or "") or None
    return None if planned is None else str(planned)


def estimate(connector: Connector, writes: list[dict[str, Any]], natives: dict[str, tuple[str, str | None]]) -> Estimate:
    """API calls the writes would cost on ``connector``'s system, and what that means there."""
    return connector.estimate(
        [Write(*natives[w["request"]], w["field"], w["new"], w["old"]) for w in writes]
    )
