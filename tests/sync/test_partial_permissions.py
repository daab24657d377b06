"""A permission the account lacks fails the writes that need it, and only those; every other write goes out.

A 401, or a refusal to read the source at all, still stops that source (exit 2). Jira's
refusals come from the sandbox's per-account permissions (an ordinary project member by
default: no Administer Projects); Airtable's and Salesforce's from injected 403s with
the bodies those APIs send. Call counts are the sandboxes' own.
"""
from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from click.testing import CliRunner

from relsync.cli import main
from sync import engine
from sync.store import open_store
from tests.conftest import World, make_world
from tests.sync import test_salesforce_sync as salesforce_sync
from tests.sync.test_airtable_sync import PATCH, AirtableWorld, only_eligible
from tests.sync.test_airtable_sync import make_world as make_airtable_world

NO_VERSIONS = "Jira: creating version {!r} needs the Administer Projects permission for project OPS"
WORKFLOW = "POST /rest/api/3/issue/{key}/transitions"


@pytest.fixture
def member_world(tmp_path: Path) -> Iterator[World]:
    """30 seeded Jira requests; the integration account is an ordinary member (no Administer Projects).

    Writes go issue by issue (``bulk_threshold`` above the groups' sizes); the bulk path's
    refusals are in tests/sync/test_jira_bulk.py.
    """
    for world in make_world(tmp_path, records=30, admin=False):
        jira = world.config.sources["jira"].model_copy(update={"bulk_threshold": 1000})
        world.config = world.config.model_copy(update={"sources": {**world.config.sources, "jira": jira}})
        yield world


def query(world, sql: str) -> list[dict]:
    db = open_store(world.config.store)
    try:
        return list(db.query(sql))
    finally:
        db.close()


def outbox(world, where: str = "") -> list[dict]:
    return query(world, f"select request, field, state, last_error from outbox {where} order by request, field")


def grant(world: World, **change: list[str]) -> None:
    requests.post(f"{world.jira_url}/_sandbox/jira/permissions", json=change, timeout=10).raise_for_status()


# -- Jira ---------------------------------------------------------------------------------


def test_without_administer_projects_only_the_release_writes_fail_and_the_rest_go_out(member_world):
    world = member_world
    world.reset_calls()

    report = engine.run(world.config, env=world.env)

    assert report.exit_code == 1 and report.status == "partial"
    rows = outbox(world)
    releases = [r for r in rows if r["field"] == "release"]
    statuses = [r for r in rows if r["field"] == "status"]
    assert releases and statuses and len(releases) == len(statuses)
    assert {r["state"] for r in releases} == {"failed"} and {r["state"] for r in statuses} == {"done"}
    planned = {r["request"]: r["name"] for r in query(
        world, "select a.request, rel.name from assignments a join releases rel on rel.id = a.release")}
    for row in releases:
        assert row["last_error"].startswith(NO_VERSIONS.format(planned[row["request"]])), row
        assert "either does not exist or you do not have permission to create versions in it" in row["last_error"]
    calls = world.calls()
    assert calls["POST /rest/api/3/version"] == 1  # refused once; no other version is tried this run
    # The planned date and phase need no version: they still reach each issue, one PUT an issue.
    beside = [r for r in rows if r["field"] in ("planned_date", "phase")]
    assert beside and {r["state"] for r in beside} == {"done"}
    assert calls["PUT /rest/api/3/issue/{key}"] == len(releases)
    assert calls[WORKFLOW] == len(statuses)

    # A Jira admin grants the permission by name; the next run writes the releases.
    grant(world, grant=["ADMINISTER_PROJECTS"])
    again = engine.run(world.config, env=world.env)

    assert again.exit_code == 0, again.messages
    assert {r["state"] for r in outbox(world, "where field = 'release'")} == {"done"}


