"""kill -9, as cron and the OOM killer deliver it: the store a crashed sync resumes into equals a clean one.

Two identical worlds (three sandboxes each, the same seed). One syncs cleanly. The
other is killed with SIGKILL at 20 points of the same sync and then allowed to finish:
ten while the pull, the plan or the writes are under way, ten right after a write has
reached a sandbox (the sandbox applied it and holds the answer back). After the crashed
world finishes, its requests, releases and assignments (with their pinned flag) equal
the clean world's; no audit event says a source made a change relsync made; and its
write calls exceed the clean world's by at most one batch per kill.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from relsync.demo import sandbox_config
from sandboxes import edits
from sandboxes.server import start_sandboxes
from sync.store import open_database

RELSYNC = [sys.executable, "-m", "relsync"]
RECORDS = 700  # per system: a 2,100-record sync
SEED = 5
WRITES = {
    "jira": ("POST /rest/api/3/version", "PUT /rest/api/3/issue/{key}", "POST /rest/api/3/issue/{key}/transitions"),
    "airtable": ("PATCH /v0/{base_id}/{table}",),
    "salesforce": ("POST /services/data/v{version}/composite",),
}
BATCH_CALLS = 2
"""The most write calls one batch makes: a Jira issue's PUT and transition (Airtable and Salesforce: 1)."""


@dataclass
class World:
    """Three running sandboxes, a config for them, and the environment holding their secrets."""

    urls: dict[str, str]
    config: Path
    env: dict[str, str]

    def verify(self, system: str) -> str | bool:
        return str(self.config.parent / "salesforce-sandbox-ca.pem") if system == "salesforce" else True

    def get(self, system: str, path: str) -> Any:
        return requests.get(self.urls[system] + path, timeout=10, verify=self.verify(system)).json()

    def post(self, system: str, path: str, body: Any = None) -> None:
        requests.post(self.urls[system] + path, json=body, timeout=10, verify=self.verify(system)).raise_for_status()

    def clear_faults(self) -> None:
        for system, url in self.urls.items():
            requests.delete(url + "/_sandbox/faults", timeout=10, verify=self.verify(system)).raise_for_status()

    def calls(self, system: str) -> dict[str, int]:
        return self.get(system, "/_sandbox/calls")["calls"]

    def writes(self) -> int:
        return sum(n for system, kinds in WRITES.items() for kind, n in self.calls(system).items() if kind in kinds)

    def start(self) -> subprocess.Popen[str]:
        return subprocess.Popen([*RELSYNC, "sync", "--config", str(self.config)], env=os.environ | self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def sync(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*RELSYNC, "sync", "--config", str(self.config)], env=os.environ | self.env,
                              capture_output=True, text=True, timeout=300)


@contextmanager
def world(folder: Path, records: int = RECORDS) -> Iterator[World]:
    folder.mkdir()
    with start_sandboxes(records=records, seed=SEED, systems=("jira", "airtable", "salesforce")) as boxes:
        description = boxes.describe()
        edits.jira_grant(description, "ADMINISTER_PROJECTS")  # relsync creates the release versions
        config = sandbox_config(description, folder / "relsync.db", folder)
        for train in config["trains"]:
            train["capacity"] = 150  # room for most approved requests: many writes to be killed among
        config["sources"]["jira"]["bulk_threshold"] = 100_000  # Jira issue by issue: many single writes to be killed among
        path = folder / "relsync.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        env = {k: v for box in description.values() for k, v in box["env"].items()}
        yield World({system: box["url"] for system, box in description.items()}, path, env)


def kill_when(process: subprocess.Popen[str], ready: Callable[[], bool], what: str) -> None:
    """SIGKILL ``process`` as soon as ``ready()``; the sync must still be running then."""
    deadline = time.monotonic() + 120
    while not ready():
        assert process.poll() is None, f"the sync ended before {what}: {process.communicate()}"
        assert time.monotonic() < deadline, f"never reached {what}"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL, what


def counter(w: World, system: str, kind: str, more: int) -> Callable[[], bool]:
    """Ready once this attempt has made ``more`` calls of ``kind``."""
    before = w.calls(system).get(kind, 0)
    return lambda: w.calls(system).get(kind, 0) >= before + more


def held(w: World, system: str, method: str, path: str) -> Callable[[], bool]:
    """Arm a rule that applies the next matching write and holds its answer; ready once one is held."""
    before = w.get(system, "/_sandbox/faults")["held"]
    w.post(system, "/_sandbox/faults", {"method": method, "path": path, "hold_seconds": 10, "times": 1})
    return lambda: w.get(system, "/_sandbox/faults")["held"] > before


