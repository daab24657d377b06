"""Jira end to end: the real jira client against a live sandbox, a real SQLite store."""
from __future__ import annotations

import math
import threading
import time

import pytest
import sqlite_utils

from mapping import clock
from sandboxes import edits
from sync import engine
from sync.store import open_database, open_store
from tests.conftest import make_world, store_location


def search_calls(calls: dict[str, int]) -> int:
    return sum(n for key, n in calls.items() if key.endswith("/rest/api/3/search/jql"))


def setup_calls(calls: dict[str, int]) -> int:
    return sum(n for key, n in calls.items() if key.endswith(("/serverInfo", "/field")))


def write_calls(calls: dict[str, int]) -> int:
    return sum(n for key, n in calls.items() if key.startswith(("PUT ", "POST ")) and "search" not in key
               and "bulkfetch" not in key)  # reads that POST their question


@pytest.fixture
def world(tmp_path, store_kind, request):
    """250 seeded Jira change requests and a fresh store: a SQLite file, then a PostgreSQL database."""
    yield from make_world(tmp_path, records=250, store=store_location(store_kind, tmp_path, request))


@pytest.fixture
def file_world(tmp_path):
    """250 seeded Jira change requests and a fresh SQLite store."""
    yield from make_world(tmp_path, records=250)


def rows(world, sql: str, params=()) -> list[dict]:
    db = open_database(world.config.store)
    try:
        return list(db.query(sql, params))
    finally:
        db.close()


def test_first_sync_pulls_every_request_over_several_pages(world):
    report = engine.run(world.config, env=world.env)

    assert report.exit_code == 0, report.messages
    assert report.pulled["jira"]["pulled"] == 250
    assert report.pulled["jira"]["pages"] == 3
    stored = rows(world, "select count(*) as n from change_requests where source = 'jira'")
    assert stored[0]["n"] == 250
    written = report.pushed["jira"]["written"]
    calls = world.calls()
    # The pull costs ceil(250/100) searches; the push reads the issue store (bulkfetch) once
    # per 100 issues before writing them, and their changelog once after.
    written_issues = len(rows(world, "select distinct request from outbox where state = 'done'"))
    assert search_calls(calls) == 3
    assert calls["POST /rest/api/3/issue/bulkfetch"] == math.ceil(written_issues / 100)
    # ... and the history import read the 250 issues' changelogs: one call (1,000 issues a call).
    assert report.history["jira"]["calls"] == 1
    assert calls["POST /rest/api/3/changelog/bulkfetch"] == math.ceil(written_issues / 100) + 1
    assert setup_calls(calls) <= 2
    assert written > 0


def test_no_op_run_costs_one_search_and_writes_nothing(world):
    engine.run(world.config, env=world.env)
    engine.run(world.config, env=world.env)  # pulls back relsync's own writes
    world.reset_calls()

    report = engine.run(world.config, env=world.env)

    calls = world.calls()
    assert report.exit_code == 0
    # Server info and the field list are kept in the store (metadata_cache_hours): one search, nothing else.
    assert calls == {"GET /rest/api/3/search/jql": 1}
    assert report.pushed["jira"]["written"] == 0


def test_relsync_recognises_its_own_writes_coming_back(world):
    engine.run(world.config, env=world.env)
    second = engine.run(world.config, env=world.env)

    assert second.pulled["jira"]["pulled"] > 0  # the issues it wrote to, re-read
    events = rows(world, "select count(*) as n from audit where run = ? and origin = 'pulled'", [second.run_id])
    assert events[0]["n"] == 0
    assert second.pushed["jira"]["written"] == 0


def test_planned_release_and_status_are_visible_in_jira(world):
    engine.run(world.config, env=world.env)
    planned = rows(
        world,
        "select a.request, rel.name from assignments a join releases rel on rel.id = a.release order by a.request",
    )
    assert planned
    client = edits.jira_client(world.description)
    for row in planned[:10]:
        issue = client.issue(row["request"].split(":", 1)[1], fields="fixVersions,status")
        assert [v.name for v in issue.fields.fixVersions] == [row["name"]]
        assert issue.fields.status.name == "Scheduled"


