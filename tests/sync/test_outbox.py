"""Status from the release: what each request shows as its release moves, written forward only."""
from __future__ import annotations

import datetime as dt

import pytest
import requests
import yaml

from config.loader import load_config
from sandboxes import edits
from sync import engine
from sync.outbox import desired_status, release_stage
from sync.store import open_store

ALL = {"approved", "scheduled", "testing", "deployed"}


@pytest.mark.parametrize(
    ("status", "stage", "configured", "expected"),
    [
        ("approved", "scheduled", ALL, "scheduled"),
        ("approved", "testing", ALL, "testing"),
        ("in_progress", "testing", ALL, "testing"),
        ("in_progress", "scheduled", ALL, None),  # never moved back
        ("testing", "deployed", ALL, "deployed"),
        ("deployed", "testing", ALL, None),
        ("rejected", "deployed", ALL, None),
        ("closed", "testing", ALL, None),
        ("new", "scheduled", ALL, None),  # only approved requests become scheduled
        ("in_progress", "testing", {"scheduled"}, None),  # testing not configured: nothing to show
        ("approved", "deployed", {"scheduled"}, "scheduled"),
        ("scheduled", None, ALL, "approved"),  # left its release
        ("scheduled", None, {"scheduled"}, None),
    ],
)
def test_desired_status(status, stage, configured, expected):
    assert desired_status(status, stage, True, configured) == expected


@pytest.mark.parametrize(
    ("deploy_at", "now", "expected"),
    [
        ("2026-12-08T18:00:00.000Z", "2026-12-08T17:59:59.999Z", "testing"),
        ("2026-12-08T18:00:00.000Z", "2026-12-08T18:00:00.000Z", "deployed"),  # at the instant, not a second late
        ("2026-12-08T18:00:00.000Z", "2026-12-08T18:00:00.500Z", "deployed"),
        # Written to the second by an older relsync: as text, "...00Z" sorts after "...00.500Z".
        ("2026-12-08T18:00:00Z", "2026-12-08T18:00:00.500Z", "deployed"),
        ("2026-12-08T18:00:00Z", "2026-12-08T17:59:59.999Z", "testing"),
        ("2026-12-08T19:00:00.000+01:00", "2026-12-08T18:00:00.000Z", "deployed"),
    ],
)
def test_a_release_deploys_exactly_at_its_deploy_instant(deploy_at, now, expected):
    row = {"release_state": "frozen", "deploy_at": deploy_at, "testing_at": "2026-12-06T09:00:00.000Z"}
    assert release_stage(row, now) == expected


def test_release_testing_phase_moves_requests_through_the_jira_workflow(small_world, tmp_path):
    world = small_world
    data = yaml.safe_load(world.config_path.read_text())
    data["sources"]["jira"]["write"]["status"] = {"scheduled": "Scheduled", "testing": "In Testing"}
    path = tmp_path / "stages.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_config(path)
    engine.run(config, env=world.env)
    db = open_store(config.store)
    first = next(iter(db.query("select id from releases where train = 'business-systems' order by deploy_at limit 1")))["id"]
    testing_at = next(iter(db.query(
        "select starts from release_phases where release = ? and phase = 'testing'", [first])))["starts"]
    members = [r["request"] for r in db.query("select request from assignments where release = ? order by request", [first])]
    db.close()
    client = edits.jira_client(world.description)
    started = members[0].split(":", 1)[1]
    edits.jira_move_to(client, started, "In Progress")
    edits.jira_wait_for_search(client, f'key = "{started}" AND status = "In Progress"')  # Jira's index lags writes
    during_testing = dt.datetime.fromisoformat(testing_at.replace("Z", "+00:00")) + dt.timedelta(hours=1)

    report = engine.run(config, env=world.env, now=during_testing)

    # The started request moves to In Testing; the others have no Scheduled -> In Testing
    # transition in the workflow, which is reported, not forced.
    assert client.issue(started, fields="status").fields.status.name == "In Testing"
    for key in members[1:]:
        assert client.issue(key.split(":", 1)[1], fields="status").fields.status.name == "Scheduled"
    assert report.exit_code == 1
    assert any("no transition from 'Scheduled' to 'In Testing'" in m for m in report.messages)


def test_a_request_whose_status_write_was_lost_as_it_left_its_release_goes_back_to_approved(small_world, tmp_path):
    """relsync took the release off an issue but its status write did not land (refused here; a
    runner killed mid-push does the same). Jira then shows the Scheduled relsync wrote and no
    release: the next run still moves it back to Approved, as relsync's write, not a person's."""
    world = small_world
    engine.run(world.config, env=world.env)
    db = open_store(world.config.store)
    scheduled = {row["key"] for row in db.query(
        "select key from change_requests where source = 'jira' and source_status = 'Scheduled'")}
    db.close()
    assert scheduled
    # The release manager lowers every train's capacity to one: most planned requests leave their release.
    data = yaml.safe_load(world.config_path.read_text())
    for train in data["trains"]:
        train["capacity"] = 1
    path = tmp_path / "smaller.yaml"
    path.write_text(yaml.safe_dump(data))
    smaller = load_config(path)
    world.fault(method="POST", path="/rest/api/3/issue/*/transitions", status=403, times=1000)
    world.fault(method="POST", path="/rest/api/3/bulk/issues/transition", status=403, times=1000)
    engine.run(smaller, env=world.env)
    requests.delete(f"{world.jira_url}/_sandbox/faults", timeout=10).raise_for_status()
    client = edits.jira_client(world.description)
    stuck = [key for key in sorted(scheduled) if (issue := client.issue(key.split(":", 1)[1])).fields.status.name == "Scheduled"
             and not issue.fields.fixVersions]
    assert stuck  # released from their release, their status write refused

    engine.run(smaller, env=world.env)

    for key in stuck:
        issue = client.issue(key.split(":", 1)[1])
        assert (issue.fields.status.name, issue.fields.fixVersions) == ("Approved", [])
    db = open_store(world.config.store)
    moved_back = {row["request"]: row["actor"] for row in db.query(
        "select request, actor from audit where field = 'status' and new = '\"Approved\"' and origin = 'pushed'")}
    db.close()
    assert {key: moved_back.get(key) for key in stuck} == dict.fromkeys(stuck, "relsync")
