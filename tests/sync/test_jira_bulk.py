"""Jira write-back through bulk jobs: 1,000 issues into 3 releases and 2 statuses, against the sandbox.

The writes go through the outbox as a sync's push does (write-ahead journal, outcomes per
write); the API calls are the sandbox's own count.
"""
from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from config.schema import Config
from connectors.base import Write
from mapping import clock
from sandboxes import edits
from sync import engine, outbox
from sync.store import open_store
from tests.conftest import World, make_world

RECORDS = 1000
TARGETS = {"Open": "Rejected", "Approved": "Rejected", "Triage": "Approved", "Scheduled": "Approved"}
"""Where each issue's status goes: two target statuses, each reachable by a transition from these."""
LOCKED = ["OPS-7", "OPS-70", "OPS-700"]
NOT_ON_SCREEN = "Field 'fixVersions' cannot be set. It is not on the appropriate screen, or unknown."
JOBS = {"POST /rest/api/3/bulk/issues/fields": 3, "POST /rest/api/3/bulk/issues/transition": 2}
POLLS = "GET /rest/api/3/bulk/queue/{task_id}"


@pytest.fixture
def thousand(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path, records=RECORDS)


def with_threshold(config: Config, threshold: int, store: Path) -> Config:
    jira = config.sources["jira"].model_copy(update={"bulk_threshold": threshold})
    return config.model_copy(update={"sources": {**config.sources, "jira": jira}, "store": str(store)})


def knob(world: World, path: str, body: Any) -> None:
    requests.post(f"{world.jira_url}/_sandbox{path}", json=body, timeout=10).raise_for_status()


def push_planned(world: World, config: Config, records: int = RECORDS) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, int]]:
    """Pull every issue, then write a release to each (3 versions, in turn) and a status (2 targets) through the outbox."""
    db = open_store(config.store)
    try:
        sources = engine.build_sources(config, world.env, db=db)
        pulled = engine.pull_sources(db, sources, run_id=1)
        assert not pulled.failures and pulled.counts["jira"].pulled == records
        versions = [v.name for v in edits.jira_client(world.description).project_versions("OPS")][:3]
        rows = list(db.query("select key, release, source_status, source_version from change_requests order by key"))
        wanted = []
        for n, row in enumerate(rows):
            release = versions[n % 3] if versions[n % 3] != row["release"] else versions[(n + 1) % 3]
            wanted.append(outbox.Wanted(row["key"], "jira", "jira", "release", release, row["release"], row["source_version"]))
            if row["source_status"] in TARGETS:
                wanted.append(outbox.Wanted(row["key"], "jira", "jira", "status", TARGETS[row["source_status"]],
                                            row["source_status"], row["source_version"]))
        now = clock.stamp()
        with db.atomic():
            outbox.queue(db, wanted, run_id=1, now=now)
        pending = db.query("select o.field, o.value, o.base, r.native_id, r.native_key from outbox o "
                           "join change_requests r on r.key = o.request order by o.request, o.field")
        priced = sources["jira"].connector.estimate([Write(row["native_id"], row["native_key"], row["field"],
                                                           json.loads(row["value"]), json.loads(row["base"]))
                                                     for row in pending])
        world.reset_calls()
        counts = outbox.send(db, "jira", sources["jira"].connector.push, sources["jira"].mapping, run_id=1, now=now)
        calls = world.calls()
        done = list(db.query("select request, field, value, state, last_error from outbox order by request, field"))
    finally:
        db.close()
    return {"counts": counts, "versions": versions, "wanted": wanted, "priced": priced["by_kind"]}, done, calls


def shown_in_jira(world: World, keys: list[str]) -> dict[str, tuple[list[str], str]]:
    client = edits.jira_client(world.description)
    found = {}
    for start in range(0, len(keys), 100):
        chunk = keys[start : start + 100]
        issues = client.enhanced_search_issues(f"key in ({', '.join(chunk)})", maxResults=100, fields="fixVersions,status")
        found |= {i.key: ([v.name for v in i.fields.fixVersions], i.fields.status.name) for i in issues}
    return found


def check_outcome(world: World, done: list[dict[str, Any]], wanted: list[outbox.Wanted]) -> None:
    """Every write done but the locked issues' releases, failed with Jira's reason; Jira shows every value written."""
    failed = {(r["request"], r["field"]): (r["state"], r["last_error"]) for r in done if r["state"] != "done"}
    assert set(failed) == {(f"jira:{key}", "release") for key in LOCKED}
    assert all(state == "failed" and NOT_ON_SCREEN in error for state, error in failed.values()), failed
    assert len(done) == len(wanted)
    knob(world, "/jira/config", {"index_lag_seconds": 0})
    shown = shown_in_jira(world, [w.request.split(":", 1)[1] for w in wanted])
    for w in wanted:
        key = w.request.split(":", 1)[1]
        releases, status = shown[key]
        if w.field == "release":
            assert (releases[:1] == [w.value]) == (key not in LOCKED), key
        else:
            assert status == w.value, key


