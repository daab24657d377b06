"""`relsync plan` lists exactly the writes the following `relsync sync` performs, at the same cost."""
from __future__ import annotations

import json

from click.testing import CliRunner

from relsync.cli import main
from sandboxes import edits
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
    # The history import (after the pull) cost what the plan priced: 250 issues' changelogs in one call.
    imported = json.loads(synced.output)["history"]["jira"]["calls"]
    assert imported == plan["history"]["jira"]["calls"] == 1
    assert sum(calls.values()) - pull - imported == plan["costs"]["jira"]["calls"]
    moved_in = {m["request"] for m in plan["moves"] if m["to"]}
    assert moved_in == {w["request"] for w in plan["writes"]["jira"] if w["field"] == "release"}


def test_plan_then_sync_on_all_three_systems(tmp_path):
    import requests

    from config.loader import load_config
    from relsync.demo import SYSTEMS, write_config
    from sandboxes.server import start_sandboxes

    with start_sandboxes(records=200, seed=7, systems=SYSTEMS) as boxes:  # the demo's data
        description = boxes.describe()
        edits.jira_grant(description, "ADMINISTER_PROJECTS")  # as the demo's setup does
        path = write_config(description, tmp_path / "relsync.yaml")
        env = {k: v for box in description.values() for k, v in box["env"].items()}
        ca = str(tmp_path / "salesforce-sandbox-ca.pem")
        verify = {"jira": True, "airtable": True, "salesforce": ca}

        def reset():
            for system, box in description.items():
                requests.post(f"{box['url']}/_sandbox/calls/reset", timeout=10, verify=verify[system])

        def calls(system):
            box = description[system]
            return requests.get(f"{box['url']}/_sandbox/calls", timeout=10, verify=verify[system]).json()["calls"]

        runner = CliRunner()
        planned = runner.invoke(main, ["plan", "--json", "--config", str(path)], env=env, catch_exceptions=False)
        assert planned.exit_code == 0, planned.output
        plan = json.loads(planned.output)
        reset()
        synced = runner.invoke(main, ["sync", "--json", "--config", str(path)], env=env, catch_exceptions=False)
        assert synced.exit_code == 0, synced.output

        db = open_store(load_config(path).store)
        for system in SYSTEMS:
            done = sorted(
                (r["request"], r["field"], json.loads(r["value"]))
                for r in db.query("select request, field, value from outbox where state = 'done' and source = ?", [system])
            )
            assert done == sorted((w["request"], w["field"], w["new"]) for w in plan["writes"][system]), system
            assert done, system
        db.close()
        # The write phase of the sync cost exactly what the plan priced.
        imported = json.loads(synced.output)["history"]
        assert {name: imported[name]["calls"] for name in SYSTEMS} == {name: plan["history"][name]["calls"] for name in SYSTEMS}
        assert plan["history"]["airtable"] == {"calls": 0, "records": 0, "limit": "no history API"}
        airtable = calls("airtable")
        assert sum(airtable.values()) - 1 == plan["costs"]["airtable"]["calls"]  # minus the one pull list call
        salesforce = calls("salesforce")
        pull = sum(n for k, n in salesforce.items() if "oauth2" in k or "/deleted/" in k) + 1  # token, deletions, pull
        assert sum(salesforce.values()) - pull - imported["salesforce"]["calls"] == plan["costs"]["salesforce"]["calls"]
        assert "requests/s per base" in plan["costs"]["airtable"]["limit"]
        assert "API requests left today" in plan["costs"]["salesforce"]["limit"]

        # A request rejected in its source leaves its release, and the write-back says so.
        db = open_store(load_config(path).store)
        victim = next(iter(db.query(
            "select a.request, rel.name from assignments a join releases rel on rel.id = a.release "
            "join change_requests r on r.key = a.request "
            "where a.request like 'jira:%' and r.status = 'scheduled' order by a.request limit 1")))
        db.close()
        client = edits.jira_client(description)
        key = victim["request"].split(":", 1)[1]
        edits.jira_move_to(client, key, "Approved")  # the workflow rejects from Approved, not from Scheduled
        edits.jira_move_to(client, key, "Rejected")
        edits.jira_wait_for_search(client, f'key = "{key}" AND status = "Rejected"')  # Jira's index lags writes
        replanned = runner.invoke(main, ["plan", "--json", "--config", str(path)], env=env, catch_exceptions=False)
        out = [m for m in json.loads(replanned.output)["moves"] if m["request"] == victim["request"]]
        # The reason reads as plain text, not JSON inside JSON.
        assert out == [{"request": victim["request"], "from": victim["name"], "to": None,
                        "reason": f"left release {victim['name']}: status rejected"}]
        again = runner.invoke(main, ["sync", "--json", "--config", str(path)], env=env, catch_exceptions=False)
        assert again.exit_code == 0, again.output
        db = open_store(load_config(path).store)
        assert list(db.query("select * from assignments where request = ?", [victim["request"]])) == []
        left = [json.loads(r["new"]) for r in db.query(
            "select new from audit where request = ? and origin = 'planned' order by id desc limit 1", [victim["request"]])]
        assert left == [{"release": None, "reason": f"left release {victim['name']}: status rejected"}]
        cleared = list(db.query("select value, state from outbox where request = ? and field = 'release' "
                                "and value = 'null'", [victim["request"]]))
        db.close()
        assert cleared == [{"value": "null", "state": "done"}]
        issue = client.issue(key, fields="fixVersions,status")
        assert issue.fields.fixVersions == [] and issue.fields.status.name == "Rejected"