@pytest.mark.parametrize(("revoked", "failing", "message", "calls"), [
    ("EDIT_ISSUES", ("release", "planned_date", "phase"), "Jira: editing {key} needs the Edit Issues permission for project OPS "
     "(You do not have permission to edit issues in this project. (HTTP 403", {"PUT /rest/api/3/issue/{key}": "each once"}),
    ("TRANSITION_ISSUES", ("status",), "Jira: moving {key} to 'Scheduled' needs the Transition Issues permission for "
     "project OPS (Jira lists no transitions from 'Approved' for this account)",
     {"GET /rest/api/3/issue/{key}/transitions": 1, WORKFLOW: 0}),  # the empty list is asked for once
])
def test_a_missing_issue_permission_fails_only_the_writes_that_need_it(member_world, revoked, failing, message, calls):
    world = member_world
    grant(world, grant=["ADMINISTER_PROJECTS"], revoke=[revoked])
    world.reset_calls()

    report = engine.run(world.config, env=world.env)

    assert report.exit_code == 1 and report.status == "partial"
    fields = ", ".join(f"'{name}'" for name in failing)
    refused = outbox(world, f"where field in ({fields})")
    assert refused and {r["state"] for r in refused} == {"failed"}
    assert {r["field"] for r in refused} == set(failing)
    for row in refused:
        assert row["last_error"].startswith(message.format(key=row["request"].split(":", 1)[1])), row
    assert {r["state"] for r in outbox(world, f"where field not in ({fields})")} == {"done"}
    made = world.calls()
    issues = len({r["request"] for r in refused})  # an issue's edited fields go in one PUT
    assert {kind: made.get(kind, 0) for kind in calls} == {k: issues if n == "each once" else n for k, n in calls.items()}


def test_a_403_on_reading_jira_still_stops_the_source_with_exit_2(member_world):
    world = member_world
    world.fault(method="GET", path="/rest/api/3/search/jql", status=403,
                body={"errorMessages": ["You do not have permission to view this project."], "errors": {}})

    result = CliRunner().invoke(main, ["sync", "--config", str(world.config_path)], env=world.env)

    assert result.exit_code == 2
    assert "jira: You do not have permission to view this project. (HTTP 403: the account lacks a permission)" in result.output
    assert outbox(world) == []


def test_check_online_names_each_jira_permission_and_warns_about_versions(member_world):
    world = member_world
    args = ["check", "--config", str(world.config_path), "--online"]

    member = CliRunner().invoke(main, args, env=world.env)

    assert member.exit_code == 0, member.output
    assert "jira: permission Browse Projects (BROWSE_PROJECTS) (reading the issues of OPS): granted" in member.output
    assert "jira: permission Transition Issues (TRANSITION_ISSUES) (moving issues to the configured statuses): granted" in member.output
    assert ("jira: warning: permission Administer Projects (ADMINISTER_PROJECTS) (creating a version for each release): "
            "missing; relsync cannot create versions in OPS: each release must already exist there as a version") in member.output
    assert "jira: online check passed" in member.output

    grant(world, revoke=["EDIT_ISSUES"])
    world.reset_calls()
    broken = CliRunner().invoke(main, [*args, "--json"], env=world.env)

    assert broken.exit_code == 2
    found = json.loads(broken.output)
    assert found["problems"]["jira"] == ["permission Edit Issues (EDIT_ISSUES) (writing the release to fixVersions): missing"]
    assert {p["name"]: p["granted"] for p in found["permissions"]["jira"]} == {
        "Browse Projects (BROWSE_PROJECTS)": True, "Edit Issues (EDIT_ISSUES)": False, "Resolve Issues (RESOLVE_ISSUES)": True,
        "Transition Issues (TRANSITION_ISSUES)": True, "Administer Projects (ADMINISTER_PROJECTS)": False}
    assert world.calls()["GET /rest/api/3/mypermissions"] == 1


# -- Airtable -------------------------------------------------------------------------------


@pytest.fixture
def airtable_world(tmp_path: Path) -> Iterator[AirtableWorld]:
    yield from make_airtable_world(tmp_path, records=40)


def test_an_airtable_write_refused_for_permission_fails_those_writes_not_the_run(airtable_world):
    world = airtable_world
    only_eligible(world, approved=25)
    world.fault(method="PATCH", path="/v0/*", status=403, times=100,
                body={"error": {"type": "INVALID_PERMISSIONS", "message": "You are not permitted to perform this operation"}})
    world.reset_calls()

    report = world.run()

    assert report.exit_code == 1 and report.status == "partial"
    rows = outbox(world)
    assert len(rows) == 100 and {r["state"] for r in rows} == {"failed"}  # 4 fields of 25 records
    assert rows[0]["last_error"].startswith(
        f"Airtable: updating records in table 'Change Requests' needs a token with the data.records:write scope and editor "
        f"access to base {world.description['airtable']['base']} (INVALID_PERMISSIONS: You are not permitted")
    assert world.calls()[PATCH] == math.ceil(25 / 10)  # each batch refused once: not split record by record


