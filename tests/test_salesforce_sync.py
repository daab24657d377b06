"""Salesforce end to end: the real simple-salesforce client against a live sandbox org over HTTPS.

Each test starts its own org (connectors.sandbox.salesforce.create_salesforce_app behind
its own trustme CA), writes a relsync config for it from the shipped examples and runs
relsync against a fresh store. API calls are counted by the sandbox itself.
"""
from __future__ import annotations

import json
import math
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme
import yaml
from simple_salesforce import Salesforce

from config.loader import load_config
from config.schema import Config
from connectors.sandbox.core import controls
from connectors.sandbox.salesforce import create_salesforce_app, sandbox_state
from connectors.sandbox.salesforce_query import PAGING_TRIGGER
from connectors.sandbox.server import RunningSandbox, serve
from sync import engine
from sync.demo import EXAMPLES, sandbox_config
from sync.store import open_store

CLIENT_ID = "3MVG9relsyncSyncTestsConsumerKey"
CLIENT_SECRET = "sync-tests-consumer-secret-4f9a1c"
ENV = {"RELSYNC_SF_CLIENT_ID": CLIENT_ID, "RELSYNC_SF_CLIENT_SECRET": CLIENT_SECRET}
TOKEN = "POST /services/oauth2/token"
QUERY = "GET /services/data/v{version}/queryAll/"
QUERY_MORE = "GET /services/data/v{version}/queryAll/{cursor}"
DELETED = "GET /services/data/v{version}/sobjects/{name}/deleted/"
COMPOSITE = "PATCH /services/data/v{version}/composite/sobjects"


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, ssl.SSLContext, Path]:
    """One CA and server certificate for the module; the CA as a PEM file for clients."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, context, path


@dataclass
class Org:
    """A running sandbox org, the relsync config pointing at it, and ways to steer and read both."""

    running: RunningSandbox
    ca_file: Path
    config_path: Path
    config: Config
    env: dict[str, str]

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def state(self) -> Any:
        return sandbox_state(self.running.app)

    def http(self) -> requests.Session:
        session = requests.Session()
        session.verify = str(self.ca_file)
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        return session

    def knob(self, path: str, body: Any = None, method: str = "POST") -> Any:
        answer = self.http().request(method, f"{self.url}/_sandbox{path}", json=body, timeout=10)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def calls(self) -> dict[str, int]:
        return self.knob("/calls", method="GET")["calls"]

    def statuses(self) -> dict[str, int]:
        return self.knob("/calls", method="GET")["statuses"]

    def reset_calls(self) -> None:
        self.knob("/calls/reset")

    def fault(self, **rule: Any) -> None:
        self.knob("/faults", rule)

    def sf(self) -> Salesforce:
        """The real client, logged in with the connected app's client credentials."""
        http = self.http()
        token = http.post(f"{self.url}/services/oauth2/token", data={
            "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}, timeout=10)
        token.raise_for_status()
        body = token.json()
        return Salesforce(instance_url=body["instance_url"], session_id=body["access_token"], session=http,
                          version="59.0")

    def run(self, config: Config | None = None, **kwargs: Any) -> engine.RunReport:
        return engine.run(config or self.config, env=self.env, **kwargs)

    def rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        db = open_store(self.config.store)
        try:
            return list(db.query(sql, params))
        finally:
            db.close()

    def one(self, sql: str, params: Any = ()) -> Any:
        return next(iter(self.rows(sql, params)[0].values()))

    def on_next_page(self, action: Any) -> None:
        """Run ``action`` inside the sandbox just before it serves the next query-more page."""
        controls(self.running.app).schedule(PAGING_TRIGGER, action)

    def with_source(self, **changes: Any) -> Config:
        """The config with sources.salesforce changed (written to the config file too)."""
        raw = yaml.safe_load(self.config_path.read_text())
        raw["sources"]["salesforce"].update(changes)
        self.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
        self.config = load_config(self.config_path)
        return self.config


def org_config(url: str, ca_file: Path, folder: Path, *, object_name: str, source: dict[str, Any],
               train: dict[str, Any]) -> Path:
    """A config file for the org, from the shipped example for the object, with overrides."""
    if object_name == "Case":
        description = {"salesforce": {"url": url, "env": ENV, "object": "Case", "record_type": "Change Request",
                                      "ca_pem": ca_file.read_text()}}
        raw = sandbox_config(description, folder / "relsync.db", folder)
    else:
        raw = yaml.safe_load((EXAMPLES / "salesforce-custom-object.yaml").read_text())
        raw["store"] = str(folder / "relsync.db")
        raw["sources"]["salesforce"].update(url=url, ca_bundle=str(ca_file))
    raw["sources"]["salesforce"].update(source)
    raw["trains"][0].update(train)
    path = folder / "relsync.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def start_org(authority: tuple[trustme.CA, ssl.SSLContext, Path], folder: Path, records: int, *, seed: int = 7,
              object_name: str = "Case", source: dict[str, Any] | None = None,
              train: dict[str, Any] | None = None) -> Iterator[Org]:
    app = create_salesforce_app(records=records, seed=seed, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                object_name=object_name)
    with serve(app, ssl_context=authority[1]) as running:
        path = org_config(running.url, authority[2], folder, object_name=object_name, source=source or {},
                          train=train or {})
        yield Org(running, authority[2], path, load_config(path), dict(ENV))


def count(calls: dict[str, int], *keys: str) -> int:
    return sum(calls.get(key, 0) for key in keys)


def queries(calls: dict[str, int]) -> int:
    return count(calls, QUERY, QUERY_MORE)


def writes(calls: dict[str, int]) -> int:
    return sum(n for key, n in calls.items() if not key.startswith("GET ") and key != TOKEN)


def change_request_ids(org: Org) -> list[str]:
    """Every change-request Case id the org holds, as the pull orders them."""
    found = org.sf().query_all("SELECT Id FROM Case WHERE RecordType.Name = 'Change Request' "
                               "ORDER BY SystemModstamp ASC, Id ASC")
    return [r["Id"] for r in found["records"]]


# -- pulling ------------------------------------------------------------------------------


@pytest.fixture
def org_2500(authority, tmp_path) -> Iterator[Org]:
    """2,500 change-request Cases, pulled 400 per page."""
    yield from start_org(authority, tmp_path, 2500, source={"page_size": 400})


def test_a_modstamp_tie_across_pages_and_a_stopped_run_loses_and_duplicates_nothing(org_2500):
    org = org_2500
    tie = org.knob("/salesforce/share-modstamp", {"count": 300})
    ordered = change_request_ids(org)
    tied = [i for i, ident in enumerate(ordered) if ident in set(tie["ids"])]
    assert len(ordered) == 2500 and tied == list(range(2500 - len(tied), 2500))
    # The tie straddles the page boundary at 2,400 ...
    assert tied[0] < 2400 <= tied[-1]
    # ... and the first run stops there: six pages, then the quota share is reached.
    org.knob("/salesforce/limits", {"used": 800 - 6, "max": 1000})

    first = org.run()

    assert first.exit_code == 1 and "quota_share" in " ".join(first.messages)
    assert first.pulled["salesforce"]["pulled"] == 2400
    org.knob("/salesforce/limits", {"used": 0, "max": 15000})
    second = org.run()
    third = org.run()

    assert second.exit_code == 0 and third.exit_code == 0, second.messages + third.messages
    assert org.one("select count(*) from change_requests") == 2500
    assert org.one("select count(distinct native_id) from change_requests") == 2500
    created = org.rows("select request, count(*) as n from audit where field = '*' group by request")
    assert len(created) == 2500 and {r["n"] for r in created} == {1}
    assert second.pulled["salesforce"]["created"] == 100
    assert third.pulled["salesforce"]["created"] == 0


@pytest.fixture
def org_5000(authority, tmp_path) -> Iterator[Org]:
    """5,000 change-request Cases, default page size (2,000)."""
    yield from start_org(authority, tmp_path, 5000)


def test_initial_pull_costs_the_minimum_and_a_quiet_run_two_calls(org_5000):
    org = org_5000
    first = org.run()

    assert first.exit_code == 0, first.messages
    assert first.pulled["salesforce"]["pulled"] == 5000
    written = org.one("select count(distinct request) from outbox where state = 'done'")
    assert written > 0
    calls = org.calls()
    assert calls[TOKEN] == 1
    assert queries(calls) == math.ceil(5000 / 2000) + math.ceil(written / 800)  # pull + compare before writing
    assert calls[COMPOSITE] == math.ceil(written / 200)
    assert sum(calls.values()) == 1 + queries(calls) + calls[COMPOSITE]

    org.reset_calls()
    second = org.run()  # relsync's own writes come back

    assert second.exit_code == 0, second.messages
    assert second.pulled["salesforce"]["pulled"] >= written
    assert second.pulled["salesforce"]["changed"] == 0 and second.pushed["salesforce"]["written"] == 0
    assert org.one("select count(*) from audit where run = ? and origin = 'pulled'", [second.run_id]) == 0
    calls = org.calls()
    assert calls[TOKEN] == 1 and queries(calls) + count(calls, DELETED) == 2 and writes(calls) == 0

    org.reset_calls()
    quiet = org.run()

    calls = org.calls()
    assert quiet.exit_code == 0
    assert calls == {TOKEN: 1, QUERY: 1, DELETED: 1}
    assert quiet.pushed["salesforce"]["written"] == 0


@pytest.fixture
def org_450(authority, tmp_path) -> Iterator[Org]:
    """450 change-request Cases, default page size."""
    yield from start_org(authority, tmp_path, 450)


UNPLANNED = "select key, native_id from change_requests where key not in (select request from assignments)"
"""Requests in no release: deleting one changes no plan, so the run writes nothing."""


def deletion_events(org: Org, key: str) -> int:
    return org.one("select count(*) from audit where request = ? and field = 'deleted_at'", [key])


def test_soft_and_hard_deletes_are_marked_deleted_on_the_next_run(org_450):
    org = org_450
    org.run()
    org.run()
    soft, hard = [r["native_id"] for r in org.rows(UNPLANNED + " order by native_id limit 2")]
    sf = org.sf()
    sf.Case.delete(hard)
    org.knob("/salesforce/purge-deleted")  # the recycle bin is emptied: a hard delete
    sf.Case.delete(soft)
    org.reset_calls()

    report = org.run()

    assert report.exit_code == 0, report.messages
    assert report.pulled["salesforce"]["deleted"] == 2
    gone = org.rows("select key, deleted_at from change_requests where native_id in (?, ?)", [soft, hard])
    assert len(gone) == 2 and all(row["deleted_at"] for row in gone)
    assert all(deletion_events(org, row["key"]) == 1 for row in gone)
    assert org.one("select count(*) from change_requests where deleted_at is null") == 448
    calls = org.calls()
    # The soft delete comes with the pull (queryAll, IsDeleted); Get Deleted cannot reach back
    # past the purge (INVALID_REPLICATION_DATE), so one full id reconcile finds the hard delete.
    assert calls[DELETED] == 1 and org.statuses().get("400") == 1
    assert calls[QUERY] == 2 and writes(calls) == 0


def test_a_gap_longer_than_the_delete_log_is_closed_by_a_full_id_reconcile(org_450):
    org = org_450
    org.run()
    org.run()
    victim = org.rows(UNPLANNED + " order by native_id desc limit 1")[0]
    org.sf().Case.delete(victim["native_id"])
    org.knob("/salesforce/purge-deleted")
    org.knob("/salesforce/advance-clock", {"seconds": 16 * 24 * 3600})  # relsync was off for 16 days
    org.reset_calls()

    report = org.run()

    assert report.exit_code == 0, report.messages
    assert report.pulled["salesforce"]["deleted"] == 1
    assert org.one("select deleted_at from change_requests where key = ?", [victim["key"]])
    assert deletion_events(org, victim["key"]) == 1
    calls = org.calls()
    assert calls[DELETED] == 1 and calls[QUERY] == 2  # refused window, then one full reconcile query
    assert writes(calls) == 0


# -- query cursors ------------------------------------------------------------------------


def expire_locators(org: Org) -> Any:
    def expire() -> None:
        with org.state.lock:
            for locator in org.state.locators.values():
                locator.expired = True
    return expire


def test_an_expired_query_locator_restarts_just_after_the_last_record(authority, tmp_path):
    for org in start_org(authority, tmp_path, 2500, source={"page_size": 1000}):
        org.on_next_page(expire_locators(org))  # the cursor dies between the first and second page

        report = org.run()

        assert report.exit_code == 0, report.messages
        assert report.pulled["salesforce"]["pulled"] == 2500
        assert org.one("select count(*) from change_requests") == 2500
        created = org.rows("select request, count(*) as n from audit where field = '*' group by request")
        assert len(created) == 2500 and {r["n"] for r in created} == {1}
        written = org.one("select count(distinct request) from outbox where state = 'done'")
        calls = org.calls()
        # query (1,000) -> query-more refused -> query after the 1,000th record (1,000) -> query-more (500)
        assert calls[QUERY] == 2 + math.ceil(written / 800)
        assert calls[QUERY_MORE] == 2 and org.statuses()["400"] == 1


def test_a_record_edited_while_paging_then_an_expired_locator_loses_nothing(authority, tmp_path):
    for org in start_org(authority, tmp_path, 2500, source={"page_size": 500}):
        ordered = change_request_ids(org)
        edited = ordered[999]  # the last record of the second page
        state = org.state

        def edit_then_expire_later() -> None:
            with state.lock:
                row = state.tables["Case"][edited]
                state.update(row, {"Subject": "Edited while relsync paged"}, state.stamp())
            org.on_next_page(expire_locators(org))

        org.on_next_page(edit_then_expire_later)
        first = org.run()
        stopped_at = org.one("select count(*) from change_requests")
        org.run()

        assert first.exit_code == 0, first.messages
        assert org.one("select count(*) from change_requests") == 2500, f"first run stored {stopped_at}"
        assert org.one("select title from change_requests where native_id = ?", [edited]) == \
            "Edited while relsync paged"
