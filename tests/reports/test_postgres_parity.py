"""The reports read a PostgreSQL store as they read a SQLite one: the history store, copied into
PostgreSQL on a real server (``relsync store copy``), gives the same report, the same request
list, the same audit views and a dashboard of the same bytes."""
from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from reports.analytics import build_report
from reports.audit_query import AuditFilter, select_events
from reports.dashboard import build_dashboard
from reports.requests import RequestFilter, list_requests
from reports.timeline import request_facts
from sync.audit import request_history, verify_chain
from sync.db import Database
from sync.store import open_database
from sync.store_copy import copy_store, open_location
from tests.reports.conftest import History


@pytest.fixture(scope="module")
def both(history: History, postgres_server) -> Iterator[tuple[Database, Database]]:
    """(the history's SQLite store, a PostgreSQL copy of it)."""
    url = postgres_server.create_database()
    source, target = open_location(history.config.store, create=False), open_location(url, create=True)
    try:
        assert copy_store(source, target).chain.ok
    finally:
        source.close()
        target.close()
    sqlite, postgres = open_database(history.config.store, create=False), open_database(url, create=False)
    assert postgres.dialect == "postgresql"
    yield sqlite, postgres
    sqlite.close()
    postgres.close()


def later(history: History) -> dt.datetime:
    return history.last_sync + dt.timedelta(hours=1)


def test_the_report_is_the_same(both, history):
    quotas = {train.name: train.quotas for train in history.config.trains}
    sqlite, postgres = (build_report(db, quotas=quotas, now=later(history)) for db in both)
    assert sqlite["volume"] and sqlite["flow"]["fill"]  # something to compare
    assert postgres == sqlite


def test_request_facts_and_lists_are_the_same(both, history):
    sqlite, postgres = both
    assert request_facts(postgres) == request_facts(sqlite)
    for wanted in (RequestFilter(), RequestFilter(unplanned=True)):
        rows = list_requests(sqlite, wanted, now=later(history))
        assert rows and list_requests(postgres, wanted, now=later(history)) == rows


def test_the_audit_views_and_the_chain_are_the_same(both, history):
    sqlite, postgres = both
    events = select_events(sqlite, AuditFilter())
    assert len(events) > 100 and select_events(postgres, AuditFilter()) == events
    key = history.rejected
    assert request_history(postgres, key) == request_history(sqlite, key) != []
    assert verify_chain(postgres) == verify_chain(sqlite)


def test_the_dashboard_is_the_same_bytes(both, history, tmp_path):
    sites = [tmp_path / "sqlite", tmp_path / "postgresql"]
    generated = later(history)
    for db, out in zip(both, sites, strict=True):
        build_dashboard(db, out, generated=generated)

    def files(site: Path) -> dict[str, str]:
        return {str(path.relative_to(site)): hashlib.sha256(path.read_bytes()).hexdigest()
                for path in sorted(site.rglob("*")) if path.is_file()}

    sqlite, postgres = (files(site) for site in sites)
    assert len(sqlite) > 40
    assert postgres == sqlite
