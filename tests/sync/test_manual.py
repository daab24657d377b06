"""Manual control: pins, unassignments and cancellations, audited with the acting user."""
from __future__ import annotations

import json

from click.testing import CliRunner

from config.loader import load_config
from relsync.cli import main
from relsync.demo import write_config
from sandboxes import edits
from sandboxes.server import start_sandboxes
from sync import engine
from sync.manual import acting_user
from sync.store import open_store
from tests.conftest import World


def cli(world, *args):
    return CliRunner().invoke(main, [*args, "--config", str(world.config_path)], env=world.env, catch_exceptions=False)


def rows(world, sql, params=()):
    db = open_store(world.config.store)
    try:
        return list(db.query(sql, params))
    finally:
        db.close()


def test_a_pin_survives_planning_and_is_written_back(small_world):
    world = small_world
    engine.run(world.config, env=world.env)
    releases = json.loads(cli(world, "release", "list", "--json").output)
    last = releases[-1]["name"]
    unplanned = rows(world, "select key from change_requests where key not in (select request from assignments) "
                            "and status in ('approved', 'triaged') order by key limit 1")[0]["key"]

    result = cli(world, "assign", unplanned, last, "--reason", "CFO asked for it")
    assert result.exit_code == 0, result.output
    report = engine.run(world.config, env=world.env)

    assert report.exit_code == 0
    pinned = rows(world, "select a.pinned, rel.name from assignments a join releases rel on rel.id = a.release "
                         "where a.request = ?", [unplanned])
    assert pinned == [{"pinned": 1, "name": last}]
    shown = rows(world, "select release from change_requests where key = ?", [unplanned])
    assert shown == [{"release": last}]
    manual = rows(world, "select actor, new from audit where origin = 'manual' and request = ?", [unplanned])
    assert len(manual) == 1 and "CFO asked for it" in manual[0]["new"]


def test_cancelling_a_release_replans_its_requests(small_world):
    world = small_world
    engine.run(world.config, env=world.env)
    first = json.loads(cli(world, "release", "list", "--json").output)[0]
    members = [r["request"] for r in rows(world, "select request from assignments where release = ?", [first["id"]])]
    assert members

    result = cli(world, "release", "cancel", first["name"], "--reason", "vendor outage")
    assert result.exit_code == 0, result.output
    assert f"{len(members)} requests will be re-planned on the next sync" in result.output
    listed = cli(world, "release", "list").output
    assert f"CANCELLED by {acting_user()}: vendor outage" in listed.splitlines()[0] and first["name"] in listed
    report = engine.run(world.config, env=world.env)

    assert rows(world, "select state, cancel_reason, revision from releases where id = ?", [first["id"]]) == [
        {"state": "cancelled", "cancel_reason": "vendor outage", "revision": 1}
    ]
    assert rows(world, "select count(*) as n from assignments where release = ?", [first["id"]]) == [{"n": 0}]
    # One manual event says who cancelled the release; the run that moved its requests
    # counts every move and audits each with who cancelled and why.
    manual = rows(world, "select actor, request, field, new from audit where origin = 'manual'")
    assert len(manual) == 1 and manual[0]["request"] is None and manual[0]["field"] == "release.state"
    assert json.loads(manual[0]["new"])["reason"] == "vendor outage"
    moves = rows(
        world,
        "select request, new from audit where origin = 'planned' and run = ? and old = ? order by request",
        [report.run_id, json.dumps(first["name"])],
    )
    assert [m["request"] for m in moves] == sorted(members)
    actor = manual[0]["actor"]
    assert all(f"release {first['name']} cancelled by {actor}: vendor outage" in json.loads(m["new"])["reason"]
               for m in moves)
    placed = sum(1 for m in moves if json.loads(m["new"])["release"] is not None)
    assert report.planned["moved"] == placed
    assert report.planned["unassigned"] >= len(members) - placed
    assert report.planned["assigned"] >= placed
    assert f"{report.planned['unassigned']} out" in report.summary()


