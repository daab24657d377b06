"""Planning into a real store: two trains, routing, quotas, cancellations and blackouts."""
from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import pytest

from config.schema import Train
from sync import engine
from sync.schedule import plan_into_store
from sync.store import open_store, start_run

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # a Friday

HOTFIX = Train.model_validate({
    "name": "hotfix", "release_name": "{train} {deploy:%Y.%m.%d}",
    "cadence": {"every_weeks": 1, "weekday": "thursday"}, "freeze_days": 1, "horizon": 2,
    "capacity": 3, "match": {"priorities": ["critical"]}, "expedite": {"priorities": ["critical"]},
})
BS = Train.model_validate({
    "name": "BS", "release_name": "{train} {deploy:%Y.%m.%d}",
    "cadence": {"every_weeks": 2, "weekday": "tuesday", "anchor": "2026-12-01"}, "horizon": 2,
    "capacity": {"total": 3, "by_department": {"Sales Ops": 1}},
})


@pytest.fixture
def db(tmp_path):
    store = open_store(tmp_path / "s.db")
    yield store
    store.close()


def add(db, key: str, priority: str, department: str, *, status: str = "approved",
        created: str = "2026-10-01T00:00:00Z"):
    source, native = key.split(":")
    db["change_requests"].insert({
        "key": key, "source": source, "system": source, "native_id": native, "title": key,
        "priority": priority, "department": department, "type": "Field change", "status": status,
        "created_at": created,
    })


def plan(db, trains=(HOTFIX, BS), now=NOW):
    return plan_into_store(db, list(trains), now=now, run_id=start_run(db))


def placed(db) -> dict[str, str]:
    return {row["request"]: row["release"] for row in db.query("select request, release from assignments")}


def last_reason(db, key: str) -> dict:
    row = list(db.query("select new from audit where request = ? order by id desc limit 1", [key]))[0]
    return json.loads(row["new"])


def test_requests_go_to_their_train_within_quotas_and_follow_a_priority_change(db):
    add(db, "jira:OPS-1", "critical", "Sales Ops")
    add(db, "jira:OPS-2", "high", "Sales Ops")
    add(db, "jira:OPS-3", "medium", "sales ops")  # quotas ignore case
    add(db, "airtable:rec1", "low", "Finance Ops")

    counts = engine.plan(db, SimpleNamespace(trains=[HOTFIX, BS]), run_id=start_run(db), now=NOW)

    assert (counts.releases, counts.assigned, counts.unassigned) == (5, 4, 0)
    assert placed(db) == {
        "jira:OPS-1": "hotfix-20261126",  # critical: the hotfix train
        "jira:OPS-2": "BS-20261201",
        "jira:OPS-3": "BS-20261215",  # the Sales Ops quota of the first release is taken
        "airtable:rec1": "BS-20261201",
    }
    releases = {row["id"]: (row["train"], row["name"], row["capacity"], row["state"])
                for row in db.query("select * from releases")}
    assert releases == {
        "hotfix-20261119": ("hotfix", "hotfix 2026.11.19", 3, "deploying"),  # deployed yesterday evening
        "hotfix-20261126": ("hotfix", "hotfix 2026.11.26", 3, "open"),
        "hotfix-20261203": ("hotfix", "hotfix 2026.12.03", 3, "open"),
        "BS-20261201": ("BS", "BS 2026.12.01", 3, "open"),
        "BS-20261215": ("BS", "BS 2026.12.15", 3, "open"),
    }

    db["change_requests"].update("jira:OPS-1", {"priority": "high"})
    counts = plan(db)

    assert placed(db) == {"jira:OPS-1": "BS-20261215", "jira:OPS-2": "BS-20261201", "airtable:rec1": "BS-20261201"}
    assert last_reason(db, "jira:OPS-1") == {
        "release": "BS 2026.12.15",
        "reason": "moved from hotfix 2026.11.26 (routed to train BS): "
                  "priority high, status approved, created 2026-10-01",
    }
    assert last_reason(db, "jira:OPS-3")["reason"] == (
        "left release BS 2026.12.15: bumped by jira:OPS-1, priority high, no open release has room"
    )


def test_a_cancelled_release_stays_cancelled_and_its_requests_are_planned_again(db):
    add(db, "jira:OPS-2", "high", "Sales Ops")
    add(db, "airtable:rec1", "low", "Finance Ops")
    plan(db)
    assert placed(db) == {"jira:OPS-2": "BS-20261201", "airtable:rec1": "BS-20261201"}

    db["releases"].update("BS-20261201", {"state": "cancelled"})  # what `relsync release cancel` stores
    plan(db)

    assert db["releases"].get("BS-20261201")["state"] == "cancelled"
    assert placed(db) == {"jira:OPS-2": "BS-20261215", "airtable:rec1": "BS-20261215"}
    assert last_reason(db, "airtable:rec1")["reason"] == (
        "moved from BS 2026.12.01 (release BS 2026.12.01 cancelled): priority low, status approved, created 2026-10-01"
    )


