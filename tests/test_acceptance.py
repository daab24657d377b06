"""The acceptance run, as an operator does it: `relsync sandbox` + `relsync sync`, all three systems.

API calls are read from each sandbox's own counter, per endpoint, and compared
with the minimum the performance model gives for each system.
"""
from __future__ import annotations

import json
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from sandboxes import edits
from sandboxes.seed import seed_requests
from sandboxes.server import SEED_OFFSETS

RELSYNC = [sys.executable, "-m", "relsync"]
RECORDS = 1000


@pytest.fixture
def served(tmp_path):
    """`relsync sandbox --records 1000 --write-config c.yaml` in a real subprocess."""
    config = tmp_path / "c.yaml"
    process = subprocess.Popen(
        [*RELSYNC, "sandbox", "--records", str(RECORDS), "--seed", "3", "--write-config", str(config)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        description = json.loads(process.stdout.readline())
        edits.jira_grant(description, "ADMINISTER_PROJECTS")  # the operator's Jira admin lets relsync create versions
        yield description, config
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


class Counters:
    """Each sandbox's call counter, read and reset over HTTP."""

    def __init__(self, description: dict, folder: Path) -> None:
        self.urls = {system: box["url"] for system, box in description.items() if system != "config"}
        self.verify = dict.fromkeys(self.urls, True) | {"salesforce": str(folder / "salesforce-sandbox-ca.pem")}

    def take(self) -> dict[str, dict[str, int]]:
        taken = {}
        for system, url in self.urls.items():
            taken[system] = requests.get(f"{url}/_sandbox/calls", timeout=10, verify=self.verify[system]).json()["calls"]
            requests.post(f"{url}/_sandbox/calls/reset", timeout=10, verify=self.verify[system])
        return taken


def sync(config: Path, env: dict[str, str]) -> dict:
    completed = subprocess.run(
        [*RELSYNC, "sync", "--config", str(config), "--json"],
        capture_output=True, text=True, env=os.environ | env, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr + completed.stdout
    return json.loads(completed.stdout)


def readme_cost_model() -> dict[str, int]:
    """The call counts the README's cost model states, read from its text, so the two cannot drift apart."""
    text = " ".join((Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8").split())
    found = {}
    patterns = {
        r"a pull of N records takes ceil\(N/(\d+)\) calls on Jira and Airtable and ceil\(N/(\d+)\) on Salesforce":
            ("pull_page", "salesforce_pull_page"),
        r"writing k records takes k PUTs \(plus a transition each\) on Jira, ceil\(k/(\d+)\) on Airtable and "
        r"ceil\(k/(\d+)\) on Salesforce": ("airtable_write_batch", "salesforce_write_batch"),
        r"a run in which nothing changed costs Jira (\d+) calls? .*?, Airtable (\d+) .*? and Salesforce (\d+)":
            ("noop_jira", "noop_airtable", "noop_salesforce"),
    }
    for pattern, names in patterns.items():
        match = re.search(pattern, text)
        assert match, f"the README no longer states: {pattern}"
        found.update(zip(names, map(int, match.groups()), strict=True))
    return found


def count(calls: dict[str, int], *parts: str) -> int:
    return sum(n for key, n in calls.items() if any(part in key for part in parts))


def writes(calls: dict[str, int]) -> int:
    return sum(n for key, n in calls.items() if key.startswith(("PUT", "POST", "PATCH")) and "search" not in key
               and "oauth2" not in key and "listRecords" not in key)


@pytest.mark.slow
def test_three_systems_initial_pull_no_op_and_edits(served, tmp_path):
    description, config = served
    assert description["config"] == str(config)
    env = {k: v for system, box in description.items() if system != "config" for k, v in box["env"].items()}
    counters = Counters(description, tmp_path)
    model = readme_cost_model()

    first = sync(config, env)
    calls = counters.take()
    for system in ("jira", "airtable", "salesforce"):
        assert first["pulled"][system]["pulled"] == RECORDS, system
        assert first["pushed"][system]["failed"] == 0, first["messages"]
    # Jira: ceil(N/100) pull searches + 2 setup calls (serverInfo, field list).
    assert first["pulled"]["jira"]["pages"] == math.ceil(RECORDS / model["pull_page"])
    assert count(calls["jira"], "GET /rest/api/3/serverInfo", "GET /rest/api/3/field") == 2
    # The push reads the issue store (bulkfetch) before writing, 100 issues a call; a value going to more than
    # bulk_threshold (10) issues goes out in bulk jobs of up to 1,000 issues, each polled until done (the sandbox's
    # jobs finish at the third poll); then the changelog of what was written, 1,000 issues a call.
    issues = sqlite3.connect(config.with_suffix(".db")).execute(
        "select count(distinct request) from outbox where source = 'jira'").fetchone()[0]
    jobs = count(calls["jira"], "POST /rest/api/3/bulk/issues/")
    assert jobs >= 2 and count(calls["jira"], "/bulk/queue/") == 3 * jobs
    assert count(calls["jira"], "PUT /rest/api/3/issue/", "/transitions") < issues  # fewer than one call an issue
    # ... and the history import reads the changelogs of all N issues: 1,000 issues a call, its pages.
    history = {system: first["history"][system]["calls"] for system in first["history"]}
    assert history["jira"] >= math.ceil(RECORDS / 1000) and history["airtable"] == 0
    assert count(calls["jira"], "issue/bulkfetch") == math.ceil(issues / 100)
    assert count(calls["jira"], "changelog/bulkfetch") >= math.ceil(issues / 1000) + history["jira"]
    # Airtable: ceil(N/100) list calls and no setup call; writes ceil(k/10) PATCHes.
    airtable_lists = count(calls["airtable"], "GET /v0/")
    airtable_records = first["pushed"]["airtable"]["written"] // 4  # release, status, planned date, phase per record
    batches = math.ceil(airtable_records / model["airtable_write_batch"])
    assert airtable_lists == math.ceil(RECORDS / model["pull_page"]) + batches  # + a compare read per PATCH
    assert count(calls["airtable"], "PATCH") == batches
    # Salesforce: ceil(N/2000) queries after one token call; writes ceil(k/25) Composite calls.
    sf_records = first["pushed"]["salesforce"]["written"] // 4
    assert count(calls["salesforce"], "oauth2/token") == 1
    assert count(calls["salesforce"], "/query") == (
        math.ceil(RECORDS / model["salesforce_pull_page"]) + 1 + history["salesforce"])  # + the check query
    composite = count(calls["salesforce"], "POST /services/data/v{version}/composite")
    assert composite == math.ceil(sf_records / model["salesforce_write_batch"])

    sync(config, env)  # relsync's own writes come back once, recognised, nothing written
    counters.take()
    quiet = sync(config, env)
    calls = counters.take()
    assert {system: c["written"] for system, c in quiet["pushed"].items()} == {"jira": 0, "airtable": 0, "salesforce": 0}
    # As the README's cost model says (Jira 1, Airtable 1, Salesforce 1, read from its text).
    noop = {system: model[f"noop_{system}"] for system in ("jira", "airtable", "salesforce")}
    assert {system: sum(c.values()) for system, c in calls.items()} == noop
    assert count(calls["jira"], "/search/jql") == 1 and count(calls["jira"], "GET /rest/api/3/serverInfo", "GET /rest/api/3/field") == 0
    assert writes(calls["jira"]) == 0
    assert sum(calls["airtable"].values()) == 1  # one list call with the modified field configured
    assert count(calls["salesforce"], "/query") == 1  # changes and soft deletes; no login, Get Deleted not due
    assert writes(calls["salesforce"]) == 0

    client = edits.jira_client(description)
    approved = client.enhanced_search_issues(
        'project = OPS AND status = Approved AND priority != Highest ORDER BY key ASC', maxResults=5, fields="priority"
    )
    assert len(approved) == 5
    for issue in approved:
        edits.jira_set_priority(client, issue.key, "Highest")
    edits.jira_wait_until_indexed(client, *(issue.key for issue in approved))  # Jira's search lags writes
    counters.take()
    after = sync(config, env)
    calls = counters.take()
    assert after["pulled"]["jira"]["changed"] == 5
    # Only what the plan changed is written: each request moved costs at most a PUT and a transition.
    moved = after["planned"]["assigned"] + after["planned"]["unassigned"]
    assert count(calls["jira"], "PUT /rest/api/3/issue/") <= moved
    status = subprocess.run(
        [*RELSYNC, "status", "--config", str(config), "--json"], capture_output=True, text=True, check=True
    )
    stored = json.loads(status.stdout)
    live = {"live": RECORDS, "deleted": 0, "quarantined": 0}
    assert stored["requests"]["by_source"] == {"jira": live, "airtable": live, "salesforce": live}
    assert_messy_records_mapped(config.with_suffix(".db"))
    for release in stored["releases"]:
        assert release["requests"] <= release["capacity"]
    # One plan over the three systems: a release mixes requests from all three.
    assert any(set(r["by_source"]) == {"jira", "airtable", "salesforce"} for r in stored["releases"])


def assert_messy_records_mapped(store: Path) -> None:
    """Every untidy seeded record was mapped by the shipped example config, as its comments say."""
    seeds = {system: seed_requests(RECORDS, 3 + SEED_OFFSETS[system]) for system in ("jira", "airtable", "salesforce")}
    db = sqlite3.connect(store)

    def keys(sql: str) -> set[str]:
        return {row[0] for row in db.execute(sql)}

    def numbers(system: str, predicate) -> set[int]:
        return {s.seq for s in seeds[system] if predicate(s)}

    title_absent = {row[0]: row[1] for row in db.execute(
        "select key, json_extract(raw, '$.fields.Title') is null from change_requests where source = 'airtable'")}
    untitled = keys("select key from change_requests where source = 'airtable' and title = '(no title)'")
    assert len(untitled) == sum(title_absent.values()) == len(numbers("airtable", lambda s: s.quirks.no_title)) > 0
    no_status = keys("select key from change_requests where source = 'airtable' and source_status is null")
    assert len(no_status) == len(numbers("airtable", lambda s: s.quirks.no_status)) > 0
    statuses = {row[0] for row in db.execute(
        f"select distinct status from change_requests where key in ({','.join('?' * len(no_status))})", sorted(no_status))}
    assert statuses == {"new"}
    subjectless = keys("select key from change_requests where source = 'salesforce' and title = '(no subject)'")
    assert len(subjectless) == len(numbers("salesforce", lambda s: s.quirks.no_title)) > 0
    standard = {row[0]: row[1] for row in db.execute(
        "select source_status, status from change_requests where source = 'salesforce' "
        "and source_status in ('Working', 'Escalated') group by source_status")}
    assert standard == {"Working": "in_progress", "Escalated": "in_progress"}
    collaborators = db.execute("select count(*) from change_requests where source = 'airtable' and requester is null").fetchone()
    assert collaborators == (0,)  # every Requester collaborator read by name
    joined = db.execute("select count(*) from change_requests where source = 'airtable' and type like '%, %'").fetchone()[0]
    assert joined == len(numbers("airtable", lambda s: s.quirks.extra_type))
    offsets = {row[0][-5:] for row in db.execute(
        "select json_extract(raw, '$.fields.created') from change_requests where source = 'jira'")}
    assert offsets and "+0000" not in offsets  # the integration account's profile zone, not UTC
    empty = db.execute("select count(*) from change_requests where source = 'jira' and description is null").fetchone()[0]
    assert empty == len(numbers("jira", lambda s: s.quirks.no_description)) > 0
    db.close()
