"""Requesters see the plan in their own tool: the planned deploy date and the release's phase are
written to Jira, Airtable and Salesforce through their client libraries, change with the plan, and
are cleared (with the status set back) when a cancelled release leaves a request without one."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from simple_salesforce import format_soql

from config.loader import load_config
from relsync.cli import main
from relsync.demo import write_config
from sandboxes import edits
from sandboxes.server import start_sandboxes
from sync import engine
from sync.store import open_store

SYSTEMS = ("jira", "airtable", "salesforce")
PICKLIST = {"development": "Development", "scheduled": "Scheduled", "planning": "Planning", "testing": "Testing"}


def rows(config: Any, sql: str, params: Any = ()) -> list[dict[str, Any]]:
    db = open_store(config.store)
    try:
        return list(db.query(sql, params))
    finally:
        db.close()


def shown_in_sources(description: dict[str, Any], folder: Path, requests: list[dict[str, Any]]) -> dict[str, tuple]:
    """(status, planned date, phase) each request's own system shows now, read as its requester's tool would."""
    shown: dict[str, tuple] = {}
    jira = edits.jira_client(description)
    for request in (r for r in requests if r["system"] == "jira"):
        fields = jira.issue(request["native_key"], fields="status,customfield_10080,customfield_10081").fields
        shown[request["key"]] = (fields.status.name, fields.customfield_10080, fields.customfield_10081)
    records = edits.airtable_records(description)
    for request in (r for r in requests if r["system"] == "airtable"):
        fields = records[request["native_id"]]
        shown[request["key"]] = (fields["Status"], fields.get("Planned Deploy"), fields.get("Release Phase"))
    sf = edits.salesforce_client(description, str(folder / "salesforce-sandbox-ca.pem"))
    ids = [r["native_id"] for r in requests if r["system"] == "salesforce"]
    if ids:
        found = sf.query_all(format_soql(
            "SELECT Id, Status, Planned_Deploy_Date__c, Release_Phase__c FROM Case WHERE Id IN {ids}", ids=ids))
        by_id = {r["Id"]: r for r in found["records"]}
        for request in (r for r in requests if r["system"] == "salesforce"):
            record = by_id[request["native_id"]]
            shown[request["key"]] = (record["Status"], record["Planned_Deploy_Date__c"], record["Release_Phase__c"])
    return shown


def members_of(config: Any, release_id: str) -> list[dict[str, Any]]:
    return rows(config, "select r.key, r.system, r.native_id, r.native_key from assignments a "
                        "join change_requests r on r.key = a.request where a.release = ? order by r.key", [release_id])


def test_the_planned_date_and_phase_follow_the_plan_in_all_three_systems(tmp_path: Path) -> None:
    with start_sandboxes(records=40, seed=5, systems=SYSTEMS) as boxes:
        description = boxes.describe()
        edits.jira_grant(description, "ADMINISTER_PROJECTS")
        path = write_config(description, tmp_path / "relsync.yaml")
        # Two regular releases ahead: when one is cancelled, the other cannot take all of its requests.
        data = yaml.safe_load(path.read_text())
        next(t for t in data["trains"] if t["name"] == "business-systems")["horizon"] = 2
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        config = load_config(path)
        env = {k: v for box in description.values() if isinstance(box, dict) for k, v in box["env"].items()}
        first = engine.run(config, env=env)
        assert first.exit_code == 0, first.messages

        # The first regular release holds requests from all three systems; each shows its
        # deploy date and the phase the release is in (a picklist label in Salesforce).
        release = rows(config, "select rel.id, rel.name, rel.deploy_at from releases rel where rel.train = 'business-systems' "
                               "and exists (select 1 from assignments a where a.release = rel.id) order by rel.deploy_at")[0]
        members = members_of(config, release["id"])
        assert {m["system"] for m in members} == set(SYSTEMS)
        day = release["deploy_at"][:10]  # the example trains deploy at 18:00 UTC
        started = rows(config, "select started_at from runs where id = ?", [first.run_id])[0]["started_at"]
        phase = rows(config, "select phase from release_phases where release = ? and starts <= ? order by starts desc",
                     [release["id"], started])
        expected_phase = phase[0]["phase"] if phase else "scheduled"
        before = shown_in_sources(description, tmp_path, members)
        for member in members:
            label = PICKLIST.get(expected_phase, expected_phase) if member["system"] == "salesforce" else expected_phase
            assert before[member["key"]] == ("Scheduled", day, label), member["key"]

        # The release is cancelled: the next sync moves its requests. Each one re-planned shows
        # its new release's date; each one left without a release shows Approved again, and no
        # date or phase, in its own tool.
        cancelled = CliRunner().invoke(main, ["release", "cancel", release["name"], "--reason", "vendor outage",
                                              "--config", str(path)], env=env)
        assert cancelled.exit_code == 0, cancelled.output
        second = engine.run(config, env=env)
        assert second.exit_code == 0, second.messages

        after = shown_in_sources(description, tmp_path, members)
        placed = {r["request"]: r for r in rows(
            config, "select a.request, rel.deploy_at from assignments a join releases rel on rel.id = a.release "
                    "where a.request in (select value from json_each(?))", [json.dumps([m["key"] for m in members])])}
        moved = [m for m in members if m["key"] in placed]
        left = [m for m in members if m["key"] not in placed]
        assert moved and left, "the cancelled release's requests should be partly re-planned, partly left out"
        for member in moved:
            status, date, _ = after[member["key"]]
            assert (status, date) == ("Scheduled", placed[member["key"]]["deploy_at"][:10]), member["key"]
            assert date != day
        for member in left:
            assert after[member["key"]] == ("Approved", None, None), member["key"]
        # What each source shows is what the store holds, so the next run writes nothing.
        third = engine.run(config, env=env)
        assert third.exit_code == 0, third.messages
        assert {name: counts["queued"] for name, counts in third.pushed.items()} == dict.fromkeys(SYSTEMS, 0)
