"""`relsync plan` lists exactly the writes the following `relsync sync` performs, at the same cost."""
from __future__ import annotations

import json

from click.testing import CliRunner

from sync.cli import main
from sync.store import open_store


def cli(world, *args):
    return CliRunner().invoke(main, [*args, "--config", str(world.config_path)], env=world.env, catch_exceptions=False)


def test_plan_then_sync_jira(world):
    planned = cli(world, "plan", "--json")
    assert planned.exit_code == 0, planned.output
    plan = json.loads(planned.output)
    db = open_store(world.config.store)
    assert db.execute("select count(*) from assignments").fetchone()[0] == 0  # nothing kept
    assert db.execute("select count(*) from outbox").fetchone()[0] == 0
    db.close()
    world.reset_calls()

    synced = cli(world, "sync", "--json")

    assert synced.exit_code == 0, synced.output
    db = open_store(world.config.store)
    done = sorted(
        (r["request"], r["field"], json.loads(r["value"]))
        for r in db.query("select request, field, value from outbox where state = 'done'")
    )
    db.close()
    listed = sorted((w["request"], w["field"], w["new"]) for w in plan["writes"]["jira"])
    assert done == listed and listed
    calls = world.calls()
    pull = sum(n for k, n in calls.items() if k.endswith(("/serverInfo", "/field"))) + 1  # + the one pull search
    assert sum(calls.values()) - pull == plan["costs"]["jira"]["calls"]
    moved_in = {m["request"] for m in plan["moves"] if m["to"]}
    assert moved_in == {w["request"] for w in plan["writes"]["jira"] if w["field"] == "release"}