def test_a_thousand_issues_go_out_in_five_bulk_jobs_and_a_refused_issue_fails_alone(thousand, tmp_path):
    world = thousand
    knob(world, "/jira/lock-issues", {"issues": LOCKED})  # read-only statuses: Jira refuses their edits
    config = with_threshold(world.config, 10, tmp_path / "bulk.db")

    planned, done, calls = push_planned(world, config)

    wanted = planned["wanted"]
    releases = {w.value for w in wanted if w.field == "release"}
    statuses = {w.value for w in wanted if w.field == "status"}
    assert len(releases) == 3 and len(statuses) == 2
    assert len({w.request for w in wanted}) == RECORDS  # every issue gets a release
    # ceil(1000/1000) x (3 + 2) jobs, each polled until done (the sandbox's jobs finish at the third poll).
    assert {kind: calls.get(kind, 0) for kind in JOBS} == JOBS
    assert calls[POLLS] == 5 * 3
    # Before: one compare read per 100 issues and the transitions on offer once per status left
    # behind; after: the changelog of the issues written, 1,000 a call.
    assert calls["POST /rest/api/3/issue/bulkfetch"] == math.ceil(RECORDS / 100)
    assert calls["GET /rest/api/3/bulk/issues/transition"] == len({w.base for w in wanted if w.field == "status"})
    assert calls["POST /rest/api/3/changelog/bulkfetch"] >= 1
    assert not any(kind.startswith("PUT /rest/api/3/issue/") or kind.endswith("/transitions") for kind in calls)
    # relsync plan priced exactly these jobs, polls and lookups.
    priced = planned["priced"]
    assert priced["bulk jobs"] == sum(JOBS.values()) and priced["bulk job polls (expected)"] == calls[POLLS]
    assert priced["bulk transition lookups"] == calls["GET /rest/api/3/bulk/issues/transition"]
    assert priced["compare reads (bulkfetch)"] == calls["POST /rest/api/3/issue/bulkfetch"]
    assert priced["issue edits (PUT)"] == priced["transitions (POST)"] == 0
    assert planned["counts"].failed == len(LOCKED) and planned["counts"].written == len(wanted) - len(LOCKED)
    check_outcome(world, done, wanted)
    assert {r["last_error"] for r in done if r["state"] == "failed"} == {f"{key}: {NOT_ON_SCREEN}" for key in LOCKED}


def test_the_same_writes_issue_by_issue_below_the_threshold(thousand, tmp_path):
    world = thousand
    knob(world, "/jira/lock-issues", {"issues": LOCKED})
    config = with_threshold(world.config, 2 * RECORDS, tmp_path / "single.db")

    planned, done, calls = push_planned(world, config)

    wanted = planned["wanted"]
    assert not any("/bulk/" in kind for kind in calls)
    assert calls["PUT /rest/api/3/issue/{key}"] == sum(1 for w in wanted if w.field == "release")
    assert calls["POST /rest/api/3/issue/{key}/transitions"] == sum(1 for w in wanted if w.field == "status")
    assert planned["priced"]["bulk jobs"] == 0 and planned["priced"]["issue edits (PUT)"] == calls["PUT /rest/api/3/issue/{key}"]
    check_outcome(world, done, wanted)


@pytest.fixture
def sixty(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path, records=60)


def test_every_write_of_a_job_is_recorded_sending_before_the_job_is_submitted(sixty, tmp_path):
    world = sixty
    config = with_threshold(world.config, 5, tmp_path / "held.db")
    world.fault(method="POST", path="/rest/api/3/bulk/issues/fields", delay_seconds=2, times=1)
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(result=push_planned(world, config, 60)))
    thread.start()
    deadline = time.monotonic() + 60
    while not world.calls().get("POST /rest/api/3/issue/bulkfetch"):
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.02)
    time.sleep(0.5)  # the compare reads are done and the first job is held by the sandbox
    db = open_store(config.store)
    try:
        states = {row["state"]: row["n"] for row in db.query("select state, count(*) as n from outbox group by state")}
    finally:
        db.close()
    thread.join(timeout=120)
    planned, done, _ = outcome["result"]
    assert states == {"sending": len(planned["wanted"])}  # all of them, before any job went out
    assert {row["state"] for row in done} == {"done"}


def test_an_edit_between_the_read_and_a_bulk_job_is_put_back_not_overwritten(small_world):
    """The first bulk edit is held 2 s before Jira accepts it; meanwhile a person sets another fix
    version on one of its issues. The job overwrites it; the changelog read after the job shows
    whose value it replaced: theirs is put back, and that write is a conflict."""
    world = small_world
    world.with_jira(bulk_threshold=3)
    world.fault(method="POST", path="/rest/api/3/bulk/issues/fields", delay_seconds=2, times=1)
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(report=engine.run(world.config, env=world.env)))
    thread.start()
    deadline = time.monotonic() + 60
    while not world.calls().get("POST /rest/api/3/bulk/issues/fields"):
        assert time.monotonic() < deadline and thread.is_alive(), "no bulk edit went out"
        time.sleep(0.02)
    db = open_store(world.config.store)
    try:
        sending = [r["request"] for r in db.query(
            "select request from outbox where field = 'release' and state = 'sending' order by request")]
    finally:
        db.close()
    victim = sending[-1].split(":", 1)[1]
    client = edits.jira_client(world.description)
    client.issue(victim, fields="fixVersions").update(fields={"fixVersions": [{"name": "2026.11"}]})
    thread.join(timeout=120)

    report = outcome["report"]
    assert report.pushed["jira"]["conflicts"] >= 1, report.messages
    assert [v.name for v in client.issue(victim, fields="fixVersions").fields.fixVersions] == ["2026.11"]
    db = open_store(world.config.store)
    try:
        row = next(iter(db.query("select state, last_error from outbox where request = ? and field = 'release'",
                                 [f"jira:{victim}"])))
    finally:
        db.close()
    assert row["state"] == "conflict" and "their value was put back" in row["last_error"]
    assert world.calls()["POST /rest/api/3/bulk/issues/fields"] >= 1