def test_unknown_release_or_request_is_a_clear_error(small_world):
    world = small_world
    engine.run(world.config, env=world.env)

    result = cli(world, "assign", "jira:OPS-1", "BS 1999.01.01", "--reason", "x")
    assert result.exit_code == engine.EXIT_NOT_FOUND == 5
    assert "no release 'BS 1999.01.01'; releases: " in result.output and "BS 20" in result.output
    result = cli(world, "unassign", "jira:NOPE-1")
    assert result.exit_code == engine.EXIT_NOT_FOUND
    assert "no request 'jira:NOPE-1'" in result.output


def test_release_show_lists_phases_and_requests(small_world):
    world = small_world
    engine.run(world.config, env=world.env)
    first = json.loads(cli(world, "release", "list", "--json").output)[0]

    shown = cli(world, "release", "show", first["id"])

    assert shown.exit_code == 0
    assert first["name"] in shown.output
    assert "testing" in shown.output
    detail = json.loads(cli(world, "release", "show", first["name"], "--json").output)
    assert len(detail["requests"]) == first["requests"]


def test_a_cancelled_release_sets_its_requests_back_to_approved_in_every_system(tmp_path):
    """Requesters see the truth in their own tool: no release, and the status they had before it."""
    with start_sandboxes(records=150, seed=5, systems=("jira", "airtable", "salesforce")) as boxes:
        description = boxes.describe()
        edits.jira_grant(description, "ADMINISTER_PROJECTS")
        path = write_config(description, tmp_path / "relsync.yaml")
        env = {k: v for box in description.values() if isinstance(box, dict) for k, v in box["env"].items()}
        world = World(description, path, load_config(path), env)
        engine.run(world.config, env=env)
        members: dict[str, list[str]] = {}
        name = ""
        listed = json.loads(CliRunner().invoke(main, ["release", "list", "--json", "--config", str(world.config_path)]).output)
        for release in reversed(listed):  # the last one: its requests find no room in a later release
            ids = [r["request"] for r in rows(world, "select request from assignments where release = ?", [release["id"]])]
            if {key.split(":")[0] for key in ids} == {"jira", "airtable", "salesforce"}:
                members, name = {s: [k.split(":", 1)[1] for k in ids if k.startswith(s)] for s in
                                 ("jira", "airtable", "salesforce")}, release["name"]
                break
        assert name, "no release holds requests from all three systems"
        result = CliRunner().invoke(main, ["release", "cancel", name, "--config", str(world.config_path)], env=env)
        assert result.exit_code == 0, result.output

        # Those left unassigned go back to Approved; any that found room elsewhere show
        # their new release and stay Scheduled.
        report = engine.run(world.config, env=env)
        assert report.exit_code == 0, report.messages
        planned = {r["request"]: r["name"] for r in rows(
            world, "select a.request, rel.name from assignments a join releases rel on rel.id = a.release")}

        jira = edits.jira_client(world.description)
        for key in members["jira"]:
            fields = jira.issue(key, fields="status,fixVersions").fields
            expected = planned.get(f"jira:{key}")
            assert [v.name for v in fields.fixVersions] == ([expected] if expected else []), key
            assert fields.status.name == ("Scheduled" if expected else "Approved"), key
        listed = edits.airtable_records(world.description)
        for record_id in members["airtable"]:
            fields = listed[record_id]
            expected = planned.get(f"airtable:{record_id}")
            assert fields.get("Release") == expected, record_id
            assert fields["Status"] == ("Scheduled" if expected else "Approved"), record_id
        sf = edits.salesforce_client(world.description, str(world.config_path.parent / "salesforce-sandbox-ca.pem"))
        for case_id in members["salesforce"]:
            case = sf.Case.get(case_id)
            expected = planned.get(f"salesforce:{case_id}")
            assert case["Release__c"] == expected, case_id
            assert case["Status"] == ("Scheduled" if expected else "Approved"), case_id
        assert any(f"{s}:{k}" not in planned for s, keys in members.items() for k in keys)
