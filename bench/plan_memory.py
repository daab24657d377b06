"""The plan phase alone on a large synthetic store: peak memory and time, first pass and the next.

    python bench/plan_memory.py --requests 100000 1000000

For each size, a store is made with ``sync.store.open_store`` and filled directly (not
timed): requests of every status and priority in four departments and six types, from
one source, a few in a hundred depending on another. Then, each in a fresh process,
``sync.schedule.plan_into_store`` plans it into the trains of the example config
(``--config``, ``--trains``) twice: the first pass (every request new to the plan) and
the next one an hour later (what each cron run does). Per pass: seconds, decisions,
waiting reasons written, the requests the planner saw, and the process's peak RSS
(``ru_maxrss``), next to the same process's RSS before planning (imports and store open).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory import rss_mb

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "examples" / "salesforce.yaml"
NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
STATUSES = ("new", "triaged", "approved", "approved", "scheduled", "in_progress", "testing", "deployed", "closed", "rejected")
PRIORITIES = ("critical", "high", "medium", "medium", "low", None)
DEPARTMENTS = ("Sales Ops", "Finance Ops", "IT", "RevOps")
TYPES = ("Layout", "Field", "Workflow", "Report", "Integration", "Access")


def build_store(path: Path, requests: int, *, seed: int = 3) -> None:
    from sync.db import insert_all
    from sync.store import open_store

    draw = random.Random(seed)
    db = open_store(path)
    batch: list[dict[str, Any]] = []
    with db.atomic():
        for n in range(requests):
            created = dt.datetime(2025, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=draw.randrange(0, 700 * 24 * 60))
            batch.append({
                "key": f"salesforce:5000{n:014d}", "source": "salesforce", "system": "salesforce",
                "native_id": f"5000{n:014d}", "native_key": f"{n:08d}", "title": f"Change {n}",
                "status": draw.choice(STATUSES), "priority": draw.choice(PRIORITIES),
                "department": draw.choice(DEPARTMENTS), "type": draw.choice(TYPES),
                "created_at": created.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
                "depends_on": f"{draw.randrange(requests):08d}" if draw.random() < 0.01 else None,
            })
            if len(batch) == 5000:
                insert_all(db, "change_requests", batch)
                batch = []
        insert_all(db, "change_requests", batch)
    db.close()


def one_pass(store: Path, config: Path, trains: list[str], hours: int) -> dict[str, Any]:
    """In this (fresh) process: one plan_into_store, its time and this process's peak RSS."""
    from config.loader import load_config
    from sync.schedule import plan_into_store
    from sync.store import open_store, start_run

    chosen = [train for train in load_config(config).trains if not trains or train.name in trains]
    db = open_store(store, create=False)
    before = rss_mb()
    started = time.perf_counter()
    counts = plan_into_store(db, chosen, now=NOW + dt.timedelta(hours=hours), run_id=start_run(db))
    seconds = time.perf_counter() - started
    waiting = db.execute("select count(*) from waiting").fetchone()[0]
    return {"seconds": round(seconds, 2), "assigned": counts.assigned, "unassigned": counts.unassigned,
            "waiting": waiting, "rss_before_mb": round(before, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, nargs="+", default=[100_000])
    parser.add_argument("--config", type=Path, default=EXAMPLE)
    parser.add_argument("--trains", nargs="*", default=[], help="train names to plan (default: every train of the config)")
    parser.add_argument("--pass-in", nargs=2, metavar=("STORE", "HOURS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pass_in:
        print(json.dumps(one_pass(Path(args.pass_in[0]), args.config, args.trains, int(args.pass_in[1]))))
        return
    for count in args.requests:
        with tempfile.TemporaryDirectory() as folder:
            store = Path(folder) / "plan.db"
            started = time.perf_counter()
            build_store(store, count)
            built = time.perf_counter() - started
            passes = []
            for hours in (0, 1):
                command = [sys.executable, __file__, "--config", str(args.config), "--pass-in", str(store), str(hours)]
                if args.trains:
                    command += ["--trains", *args.trains]
                done = subprocess.run(command, check=True, capture_output=True, text=True)
                passes.append(json.loads(done.stdout))
            print(json.dumps({"requests": count, "store_built_s": round(built, 1), "first": passes[0], "next": passes[1]}),
                  flush=True)


if __name__ == "__main__":
    main()
