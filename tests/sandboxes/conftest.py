"""Fixtures: a live Jira sandbox on 127.0.0.1 and the real ``jira`` client pointed at it; a Salesforce org."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from jira import JIRA
from simple_salesforce import Salesforce

from sandboxes.clock import TimeSource
from sandboxes.edits import salesforce_client
from sandboxes.salesforce.app import start_salesforce
from sandboxes.server import RunningSandbox, Sandboxes, start_sandboxes

RECORDS = 250
SALESFORCE_RECORDS = 450
SEED = 7


@pytest.fixture
def sandboxes() -> Iterator[Sandboxes]:
    """A fresh Jira sandbox per test (250 seeded requests), so tests never share state."""
    with start_sandboxes(records=RECORDS, seed=SEED) as started:
        yield started


@pytest.fixture
def jira_sandbox(sandboxes: Sandboxes) -> RunningSandbox:
    """The running Jira sandbox."""
    return sandboxes.jira


@pytest.fixture
def credentials(sandboxes: Sandboxes) -> tuple[str, str]:
    """(email, API token) the sandbox accepts."""
    env = sandboxes.describe()["jira"]["env"]
    return env["RELSYNC_JIRA_EMAIL"], env["RELSYNC_JIRA_TOKEN"]


@pytest.fixture
def client(jira_sandbox: RunningSandbox, credentials: tuple[str, str]) -> JIRA:
    """The real jira client on REST v3 (as relsync uses it), with its own retries off."""
    return JIRA(server=jira_sandbox.url, basic_auth=credentials, max_retries=0, options={"rest_api_version": "3"})


@pytest.fixture
def http(credentials: tuple[str, str]) -> requests.Session:
    """A plain HTTP session with the sandbox credentials, for raw status and body checks."""
    session = requests.Session()
    session.auth = credentials
    return session


def knob(sandbox: RunningSandbox, path: str, body: Any = None, method: str = "POST") -> requests.Response:
    """Call a ``/_sandbox`` endpoint (no credentials needed)."""
    response = requests.request(method, f"{sandbox.url}/_sandbox{path}", json=body, timeout=10)
    response.raise_for_status()
    return response


def calls(sandbox: RunningSandbox) -> dict[str, Any]:
    """The sandbox's call counter."""
    return knob(sandbox, "/calls", method="GET").json()


class Org:
    """A running Salesforce sandbox, a way to log in to it, and plain HTTPS for its knobs."""

    def __init__(self, running: RunningSandbox, description: dict[str, Any], ca_file: Path) -> None:
        self.running, self.description, self.ca_file = running, description, str(ca_file)
        self.http = requests.Session()
        self.http.verify, self.http.trust_env = self.ca_file, False

    def login(self) -> Salesforce:
        """A fresh session through the client credentials flow."""
        return salesforce_client({"salesforce": self.description}, self.ca_file)

    def knob(self, path: str, body: Any = None, method: str = "POST") -> Any:
        """Call a ``/_sandbox`` endpoint and return its JSON."""
        answer = self.http.request(method, f"{self.running.url}/_sandbox{path}", json=body)
        answer.raise_for_status()
        return answer.json() if answer.content else None


def running_org(tmp_path: Path, clock: TimeSource, behaviour: str = "real", seed: int = SEED) -> Iterator[Org]:
    """Serve a Salesforce sandbox of ``SALESFORCE_RECORDS`` change requests for as long as the caller iterates."""
    running, description = start_salesforce(SALESFORCE_RECORDS, seed, time_source=clock, behaviour=behaviour)
    ca_file = tmp_path / f"ca-{seed}-{behaviour}.pem"
    ca_file.write_text(description["ca_pem"])
    try:
        yield Org(running, description, ca_file)
    finally:
        running.stop()
