"""The issue's acceptance run, as an operator would do it: `relsync sandbox` + `relsync sync`."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys

import pytest
import requests

from connectors.sandbox import edits

RELSYNC = [sys.executable, "-m", "sync"]


@pytest.fixture
def served(tmp_path):
    """`relsync sandbox --records 1000 --write-config c.yaml` in a real subprocess."""
    config = tmp_path / "c.yaml"
    process = subprocess.Popen(
        [*RELSYNC, "sandbox", "--records", "1000", "--seed", "3", "--write-config", str(config)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        description = json.loads(process.stdout.readline())
        yield description, config
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def sync(config, env) -> dict:
    completed = subprocess.run(
        [*RELSYNC, "sync", "--config", str(config), "--json"],
        capture_output=True, text=True, env=os.environ | env, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr + completed.stdout
    return json.loads(completed.stdout)


def calls(url: str) -> dict[str, int]:
    counted = requests.get(f"{url}/_sandbox/calls", timeout=10).json()["calls"]
    requests.post(f"{url}/_sandbox/calls/reset", timeout=10)
    return counted


def count(counted: dict[str, int], *suffixes: str) -> int:
    return sum(n for key, n in counted.items() if key.endswith(suffixes))


def writes(counted: dict[str, int]) -> int:
    return sum(n for key, n in counted.items() if key.startswith(("PUT", "POST")) and "search" not in key)


@pytest.mark.slow
def test_thousand_requests_then_a_no_op_run_then_five_edits(served, tmp_path):
    description, config = served
    jira = description["jira"]
    url, env = jira["url"], jira["env"]
    assert json.loads(json.dumps(description))["config"] == str(config)

    first = sync(config, env)
    counted = calls(url)
    assert first["pulled"]["jira"]["pulled"] == 1000
    # Pull searches: ceil(1000/100); the push adds one check search per 100 written issues.
    pull_searches = first["pulled"]["jira"]["pages"]
    assert pull_searches == math.ceil(1000 / 100)
    written_issues = first["planned"]["assigned"]
    assert count(counted, "/search/jql") == pull_searches + math.ceil(written_issues / 100)
    assert count(counted, "/serverInfo", "/field") <= 2

    sync(config, env)  # relsync's own writes come back once
    calls(url)
    quiet = sync(config, env)
    counted = calls(url)
    assert count(counted, "/search/jql") == 1
    assert count(counted, "/serverInfo", "/field") <= 2
    assert writes(counted) == 0
    assert quiet["pushed"]["jira"]["written"] == 0

    client = edits.jira_client(description)
    approved = client.enhanced_search_issues(
        'project = OPS AND status = Approved AND priority != Highest ORDER BY key ASC', maxResults=5, fields="priority"
    )
    assert len(approved) == 5
    for issue in approved:
        edits.jira_set_priority(client, issue.key, "Highest")
    calls(url)
    after = sync(config, env)
    counted = calls(url)
    assert after["pulled"]["jira"]["changed"] == 5
    # Only what the plan changed is written: each moved request costs its writes, no more.
    changed_writes = after["pushed"]["jira"]["written"]
    assert count(counted, "PUT /rest/api/3/issue/{issueIdOrKey}") <= changed_writes
    assert writes(counted) <= 2 * changed_writes + 4

    status = subprocess.run(
        [*RELSYNC, "status", "--config", str(config), "--json"], capture_output=True, text=True, check=True
    )
    stored = json.loads(status.stdout)
    assert stored["requests"]["by_source"] == {"jira": 1000}
    plan = stored["releases"]
    for release in plan:
        assert release["requests"] <= release["capacity"]
