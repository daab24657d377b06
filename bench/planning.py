"""Benchmark the planner alone: N synthetic requests planned into the example config's trains.

    python bench/planning.py --requests 5000 20000 100000

No sandbox and no store: ``releases.routing.plan_trains`` on requests drawn from a seeded
generator (every priority, mostly approved, a tenth started or closed, four departments),
into the trains of config/examples/all-three.yaml (or ``--config``), as the engine calls it.
Prints one JSON line per size: seconds, requests planned, requests left waiting (with a reason),
and the process's peak RSS so far (``resource.getrusage``; run one size a process to read
each size's own).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.loader import load_config
from mapping.model import PRIORITIES
from releases import routing
from releases.calendar import materialize_releases
from releases.planner import Candidate

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "examples" / "all-three.yaml"
NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
STATUSES = ["approved"] * 6 + ["new", "triaged", "in_progress", "closed"]
DEPARTMENTS = ["Sales Ops", "Finance Ops", "IT", "RevOps"]


def requests(count: int, seed: int) -> list[Candidate]:
    """``count`` unassigned requests, the same for the same seed."""
    draw = random.Random(seed)
    return [Candidate(key=f"bench:{number:07d}", status=draw.choice(STATUSES), priority=draw.choice(PRIORITIES),
                      created_at=f"2026-{draw.randint(1, 11):02d}-{draw.randint(1, 28):02d}T10:00:00Z", release=None,
                      pinned=False, deleted=False, department=draw.choice(DEPARTMENTS), type="Report", source="bench")
            for number in range(count)]


def measure(config_path: Path, count: int, seed: int) -> dict[str, object]:
    config = load_config(config_path)
    plans = [(train, materialize_releases(train, NOW)) for train in config.trains]
    candidates = requests(count, seed)
    started = time.perf_counter()
    waiting: dict[str, str] = {}
    decisions = routing.plan_trains(plans, candidates, now=NOW, waiting=waiting)
    seconds = time.perf_counter() - started
    return {"requests": count, "trains": [train.name for train in config.trains], "seconds": round(seconds, 2),
            "planned": sum(1 for d in decisions if d.release), "waiting": len(waiting),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, nargs="+", default=[5000, 20000, 100000])
    parser.add_argument("--config", type=Path, default=EXAMPLE)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    for count in args.requests:
        print(json.dumps(measure(args.config, count, args.seed)), flush=True)


if __name__ == "__main__":
    main()
