"""Salesforce end to end: the real simple-salesforce client against a live sandbox org over HTTPS.

Each test starts its own org (sandboxes.salesforce.app.create_salesforce_app behind
its own trustme CA), writes a relsync config for it from the shipped examples and runs
relsync against a fresh store. API calls are counted by the sandbox itself.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme
import yaml
from click.testing import CliRunner
from simple_salesforce import Salesforce, format_soql

from config.loader import load_config
from config.schema import Config
from mapping import clock
from relsync.cli import main
from relsync.demo import EXAMPLES
from sandboxes.core import controls
from sandboxes.salesforce.app import create_salesforce_app, sandbox_state
from sandboxes.salesforce.query import PAGING_TRIGGER
from sandboxes.server import RunningSandbox, serve
from sync import engine
from sync.store import open_store
from tests.recording import CASSETTES, RECORD_MODE, recorder

CLIENT_ID = "3MVG9relsyncSyncTestsConsumerKey"
CLIENT_SECRET = "sync-tests-consumer-secret-4f9a1c"
ENV = {"RELSYNC_SF_CLIENT_ID": CLIENT_ID, "RELSYNC_SF_CLIENT_SECRET": CLIENT_SECRET}
TOKEN = "POST /services/oauth2/token"
QUERY = "GET /services/data/v{version}/queryAll/"
QUERY_MORE = "GET /services/data/v{version}/queryAll/{cursor}"
DELETED = "GET /services/data/v{version}/sobjects/{name}/deleted/"
COMPOSITE = "POST /services/data/v{version}/composite"
HISTORY = "GET /services/data/v{version}/query/"
NOW = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
"""Plans are read at this moment: releases deploy 8 Dec, 22 Dec and 5 Jan, none frozen yet."""

WRITTEN = ("release", "status", "planned_date", "phase")
"""The fields the example config writes to each planned Case."""


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
    """A config file for the org: the shipped example for the object, pointed at the org, with overrides."""
    example = "salesforce.yaml" if object_name == "Case" else "salesforce-custom-object.yaml"
    raw = yaml.safe_load((EXAMPLES / example).read_text())
    raw["store"] = str(folder / "relsync.db")
    raw["sources"]["salesforce"].update(url=url, ca_bundle=str(ca_file), **source)
    (only_train,) = raw["trains"]
    only_train.update(train)
    path = folder / "relsync.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@contextlib.contextmanager
def start_org(authority: tuple[trustme.CA, ssl.SSLContext, Path], folder: Path, records: int, *, seed: int = 7,
              object_name: str = "Case", source: dict[str, Any] | None = None,
              train: dict[str, Any] | None = None, behaviour: str = "real") -> Iterator[Org]:
    """A seeded org served over HTTPS and a config for it (``source``/``train`` override the example)."""
    app = create_salesforce_app(records=records, seed=seed, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                object_name=object_name, behaviour=behaviour)
    with serve(app, ssl_context=authority[1]) as running:
        path = org_config(running.url, authority[2], folder, object_name=object_name, source=source or {},
                          train=train or {})
        yield Org(running, authority[2], path, load_config(path), dict(ENV))


@pytest.fixture
def make_org(authority, tmp_path) -> Iterator[Callable[..., Org]]:
    """``make_org(records, **options)``: an org for this test, stopped at its end."""
    with contextlib.ExitStack() as stack:
        yield lambda records, **options: stack.enter_context(start_org(authority, tmp_path, records, **options))


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


def expire_locators(org: Org) -> Any:
    """An action that invalidates every open query cursor of the org (for ``Org.on_next_page``)."""
    def expire() -> None:
        with org.state.lock:
            for locator in org.state.locators.values():
                locator.expired = True
    return expire


# -- pulling ------------------------------------------------------------------------------


@pytest.fixture
def org_2500(authority, tmp_path) -> Iterator[Org]:
    """2,500 change-request Cases, pulled exactly 400 per page (the kind sandbox: the test puts a tie
    across a known page boundary, which Salesforce's real, unpromised batch sizes would move)."""
    with start_org(authority, tmp_path, 2500, source={"page_size": 400}, behaviour="kind") as org:
        yield org


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
    stored_of_tie = org.one("select count(*) from change_requests where native_id in (select value from json_each(?))",
                            [json.dumps(tie["ids"])])
    assert stored_of_tie == 2400 - tied[0]  # the run ended inside the tie
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
    """5,000 change-request Cases, default page size (2,000); three releases of 250. The kind org:
    this measures relsync's calls against the minimum, which Salesforce's real, unpromised batch
    sizes (smaller or larger than asked, by query) would move."""
    with start_org(authority, tmp_path, 5000, train={"capacity": 250, "horizon": 3}, behaviour="kind") as org:
        yield org


def test_initial_pull_costs_the_minimum_and_a_quiet_run_one_call(org_5000):
    org = org_5000
    first = org.run(now=NOW)

    assert first.exit_code == 0, first.messages
    assert first.pulled["salesforce"]["pulled"] == 5000
    written = org.one("select count(distinct request) from outbox where state = 'done'")
    assert written == 750
    calls = org.calls()
    assert calls[TOKEN] == 1
    # The pull, then compare queries of 400 ids each (a GET's URI and headers may take 16,384 bytes).
    assert queries(calls) == math.ceil(5000 / 2000) + math.ceil(written / 400)
    assert calls[COMPOSITE] == math.ceil(written / 25)
    # ... and after the pull, one query of the (still empty) CaseHistory.
    assert calls[HISTORY] == 1 and first.history["salesforce"]["imported"] == 0
    assert sum(calls.values()) == 1 + queries(calls) + calls[COMPOSITE] + calls[HISTORY]

    org.reset_calls()
    second = org.run(now=NOW)  # relsync's own writes come back

    assert second.exit_code == 0, second.messages
    assert second.pulled["salesforce"]["pulled"] >= written
    assert second.pulled["salesforce"]["changed"] == 0 and second.pushed["salesforce"]["written"] == 0
    assert org.one("select count(*) from audit where run = ? and origin = 'pulled'", [second.run_id]) == 0
    calls = org.calls()
    # The first run's access token is reused (no login), and Get Deleted waits for reconcile_every_hours.
    assert TOKEN not in calls and queries(calls) == 1 and DELETED not in calls and writes(calls) == 0
    # Their CaseHistory rows (release and status of 750 Cases: one batch of 2,000) are relsync's own writes.
    done = org.one("select count(*) from outbox where state = 'done' and field in ('release', 'status')")
    assert calls[HISTORY] == 1 and second.history["salesforce"]["matched"] == done
    assert second.history["salesforce"]["imported"] == 0

    org.reset_calls()
    quiet = org.run(now=NOW)

    calls = org.calls()
    assert quiet.exit_code == 0
    assert calls == {QUERY: 1}
    assert quiet.pushed["salesforce"]["written"] == 0


@pytest.fixture
def org_450(authority, tmp_path) -> Iterator[Org]:
    """450 change-request Cases, default page size."""
    with start_org(authority, tmp_path, 450) as org:
        yield org


UNPLANNED = "select key, native_id from change_requests where key not in (select request from assignments)"
"""Requests in no release: deleting one changes no plan, so the run writes nothing."""


def deletion_events(org: Org, key: str) -> int:
    return org.one("select count(*) from audit where request = ? and field = 'deleted_at'", [key])


def test_soft_and_hard_deletes_are_marked_deleted_on_the_next_run(make_org):
    org = make_org(450, source={"reconcile_every_hours": 0})  # Get Deleted on every run
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


def test_a_gap_longer_than_the_delete_log_is_closed_by_a_full_id_reconcile(make_org):
    org = make_org(450, source={"page_size": 200, "reconcile_every_hours": 0})
    org.run()
    org.run()
    victim = org.rows(UNPLANNED + " order by native_id desc limit 1")[0]
    org.sf().Case.delete(victim["native_id"])
    org.knob("/salesforce/purge-deleted")
    org.knob("/salesforce/advance-clock", {"seconds": 16 * 24 * 3600})  # relsync was off for 16 days
    org.on_next_page(expire_locators(org))  # and the reconcile's cursor dies after its first page
    org.reset_calls()

    report = org.run()

    assert report.exit_code == 0, report.messages
    assert report.pulled["salesforce"]["deleted"] == 1
    assert org.one("select deleted_at from change_requests where key = ?", [victim["key"]])
    assert deletion_events(org, victim["key"]) == 1
    assert org.one("select count(*) from change_requests where deleted_at is null") == 449
    calls = org.calls()
    # The pull; Get Deleted refused (INVALID_REPLICATION_DATE); the id listing: 200, an expired
    # locator, then the rest after the 200th id: 200 + 49.
    assert calls[DELETED] == 1 and calls[QUERY] == 1 + 2 and calls[QUERY_MORE] == 2
    assert org.statuses()["400"] == 2
    assert writes(calls) == 0


# -- query cursors ------------------------------------------------------------------------


def test_an_expired_query_locator_restarts_just_after_the_last_record(make_org):
    org = make_org(2500, source={"page_size": 1000}, behaviour="kind")  # exact pages: the test counts them
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


def test_a_cursor_that_always_expires_stops_the_pull_after_three_restarts_and_the_next_run_continues(make_org):
    org = make_org(2500, source={"page_size": 200}, behaviour="kind")
    # Every follow-up page finds its cursor expired: before the bound, this restarted forever.

    healed = False

    def expire_every_time() -> None:
        if not healed:
            expire_locators(org)()
            org.on_next_page(expire_every_time)

    org.on_next_page(expire_every_time)
    first = org.run()
    calls = org.calls()

    assert first.exit_code == 1
    assert any("the query cursor expired 4 times in one listing" in m for m in first.messages), first.messages
    # query (200) -> query-more refused, three times over, then the fourth refusal stops it
    assert first.pulled["salesforce"]["pulled"] == 800
    assert calls[QUERY] == 4 and calls[QUERY_MORE] == 4
    assert org.one("select count(*) from change_requests") == 800
    healed = True  # the org's cursors behave again
    second = org.run()
    assert second.exit_code == 0, second.messages
    assert org.one("select count(*) from change_requests") == 2500


def test_a_record_edited_while_paging_then_an_expired_locator_loses_nothing(make_org):
    org = make_org(2500, source={"page_size": 500})
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


# -- writing back -------------------------------------------------------------------------

@pytest.fixture
def org_1500(authority, tmp_path) -> Iterator[Org]:
    """1,500 change-request Cases (523 approved) in pages of 1,000; three releases of 150 each."""
    with start_org(authority, tmp_path, 1500, source={"page_size": 1000},
                   train={"capacity": 150, "horizon": 3}) as org:
        yield org


def test_450_writes_cost_three_collection_calls_and_a_request_rejected_after_the_pull_is_held_whole(org_1500):
    org = org_1500
    sf = org.sf()
    first_page = change_request_ids(org)[:1000]
    approved = sf.query("SELECT Id FROM Case WHERE RecordType.Name = 'Change Request' AND Status = 'Approved' "
                        "AND Priority = 'Critical' ORDER BY CreatedDate ASC")["records"]
    rejected = next(r["Id"] for r in approved if r["Id"] in first_page)
    # Someone rejects it in Salesforce just after relsync read it: relsync plans it as approved.
    org.knob("/salesforce/edit-during-paging", {"ids": [rejected], "fields": {"Status": "Rejected"}})
    org.reset_calls()

    first = org.run(now=NOW)

    assert first.exit_code == 1 and first.status == "partial"
    planned = org.rows("select r.native_id, rel.name from assignments a join change_requests r on r.key = a.request "
                       "join releases rel on rel.id = a.release")
    assert len(planned) == 450 and rejected in {p["native_id"] for p in planned}
    calls = org.calls()
    assert calls[COMPOSITE] == math.ceil(449 / 25)  # 25 conditional PATCHes a call
    assert calls[QUERY_MORE] == 1 and calls[QUERY] == 1 + 2  # the pull (1,000 + 500), then compare 400 + 50 ids
    assert writes(calls) == math.ceil(449 / 25)
    outbox = {r["field"]: r for r in org.rows(
        "select o.* from outbox o join change_requests r on r.key = o.request where r.native_id = ?", [rejected])}
    # The status changed since the pull: a conflict; the release is held with it, so the
    # person who rejected the request never sees it scheduled into a release.
    assert {field: row["state"] for field, row in outbox.items()} == dict.fromkeys(WRITTEN, "conflict")
    assert "held, because status changed in Salesforce since the last pull" in outbox["release"]["last_error"]
    assert first.pushed["salesforce"]["failed"] == 0 and first.pushed["salesforce"]["conflicts"] == 4
    assert org.one("select count(*) from outbox where state = 'done'") == 4 * 449  # release, status, date, phase
    shown = {r["Id"]: (r["Release__c"], r["Status"]) for r in sf.query_all(format_soql(
        "SELECT Id, Release__c, Status FROM Case WHERE Id IN {}", [p["native_id"] for p in planned]))["records"]}
    assert shown[rejected] == (None, "Rejected")
    assert {k: v[0] for k, v in shown.items() if k != rejected} == {
        p["native_id"]: p["name"] for p in planned if p["native_id"] != rejected}

    sf.Case.update(rejected, {"Status": "Approved"})  # the rejection was a mistake
    second = org.run(now=NOW)

    assert second.exit_code == 0, second.messages
    retried = org.rows("select o.field, o.state, o.attempts from outbox o join change_requests r on r.key = o.request "
                       "where r.native_id = ? order by o.field", [rejected])
    assert [(r["field"], r["state"], r["attempts"]) for r in retried] == [
        (field, "done", 2) for field in sorted(WRITTEN)]
    assert sf.Case.get(rejected)["Release__c"] == next(p["name"] for p in planned if p["native_id"] == rejected)


def test_quota_share_stops_the_pull_cleanly_and_the_next_run_resumes(make_org):
    # Exact pages of 500 (the kind sandbox), so the stop is known to the record.
    org = make_org(2500, source={"page_size": 500, "quota_share": 0.8}, behaviour="kind")
    org.knob("/salesforce/limits", {"used": 77, "max": 100})  # 80 % is reached after three calls

    first = org.run()

    assert first.exit_code == 1 and first.status == "failed"
    assert any("sources.salesforce.quota_share" in m and "80/100" in m for m in first.messages), first.messages
    assert org.one("select count(*) from change_requests") == 1500  # the three stored pages are kept
    calls = org.calls()
    assert queries(calls) == 3 and writes(calls) == 0 and DELETED not in calls
    assert org.state.quota.used == 80
    assert org.one("select count(*) from outbox where state = 'done'") == 0

    org.knob("/salesforce/limits", {"max": 15000})
    second = org.run()

    assert second.exit_code == 0, second.messages
    assert second.pulled["salesforce"]["created"] == 1000
    assert org.one("select count(*) from change_requests") == 2500
    created = org.rows("select request, count(*) as n from audit where field = '*' group by request")
    assert len(created) == 2500 and {r["n"] for r in created} == {1}
    assert second.pushed["salesforce"]["written"] > 0


def test_an_edit_between_pull_and_push_is_a_conflict_not_an_overwrite(org_450):
    org = org_450
    db = open_store(org.config.store)
    try:
        sources = engine.build_sources(org.config, org.env)
        engine.pull_sources(db, sources, run_id=1)
        engine.plan(db, org.config, run_id=1, now=clock.now())
        planned = [r["native_id"] for r in db.query(
            "select r.native_id from assignments a join change_requests r on r.key = a.request order by r.native_id")]
        status_edited, release_edited = planned[:2]
        sf = org.sf()
        sf.Case.update(status_edited, {"Status": "In Progress"})
        sf.Case.update(release_edited, {"Release__c": "Hotfix 2026-11"})

        pushed = engine.push_writebacks(db, sources, run_id=1)

        states = {(r["native_id"], r["field"]): r["state"] for r in db.query(
            "select r.native_id, o.field, o.state from outbox o join change_requests r on r.key = o.request")}
        conflicts = {key for key, state in states.items() if state == "conflict"}
        # A record changed since the pull is held whole: its other field waits for the next pull too.
        assert conflicts == {(native_id, field) for native_id in (status_edited, release_edited) for field in WRITTEN}
        assert pushed["salesforce"].conflicts == 8
        assert pushed["salesforce"].written == 4 * len(planned) - 8
        assert sf.Case.get(status_edited)["Status"] == "In Progress"
        assert sf.Case.get(release_edited)["Release__c"] == "Hotfix 2026-11"
        events = list(db.query("select new from audit where origin = 'pushed' and field = 'release' and "
                               "request = ?", [f"salesforce:{release_edited}"]))
        assert len(events) == 1 and json.loads(events[0]["new"])["conflict"]
    finally:
        db.close()


# -- failures -----------------------------------------------------------------------------


def test_a_refused_client_secret_exits_2_with_salesforces_message_and_no_secret(org_450):
    org = org_450
    wrong = "not-the-consumer-secret-7c1e"
    result = CliRunner().invoke(main, ["sync", "--config", str(org.config_path)],
                                env={**org.env, "RELSYNC_SF_CLIENT_SECRET": wrong})

    assert result.exit_code == 2, result.output
    assert "invalid_client: invalid client credentials" in result.output
    assert "sources.salesforce.auth" in result.output
    stored = org.one("select message from runs order by id desc limit 1")
    for text in (result.output, stored):
        assert wrong not in text and CLIENT_SECRET not in text and CLIENT_ID not in text
    assert org.calls() == {TOKEN: 1}


def test_server_errors_timeouts_and_the_concurrency_limit_are_retried_by_one_policy(org_450):
    org = org_450
    org.with_source(timeout_seconds=0.5)
    org.fault(method="POST", path="/services/oauth2/token", status=503, times=1)
    org.fault(method="GET", path="/services/data/v59.0/queryAll/", status=503, times=1)
    org.fault(method="GET", path="/services/data/v59.0/queryAll/", delay_seconds=0.8, times=1)
    org.fault(method="POST", path="/services/data/v59.0/composite", status=500, times=1)

    report = org.run()

    assert report.exit_code == 0, report.messages
    assert report.pulled["salesforce"]["pulled"] == 450
    written = org.one("select count(distinct request) from outbox where state = 'done'")
    calls = org.calls()
    # token: 503, ok; pull: 503, timed out, ok; compare query: ok; writes: 500, then all
    assert calls[TOKEN] == 2 and calls[QUERY] == 3 + 1 and calls[COMPOSITE] == 1 + math.ceil(written / 25)
    # ... and the history import's one query.
    assert org.statuses() == {"200": 1 + 2 + 1 + math.ceil(written / 25) + 1, "503": 2, "500": 1}

    # Salesforce's concurrency limit is a 403 REQUEST_LIMIT_EXCEEDED too, but transient: not the quota.
    org.sf().Case.update(org.one("select native_id from change_requests limit 1"), {"Subject": "Busy org"})
    org.knob("/config", {"rate_limit": {"requests": 1, "per_seconds": 0.5}})
    calm = org.run()
    assert calm.exit_code == 0, calm.messages
    assert calm.pulled["salesforce"]["changed"] == 1
    assert org.statuses()["403"] >= 1


def test_a_session_that_expires_mid_pull_logs_in_again(make_org):
    org = make_org(2500, source={"page_size": 1000})

    def expire_sessions() -> None:
        with org.state.lock:
            org.state.sessions.access.clear()

    org.on_next_page(expire_sessions)

    report = org.run()

    assert report.exit_code == 0, report.messages
    assert org.one("select count(*) from change_requests") == 2500
    assert org.calls()[TOKEN] == 2 and org.statuses()["401"] == 1


# -- relsync check --online and the custom object ------------------------------------------


def test_check_online_names_a_status_missing_from_the_picklist(org_450):
    org = org_450
    runner = CliRunner()
    clean = runner.invoke(main, ["check", "--config", str(org.config_path), "--online"], env=org.env)
    assert clean.exit_code == 0, clean.output
    assert "salesforce: online check passed" in clean.output

    status = yaml.safe_load(org.config_path.read_text())["sources"]["salesforce"]["fields"]["status"]
    status["map"]["Awaiting CAB"] = "triaged"
    org.with_source(fields={**org.config.sources["salesforce"].fields.model_dump(exclude_none=True, by_alias=True),
                            "status": status})
    broken = runner.invoke(main, ["check", "--config", str(org.config_path), "--online"], env=org.env)

    assert broken.exit_code == 2
    assert "salesforce: status 'Awaiting CAB' is not an active Status picklist value" in broken.output
    assert "Triage" not in broken.output


def test_check_online_names_a_field_whose_describe_type_cannot_give_the_mapped_value(org_450):
    org = org_450
    fields = org.config.sources["salesforce"].fields.model_dump(exclude_none=True, by_alias=True)
    org.with_source(fields={**fields, "owner": {"path": "Owner"}, "type": {"path": "Request_Type__c.value"}})

    broken = CliRunner().invoke(main, ["check", "--config", str(org.config_path), "--online", "--json"], env=org.env)

    assert broken.exit_code == 2, broken.output
    assert json.loads(broken.output)["problems"] == {"salesforce": [
        "fields.type: Request_Type__c.value holds text, which has no .value",
        "fields.owner: Owner holds an object, not a single value; read one of its keys",
    ]}


def test_a_custom_object_syncs_like_cases(make_org):
    org = make_org(300, object_name="Change_Request__c")
    check = CliRunner().invoke(main, ["check", "--config", str(org.config_path), "--online"], env=org.env)
    assert check.exit_code == 0, check.output

    report = org.run()

    assert report.exit_code == 0, report.messages
    assert report.pulled["salesforce"]["pulled"] == 300
    assert org.one("select count(*) from change_requests where key like 'salesforce:a0%'") == 300
    planned = {r["native_id"]: r["name"] for r in org.rows(
        "select r.native_id, rel.name from assignments a join change_requests r on r.key = a.request "
        "join releases rel on rel.id = a.release")}
    assert planned
    shown = org.sf().query_all(format_soql("SELECT Id, Release__c, Status__c FROM Change_Request__c "
                                           "WHERE Id IN {}", list(planned)))
    assert {r["Id"]: r["Release__c"] for r in shown["records"]} == planned
    assert {r["Status__c"] for r in shown["records"]} <= {"Scheduled", "Testing", "Deployed"}


# -- replay -------------------------------------------------------------------------------

CASSETTE = CASSETTES / "salesforce_first_sync.yaml"
TOKEN_SHAPE = re.compile(r"00D[0-9A-Za-z]{12}![0-9A-Za-z_-]{20,}")
"""How the sandbox's access tokens look (org id, "!", random)."""


@pytest.fixture
def replay_org(authority, tmp_path) -> Iterator[tuple[Config, Org | None]]:
    """The recorded org's config; while recording, the live org (210 requests: two pages of 200) behind it."""
    if RECORD_MODE == "none":
        ca_file = tmp_path / "replayed-ca.pem"
        ca_file.write_text(authority[2].read_text())
        path = org_config("https://127.0.0.1:9", ca_file, tmp_path, object_name="Case", source={"page_size": 200},
                          train={})
        yield load_config(path), None
        return
    CASSETTE.unlink(missing_ok=True)  # vcrpy's "all" would keep the old recording's interactions
    with start_org(authority, tmp_path, 210, seed=5, source={"page_size": 200}) as org:
        yield org.config, org


def test_first_sync_replays_from_the_cassette(replay_org):
    config, live = replay_org
    with recorder.use_cassette(CASSETTE.name) as cassette:
        report = engine.run(config, env=ENV, now=NOW)

    assert report.exit_code == 0, report.messages
    assert report.pulled["salesforce"]["pulled"] == 210  # in batches of about the 200 asked, as Salesforce sends them
    assert report.pushed["salesforce"]["written"] > 0
    if RECORD_MODE == "none":
        assert cassette.all_played
    recorded = CASSETTE.read_text()
    assert CLIENT_SECRET not in recorded and CLIENT_ID not in recorded
    assert not TOKEN_SHAPE.search(recorded)
    assert "authorization" not in recorded.lower()
    if live is not None:
        assert not any(token in recorded for token in live.state.sessions.access)


def test_an_edit_between_the_read_and_the_write_fails_the_condition_not_the_person(org_450):
    """Each PATCH in the Composite call carries If-Unmodified-Since (the record's
    LastModifiedDate as the compare read saw it, rounded up to the second). The first call
    is held 2 s before Salesforce handles it; meanwhile a person rejects one of its records.
    Salesforce answers that subrequest 412: a conflict, and the person's rejection stands,
    with no release set on it."""
    org = org_450
    org.fault(method="POST", path="/services/data/*/composite", delay_seconds=2, times=1)
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(report=org.run(now=NOW)))
    thread.start()
    deadline = time.monotonic() + 60
    while org.calls().get(COMPOSITE, 0) < 1:
        assert time.monotonic() < deadline and thread.is_alive(), "the first write never went out"
        time.sleep(0.02)
    sending = [r["native_id"] for r in org.rows(
        "select distinct r.native_id from outbox o join change_requests r on r.key = o.request where o.state = 'sending' "
        "order by r.native_id")]
    assert 1 < len(sending) <= 25
    victim = sending[-1]
    org.sf().Case.update(victim, {"Status": "Rejected"})
    thread.join(timeout=120)

    report = outcome["report"]
    assert report.exit_code == 1 and report.pushed["salesforce"]["conflicts"] == 4, report.messages
    states = {r["field"]: (r["state"], r["last_error"]) for r in org.rows(
        "select o.field, o.state, o.last_error from outbox o join change_requests r on r.key = o.request "
        "where r.native_id = ?", [victim])}
    assert {field: state for field, (state, _) in states.items()} == dict.fromkeys(WRITTEN, "conflict")
    assert "changed in Salesforce after relsync read it" in states["release"][1]
    case = org.sf().Case.get(victim)
    assert (case["Status"], case["Release__c"]) == ("Rejected", None)
    others = [native_id for native_id in sending if native_id != victim]
    assert org.one("select count(*) from outbox o join change_requests r on r.key = o.request where o.state = 'done' "
                   "and r.native_id in (select value from json_each(?))", [json.dumps(others)]) == 4 * len(others)
