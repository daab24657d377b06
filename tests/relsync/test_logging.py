"""What relsync prints where: the live display on a terminal, one line under cron, logs for operators."""
from __future__ import annotations

import json
import logging
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from relsync import logs
from relsync.cli import SHOWN_PROBLEMS
from tests.conftest import make_world

RELSYNC = [sys.executable, "-m", "relsync"]


def run_piped(world, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``relsync ARGS`` as cron runs it: no terminal anywhere, stdout and stderr to pipes."""
    return subprocess.run([*RELSYNC, *args], env=os.environ | (world.env if env is None else env), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300)


def unmapped_status_config(world, tmp_path: Path) -> Path:
    """The world's config without the 'Approved' status: its issues are quarantined (a warning, exit 1)."""
    data = yaml.safe_load(world.config_path.read_text())
    data["sources"]["jira"]["fields"]["status"]["map"].pop("Approved")
    data["sources"]["jira"]["write"]["status"].pop("approved")  # relsync no longer writes it back either
    path = tmp_path / "unmapped.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.slow
def test_on_a_terminal_the_progress_display_is_drawn_and_redrawn_in_place(small_world):
    leader, follower = pty.openpty()
    env = os.environ | small_world.env | {"TERM": "xterm-256color", "COLUMNS": "100", "LINES": "40"}
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(name, None)
    process = subprocess.Popen([*RELSYNC, "sync", "--config", str(small_world.config_path)], env=env,
                               stdin=follower, stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    screen = bytearray()

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed with the process
                return
            if not chunk:
                return
            screen.extend(chunk)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    stdout, _ = process.communicate(timeout=300)
    reader.join(timeout=10)
    os.close(leader)
    shown = screen.decode("utf-8", "replace")

    assert process.returncode == 0, shown
    assert stdout.decode().startswith("run 1 ok: pulled jira 30 (30 new, 0 changed)")
    assert stdout.decode().count("\n") == 1
    # The table names the source, and each phase was shown as it ran.
    for seen in ("jira", "API calls", "pulling", "planning", "pushing", "done"):
        assert seen in shown, seen
    # Redrawn in place: the cursor goes back up over the table and erases its lines; not one line per page.
    assert "\x1b[1A" in shown and "\x1b[2K" in shown
    assert shown.count("relsync run 1") >= 3


@pytest.mark.slow
def test_under_cron_stdout_is_the_one_summary_line_and_stderr_the_warnings(world, tmp_path):
    result = run_piped(world, "sync", "--config", str(unmapped_status_config(world, tmp_path)))

    assert result.returncode == 1
    assert result.stdout.startswith("run 1 partial: pulled jira ")
    assert result.stdout.count("\n") == 1 and "quarantined" in result.stdout
    problems = result.stderr.splitlines()
    assert len(problems) == 6
    assert all(line.startswith("  quarantined jira:OPS-") for line in problems[:5])
    assert problems[5].startswith("  quarantined ") and problems[5].endswith("more (relsync status lists them)")
    assert "pulling" not in result.stderr and "\x1b[" not in result.stderr + result.stdout


@pytest.mark.slow
def test_many_refused_writes_print_twenty_lines_and_keep_the_rest_in_the_log_file(tmp_path):
    for world in make_world(tmp_path, records=250, admin=False):  # versions cannot be created: every release write fails
        log = tmp_path / "relsync.log"
        result = run_piped(world, "--log-file", str(log), "sync", "--config", str(world.config_path))

        assert result.returncode == 1
        problems = result.stderr.splitlines()
        failed = int(re.search(r", (\d+) failed", result.stdout).group(1))
        assert failed > SHOWN_PROBLEMS
        assert len(problems) == SHOWN_PROBLEMS + 1
        assert problems[-1].startswith(f"  and {failed - SHOWN_PROBLEMS} more (all of them: -v, --log-file")
        logged = log.read_text()
        assert logged.count("needs the Administer Projects permission") == failed


@pytest.mark.slow
def test_a_clean_run_under_cron_writes_nothing_to_stderr(small_world):
    result = run_piped(small_world, "sync", "--config", str(small_world.config_path))

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("run 1 ok: ") and result.stdout.count("\n") == 1
    assert result.stderr == ""


@pytest.mark.slow
def test_verbose_json_log_file_tells_pages_pushes_and_retries_with_the_run_id_and_no_secret(small_world, tmp_path):
    small_world.fault(method="GET", path="/rest/api/3/search/jql", status=503, times=1)
    log_file = tmp_path / "logs" / "relsync.log"

    result = run_piped(small_world, "-v", "--log-file", str(log_file), "--log-format", "json",
                       "sync", "--config", str(small_world.config_path))

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("run 1 ok: ") and result.stdout.count("\n") == 1
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    messages = [r["message"] for r in records]
    assert any(m.startswith("jira: page of 30 records stored") for m in messages), messages
    assert any(m.startswith("jira: pushed, ") for m in messages), messages
    retry = next(r for r in records if r["logger"] == "connectors.retry")
    assert retry["message"].startswith("jira: retry 1 after ") and "waiting" in retry["message"]
    assert {r["run_id"] for r in records if r["logger"].startswith("sync.")} == {"1"}
    assert all(r["time"].endswith("Z") and r["level"] in ("debug", "info", "warning", "error") for r in records)
    # -v tells the same lines on stderr, one JSON object each.
    assert [json.loads(line)["message"] for line in result.stderr.splitlines()] == messages
    token = small_world.env["RELSYNC_JIRA_TOKEN"]
    assert token not in log_file.read_text() and token not in result.stderr


def test_text_log_file_has_timestamps_and_run_id_and_masks_credentials_in_any_record(tmp_path):
    log_file = tmp_path / "relsync.log"
    os.environ["RELSYNC_TEST_TOKEN"] = "s3cr3t-t0ken-value"
    try:
        logs.setup(log_file=log_file)
        logs.track_run(type("Event", (), {"run_id": 7})())
        logger = logging.getLogger("connectors.jira")
        logger.info("sent %s", {"Authorization": "Basic dXNlcjpwYXNzd29yZA==", "Accept": "application/json"})
        logger.info("login with password=hunter2hunter and the token s3cr3t-t0ken-value")
        logger.warning("header Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig")
        logger.error("Jira refused basic authentication for relsync@example.com")
        logs.teardown()
    finally:
        del os.environ["RELSYNC_TEST_TOKEN"]
    text = log_file.read_text()

    lines = text.splitlines()
    assert len(lines) == 4
    assert all(" run=7 connectors.jira: " in line and line[:4].isdigit() for line in lines)
    for secret in ("dXNlcjpwYXNzd29yZA==", "hunter2hunter", "s3cr3t-t0ken-value", "eyJhbGciOiJIUzI1NiJ9"):
        assert secret not in text
    assert text.count("[redacted]") == 4
    assert "application/json" in text and "refused basic authentication for" in text  # the rest stays readable


@pytest.mark.slow
def test_quiet_prints_errors_only(world, tmp_path):
    warned = run_piped(world, "-q", "sync", "--config", str(unmapped_status_config(world, tmp_path)))

    assert warned.returncode == 1
    assert warned.stdout == "" and warned.stderr == ""

    env = world.env | {"RELSYNC_JIRA_TOKEN": ""}
    failed = run_piped(world, "-q", "sync", "--config", str(world.config_path), env=env)

    assert failed.returncode == 2
    assert failed.stdout == ""
    assert failed.stderr.count("\n") == 1 and "sources.jira.auth.token_env" in failed.stderr
