"""The clash check flags two requests in one release that change the same object."""
from __future__ import annotations

from sync.manual import release_detail
from sync.schedule import all_clashes, release_clashes
from sync.store import open_store


def store_with(tmp_path, requests):
    db = open_store(tmp_path / "s.db")
    db["releases"].insert_all([
        {"id": "BS-1", "name": "BS 1", "train": "BS", "deploy_at": "2026-12-08T18:00:00Z",
         "freeze_at": "2026-12-05T18:00:00Z", "capacity": 10, "state": "open"},
        {"id": "BS-2", "name": "BS 2", "train": "BS", "deploy_at": "2026-12-22T18:00:00Z",
         "freeze_at": "2026-12-19T18:00:00Z", "capacity": 10, "state": "open"},
    ])
    for key, affected, release in requests:
        db["change_requests"].insert({"key": key, "source": key.split(":")[0], "system": key.split(":")[0],
                                      "native_id": key, "title": key, "status": "scheduled", "affected": affected})
        if release:
            db["assignments"].insert({"request": key, "release": release, "pinned": 0})
    return db


def test_two_requests_on_one_object_in_one_release_clash(tmp_path):
    db = store_with(tmp_path, [
        ("jira:OPS-1", "Opportunity", "BS-1"),
        ("salesforce:500A", "opportunity", "BS-1"),  # same object, other system, other case
        ("airtable:recA", "Case", "BS-1"),
        ("airtable:recB", "Opportunity", "BS-2"),  # another release: no clash
        ("jira:OPS-2", None, "BS-1"),
        ("jira:OPS-3", None, "BS-1"),  # unknown objects never clash
    ])

    assert release_clashes(db, "BS-1") == [{"object": "Opportunity", "requests": ["jira:OPS-1", "salesforce:500A"]}]
    assert release_clashes(db, "BS-2") == []
    assert all_clashes(db) == {"BS 1": [{"object": "Opportunity", "requests": ["jira:OPS-1", "salesforce:500A"]}]}
    assert release_detail(db, "BS 1")["clashes"] == release_clashes(db, "BS-1")


def test_sandboxes_carry_the_affected_object_end_to_end(tmp_path):
    from config.loader import load_config
    from relsync.demo import write_config
    from sandboxes.server import start_sandboxes
    from sync import engine

    with start_sandboxes(records=60, seed=4, systems=("jira", "airtable", "salesforce")) as sandboxes:
        description = sandboxes.describe()
        path = write_config(description, tmp_path / "relsync.yaml")
        env = {k: v for box in description.values() for k, v in box["env"].items()}
        engine.run(load_config(path), env=env)
    db = open_store(tmp_path / "relsync.db")
    rows = list(db["change_requests"].rows)
    assert {r["source"] for r in rows} == {"jira", "airtable", "salesforce"}
    for source in ("jira", "airtable", "salesforce"):
        mine = [r for r in rows if r["source"] == source]
        assert len(mine) == 60 and all(r["affected"] for r in mine), source
    objects = {"Opportunity", "Account", "Lead", "Case", "Contact", "Quote", "Contract", "Invoice", "Campaign", "Order"}
    assert {r["affected"] for r in rows} <= objects
    assert all_clashes(db)
