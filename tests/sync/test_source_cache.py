"""What a connector keeps between runs: Jira's server info and field list in the store, with an expiry."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

from config.schema import Config
from mapping import clock
from sync import engine
from sync.source_cache import StoreCache
from sync.store import open_store

SETUP = {"GET /rest/api/3/serverInfo", "GET /rest/api/3/field"}
SEARCH = "GET /rest/api/3/search/jql"


def with_jira(config: Config, **changes: Any) -> Config:
    sources = {**config.sources, "jira": config.sources["jira"].model_copy(update=changes)}
    return config.model_copy(update={"sources": sources})


def kept(world) -> dict[str, Any]:
    db = open_store(world.config.store)
    try:
        return {row["key"]: row for row in db.query("select * from source_cache where source = 'jira'")}
    finally:
        db.close()


def test_server_info_and_fields_are_asked_once_then_kept_until_they_expire(small_world):
    world = small_world
    first = engine.run(world.config, env=world.env)
    assert first.exit_code == 0, first.messages
    assert SETUP <= set(world.calls())
    rows = kept(world)
    assert set(rows) == {"jira.serverInfo", "jira.fieldIds"}
    assert json.loads(rows["jira.serverInfo"]["value"])["deploymentType"] == "Cloud"
    assert json.loads(rows["jira.fieldIds"]["value"])["fixVersion"] == "fixVersions"  # clause name -> field id
    fetched = clock.parse(rows["jira.serverInfo"]["fetched_at"])
    assert clock.parse(rows["jira.serverInfo"]["expires_at"]) - fetched == dt.timedelta(hours=24)
    engine.run(world.config, env=world.env)  # relsync's own writes come back
    world.reset_calls()

    assert engine.run(world.config, env=world.env).exit_code == 0
    assert world.calls() == {SEARCH: 1}

    uncached = with_jira(world.config, metadata_cache_hours=0)  # 0: asked on every run
    world.reset_calls()
    assert engine.run(uncached, env=world.env).exit_code == 0
    assert world.calls() == dict.fromkeys(SETUP, 1) | {SEARCH: 1}


def test_expired_metadata_is_asked_again(small_world):
    world = small_world
    assert engine.run(world.config, env=world.env).exit_code == 0
    db = open_store(world.config.store)
    with db.atomic():
        db.execute("update source_cache set expires_at = ? where key = 'jira.fieldIds'", [clock.stamp(clock.now())])
    db.close()
    world.reset_calls()

    engine.run(world.config, env=world.env)

    calls = world.calls()
    assert calls["GET /rest/api/3/field"] == 1 and "GET /rest/api/3/serverInfo" not in calls
    assert clock.parse(kept(world)["jira.fieldIds"]["expires_at"]) > clock.now() + dt.timedelta(hours=23)


def test_a_search_refused_for_a_field_refreshes_the_kept_metadata_once(small_world):
    world = small_world
    assert engine.run(world.config, env=world.env).exit_code == 0
    broken = with_jira(world.config, jql='"Change Window" is not EMPTY')  # a field this site does not have
    world.reset_calls()

    report = engine.run(broken, env=world.env)

    assert report.exit_code != 0
    message = "Field 'Change Window' does not exist or you do not have permission to view it."
    assert any(message in line for line in report.messages), report.messages
    # The kept metadata might be stale: asked again (server info, fields), then the search once more.
    assert world.calls() == dict.fromkeys(SETUP, 1) | {SEARCH: 2}

    world.reset_calls()
    fresh = with_jira(broken, metadata_cache_hours=0)  # fetched fresh this run: nothing stale to refresh
    engine.run(fresh, env=world.env)
    assert world.calls() == dict.fromkeys(SETUP, 1) | {SEARCH: 1}


def test_the_cache_keeps_json_values_per_source_and_forgets_on_drop(tmp_path):
    db = open_store(tmp_path / "s.db")
    at = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    cache = StoreCache(db, "jira", now=at)
    cache.put("a", {"x": [1, 2]}, hours=1)
    cache.put("b", "kept", hours=1)
    cache.save(db)
    assert StoreCache(db, "jira", now=at).get("a") == {"x": [1, 2]}
    assert StoreCache(db, "other", now=at).get("a") is None
    assert StoreCache(db, "jira", now=at + dt.timedelta(hours=1)).get("a") is None  # expired
    again = StoreCache(db, "jira", now=at)
    again.drop("a")
    again.save(db)
    assert [row["key"] for row in db.query("select key from source_cache")] == ["b"]
    db.close()
