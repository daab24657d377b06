"""SIGTERM or SIGINT stops a sync at its next safe point: what it has is stored, the run says `interrupted`, exit 4."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from sync.store import open_store

RELSYNC = [sys.executable, "-m", "relsync"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_run_at_a_safe_point_and_records_it(world, signum):
    # Every search page is slow, so the signal arrives while the pull is under way.
    world.fault(method="GET", path="/rest/api/3/search/jql", delay_seconds=0.5, times=100)
    process = subprocess.Popen([*RELSYNC, "sync", "--config", str(world.config_path), "--json"],
                               env=os.environ | world.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while world.calls().get("GET /rest/api/3/search/jql", 0) < 1:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)

    assert process.returncode == 4, out + err
    report = json.loads(out)
    name = signal.Signals(signum).name
    assert report["status"] == "interrupted"
    assert any(m.startswith(f"interrupted ({name}) at a safe point; left for the next run: pulls of jira")
               for m in report["messages"]), report["messages"]
    db = open_store(world.config.store)
    try:
        run = next(iter(db.query("select status, exit_code from runs order by id desc limit 1")))
        stored = db.execute("select count(*) from change_requests").fetchone()[0]
    finally:
        db.close()
    assert run == {"status": "interrupted", "exit_code": 4}
    assert 0 < stored < 250  # the pages stored before the signal are kept
    requests.delete(f"{world.jira_url}/_sandbox/faults", timeout=10)
    again = subprocess.run([*RELSYNC, "sync", "--config", str(world.config_path)], env=os.environ | world.env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