def test_a_403_on_reading_airtable_stops_the_source_with_exit_2(airtable_world):
    world = airtable_world
    world.fault(method="GET", path="/v0/*", status=403)

    report = world.run()

    assert report.exit_code == 2 and report.status == "config_error"
    assert any("INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND" in m for m in report.messages), report.messages


def test_check_online_reports_airtable_scopes_as_far_as_whoami_tells_and_the_base_access(airtable_world):
    world = airtable_world

    result = CliRunner().invoke(main, ["check", "--config", str(world.config_path), "--online", "--json"], env=world.env)

    assert result.exit_code == 0, result.output
    permissions = {p["name"]: p["granted"] for p in json.loads(result.output)["permissions"]["airtable"]}
    base = world.description["airtable"]["base"]
    # A personal access token's scopes are not reported by whoami (only OAuth tokens' are).
    assert permissions == {"token scope schema.bases:read": True, "token scope data.records:read": None,
                           "token scope data.records:write": None,
                           f"editor access to base {base} (the account's is create)": True}


# -- Salesforce -----------------------------------------------------------------------------

authority = salesforce_sync.authority  # the module's CA, shared with the Salesforce sync tests


@pytest.fixture
def make_org(authority, tmp_path: Path) -> Iterator[Any]:
    """``make_org(records)``: a seeded sandbox org over HTTPS and a config for it."""
    with contextlib.ExitStack() as stack:
        yield lambda records, **options: stack.enter_context(salesforce_sync.start_org(authority, tmp_path, records, **options))



def test_a_salesforce_write_refused_for_permission_fails_those_writes_not_the_run(make_org):
    org = make_org(450)
    org.fault(method="POST", path="/services/data/v59.0/composite", status=403, times=100,
              body=[{"errorCode": "INSUFFICIENT_ACCESS", "message": "insufficient access rights on object id"}])

    report = org.run()

    assert report.exit_code == 1 and report.status == "partial"
    rows = org.rows("select state, last_error from outbox")
    assert rows and {r["state"] for r in rows} == {"failed"}
    assert rows[0]["last_error"].startswith("Salesforce: updating Case records needs Edit access to Case and its written "
                                            "fields for the integration user (INSUFFICIENT_ACCESS: insufficient access")
    written = org.one("select count(distinct request) from outbox")
    assert org.calls()[salesforce_sync.COMPOSITE] == math.ceil(written / 25)


def test_check_online_reports_what_salesforce_describe_says_the_user_may_update(make_org):
    org = make_org(50)

    result = CliRunner().invoke(main, ["check", "--config", str(org.config_path), "--online", "--json"], env=org.env)

    assert result.exit_code == 0, result.output
    permissions = {p["name"]: p["granted"] for p in json.loads(result.output)["permissions"]["salesforce"]}
    assert permissions == {"Case queryable": True, "Case updateable": True, "Case.Release__c updateable": True,
                           "Case.Status updateable": True, "Case.Planned_Deploy_Date__c updateable": True,
                           "Case.Release_Phase__c updateable": True}


def test_check_online_names_a_phase_the_salesforce_picklist_cannot_take(make_org):
    # The admin maps the testing phase to "QA", a value the Release Phase picklist (restricted)
    # does not have: every write of it would be refused, so check says so first.
    org = make_org(20)
    data = yaml.safe_load(org.config_path.read_text())
    data["sources"]["salesforce"]["write"]["phase"]["map"]["testing"] = "QA"
    org.config_path.write_text(yaml.safe_dump(data, sort_keys=False))

    result = CliRunner().invoke(main, ["check", "--config", str(org.config_path), "--online", "--json"], env=org.env)

    assert result.exit_code == 2, result.output
    assert json.loads(result.output)["problems"]["salesforce"] == [
        "write.phase: Release_Phase__c has no value 'QA' (relsync writes it for a phase of the configured trains); "
        "add it to the field's values, or map the phase to one of them in write.phase.map"]