def snapshot(config: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    db = open_database(yaml.safe_load(config.read_text())["store"], env=env)
    try:
        return {
            "requests": list(db.query(
                "select key, title, type, department, priority, status, source_status, release, deleted_at is null as live "
                "from change_requests order by key")),
            "releases": list(db.query("select name, train, deploy_at, freeze_at, capacity, state from releases order by name")),
            "assignments": list(db.query(
                "select a.request, r.name, a.pinned, a.assigned_by from assignments a join releases r on r.id = a.release "
                "order by a.request")),
            "pushed": sorted(json.dumps([e["request"], e["field"], e["new"]]) for e in db.query(
                "select request, field, new from audit where origin = 'pushed'")),
            "pulled_engine_fields": [dict(e) for e in db.query(
                "select a.request, a.field, a.old, a.new, a.actor, a.run, o.state, o.value, o.base, o.sent_at from audit a "
                "left join outbox o on o.request = a.request and o.field = a.field "
                "where a.origin = 'pulled' and a.field in ('release', 'status', 'source_status')")],
            "open_outbox": db.execute("select count(*) from outbox where state not in ('done', 'superseded')").fetchone()[0],
        }
    finally:
        db.close()


@pytest.mark.slow
def test_twenty_kills_leave_the_store_a_clean_run_leaves(tmp_path):
    with world(tmp_path / "clean") as clean:
        first = clean.sync()
        assert first.returncode == 0, first.stdout + first.stderr
        assert clean.sync().returncode == 0
        expected = snapshot(clean.config)
        clean_writes = clean.writes()

    assert len(expected["assignments"]) > 250 and expected["open_outbox"] == 0
    assert expected["pulled_engine_fields"] == []  # nobody but relsync touched the engine's fields

    with world(tmp_path / "crashed") as crashed:
        jira_search, airtable_list = "GET /rest/api/3/search/jql", "GET /v0/{base_id}/{table}"
        salesforce_query = "GET /services/data/v{version}/queryAll/"
        jira_put, jira_move = "PUT /rest/api/3/issue/{key}", "POST /rest/api/3/issue/{key}/transitions"
        kills: list[tuple[str, Callable[[World], Callable[[], bool]]]] = [
            ("the second Jira search page", lambda w: counter(w, "jira", jira_search, 2)),
            ("the third Airtable page", lambda w: counter(w, "airtable", airtable_list, 3)),
            ("the first Salesforce query", lambda w: counter(w, "salesforce", salesforce_query, 1)),
            ("a held Jira version create", lambda w: held(w, "jira", "POST", "/rest/api/3/version")),
            ("a held Jira edit", lambda w: held(w, "jira", "PUT", "/rest/api/3/issue/*")),
            ("a held Jira transition", lambda w: held(w, "jira", "POST", "/rest/api/3/issue/*/transitions")),
            ("the 20th Jira edit", lambda w: counter(w, "jira", jira_put, 20)),
            ("a held Jira edit", lambda w: held(w, "jira", "PUT", "/rest/api/3/issue/*")),
            ("the 25th Jira transition", lambda w: counter(w, "jira", jira_move, 25)),
            ("a held Jira transition", lambda w: held(w, "jira", "POST", "/rest/api/3/issue/*/transitions")),
            ("the 40th Jira edit", lambda w: counter(w, "jira", jira_put, 40)),
            ("a held Jira edit", lambda w: held(w, "jira", "PUT", "/rest/api/3/issue/*")),
            ("the 60th Jira transition", lambda w: counter(w, "jira", jira_move, 60)),
            ("a held Airtable batch", lambda w: held(w, "airtable", "PATCH", "/v0/*")),
            ("the 3rd Airtable batch", lambda w: counter(w, "airtable", "PATCH /v0/{base_id}/{table}", 3)),
            ("a held Airtable batch", lambda w: held(w, "airtable", "PATCH", "/v0/*")),
            ("the 5th Airtable batch", lambda w: counter(w, "airtable", "PATCH /v0/{base_id}/{table}", 5)),
            ("a held Airtable batch", lambda w: held(w, "airtable", "PATCH", "/v0/*")),
            ("a held Salesforce composite", lambda w: held(w, "salesforce", "POST", "/services/data/*/composite")),
            ("the 1st Salesforce composite", lambda w: counter(w, "salesforce", WRITES["salesforce"][0], 1)),
        ]
        assert len(kills) == 20 and sum("held" in what for what, _ in kills) == 10
        for what, arm in kills:
            ready = arm(crashed)
            kill_when(crashed.start(), ready, what)
            crashed.clear_faults()
            time.sleep(1)  # cron starts the next run later; Airtable counts requests per base over one second
        finished = crashed.sync()
        assert finished.returncode == 0, finished.stdout + finished.stderr
        assert crashed.sync().returncode == 0
        got = snapshot(crashed.config)
        crashed_writes = crashed.writes()

    assert got["requests"] == expected["requests"]
    assert got["releases"] == expected["releases"]
    assert got["assignments"] == expected["assignments"]
    assert got["pulled_engine_fields"] == [], f"an audit event says a source changed what relsync wrote: {got['pulled_engine_fields']}"
    assert got["pushed"] == expected["pushed"]
    assert got["open_outbox"] == 0
    assert clean_writes > 0 and crashed_writes - clean_writes <= BATCH_CALLS * len(kills), (crashed_writes, clean_writes)
