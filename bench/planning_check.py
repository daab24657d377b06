"""Check that a change to the planner decides as before: random plans, saved and compared.

    python bench/planning_check.py save /tmp/plans          # before the change
    python bench/planning_check.py compare /tmp/plans       # after it

Each seed draws a plan of 200 to 2,000 requests into two or three trains (a hotfix train
for critical requests, sometimes one for a department, usually a catch-all one, some with
department quotas): releases in every state, requests of every priority and status,
some already in releases (of these trains, or of none), pinned, deleted, depending on
others or on unknown references. ``releases.routing.plan_trains`` plans it; the decisions
(with their reasons) and the waiting reasons are saved as JSON, one file a seed, or
compared with the saved ones. Exits 1 if any seed differs.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.schema import Train
from mapping.model import PRIORITIES, STATUSES
from releases.kinds import plan_sampled
from releases.planner import Candidate, PlannedRelease
from releases.routing import plan_trains

NOW = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
DEPARTMENTS = ["Sales Ops", "Finance Ops", "IT", "RevOps", None]
Plans = list[tuple[Train, list[PlannedRelease]]]


def train(name: str, **changes: object) -> Train:
    spec = {"name": name, "release_name": "{train} {deploy:%Y.%m.%d}", "capacity": 2,
            "cadence": {"every_days": 14, "anchor": "2026-12-01"},
            "phases": [{"phase": "deployment", "days": 1, "owner": "rm@example.com"}]}
    return Train.model_validate(spec | changes)


def releases(name: str, draw: random.Random, *, quotas: tuple[tuple[str, int], ...], most: int) -> list[PlannedRelease]:
    """One to six releases; in half the trains nearly all open (where the urgency rule has room to work)."""
    calm = draw.random() < 0.5
    drawn = []
    for number in range(draw.randint(1, 6)):
        deploy = NOW + dt.timedelta(days=draw.randint(-5, 40), hours=draw.randint(0, 23))
        freeze = deploy - dt.timedelta(days=draw.choice([0, 1, 2, 3]))
        state = draw.choice(["open"] * 9 + ["frozen"] if calm else ["open"] * 5 + ["frozen", "planned", "deploying", "cancelled"])
        if deploy < NOW:
            state = draw.choice(["deploying", "open", "cancelled"])
        if state == "frozen" or (state == "open" and draw.random() < 0.15):  # frozen now, deploying soon
            deploy = NOW + dt.timedelta(days=draw.randint(1, 3))
            freeze = NOW - dt.timedelta(hours=draw.randint(1, 20))
        capacity = max(draw.randint(0, most), sum(seats for _, seats in quotas))
        why = "by bob: outage" if state == "cancelled" and draw.random() < 0.5 else None
        drawn.append(PlannedRelease(id=f"{name}-{number}", name=f"{name} R{number}", train=name, deploy_at=deploy,
                                    freeze_at=freeze, capacity=capacity, state=state, quotas=quotas, cancelled_why=why))
    return drawn


def plan(seed: int) -> tuple[Plans, list[Candidate]]:
    """The trains, their releases and the requests of one seed."""
    draw = random.Random(seed)
    quotas = draw.random() < 0.4
    most = draw.choice([3, 8, 20, 40])
    hotfix = train("hotfix", match={"priorities": ["critical"] + (["high"] if draw.random() < 0.3 else [])},
                   expedite={"priorities": ["critical"]} if draw.random() < 0.7 else None)
    plans: Plans = [(hotfix, releases("hotfix", draw, quotas=(), most=most))]
    if draw.random() < 0.5:
        plans.append((train("it", match={"departments": ["IT"]}), releases("it", draw, quotas=(), most=most)))
    if draw.random() < 0.8:
        regular = train("BS")
        if quotas and most >= 2:
            first = draw.randint(0, most // 2)
            split = {"Sales Ops": first, "finance ops": draw.randint(0, most - first)} if draw.random() < 0.7 else {"IT": first}
            regular = train("BS", capacity={"total": most, "by_department": split})
        plans.append((regular, releases("BS", draw, quotas=regular.quotas, most=most)))
    count = draw.randint(200, 2000)
    places = [r.id for _, drawn in plans for r in drawn] + ["gone-1"]
    keys = [f"jira:{number}" for number in range(count)]
    dependencies = draw.random() < 0.6
    assigned = draw.choice([0.02, 0.1, 0.25])
    weights = draw.choice([[1, 1, 1, 1, 1], [4, 2, 1, 1, 1]])
    candidates = []
    for key in keys:
        release = draw.choice(places) if draw.random() < assigned else None
        depends_on: tuple[str, ...] = ()
        unknown: tuple[str, ...] = ()
        if dependencies and draw.random() < 0.1:
            depends_on = tuple(sorted(set(draw.sample(keys, draw.randint(1, 3)))))
            unknown = ("EXT-1",) if draw.random() < 0.1 else ()
        created = (None if draw.random() < 0.05
                   else f"2026-{draw.randint(1, 11):02d}-{draw.randint(1, 28):02d}T{draw.randint(0, 23):02d}:00:00Z")
        candidates.append(Candidate(
            key=key, status=draw.choice([*STATUSES] + ["approved"] * 6), priority=draw.choices([*PRIORITIES, None], weights)[0],
            created_at=created, release=release, pinned=draw.random() < 0.05, deleted=draw.random() < 0.02,
            department=draw.choice(DEPARTMENTS), type=draw.choice(["Report", "Bug"]), source="jira",
            depends_on=depends_on, unknown=unknown,
        ))
    draw.shuffle(candidates)
    return plans, candidates


def outcome(seed: int, *, sampled: bool = False) -> dict[str, object]:
    """The decisions and the waiting reasons of one seed's plan, as JSON data; ``sampled``:
    planned as the store plans, from a ``releases.kinds.Sample`` of the requests."""
    plans, candidates = plan(seed)
    waiting: dict[str, str] = {}
    if sampled:
        decisions, waiting = plan_sampled(plans, candidates, now=NOW)
    else:
        decisions = plan_trains(plans, candidates, now=NOW, waiting=waiting)
    return {"decisions": [[d.key, d.release, d.reason] for d in decisions], "waiting": dict(sorted(waiting.items()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["save", "compare"])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 41)))
    parser.add_argument("--sampled", action="store_true",
                        help="plan from a sample of the requests, as the store does (releases.kinds)")
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    differ = []
    for seed in args.seeds:
        found = outcome(seed, sampled=args.sampled)
        path = args.folder / f"{seed}.json"
        if args.action == "save":
            path.write_text(json.dumps(found, indent=0))
        elif json.loads(path.read_text()) != found:
            differ.append(seed)
        print(f"seed {seed}: {len(found['decisions'])} decisions, {len(found['waiting'])} waiting"  # type: ignore[arg-type]
              + (" DIFFERENT" if seed in differ else ""), flush=True)
    if args.action == "compare":
        print(f"{len(args.seeds) - len(differ)} of {len(args.seeds)} seeds identical" + (f"; differ: {differ}" if differ else ""))
        sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
