"""Dependencies across systems, through the real client libraries: a Jira request that names an
Airtable request it needs first waits until that one is planned, then ships with it or after it."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from config.loader import load_config
from relsync.cli import main
from relsync.demo import write_config
from sandboxes import edits
from sandboxes.server import start_sandboxes
from sync import engine
from sync.store import open_store

DEPENDS_ON = "customfield_10073"  # the Jira sandbox's "Depends on" text field


def rows(config, sql, params=()):
    db = open_store(config.store)
    try:
        return list(db.query(sql, params))
    finally:
        db.close()


def release_of(config, key: str) -> dict | None:
    found = rows(config, "select rel.id, rel.name, rel.deploy_at from assignments a join releases rel "
                         "on rel.id = a.release where a.request = ?", [key])
    return found[0] if found else None


def test_a_jira_request_waits_for_the_airtable_request_it_depends_on(tmp_path: Path) -> None:
    with start_sandboxes(records=40, seed=5, systems=("jira", "airtable")) as boxes:
        description = boxes.describe()
        edits.jira_grant(description, "ADMINISTER_PROJECTS")
        path = write_config(description, tmp_path / "relsync.yaml")
        config = load_config(path)
        env = {k: v for box in description.values() if isinstance(box, dict) for k, v in box["env"].items()}
        engine.run(config, env=env)
        prerequisite = rows(config, "select native_id from change_requests where source = 'airtable' "
                                    "and status = 'triaged' and key not in (select request from assignments) "
                                    "order by key limit 1")[0]["native_id"]
        dependent = rows(config, "select native_key from change_requests where source = 'jira' "
                                 "and status in ('approved', 'scheduled') order by key limit 1")[0]["native_key"]
        # The Jira team notes what its request needs first: an Airtable request still in triage.
        jira = edits.jira_client(description)
        jira.issue(dependent).update(fields={DEPENDS_ON: f"airtable:{prerequisite}"})
        edits.jira_wait_until_indexed(jira, dependent)

        waiting = engine.run(config, env=env)

        assert waiting.exit_code == 0, waiting.messages
        assert release_of(config, f"jira:{dependent}") is None
        fields = jira.issue(dependent, fields="fixVersions,status").fields
        assert (fields.fixVersions, fields.status.name) == ([], "Approved")  # the requester sees it wait
        unplanned = json.loads(CliRunner().invoke(main, ["requests", "--unplanned", "--json", "--config", str(path)]).output)
        shown = next(r for r in unplanned if r["key"] == f"jira:{dependent}")
        assert shown["reason"] == f"dependency: depends on airtable:{prerequisite}, which has no release yet"
        assert shown["reason_kind"] == "dependency"

        edits.airtable_update(description, prerequisite, {"Status": "Approved"})
        planned = engine.run(config, env=env)

        assert planned.exit_code == 0, planned.messages
        first, then = release_of(config, f"airtable:{prerequisite}"), release_of(config, f"jira:{dependent}")
        assert first is not None and then is not None
        assert then["deploy_at"] >= first["deploy_at"]
        assert [v.name for v in jira.issue(dependent, fields="fixVersions").fields.fixVersions] == [then["name"]]
        shown = CliRunner().invoke(main, ["release", "show", then["id"], "--config", str(path)]).output
        assert f"needs airtable:{prerequisite}" in shown


def test_a_jira_is_blocked_by_link_orders_two_jira_requests(tmp_path: Path) -> None:
    with start_sandboxes(records=30, seed=9, systems=("jira",)) as boxes:
        description = boxes.describe()
        edits.jira_grant(description, "ADMINISTER_PROJECTS")
        path = write_config(description, tmp_path / "relsync.yaml")
        config = load_config(path)
        env = dict(description["jira"]["env"])
        engine.run(config, env=env)
        approved = [r["native_key"] for r in rows(
            config, "select native_key from change_requests where status in ('approved', 'scheduled') order by key")]
        blocker, blocked = approved[0], approved[1]
        jira = edits.jira_client(description)
        jira.create_issue_link("Blocks", inwardIssue=blocker, outwardIssue=blocked)  # blocker blocks blocked
        jira.issue(blocker).update(fields={"priority": {"name": "Lowest"}})
        jira.issue(blocked).update(fields={"priority": {"name": "Highest"}})
        edits.jira_wait_until_indexed(jira, blocker, blocked)

        report = engine.run(config, env=env)

        assert report.exit_code == 0, report.messages
        assert rows(config, "select depends_on from change_requests where key = ?", [f"jira:{blocked}"]) == [
            {"depends_on": blocker}]
        first, then = release_of(config, f"jira:{blocker}"), release_of(config, f"jira:{blocked}")
        assert first is not None and then is not None and then["deploy_at"] >= first["deploy_at"]
