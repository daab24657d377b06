"""A host that cannot be reached fails its source at once, says why and where, and sync and check agree."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

RELSYNC = [sys.executable, "-m", "relsync"]


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(("url", "host", "cause"), [
    (None, "127.0.0.1", "connection refused"),
    ("http://jira.invalid", "jira.invalid", "the host name could not be resolved (DNS)"),
])
def test_an_unreachable_jira_fails_within_seconds_naming_host_and_cause(small_world, tmp_path: Path, url, host, cause):
    port = closed_port()
    data = yaml.safe_load(small_world.config_path.read_text())
    data["sources"]["jira"]["url"] = url or f"http://127.0.0.1:{port}"
    path = tmp_path / "unreachable.yaml"
    path.write_text(yaml.safe_dump(data))
    env = os.environ | small_world.env
    where = f"{host}:{port}" if url is None else host

    # No retries with backoff: a refused port or an unknown name fails at the first attempt,
    # well inside cron's patience (the timeout bounds the whole command).
    synced = subprocess.run([*RELSYNC, "sync", "--config", str(path)], env=env, capture_output=True, text=True,
                            timeout=10, stdin=subprocess.DEVNULL)
    checked = subprocess.run([*RELSYNC, "check", "--online", "--config", str(path)], env=env, capture_output=True,
                             text=True, timeout=10, stdin=subprocess.DEVNULL)

    message = f"jira: cannot connect to {where}: {cause}"
    assert synced.returncode == 1 and message in synced.stdout + synced.stderr, synced.stdout + synced.stderr
    assert checked.returncode == 1 and message in checked.stdout + checked.stderr, checked.stdout + checked.stderr
