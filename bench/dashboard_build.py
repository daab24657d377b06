"""Benchmark the static dashboard build on a large synthetic store: time and peak memory.

    python bench/dashboard_build.py --requests 100000

The store is made by ``sync.store.open_store`` (every migration applied) and filled
directly: requests, releases with their phases, assignments, waiting reasons, one
finished run, and four audit events per request on average, written through
``sync.audit.append_events`` in one transaction so the hash chain is the real one
(``verify_chain`` passes). The events are what a sync writes: the request first seen
(``pulled``, field ``*``), its approval pulled as a status change, the planner's
assignment (``planned``, field ``release``) and the write-back (``pushed``). Building
the store is not timed. The dashboard is then built three times, each in a fresh
process: into an empty folder (the figure that matters), again into the same folder
(no page changed, so none is rewritten), and once more under tracemalloc for the peak
of Python allocations (tracemalloc slows the build several times over, so that run is
not the timing). Peak RSS is the building process's ``ru_maxrss``; the request pages
are written by a worker process, whose peak is reported apart.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlite_utils

from mapping import clock
from sync.audit import AuditEvent, append_events, verify_chain
from sync.store import open_store

DEPARTMENTS = ("Sales Ops", "Marketing", "Finance", "Support", "HR", "Legal", "IT", "Partners")
TYPES = ("Layout", "Field", "Workflow", "Report", "Integration", "Access")
SOURCES = (("jira", "jira"), ("airtable", "airtable"), ("salesforce", "salesforce"))
PRIORITIES = ("critical", "high", "medium", "low")
PHASES = ("planning", "requirements", "design", "development", "testing", "deployment")
UTC = dt.UTC


def _releases(start: dt.datetime, weeks: int) -> list[dict[str, Any]]:
    found = []
    for week in range(weeks):
        deploy = start + dt.timedelta(weeks=week, days=1, hours=18)
        found.append({"id": f"bs-{deploy:%Y%m%d}", "name": f"BS {deploy:%Y.%m.%d}", "train": "business-systems",
                      "deploy_at": clock.stamp(deploy), "freeze_at": clock.stamp(deploy - dt.timedelta(days=3)),
                      "capacity": 2000, "state": "released" if week < weeks - 4 else "open", "revision": 0})
    return found


def build_store(path: Path, requests: int, *, seed: int = 7) -> sqlite_utils.Database:
    """A store with ``requests`` synthetic requests spread over a year, their releases and audit."""
    rng = random.Random(seed)
    db = open_store(path)
    start = dt.datetime(2026, 1, 5, tzinfo=UTC)
    weeks = 53
    releases = _releases(start, weeks)
    rows: list[dict[str, Any]] = []
    assignments: list[dict[str, Any]] = []
    waiting: list[dict[str, Any]] = []
    events: list[AuditEvent] = []
    for n in range(requests):
        source, system = SOURCES[n % 3]
        native = {"jira": f"OPS-{n}", "airtable": f"rec{n:014d}", "salesforce": f"500{n:015d}"}[source]
        key = f"{source}:{native}"
        created = start + dt.timedelta(minutes=rng.randrange(0, 360 * 24 * 60))
        status = rng.choices(("new", "triaged", "approved", "scheduled", "deployed", "rejected"), (2, 2, 3, 3, 6, 1))[0]
        record = {"key": key, "source": source, "system": system, "native_id": native, "native_key": native,
                  "url": f"https://example.test/{source}/{native}", "title": f"Change {n}: update the {rng.choice(TYPES)}",
                  "department": rng.choice(DEPARTMENTS), "type": rng.choice(TYPES), "priority": rng.choice(PRIORITIES),
                  "status": status, "created_at": clock.stamp(created), "updated_at": clock.stamp(created),
                  "affected": f"Object{rng.randrange(5000)}"}
        seen = created + dt.timedelta(minutes=5)
        events.append(AuditEvent(at=clock.stamp(seen), run=1, actor="sync", origin="pulled", request=key,
                                 system=system, field="*", old=None, new={"status": "triaged", "title": record["title"]}))
        if status in ("approved", "scheduled", "deployed"):
            approved = seen + dt.timedelta(days=rng.randrange(1, 10))
            events.append(AuditEvent(at=clock.stamp(approved), run=1, actor="sync", origin="pulled", request=key,
                                     system=system, field="status", old="triaged", new="approved"))
            index = min((approved - start).days // 7 + 1, weeks - 1)
            if status == "approved" and rng.random() < 0.5:
                waiting.append({"request": key, "reason": "capacity: every release it may enter is full",
                                "since": clock.stamp(approved), "updated_at": clock.stamp(approved)})
            else:
                release = releases[index]
                if status == "approved":
                    record["status"] = "scheduled"
                assignments.append({"request": key, "release": release["id"], "pinned": 0, "reason": "planned",
                                    "assigned_by": "planner", "assigned_at": clock.stamp(approved)})
                events.append(AuditEvent(at=clock.stamp(approved), run=1, actor="planner", origin="planned",
                                         request=key, system=system, field="release", old=None,
                                         new={"release": release["name"], "reason": "earliest open release"}))
                events.append(AuditEvent(at=clock.stamp(approved), run=1, actor="relsync", origin="pushed",
                                         request=key, system=system, field="release", old=None, new=release["name"]))
        elif status == "rejected":
            events.append(AuditEvent(at=clock.stamp(seen + dt.timedelta(days=2)), run=1, actor="sync", origin="pulled",
                                     request=key, system=system, field="status", old="triaged", new="rejected"))
        rows.append(record)
    events.sort(key=lambda event: event.at)
    end = max(event.at for event in events)
    with db.atomic():
        db.table("releases").insert_all(releases)
        db.table("release_phases").insert_all(
            {"release": r["id"], "phase": phase, "starts": clock.stamp(clock.parse(r["deploy_at"]) - dt.timedelta(days=6 - i)),
             "ends": clock.stamp(clock.parse(r["deploy_at"]) - dt.timedelta(days=5 - i)), "owner": f"Owner {phase}"}
            for r in releases for i, phase in enumerate(PHASES))
        db.table("change_requests").insert_all(rows, batch_size=2000)
        db.table("assignments").insert_all(assignments, batch_size=2000)
        db.table("waiting").insert_all(waiting, batch_size=2000)
        db.execute("insert into runs (id, kind, started_at, ended_at, status, exit_code, counts, api_calls) "
                   "values (1, 'sync', ?, ?, 'ok', 0, '{}', '{}')", [clock.stamp(start), end])
        append_events(db, events)
    return db


def measure(store: Path, out: Path, traced: bool) -> dict[str, Any]:
    """One dashboard build in this (fresh) process: seconds, and peak memory."""
    from reports.dashboard import build_dashboard

    db = open_store(store, create=False)
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    summary = build_dashboard(db, out)
    took = time.perf_counter() - started
    found: dict[str, Any] = {"seconds": round(took, 2), "pages": summary["pages"]}
    if traced:
        found["peak_python_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
        tracemalloc.stop()
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    found["peak_rss_mb"] = round(own.ru_maxrss / 1024, 1)
    found["worker_peak_rss_mb"] = round(workers.ru_maxrss / 1024, 1)
    # CPU seconds tell the work done whatever else the machine runs; start-up included.
    found["cpu_s"] = round(own.ru_utime + own.ru_stime, 2)
    found["worker_cpu_s"] = round(workers.ru_utime + workers.ru_stime, 2)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="Build in this folder and keep it (default: a temporary one).")
    parser.add_argument("--measure", nargs=2, type=Path, metavar=("STORE", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure, args.traced)))
        return

    folder = args.keep or Path(tempfile.mkdtemp(prefix="relsync-dashboard-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    store = folder / "store.db"
    started = time.perf_counter()
    db = build_store(store, args.requests)
    made = time.perf_counter() - started
    audit_rows = db.execute("select count(*) from audit").fetchone()[0]
    assert verify_chain(db).ok
    db.close()

    def run(out: str, *extra: str) -> dict[str, Any]:
        # Each build in a process of its own, so its peak memory is the build's alone.
        done = subprocess.run([sys.executable, __file__, "--measure", str(store), str(folder / out), *extra],
                              check=True, capture_output=True, text=True)
        return dict(json.loads(done.stdout))

    fresh = run("site")
    again = run("site")
    traced = run("site-traced", "--traced")
    print(json.dumps({
        "requests": args.requests, "audit_events": audit_rows, "store_built_s": round(made, 1),
        "fresh_build_s": fresh["seconds"], "rebuild_unchanged_s": again["seconds"],
        "fresh_cpu_s": fresh["cpu_s"], "fresh_worker_cpu_s": fresh["worker_cpu_s"],
        "load_average": [round(n, 2) for n in os.getloadavg()],
        "peak_rss_mb": fresh["peak_rss_mb"], "worker_peak_rss_mb": fresh["worker_peak_rss_mb"],
        "peak_python_mb_tracemalloc": traced["peak_python_mb"], "tracemalloc_build_s": traced["seconds"],
        "pages": fresh["pages"], "folder": str(folder),
    }, indent=2))


if __name__ == "__main__":
    main()