def test_edits_in_jira_are_pulled_and_audited_on_the_next_run(world):
    engine.run(world.config, env=world.env)
    engine.run(world.config, env=world.env)
    client = edits.jira_client(world.description)
    keys = [f"OPS-{n}" for n in (3, 17, 40, 99, 201)]
    for key in keys:
        client.issue(key, fields="summary").update(fields={"summary": f"Edited: {key} needs a new picklist value"})
    for key in keys:  # as anyone would, wait until Jira's search shows the edits
        edits.jira_wait_for_search(client, f'key = "{key}" AND summary ~ "Edited"')
    world.reset_calls()

    report = engine.run(world.config, env=world.env)

    assert report.exit_code == 0
    assert report.pulled["jira"]["changed"] == 5
    titles = rows(world, f"select key, title from change_requests where key in ({', '.join('?' * len(keys))})",
                  [f"jira:{k}" for k in keys])
    assert {r["title"] for r in titles} == {f"Edited: {k} needs a new picklist value" for k in keys}
    audited = rows(world, "select request from audit where run = ? and field = 'title' and origin = 'pulled'",
                   [report.run_id])
    assert sorted(r["request"] for r in audited) == sorted(f"jira:{k}" for k in keys)
    assert write_calls(world.calls()) == 0  # a title edit changes no plan


def test_edit_between_pull_and_push_is_a_conflict_not_an_overwrite(world):
    db = open_database(world.config.store)
    sources = engine.build_sources(world.config, world.env)
    run_id = 1
    engine.pull_sources(db, sources, run_id=run_id)
    engine.plan(db, world.config, run_id=run_id, now=clock.now())
    victim = next(iter(db.query("select request from assignments order by request limit 1")))["request"]
    key = victim.split(":", 1)[1]
    client = edits.jira_client(world.description)
    client.transition_issue(key, _transition_to(client, key, "Rejected"))

    pushed = engine.push_writebacks(db, sources, run_id=run_id)

    assert pushed["jira"].conflicts >= 1
    states = {r["field"]: r["state"] for r in db.query("select field, state from outbox where request = ?", [victim])}
    assert states["status"] == "conflict"
    assert client.issue(key, fields="status").fields.status.name == "Rejected"
    db.close()


def _transition_to(client, key: str, status: str) -> str:
    return next(str(t["id"]) for t in client.transitions(key) if t["to"]["name"] == status)


def test_server_errors_and_rate_limits_are_retried(world):
    world.fault(method="GET", path="/rest/api/3/search/jql", status=503, times=2)
    world.fault(method="GET", path="/rest/api/3/search/jql", status=429, times=1, headers={"Retry-After": "1"})

    report = engine.run(world.config, env=world.env)

    assert report.exit_code == 0, report.messages
    assert report.pulled["jira"]["pulled"] == 250


def test_a_refused_query_is_reported_with_jiras_message(world, tmp_path):
    config = world.config.model_copy(
        update={"sources": {"jira": world.config.sources["jira"].model_copy(update={"jql": "releaseTrain = \"BS\""})}}
    )

    report = engine.run(config, env=world.env)

    assert report.exit_code == 1
    assert report.status == "failed"
    assert any("Field 'releaseTrain' does not exist" in m for m in report.messages), report.messages


def test_audit_chain_verifies_and_detects_tampering(file_world):
    from sync.audit import verify_chain

    world = file_world
    engine.run(world.config, env=world.env)
    db = open_store(world.config.store)
    assert verify_chain(db).ok
    db.executescript("drop trigger if exists audit_no_update; drop trigger if exists audit_no_delete;")
    triggers = [r["name"] for r in db.query("select name from sqlite_master where type = 'trigger'")]
    for name in triggers:
        db.execute(f"drop trigger {name}")
    db.execute("update audit set new = '\"tampered\"' where id = 5")
    db.conn.commit()
    report = verify_chain(db)
    db.close()
    assert not report.ok
    assert report.first_bad_id == 5


def test_store_file_is_private(file_world):
    world = file_world
    engine.run(world.config, env=world.env)
    import os
    import stat

    assert stat.S_IMODE(os.stat(world.config.store).st_mode) == 0o600
    assert sqlite_utils.Database(world.config.store).journal_mode == "wal"


def test_an_issue_deleted_before_the_push_fails_alone(world):
    db = open_database(world.config.store)
    sources = engine.build_sources(world.config, world.env)
    engine.pull_sources(db, sources, run_id=1)
    engine.plan(db, world.config, run_id=1, now=clock.now())
    planned = [r["request"] for r in db.query("select request from assignments order by request")]
    gone = planned[0].split(":", 1)[1]
    edits.jira_client(world.description).issue(gone).delete()

    pushed = engine.push_writebacks(db, sources, run_id=1)

    states = {(r["request"], r["state"]) for r in db.query("select request, state from outbox")}
    assert (planned[0], "failed") in states
    assert pushed["jira"].written == 4 * (len(planned) - 1)  # release, status, planned date, phase
    db.close()


