"""Airtable end to end: the real pyairtable client against a live Airtable sandbox, a real store.

Each test starts its own sandbox (``systems=("airtable",)``) and a config written by
``relsync.demo.write_config``. API calls are counted by the sandbox (``/_sandbox/calls``),
so every count asserted here is exact. Test edits go through pyairtable as a user's
script would, and are made before the counter is reset.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from click.testing import CliRunner
from pyairtable import Api, Table

from config.loader import load_config
from config.schema import Config
from mapping import clock
from relsync.cli import main
from relsync.demo import write_config
from sandboxes.server import start_sandboxes
from sync import engine
from sync.store import open_store
from tests.recording import NOW, RECORD_MODE, recorder

LIST = ("GET /v0/{base_id}/{table}", "POST /v0/{base_id}/{table}/listRecords")
PATCH = "PATCH /v0/{base_id}/{table}"
META = "GET /v0/meta/bases/{base_id}/tables"


@dataclass
class AirtableWorld:
    """A running Airtable sandbox, a config file pointing at it and the env holding its token."""

    description: dict[str, Any]
    config_path: Path
    env: dict[str, str]

    @property
    def url(self) -> str:
        return self.description["airtable"]["url"]

    @property
    def config(self) -> Config:
        return load_config(self.config_path)

    def table(self, name: str | None = None) -> Table:
        """A table of the sandbox base through pyairtable (its own retries off)."""
        box = self.description["airtable"]
        api = Api(self.env["RELSYNC_AIRTABLE_TOKEN"], endpoint_url=box["url"], retry_strategy=None)
        return api.table(box["base"], name or box["table"])

    def edit_source(self, **changes: Any) -> Config:
        """Rewrite the config file's airtable source (a None value removes the key)."""
        data = yaml.safe_load(self.config_path.read_text())
        source = data["sources"]["airtable"]
        for key, value in changes.items():
            if value is None:
                source.pop(key, None)
            else:
                source[key] = value
        self.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
        return self.config

    def edit_train(self, **changes: Any) -> Config:
        data = yaml.safe_load(self.config_path.read_text())
        data["trains"][0].update(changes)
        self.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
        return self.config

    def knob(self, path: str, body: Any = None, method: str = "POST") -> Any:
        response = requests.request(method, f"{self.url}/_sandbox{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json() if response.content else None

    def counter(self) -> dict[str, Any]:
        return self.knob("/calls", method="GET")

    def calls(self) -> dict[str, int]:
        """Requests that reached the sandbox, by route."""
        return self.counter()["calls"]

    def statuses(self) -> dict[str, int]:
        """Answers the sandbox gave, by status code."""
        return self.counter()["statuses"]

    def reset_calls(self) -> None:
        requests.post(f"{self.url}/_sandbox/calls/reset", timeout=10).raise_for_status()

    def fault(self, **rule: Any) -> None:
        self.knob("/faults", rule)

    def run(self, config: Config | None = None) -> engine.RunReport:
        return engine.run(config or self.config, env=self.env)

    def rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        db = open_store(self.config.store)
        try:
            return list(db.query(sql, params))
        finally:
            db.close()


def lists(calls: dict[str, int]) -> int:
    return sum(calls.get(key, 0) for key in LIST)


def patches(calls: dict[str, int]) -> int:
    return calls.get(PATCH, 0)


def make_world(tmp_path: Path, records: int, seed: int = 11, behaviour: str = "kind") -> Iterator[AirtableWorld]:
    """A world whose sandbox is kind unless asked: these tests edit the base with their own
    unthrottled client, which the real rate limit would punish with 30-second penalties
    (a person editing in Airtable's interface costs the API nothing)."""
    with start_sandboxes(records=records, seed=seed, systems=("airtable",), behaviour=behaviour) as sandboxes:
        description = sandboxes.describe()
        path = write_config(description, tmp_path / "relsync.yaml")
        yield AirtableWorld(description, path, dict(description["airtable"]["env"]))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[AirtableWorld]:
    """250 seeded Airtable change requests, a fresh store, a config and its env."""
    yield from make_world(tmp_path, records=250)


@pytest.fixture
def small_world(tmp_path: Path) -> Iterator[AirtableWorld]:
    """40 seeded Airtable change requests."""
    yield from make_world(tmp_path, records=40)


@pytest.fixture
def real_small_world(tmp_path: Path) -> Iterator[AirtableWorld]:
    """40 seeded Airtable change requests in a sandbox with Airtable's real limits."""
    yield from make_world(tmp_path, records=40, behaviour="real")


def set_statuses(world: AirtableWorld, statuses: dict[str, str]) -> None:
    """Set the Status of records (id -> choice) through pyairtable, as a user would."""
    world.table().batch_update([{"id": rid, "fields": {"Status": status}} for rid, status in statuses.items()])


def only_eligible(world: AirtableWorld, approved: int, scheduled: int = 0) -> list[str]:
    """Make exactly ``approved`` + ``scheduled`` records plannable (the rest New); their ids."""
    ids = sorted(record["id"] for record in world.table().all(fields=["Title"]))
    chosen = ids[: approved + scheduled]
    statuses = dict.fromkeys(ids[approved + scheduled:], "New")
    statuses |= dict.fromkeys(chosen[:approved], "Approved")
    statuses |= dict.fromkeys(chosen[approved:], "Scheduled")
    set_statuses(world, statuses)
    return chosen


def planned_releases(world: AirtableWorld) -> dict[str, str]:
    """Request key -> the name of the release the plan put it in."""
    return {r["request"]: r["name"] for r in world.rows(
        "select a.request, rel.name from assignments a join releases rel on rel.id = a.release")}


def written_records(world: AirtableWorld, run: int | None = None) -> set[str]:
    sql = "select distinct request from outbox where state = 'done'" + (" and run = ?" if run else "")
    return {r["request"] for r in world.rows(sql, [run] if run else [])}


# -- 1. paged initial pull ------------------------------------------------------------


def test_first_sync_pulls_every_record_in_pages_of_100(world):
    table = world.table()
    emptied = sorted(r["id"] for r in table.all(fields=["Title"]))[7]
    table.update(emptied, {"Description": None, "Department": None, "Owner": None, "Priority": None})
    without_owner = {r["id"] for r in table.all(fields=["Owner", "Title"]) if "Owner" not in r["fields"]}
    world.reset_calls()

    report = world.run()

    assert report.exit_code == 0, report.messages
    assert report.pulled["airtable"] == {
        "pulled": 250, "created": 250, "changed": 0, "unchanged": 0, "deleted": 0, "pages": 3,
    }
    assert world.rows("select count(*) as n from change_requests where source = 'airtable'")[0]["n"] == 250
    # Airtable leaves empty fields out of a record: they read as empty, or as the default.
    row = world.rows("select * from change_requests where native_id = ?", [emptied])[0]
    assert (row["description"], row["owner"], row["priority"], row["department"]) == (None, None, None, "Unassigned")
    assert row["title"] and row["status"]
    stored_without_owner = {r["native_id"] for r in world.rows("select native_id from change_requests where owner is null")}
    assert stored_without_owner == without_owner
    # One audit event per new request, nothing else pulled.
    pulled_events = world.rows("select field, count(*) as n from audit where origin = 'pulled' group by field")
    assert pulled_events == [{"field": "*", "n": 250}]
    # The pull costs ceil(250/100) list calls; the push one compare read right before each
    # PATCH of 10 records (Airtable has no conditional writes: the read stays next to the write).
    written = written_records(world)
    assert written
    calls = world.calls()
    assert lists(calls) == math.ceil(250 / 100) + math.ceil(len(written) / 10)
    assert patches(calls) == math.ceil(len(written) / 10)
    assert sum(calls.values()) == lists(calls) + patches(calls)
    assert report.api_calls["airtable"] == {"GET records": lists(calls), "PATCH records": patches(calls)}


# -- 2. incremental pulls -------------------------------------------------------------


def test_no_op_run_costs_one_list_call_and_writes_nothing(world):
    world.run()
    second = world.run()  # relsync's own writes come back
    assert second.pulled["airtable"]["pulled"] > 0
    assert world.rows("select count(*) as n from audit where run = ? and origin = 'pulled'", [second.run_id])[0]["n"] == 0
    world.reset_calls()

    report = world.run()

    assert report.exit_code == 0, report.messages
    assert world.calls() == {LIST[0]: 1}
    assert report.pushed["airtable"]["written"] == 0
    assert world.rows("select count(*) as n from audit where run = ?", [report.run_id])[0]["n"] == 0


def test_edits_made_in_airtable_are_pulled_with_field_level_audit(world):
    world.run()
    world.run()
    table = world.table()
    ids = sorted(r["id"] for r in table.all(fields=["Title"]))[10:13]
    for n, rid in enumerate(ids):
        # Owner is a collaborator: written by email, read back as {id, email, name}.
        table.update(rid, {"Title": f"Edited {n}: add a picklist value", "Owner": {"email": f"owner{n}@example.com",
                                                                                  "name": f"Owner {n}"}})
    world.reset_calls()

    report = world.run()

    assert report.exit_code == 0, report.messages
    assert report.pulled["airtable"]["changed"] == 3
    events = world.rows("select request, field, old, new from audit where run = ? order by request, field", [report.run_id])
    assert [(e["request"], e["field"]) for e in events] == [(f"airtable:{rid}", f) for rid in ids for f in ("owner", "title")]
    titles = {e["request"]: json.loads(e["new"]) for e in events if e["field"] == "title"}
    assert titles == {f"airtable:{rid}": f"Edited {n}: add a picklist value" for n, rid in enumerate(ids)}
    owners = {e["request"]: json.loads(e["new"]) for e in events if e["field"] == "owner"}
    assert owners == {f"airtable:{rid}": f"Owner {n}" for n, rid in enumerate(ids)}  # the collaborator's name
    assert world.calls() == {LIST[0]: 1}  # a title or owner edit changes no plan


def test_without_a_modified_field_every_run_lists_the_whole_table(world):
    world.edit_source(modified_field=None)
    world.run()
    world.run()
    world.reset_calls()

    quiet = world.run()

    assert quiet.exit_code == 0, quiet.messages
    assert world.calls() == {LIST[0]: 3}
    assert quiet.pulled["airtable"]["pulled"] == 250
    assert quiet.pulled["airtable"]["unchanged"] == 250
    assert world.rows("select count(*) as n from audit where run = ?", [quiet.run_id])[0]["n"] == 0

    rid = sorted(r["id"] for r in world.table().all(fields=["Title"]))[42]
    world.table().update(rid, {"Title": "Edited in a full-scan table"})
    edited = world.run()
    events = world.rows("select request, field from audit where run = ?", [edited.run_id])
    assert events == [{"request": f"airtable:{rid}", "field": "title"}]


# -- 3. write-back --------------------------------------------------------------------

RELEASE_TARGETS = {
    "text": ({"field": "Release"}, "fields.Release"),
    "select": ({"field": "Release Select", "as": "select"}, "fields.Release Select"),
    "link": ({"field": "Release Link", "as": "link", "link_table": "Releases"}, {"path": "fields.Release Link", "convert": "first"}),
}


def use_release_target(world: AirtableWorld, kind: str) -> Config:
    target, path = RELEASE_TARGETS[kind]
    data = yaml.safe_load(world.config_path.read_text())
    source = data["sources"]["airtable"]
    source["write"]["release"] = target
    source["fields"]["release"] = path
    world.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    return world.config


@pytest.mark.parametrize("kind", list(RELEASE_TARGETS))
def test_release_and_status_are_written_back_in_batches_of_ten(small_world, kind):
    world = small_world
    use_release_target(world, kind)
    chosen = only_eligible(world, approved=25)
    world.reset_calls()

    report = world.run()

    assert report.exit_code == 0, report.messages
    planned = planned_releases(world)
    assert sorted(planned) == sorted(f"airtable:{rid}" for rid in chosen)
    assert report.pushed["airtable"]["written"] == 100  # release, status, planned date and phase of 25 records
    calls = world.calls()
    assert patches(calls) == 3  # 10 + 10 + 5 records
    names = sorted(set(planned.values()))
    if kind == "link":
        # The base schema (for the Releases primary field) and the Releases table are read
        # once, and each missing release created once.
        assert calls.get(META) == 1
        assert lists(calls) == 1 + 3 + 1  # pull, a compare read per batch of 10, Releases
        assert calls.get("POST /v0/{base_id}/{table}") == len(names)
    else:
        assert lists(calls) == 1 + 3  # pull, a compare read before each of the 3 batches
    assert sum(calls.values()) == lists(calls) + patches(calls) + calls.get("POST /v0/{base_id}/{table}", 0) + calls.get(META, 0)

    field = RELEASE_TARGETS[kind][0]["field"]
    shown = {r["id"]: r["fields"] for r in world.table().all(fields=[field, "Status"])}
    releases = {r["id"]: r["fields"].get("Name") for r in world.table("Releases").all()}
    for request, name in planned.items():
        fields = shown[request.split(":", 1)[1]]
        assert fields["Status"] == "Scheduled"
        if kind == "link":
            assert [releases[link] for link in fields[field]] == [name]
        else:
            assert fields[field] == name
    if kind == "select":
        choices = {c.name for c in world.table().schema().field("Release Select").options.choices}
        assert set(names) <= choices
        assert {"2026.08", "2026.09", "2026.10"} <= choices
    if kind == "link":
        seeded = {"2026.08", "2026.09", "2026.10"}
        assert sorted(n for n in releases.values() if n not in seeded) == names  # each release once

    # The values relsync wrote come back on the next pull as its own: no audit, no writes.
    again = world.run()
    assert again.exit_code == 0, again.messages
    assert again.pushed["airtable"]["written"] == 0
    assert world.rows("select count(*) as n from audit where run = ? and origin = 'pulled'", [again.run_id])[0]["n"] == 0
    world.reset_calls()
    quiet = world.run()
    assert world.calls() == ({LIST[0]: 2, META: 1} if kind == "link" else {LIST[0]: 1})
    assert quiet.pushed["airtable"] == {"queued": 0, "written": 0, "conflicts": 0, "failed": 0, "pending": 0}


# -- 4. compare before write ------------------------------------------------------------


def test_edit_between_pull_and_push_is_a_conflict_not_an_overwrite(small_world):
    world = small_world
    chosen = only_eligible(world, approved=12)
    config = world.config
    db = open_store(config.store)
    try:
        sources = engine.build_sources(config, world.env)
        engine.pull_sources(db, sources, run_id=1)
        engine.plan(db, config, run_id=1, now=clock.now())
        victim = chosen[3]
        world.table().update(victim, {"Status": "Rejected", "Release": "Hotfix 7"})
        world.reset_calls()

        pushed = engine.push_writebacks(db, sources, run_id=1)

        assert pushed["airtable"].conflicts == 4  # every write to the record someone changed is held
        assert pushed["airtable"].written == 4 * 11
        states = {r["field"]: r["state"] for r in db.query("select field, state from outbox where request = ?", [f"airtable:{victim}"])}
        assert states == {"release": "conflict", "status": "conflict", "planned_date": "conflict", "phase": "conflict"}
        events = {r["field"]: json.loads(r["new"]) for r in db.query(
            "select field, new from audit where request = ? and origin = 'pushed'", [f"airtable:{victim}"])}
        assert set(events) == {"release", "status", "planned_date", "phase"}
        assert events["status"]["conflict"] == "Scheduled" and "Rejected" in events["status"]["message"]
        assert "Hotfix 7" in events["release"]["message"]
    finally:
        db.close()
    assert world.table().get(victim)["fields"]["Status"] == "Rejected"
    assert world.table().get(victim)["fields"]["Release"] == "Hotfix 7"
    assert patches(world.calls()) == 2  # the 11 others: 10 + 1


# -- 5. deletions -----------------------------------------------------------------------


def unplanned(world: AirtableWorld, count: int = 1) -> list[str]:
    """Ids of stored records no plan depends on (deleting them frees no release capacity)."""
    return [r["native_id"] for r in world.rows(
        "select native_id from change_requests where status in ('deployed', 'closed', 'rejected') "
        "order by native_id limit ?", [count])]


def deleted_rows(world: AirtableWorld) -> list[dict[str, Any]]:
    return world.rows("select native_id, deleted_at, title from change_requests where deleted_at is not null")


def deleted_events(world: AirtableWorld, run: int) -> list[str]:
    return [r["request"] for r in world.rows(
        "select request from audit where run = ? and field = 'deleted_at' and origin = 'pulled'", [run])]


def test_deleted_records_are_found_on_every_run_when_reconcile_is_zero(world):
    world.edit_source(reconcile_every_hours=0)
    world.run()
    world.run()
    [gone] = unplanned(world)
    world.table().delete(gone)
    world.reset_calls()

    report = world.run()

    assert report.exit_code == 0, report.messages
    assert report.pulled["airtable"]["deleted"] == 1
    rows = deleted_rows(world)
    assert [r["native_id"] for r in rows] == [gone] and rows[0]["title"]  # the row is kept
    assert deleted_events(world, report.run_id) == [f"airtable:{gone}"]
    assert world.calls() == {LIST[0]: 1 + 3}  # the incremental pull, then ids of 249 records


def test_deleted_records_are_found_by_a_full_scan(world):
    world.edit_source(modified_field=None)
    world.run()
    gone = unplanned(world, 2)
    world.table().batch_delete(gone)
    world.reset_calls()

    report = world.run()

    assert report.pulled["airtable"]["deleted"] == 2
    assert sorted(r["native_id"] for r in deleted_rows(world)) == gone
    assert sorted(deleted_events(world, report.run_id)) == [f"airtable:{rid}" for rid in gone]
    assert lists(world.calls()) == 3  # the full listing finds deletions for free


def test_no_op_run_does_not_reconcile_before_it_is_due(world):
    world.run()
    world.run()
    [gone] = unplanned(world)
    world.table().delete(gone)
    world.reset_calls()

    report = world.run()

    assert world.calls() == {LIST[0]: 1}
    assert report.pulled["airtable"]["deleted"] == 0
    assert deleted_rows(world) == []


# -- 6. rate limits -----------------------------------------------------------------------


def after_each_response(monkeypatch: pytest.MonkeyPatch, hook: Any) -> None:
    """Run ``hook(response)`` after each response relsync's Airtable connector receives."""
    connect = engine.CONNECTORS["airtable"]

    def connect_and_hook(*args: Any, **kwargs: Any) -> Any:
        connector = connect(*args, **kwargs)
        connector.api.session.hooks["response"].append(hook)
        return connector

    monkeypatch.setitem(engine.CONNECTORS, "airtable", connect_and_hook)


def test_a_429_is_waited_out_for_the_whole_penalty(small_world, monkeypatch):
    world = small_world
    world.edit_source(penalty_seconds=2)
    world.knob("/config", {"rate_limit": {"requests": 5, "per_seconds": 1, "penalty_seconds": 2}})
    headers = {"Authorization": f"Bearer {world.env['RELSYNC_AIRTABLE_TOKEN']}"}
    base = world.description["airtable"]["base"]
    others: list[int] = []

    def another_client(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        # Right after relsync's first request, another client of the base spends the
        # rest of this second's five: relsync's next request is refused with a penalty.
        if not others:
            others.extend(requests.get(f"{world.url}/v0/{base}/Releases", headers=headers, timeout=10).status_code
                          for _ in range(4))

    after_each_response(monkeypatch, another_client)

    report = world.run()

    assert report.exit_code == 0, report.messages
    assert report.pulled["airtable"]["pulled"] == 40
    assert others == [200] * 4
    # Any request inside the 2-second penalty window would have been refused too.
    assert world.statuses() == {"200": sum(world.calls().values()) - 1, "429": 1}


def test_requests_stay_under_five_per_second(tmp_path):
    for world in make_world(tmp_path, records=600):
        world.knob("/config", {"rate_limit": {"requests": 5, "per_seconds": 1, "penalty_seconds": 2}})

        report = world.run()

        assert report.exit_code == 0, report.messages
        assert report.pulled["airtable"]["pulled"] == 600
        calls = world.calls()
        assert lists(calls) >= 6 and patches(calls) > 0
        assert world.statuses() == {"200": sum(calls.values())}


# -- 7. errors ---------------------------------------------------------------------------


def test_server_errors_are_retried(small_world):
    world = small_world
    world.fault(method="GET", path="/v0/*", status=503, times=2)

    report = world.run()

    assert report.exit_code == 0, report.messages
    assert report.pulled["airtable"]["pulled"] == 40
    assert world.statuses()["503"] == 2
    assert world.rows("select count(*) as n from change_requests")[0]["n"] == 40


def test_a_refused_value_fails_alone_with_airtables_message(small_world):
    world = small_world
    data = yaml.safe_load(world.config_path.read_text())
    source = data["sources"]["airtable"]
    source["fields"]["status"]["map"]["Planned"] = "scheduled"  # not a choice of the Status select
    source["write"]["status"] = {"scheduled": "Planned"}
    world.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    chosen = only_eligible(world, approved=1, scheduled=9)
    bad = f"airtable:{chosen[0]}"
    world.reset_calls()

    report = world.run()

    assert report.exit_code == 1
    assert report.status == "partial"
    outbox = {(r["request"], r["field"]): r for r in world.rows("select * from outbox")}
    assert len(outbox) == 31  # ten releases, planned dates and phases, and one status
    failed = outbox.pop((bad, "status"))
    assert failed["state"] == "failed"
    message = 'INVALID_MULTIPLE_CHOICE_OPTIONS: Insufficient permissions to create new select option ""Planned""'
    assert failed["last_error"] == message
    assert report.messages == [f"{bad} status: {message}"]
    assert {r["state"] for r in outbox.values()} == {"done"}  # the other nine records, and the bad one's other fields
    shown = {r["id"]: r["fields"] for r in world.table().all(fields=["Release", "Status"])}
    planned = planned_releases(world)
    assert {rid: shown[rid]["Release"] for rid in chosen} == {rid: planned[f"airtable:{rid}"] for rid in chosen}
    assert shown[chosen[0]]["Status"] == "Approved"
    # The batch, then its ten records one by one, then the bad record field by field.
    assert patches(world.calls()) == 1 + 10 + 4
    assert world.statuses()["422"] == 3


# -- 8. expired list iterators ------------------------------------------------------------


def expire_offsets_after_first_page(world: AirtableWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the pull's first and second page, Airtable forgets every list iterator."""
    fired: list[str] = []

    def expire(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if not fired and response.request.method == "GET" and "offset" in response.json():
            fired.append(response.json()["offset"])
            world.knob("/airtable/expire-offsets")

    after_each_response(monkeypatch, expire)


def assert_stored_once(world: AirtableWorld, report: engine.RunReport) -> None:
    assert report.exit_code == 0, report.messages
    assert report.pulled["airtable"]["pulled"] == 250
    assert report.pulled["airtable"]["created"] == 250
    assert world.rows("select count(*) as n from change_requests")[0]["n"] == 250
    events = world.rows("select request, field, count(*) as n from audit where origin = 'pulled' group by request, field")
    assert len(events) == 250 and {(e["field"], e["n"]) for e in events} == {("*", 1)}
    assert world.statuses()["422"] == 1


def test_an_expired_iterator_restarts_the_listing_from_the_newest_stamp(world, monkeypatch):
    stamps = sorted((r["fields"]["Last Modified"], r["id"]) for r in world.table().all(fields=["Last Modified"]))
    latest = dt.datetime.fromisoformat(stamps[99][0])
    restart_from = (latest - dt.timedelta(seconds=120)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    again = sum(1 for stamp, _ in stamps if stamp >= restart_from)
    assert 0 < again < 250
    world.reset_calls()
    expire_offsets_after_first_page(world, monkeypatch)

    report = world.run()

    assert_stored_once(world, report)
    written = written_records(world)
    # First page, the refused second one, then from the first page's newest stamp (minus the overlap).
    assert lists(world.calls()) == 2 + math.ceil(again / 100) + math.ceil(len(written) / 10)


def test_an_expired_iterator_restarts_a_full_scan(world, monkeypatch):
    world.edit_source(modified_field=None)
    expire_offsets_after_first_page(world, monkeypatch)

    report = world.run()

    assert_stored_once(world, report)
    written = written_records(world)
    assert lists(world.calls()) == 2 + 3 + math.ceil(len(written) / 10)


def test_an_iterator_that_keeps_expiring_stops_the_pull_with_a_message(small_world):
    world = small_world
    world.edit_source(page_size=10, modified_field=None)
    world.knob("/airtable/config", {"iterator_ttl_seconds": 0})  # every offset is stale at once

    report = world.run()

    assert report.exit_code == 1
    assert report.messages == [
        "airtable: LIST_RECORDS_ITERATOR_NOT_AVAILABLE: the record listing expired 4 times in a row; giving up"
    ]
    assert world.statuses() == {"200": 4, "422": 4}  # four times: the first page, then a refused offset
    assert report.pulled["airtable"]["pulled"] == 10  # the first page, stored once
    assert world.rows("select count(*) as n from change_requests")[0]["n"] == 10


# -- 9. relsync check --online ------------------------------------------------------------


def test_check_online_passes_a_clean_config_and_names_a_missing_choice(small_world):
    world = small_world
    runner = CliRunner()
    args = ["check", "--config", str(world.config_path), "--online"]

    clean = runner.invoke(main, args, env=world.env)

    assert clean.exit_code == 0, clean.output
    assert "airtable: online check passed" in clean.output

    data = yaml.safe_load(world.config_path.read_text())
    source = data["sources"]["airtable"]
    source["fields"]["status"]["map"]["Planned"] = "scheduled"
    source["write"]["status"] = {"scheduled": "Planned"}
    world.config_path.write_text(yaml.safe_dump(data, sort_keys=False))

    broken = runner.invoke(main, [*args, "--json"], env=world.env)

    assert broken.exit_code == 2, broken.output
    assert json.loads(broken.output)["problems"] == {
        "airtable": ["status 'Planned' is not a choice of single select 'Status'"]
    }
    assert world.env["RELSYNC_AIRTABLE_TOKEN"] not in broken.output
    assert world.calls() == {"GET /v0/meta/bases/{base_id}/tables": 2, "GET /v0/meta/whoami": 2, "GET /v0/meta/bases": 2}


def test_check_online_names_a_field_whose_airtable_type_cannot_give_the_mapped_value(small_world):
    world = small_world
    data = yaml.safe_load(world.config_path.read_text())
    fields = data["sources"]["airtable"]["fields"]
    fields["owner"] = "fields.Owner"  # a collaborator, read whole
    fields["type"] = "fields.Request Type"  # a multi-select, without join
    fields["description"] = "fields.Description.value"  # a key on text
    world.config_path.write_text(yaml.safe_dump(data, sort_keys=False))

    result = CliRunner().invoke(main, ["check", "--config", str(world.config_path), "--online", "--json"], env=world.env)

    assert result.exit_code == 2, result.output
    assert json.loads(result.output)["problems"] == {"airtable": [
        "fields.description: fields.Description.value holds text, which has no .value",
        "fields.type: fields.Request Type holds a list of values, not a single value; add convert: join (first, or names "
        "for objects), or pick one with .0",
        "fields.owner: fields.Owner holds a person {email, id, name}, not a single value; read its .name (or .email), "
        "or add convert: person_name",
    ]}
    assert world.calls() == {"GET /v0/meta/bases/{base_id}/tables": 1, "GET /v0/meta/whoami": 1, "GET /v0/meta/bases": 1}


# -- 10. replay -----------------------------------------------------------------------------
# A whole first sync replayed from a vcrpy cassette recorded against the sandbox, as in
# tests/test_replay.py (tests/recording.py says how to record anew).

FAKE_ENV = {"RELSYNC_AIRTABLE_TOKEN": "replayed-token"}


@pytest.fixture
def replay_config(tmp_path):
    """A config for the recorded sandbox; while recording, a live sandbox behind it."""
    if RECORD_MODE == "none":
        box = {"url": "http://127.0.0.1:9", "base": "appRelsyncOps0001", "table": "Change Requests", "env": FAKE_ENV}
        yield load_config(write_config({"airtable": box}, tmp_path / "relsync.yaml")), FAKE_ENV
        return
    with start_sandboxes(records=30, seed=5, systems=("airtable",)) as sandboxes:
        description = sandboxes.describe()
        yield load_config(write_config(description, tmp_path / "relsync.yaml")), description["airtable"]["env"]


def test_first_sync_replays_from_the_cassette(replay_config):
    config, env = replay_config
    with recorder.use_cassette("airtable_first_sync.yaml") as cassette:
        report = engine.run(config, env=env, now=NOW)

    assert report.exit_code == 0, report.messages
    assert report.pulled["airtable"]["pulled"] == 30
    assert report.pushed["airtable"]["written"] > 0
    if RECORD_MODE == "none":
        assert cassette.all_played


def test_the_read_sits_next_to_each_batch_so_an_edit_to_a_later_batch_is_seen(real_small_world):
    """Airtable has no conditional writes and no record history: relsync reads each batch of
    10 right before writing it. The first batch's PATCH is held 2 s before Airtable applies
    it; meanwhile a person rejects one request of that batch and one of the next. The next
    batch's read sees theirs (a conflict); the held batch was read before: that record is
    the residual window the README states (the gap between a batch's read and its write)."""
    world = real_small_world
    chosen = only_eligible(world, approved=15)
    world.fault(method="PATCH", path="/v0/*", delay_seconds=2, times=1)
    world.reset_calls()
    time.sleep(1)  # the set-up's burst of edits leaves Airtable's one-second rate window first
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(report=world.run()))
    thread.start()
    deadline = time.monotonic() + 60
    while patches(world.calls()) < 1:
        assert time.monotonic() < deadline and thread.is_alive(), "the first batch never went out"
        time.sleep(0.02)
    sending = {r["native_id"] for r in world.rows(
        "select r.native_id from outbox o join change_requests r on r.key = o.request where o.state = 'sending'")}
    waiting = {r["native_id"] for r in world.rows(
        "select r.native_id from outbox o join change_requests r on r.key = o.request where o.state = 'pending'")}
    in_batch, later = sorted(sending & set(chosen))[-1], sorted(waiting & set(chosen))[-1]
    for record in (in_batch, later):
        world.table().update(record, {"Status": "Rejected"})
    thread.join(timeout=120)

    report = outcome["report"]
    states = {r["native_id"]: r["state"] for r in world.rows(
        "select r.native_id, o.state from outbox o join change_requests r on r.key = o.request where o.field = 'status'")}
    assert states[later] == "conflict" and world.table().get(later)["fields"]["Status"] == "Rejected"
    assert report.pushed["airtable"]["conflicts"] == 4  # its status and, held with it, its release, date and phase
    # Read before the person's edit, written after it: the residual window.
    assert states[in_batch] == "done" and world.table().get(in_batch)["fields"]["Status"] == "Scheduled"
