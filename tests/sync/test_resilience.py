"""A killed run loses nothing, secrets never reach messages, and credentials errors exit 2."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from click.testing import CliRunner

from relsync.cli import main
from sync import engine
from sync.store import open_store


def stored(world) -> tuple[int, str | None]:
    db = open_store(world.config.store)
    try:
        count = db.execute("select count(*) from change_requests").fetchone()[0]
        row = db.execute("select watermark from sync_state where source = 'jira'").fetchone()
        return count, row[0] if row else None
    finally:
        db.close()


@pytest.mark.slow
def test_a_killed_sync_resumes_from_its_last_stored_page(world):
    requests.post(f"{world.jira_url}/_sandbox/config", json={"latency_ms": 400}, timeout=10).raise_for_status()
    process = subprocess.Popen(
        [sys.executable, "-m", "relsync", "sync", "--config", str(world.config_path)],
        env=os.environ | world.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while stored(world)[0] < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    count, watermark = stored(world)
    assert 100 <= count < 250, "killed too late to prove anything"
    assert watermark is not None
    requests.post(f"{world.jira_url}/_sandbox/config", json={"latency_ms": 0}, timeout=10).raise_for_status()
    world.reset_calls()

    report = engine.run(world.config, env=world.env)

    assert report.exit_code == 0, report.messages
    assert stored(world)[0] == 250
    # It resumed from the watermark: fewer searches than a full pull would take.
    assert report.pulled["jira"]["pages"] < math.ceil(250 / 100)
    db = open_store(world.config.store)
    runs = list(db.query("select id, status, message from runs order by id"))
    db.close()
    assert runs[0]["status"] == "failed" and "ended before the run finished" in runs[0]["message"]
    assert runs[1]["status"] == "ok"


def test_a_wrong_token_exits_2_without_printing_the_token(world):
    env = dict(world.env, RELSYNC_JIRA_TOKEN="not-the-token-8f3a9c")

    result = CliRunner().invoke(main, ["sync", "--config", str(world.config_path)], env=env)

    assert result.exit_code == 2
    assert "jira: Client must be authenticated to access this resource." in result.output
    assert "check the credentials" in result.output
    assert "not-the-token-8f3a9c" not in result.output
    assert world.env["RELSYNC_JIRA_TOKEN"] not in result.output


def test_api_error_messages_and_the_store_hold_no_secrets(world):
    world.fault(method="PUT", path="/rest/api/3/issue/*", status=400,
                body={"errorMessages": [], "errors": {"fixVersions": "Version name 'x' is not valid"}}, times=1000)

    report = engine.run(world.config, env=world.env)

    assert report.exit_code == 1
    assert any("Version name 'x' is not valid" in m for m in report.messages)
    token = world.env["RELSYNC_JIRA_TOKEN"]
    assert all(token not in m for m in report.messages)
    with open(world.config.store, "rb") as handle:
        assert token.encode() not in handle.read()
