"""No configured secret ever reaches output, a log line, the store or a cassette.

All three sandboxes run; every secret is set to a value this test knows, and runs go
wrong on purpose: refused credentials (401), server errors (500/503, retried and not),
refused writes, a missing variable, a secret pasted where a variable name belongs. Then
every output, every log record and every table of the store (and the raw database
files) are searched for every secret.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from click.testing import CliRunner, Result

from relsync.cli import main
from relsync.demo import write_config
from sandboxes import edits
from sandboxes.server import start_sandboxes

PROBES = {
    "RELSYNC_JIRA_TOKEN": "ATATT3xProbeJiraToken-7d1e",
    "RELSYNC_AIRTABLE_TOKEN": "patProbeAirtable1.0f9e8d7c6b5a49382716",
    "RELSYNC_SF_CLIENT_ID": "3MVG9ProbeClientId.4c5d6e",
    "RELSYNC_SF_CLIENT_SECRET": "ProbeClientSecret-1a2b3c4d",
}
"""Wrong secrets with recognisable values: every system refuses them."""


@dataclass
class Stack:
    """The three sandboxes, a config for them and the environment with their real secrets."""

    description: dict[str, Any]
    config_path: Path
    env: dict[str, str]

    @property
    def secrets(self) -> dict[str, str]:
        """Every configured secret (the Jira account's email is not one)."""
        return {name: value for name, value in self.env.items() if name != "RELSYNC_JIRA_EMAIL"}

    def store_files(self) -> list[Path]:
        store = self.config_path.with_suffix(".db")
        return [path for path in (store, Path(f"{store}-wal")) if path.exists()]

    def fault(self, system: str, **rule: Any) -> None:
        box = self.description[system]
        verify = str(self.config_path.parent / "salesforce-sandbox-ca.pem") if system == "salesforce" else True
        requests.post(f"{box['url']}/_sandbox/faults", json=rule, timeout=10, verify=verify).raise_for_status()

    def knob(self, system: str, path: str) -> None:
        box = self.description[system]
        verify = str(self.config_path.parent / "salesforce-sandbox-ca.pem") if system == "salesforce" else True
        requests.post(f"{box['url']}/_sandbox{path}", json={}, timeout=10, verify=verify).raise_for_status()

    def calls(self, system: str) -> dict[str, int]:
        """The sandbox's call counter, read and reset."""
        box = self.description[system]
        verify = str(self.config_path.parent / "salesforce-sandbox-ca.pem") if system == "salesforce" else True
        calls = requests.get(f"{box['url']}/_sandbox/calls", timeout=10, verify=verify).json()["calls"]
        requests.post(f"{box['url']}/_sandbox/calls/reset", timeout=10, verify=verify).raise_for_status()
        return calls

    def relsync(self, *args: str, env: dict[str, str]) -> Result:
        return CliRunner().invoke(main, [*args, "--config", str(self.config_path)], env=env, catch_exceptions=False)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with start_sandboxes(records=20, seed=3, systems=("jira", "airtable", "salesforce")) as sandboxes:
        description = sandboxes.describe()
        edits.jira_grant(description, "ADMINISTER_PROJECTS")  # relsync creates the release versions
        path = write_config(description, tmp_path / "relsync.yaml")
        env = {name: value for box in description.values() for name, value in box["env"].items()}
        yield Stack(description, path, env)


def store_text(stack: Stack) -> str:
    """Every row of every table of the store, as text ("" when there is no store)."""
    if not stack.store_files():
        return ""
    conn = sqlite3.connect(stack.config_path.with_suffix(".db"))
    try:
        tables = [name for (name,) in conn.execute("select name from sqlite_master where type = 'table'")]
        return "\n".join(repr(row) for table in tables for row in conn.execute(f'select * from "{table}"'))
    finally:
        conn.close()


def assert_nowhere(secrets: dict[str, str], stack: Stack, results: list[Result], caplog: pytest.LogCaptureFixture,
                   *, http: bool = True) -> None:
    """No secret in any output, log record, stored row or raw database file (``http``: requests were made)."""
    places = {f"output #{n}": result.stdout + result.stderr for n, result in enumerate(results)}
    places["log"] = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    places["store"] = store_text(stack)
    for path in stack.store_files():
        places[path.name] = path.read_bytes().decode("latin-1")
    found = [f"{name} in {place}" for name, secret in secrets.items() for place, text in places.items() if secret in text]
    assert not found, found
    if http:
        assert any(r.name.startswith("urllib3") for r in caplog.records), "the HTTP clients' debug log was not captured"


@pytest.fixture(autouse=True)
def debug_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


def test_refused_credentials_leave_no_trace(stack, caplog):
    env = {**stack.env, **PROBES}

    synced = stack.relsync("sync", "--json", env=env)
    checked = stack.relsync("check", "--online", "--json", env=env)

    assert synced.exit_code == 2, synced.output
    for source in ("jira", "airtable"):
        assert synced.output.count(f"(HTTP 401: check the credentials in sources.{source}.auth)") == 1, source
    assert "salesforce: login refused by" in synced.output and "invalid_client_id" in synced.output
    assert checked.exit_code == 2, checked.output
    for source in ("jira", "airtable"):
        assert checked.output.count(f"(HTTP 401: check the credentials in sources.{source}.auth)") == 1, source
    assert_nowhere(PROBES, stack, [synced, checked], caplog)


def test_server_errors_and_refused_writes_leave_no_trace(stack, caplog):
    stack.fault("jira", method="GET", path="/rest/api/3/search/jql", status=503, times=2)
    stack.fault("jira", method="PUT", path="/rest/api/3/issue/*", status=400, times=1000)
    stack.fault("airtable", method="GET", path="/v0/*", status=500, times=1)
    stack.fault("airtable", method="PATCH", path="/v0/*", status=422, times=1000)
    stack.fault("salesforce", method="GET", path="/services/data/*/queryAll/", status=500, times=1000)

    synced = stack.relsync("sync", "--json", env=stack.env)
    status = stack.relsync("status", "--json", env=stack.env)

    assert synced.exit_code == 1, synced.output
    conn = sqlite3.connect(stack.config_path.with_suffix(".db"))
    (message,) = conn.execute("select message from runs").fetchone()
    errors = dict(conn.execute("select distinct system, last_error from outbox where state = 'failed'"))
    conn.close()
    assert message.startswith("salesforce: UNKNOWN_EXCEPTION: An unexpected error occurred.")  # the pull, retried, failed
    assert errors == {"jira": "Bad Request",
                      "airtable": "INVALID_REQUEST_UNKNOWN: Invalid request: parameter validation failed. Check your request data."}
    assert_nowhere(stack.secrets, stack, [synced, status], caplog)


def test_a_missing_variable_is_named_and_nothing_leaks(stack, caplog):
    env = {name: value for name, value in stack.env.items() if name != "RELSYNC_SF_CLIENT_SECRET"}

    synced = stack.relsync("sync", "--json", env=env)
    checked = stack.relsync("check", "--online", env=env)

    assert synced.exit_code == 2
    assert "sources.salesforce.auth.client_secret_env: environment variable RELSYNC_SF_CLIENT_SECRET is not set" in synced.output
    assert checked.exit_code == 2 and "RELSYNC_SF_CLIENT_SECRET is not set" in checked.output
    assert_nowhere(stack.secrets, stack, [synced, checked], caplog, http=False)


def test_a_secret_pasted_for_a_variable_name_is_refused_offline_unseen(stack, caplog):
    pasted = stack.env["RELSYNC_SF_CLIENT_SECRET"]
    data = yaml.safe_load(stack.config_path.read_text())
    data["sources"]["salesforce"]["auth"]["client_secret_env"] = pasted
    stack.config_path.write_text(yaml.safe_dump(data, sort_keys=False))

    checked = stack.relsync("check", env={})
    synced = stack.relsync("sync", "--json", env=stack.env)

    for result in (checked, synced):
        assert result.exit_code == 2
        assert "sources.salesforce.auth.client_secret_env: this looks like a secret itself" in result.output
    assert_nowhere({"pasted": pasted}, stack, [checked, synced], caplog, http=False)


def test_the_kept_salesforce_token_is_a_private_file_and_nowhere_else(stack, caplog):
    store = stack.config_path.with_suffix(".db")
    kept = store.with_name(f"{store.name}.salesforce.token")

    first = stack.relsync("sync", "--json", env=stack.env)
    assert first.exit_code == 0, first.output
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    token = json.loads(kept.read_text())["access_token"]
    assert stack.calls("salesforce")["POST /services/oauth2/token"] == 1

    again = stack.relsync("sync", "--json", env=stack.env)  # the kept token is used: no login
    assert again.exit_code == 0, again.output
    assert "POST /services/oauth2/token" not in stack.calls("salesforce")

    stack.knob("salesforce", "/salesforce/expire-sessions")  # Salesforce refuses it now: log in again, once
    refused = stack.relsync("sync", "--json", env=stack.env)
    assert refused.exit_code == 0, refused.output
    assert stack.calls("salesforce")["POST /services/oauth2/token"] == 1
    renewed = json.loads(kept.read_text())["access_token"]
    assert renewed != token and stat.S_IMODE(kept.stat().st_mode) == 0o600

    status = stack.relsync("status", "--json", env=stack.env)
    tokens = {"the first access token": token, "the renewed access token": renewed}
    assert_nowhere(stack.secrets | tokens, stack, [first, again, refused, status], caplog)
    for name in tokens.values():
        assert name not in "".join(p.read_bytes().decode("latin-1") for p in store.parent.iterdir()
                                   if p.is_file() and p != kept)