def test_a_pin_in_a_cancelled_release_is_removed_and_the_request_replanned(db):
    add(db, "jira:OPS-2", "high", "Sales Ops")
    plan(db)
    db["assignments"].update("jira:OPS-2", {"pinned": 1, "release": "BS-20261215"})
    plan(db)
    assert placed(db) == {"jira:OPS-2": "BS-20261215"}  # the pin holds

    db["releases"].update("BS-20261215", {"state": "cancelled"})
    plan(db)

    assert [dict(row) for row in db.query("select release, pinned from assignments")] == [
        {"release": "BS-20261201", "pinned": 0}
    ]
    assert "release BS 2026.12.15 cancelled, pin removed" in last_reason(db, "jira:OPS-2")["reason"]


def test_a_blackout_added_later_cancels_a_skipped_release_and_moves_its_requests(db):
    add(db, "airtable:rec1", "low", "Finance Ops")
    plan(db, trains=[BS])
    assert placed(db) == {"airtable:rec1": "BS-20261201"}

    skip = Train.model_validate(BS.model_dump() | {"blackouts": [
        {"name": "Audit", "start": "2026-11-30", "end": "2026-12-02", "action": "skip"}]})
    plan(db, trains=[skip])

    assert db["releases"].get("BS-20261201")["state"] == "cancelled"
    assert db["releases"].get("BS-20261229")["state"] == "open"  # the horizon still holds two releases
    assert placed(db) == {"airtable:rec1": "BS-20261215"}
    # Calendar subscribers see the change: the skipped release's revision went up once, the others' not.
    assert {row["id"]: row["revision"] for row in db.query("select id, revision from releases")} == {
        "BS-20261201": 1, "BS-20261215": 0, "BS-20261229": 0}
    plan(db, trains=[skip])
    assert db["releases"].get("BS-20261201")["revision"] == 1  # planning again changes nothing


def test_a_release_a_blackout_moves_keeps_its_id_and_raises_its_revision(db):
    plan(db, trains=[BS])
    before = db["releases"].get("BS-20261215")
    move = Train.model_validate(BS.model_dump() | {"blackouts": [
        {"name": "Audit", "start": "2026-12-15", "end": "2026-12-16", "action": "move"}]})
    plan(db, trains=[move])
    after = db["releases"].get("BS-20261215")
    assert after["deploy_at"] > before["deploy_at"] and after["revision"] == before["revision"] + 1
    plan(db, trains=[move])
    assert db["releases"].get("BS-20261215")["revision"] == before["revision"] + 1


def test_a_release_name_freed_by_a_changed_blackout_passes_to_the_release_that_now_deploys_then(db):
    weekly = {"name": "BS", "release_name": "{train} {deploy:%Y.%m.%d}", "horizon": 2,
              "cadence": {"every_weeks": 1, "weekday": "tuesday"}}
    first = Train.model_validate(weekly | {"blackouts": [
        {"name": "Holidays", "start": "2026-12-20", "end": "2027-01-03"}]})
    plan(db, trains=[first], now=dt.datetime(2026, 12, 17, 9, tzinfo=UTC))
    assert db["releases"].get("BS-20261222")["name"] == "BS 2027.01.04"

    # Now 22 December is skipped and 29 December moves to 4 January instead.
    second = Train.model_validate(weekly | {"blackouts": [
        {"name": "Audit", "start": "2026-12-20", "end": "2026-12-26", "action": "skip"},
        {"name": "Holidays", "start": "2026-12-27", "end": "2027-01-03"}]})
    plan(db, trains=[second], now=dt.datetime(2026, 12, 17, 9, tzinfo=UTC))

    rows = {row["id"]: (row["name"], row["state"]) for row in db.query("select * from releases")}
    assert rows["BS-20261229"] == ("BS 2027.01.04", "open")
    assert rows["BS-20261222"] == ("BS 2027.01.04 (BS-20261222)", "cancelled")


def test_a_critical_request_is_expedited_into_a_frozen_hotfix_release(db):
    add(db, "jira:OPS-9", "critical", "IT")
    wednesday = dt.datetime(2026, 11, 25, 20, 0, tzinfo=UTC)  # hotfix 26 November froze at 18:00
    plan(db, now=wednesday)
    assert db["releases"].get("hotfix-20261126")["state"] == "frozen"
    assert placed(db) == {"jira:OPS-9": "hotfix-20261126"}
    assert last_reason(db, "jira:OPS-9")["reason"] == (
        "planned (expedited into a frozen release): priority critical, status approved, created 2026-10-01"
    )