def test_an_issue_deleted_in_jira_is_marked_deleted_when_reconcile_is_due(world, tmp_path):
    import yaml

    from config.loader import load_config

    data = yaml.safe_load(world.config_path.read_text())
    data["sources"]["jira"]["reconcile_every_hours"] = 0
    path = tmp_path / "reconcile.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_config(path)
    engine.run(config, env=world.env)  # first run: nothing known before it, no listing
    client = edits.jira_client(world.description)
    client.issue("OPS-7").delete()
    listed = lambda: {i["key"] for i in client.enhanced_search_issues("project = OPS", maxResults=5000, fields=["key"],  # noqa: E731
                                                                      json_result=True)["issues"]}
    wait_for(lambda: "OPS-7" not in listed(), "Jira's search without OPS-7")
    world.reset_calls()

    report = engine.run(config, env=world.env)

    assert report.pulled["jira"]["deleted"] == 1
    calls = world.calls()
    assert search_calls(calls) == 1 + 1  # the incremental pull + one id listing (250 ids fit in one page)
    row = rows(world, "select deleted_at from change_requests where key = 'jira:OPS-7'")
    assert row[0]["deleted_at"] is not None
    events = rows(world, "select field from audit where request = 'jira:OPS-7' and run = ?", [report.run_id])
    assert {"field": "deleted_at"} in events
    assert rows(world, "select count(*) as n from change_requests")[0]["n"] == 250  # kept, not removed


def test_a_person_moving_a_request_to_another_release_in_jira_is_kept_as_a_pin(world):
    engine.run(world.config, env=world.env)
    plan = rows(world, "select a.request, rel.name, rel.id from assignments a join releases rel on rel.id = a.release "
                       "where rel.train = 'business-systems' order by rel.deploy_at, a.request")
    first, last = plan[0], plan[-1]
    assert first["name"] != last["name"]
    key = first["request"].split(":", 1)[1]
    client = edits.jira_client(world.description)
    client.issue(key, fields="fixVersions").update(fields={"fixVersions": [{"name": last["name"]}]})
    edits.jira_wait_for_search(client, f'key = "{key}" AND fixVersion = "{last["name"]}"')

    report = engine.run(world.config, env=world.env)

    assert report.exit_code == 0, report.messages
    pinned = rows(world, "select release, pinned, assigned_by from assignments where request = ?", [first["request"]])
    assert pinned == [{"release": last["id"], "pinned": 1, "assigned_by": "jira"}]
    assert [v.name for v in client.issue(key, fields="fixVersions").fields.fixVersions] == [last["name"]]
    again = engine.run(world.config, env=world.env)
    assert again.pushed["jira"]["written"] == 0


def run_in_background(world) -> tuple[threading.Thread, dict]:
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(report=engine.run(world.config, env=world.env)))
    thread.start()
    return thread, outcome


def wait_for(ready, what: str) -> None:
    deadline = time.monotonic() + 60
    while not ready():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.02)


def test_an_edit_between_the_read_and_the_write_is_put_back_not_overwritten(small_world):
    """Jira has no conditional writes. The first edit relsync sends is held 2 s before Jira
    applies it; meanwhile a person sets another fix version on an issue relsync has already
    read but not yet written. The changelog shows relsync's write replaced their value: it
    is put back, and the write is a conflict."""
    world = small_world
    world.issue_by_issue()  # the bulk path's version is in test_jira_bulk.py
    world.fault(method="PUT", path="/rest/api/3/issue/*", delay_seconds=2, times=1)
    thread, outcome = run_in_background(world)
    wait_for(lambda: world.calls().get("PUT /rest/api/3/issue/{key}", 0) >= 1, "the first edit")
    waiting = rows(world, "select request from outbox where field = 'release' and state = 'pending' order by request")
    assert waiting, "every release write already went out"
    victim = waiting[-1]["request"]
    key = victim.split(":", 1)[1]
    client = edits.jira_client(world.description)
    client.issue(key, fields="fixVersions").update(fields={"fixVersions": [{"name": "2026.11"}]})
    thread.join(timeout=120)

    report = outcome["report"]
    assert report.exit_code == 1 and report.pushed["jira"]["conflicts"] >= 1, report.messages
    assert [v.name for v in client.issue(key, fields="fixVersions").fields.fixVersions] == ["2026.11"]
    row = rows(world, "select state, last_error from outbox where request = ? and field = 'release'", [victim])[0]
    assert row["state"] == "conflict"
    assert "changed in Jira to '2026.11' between relsync's read and its write" in row["last_error"]
    assert "their value was put back" in row["last_error"]
    assert any("their value was put back" in m for m in report.messages)
    # The next run, once Jira's search shows it, pulls the person's value as theirs.
    edits.jira_wait_until_indexed(client, key)
    engine.run(world.config, env=world.env)
    pulled = rows(world, "select actor, new from audit where request = ? and field = 'release' and origin = 'pulled'", [victim])
    assert pulled[-1] == {"actor": "jira", "new": '"2026.11"'}
