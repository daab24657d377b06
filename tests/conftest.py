"""Shared fixtures: a live Jira sandbox on 127.0.0.1 and a relsync config pointing at it; a PostgreSQL server."""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from config.loader import load_config
from config.schema import Config
from relsync.demo import write_config
from sandboxes import edits
from sandboxes.server import start_sandboxes
from sync.store_location import PASSWORD_ENV, is_postgres
from tests.postgres import NoPostgresServer, PostgresServer, start_server


@dataclass
class World:
    """A running sandbox, the config that points at it and the env holding its secrets."""

    description: dict[str, Any]
    config_path: Path
    config: Config
    env: dict[str, str]

    @property
    def jira_url(self) -> str:
        return self.description["jira"]["url"]

    def calls(self) -> dict[str, int]:
        """The sandbox's per-endpoint call counter."""
        return requests.get(f"{self.jira_url}/_sandbox/calls", timeout=10).json()["calls"]

    def reset_calls(self) -> None:
        requests.post(f"{self.jira_url}/_sandbox/calls/reset", timeout=10).raise_for_status()

    def fault(self, **rule: Any) -> None:
        """Add a fault-injection rule to the Jira sandbox."""
        requests.post(f"{self.jira_url}/_sandbox/faults", json=rule, timeout=10).raise_for_status()

    def with_jira(self, **changes: Any) -> None:
        """Change the Jira source's config (in its file too, so later edits of the file keep it)."""
        data = yaml.safe_load(self.config_path.read_text())
        data["sources"]["jira"].update(changes)
        self.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
        self.config = load_config(self.config_path)

    def issue_by_issue(self) -> None:
        """Write every Jira issue on its own, never by bulk jobs (the threshold above any group here)."""
        self.with_jira(bulk_threshold=100_000)


def make_world(tmp_path: Path, records: int, seed: int = 11, *, admin: bool = True,
               store: str | None = None) -> Iterator[World]:
    """A Jira sandbox and its config; ``admin``: the account may create versions (granted as a Jira admin would).

    ``store``: where the config keeps the store (a path or a ``postgresql://`` URL); default a file beside it.
    """
    with start_sandboxes(records=records, seed=seed) as sandboxes:
        description = sandboxes.describe()
        if admin:
            edits.jira_grant(description, "ADMINISTER_PROJECTS")
        path = write_config(description, tmp_path / "relsync.yaml")
        env = dict(description["jira"]["env"])
        if store is not None:
            data = yaml.safe_load(path.read_text())
            data["store"] = store
            path.write_text(yaml.safe_dump(data, sort_keys=False))
            if is_postgres(store):  # the store's password is one more secret of the environment relsync is given
                env[PASSWORD_ENV] = os.environ[PASSWORD_ENV]
        yield World(description, path, load_config(path), env)


STORES = ("sqlite", "postgresql")
"""The store engines the store, engine, audit and report tests run on."""


def store_location(kind: str, folder: Path, request: pytest.FixtureRequest) -> str:
    """A new store of ``kind``: a SQLite file in ``folder``, or a new database of the session's PostgreSQL server."""
    if kind == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return server.create_database()
    return str(folder / "relsync.db")


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    """Each store engine in turn: SQLite, then PostgreSQL on a real server."""
    return str(request.param)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """250 seeded Jira change requests, a fresh store, a config and its env."""
    yield from make_world(tmp_path, records=250)


@pytest.fixture
def small_world(tmp_path: Path) -> Iterator[World]:
    """30 seeded Jira change requests."""
    yield from make_world(tmp_path, records=30)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server from the installed binaries, for the whole session (never skipped: missing, it fails)."""
    try:
        server = start_server()
    except NoPostgresServer as error:
        pytest.fail(f"these tests need a real PostgreSQL server: {error}", pytrace=False)
    # As an operator would: the password in the environment, for relsync and the runners it starts.
    saved = os.environ.get(PASSWORD_ENV)
    os.environ[PASSWORD_ENV] = server.password
    yield server
    server.stop()
    if saved is None:
        os.environ.pop(PASSWORD_ENV, None)
    else:
        os.environ[PASSWORD_ENV] = saved


@pytest.fixture
def pg_url(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new empty database's URL (no password in it); its password is in $RELSYNC_STORE_PASSWORD."""
    monkeypatch.setenv(PASSWORD_ENV, postgres_server.password)
    return postgres_server.create_database()
