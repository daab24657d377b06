"""A store with history: syncs over three weeks of release cadence, with people approving,
rejecting and deploying requests in Jira between them, so every figure of the report has
something to count."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from config.loader import load_config
from config.schema import Config
from mapping import clock
from sandboxes import edits
from sync import engine
from sync.store import open_store
from tests.conftest import World, make_world


@dataclass
class History:
    """The world, its tight config (small releases, a Sales Ops quota) and the moment of the last sync."""

    world: World
    config_path: Path
    config: Config
    last_sync: dt.datetime
    deployed: list[str]
    rejected: str
    approved: list[str]


def _sync(config: Config, world: World, now: dt.datetime) -> None:
    report = engine.run(config, env=world.env, now=now)
    assert report.status in ("ok", "partial"), report.messages


@pytest.fixture(scope="package")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    """40 Jira requests synced four times: now, after edits, while the first release deploys, and after it."""
    for world in make_world(tmp_path_factory.mktemp("history"), records=40):
        data = yaml.safe_load(world.config_path.read_text())
        for train in data["trains"]:
            if train["name"] == "business-systems":
                train["capacity"] = {"total": 4, "by_department": {"Sales Ops": 1}}
                train["horizon"] = 2
        path = world.config_path.with_name("tight.yaml")
        path.write_text(yaml.safe_dump(data))
        config = load_config(path)
        start = clock.now()
        _sync(config, world, start)

        db = open_store(config.store)
        first = next(db.query(
            "select id, name, deploy_at from releases where train = 'business-systems' order by deploy_at limit 1"))
        members = [row["request"] for row in db.query(
            "select request from assignments where release = ? order by request", [first["id"]])]
        triaged = [row["key"] for row in db.query(
            "select key from change_requests where status in ('triaged', 'new') order by key limit 2")]
        db.close()
        assert len(members) >= 3 and len(triaged) == 2

        client = edits.jira_client(world.description)
        native = {key: key.partition(":")[2] for key in [*members, *triaged]}
        for key in triaged:
            edits.jira_move_to(client, native[key], "Approved")
        edits.jira_move_to(client, native[members[0]], "Approved")  # Unschedule, then Reject
        edits.jira_move_to(client, native[members[0]], "Rejected")
        edits.jira_wait_until_indexed(client, *(native[k] for k in [*triaged, members[0]]))
        _sync(config, world, start)

        deploy_at = clock.parse(first["deploy_at"])
        db = open_store(config.store)
        deployed = [row["request"] for row in db.query(
            "select request from assignments where release = ? order by request limit 2", [first["id"]])]
        db.close()
        native.update({key: key.partition(":")[2] for key in deployed})
        for key in deployed:
            edits.jira_move_to(client, native[key], "Deployed")
        edits.jira_wait_until_indexed(client, *(native[k] for k in deployed))
        _sync(config, world, deploy_at + dt.timedelta(hours=2))
        last = deploy_at + dt.timedelta(days=3)
        _sync(config, world, last)
        yield History(world, path, config, last, deployed, members[0], triaged)
