"""Airtable ``as: link``: the linked Releases table's primary field is read from the base schema.

Airtable shows a linked record by its table's primary field, which can be called anything;
``GET /v0/meta/bases/{baseId}/tables`` gives each table's ``primaryFieldId`` (Airtable Web
API reference, "Get base schema"). Here the Releases table's primary field is "Release".
"""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from relsync.demo import write_config
from sandboxes.airtable.app import create_airtable_app, state_of
from sandboxes.airtable.data import CHANGE_REQUESTS, RELEASES
from sandboxes.server import serve
from tests.sync.test_airtable_sync import LIST, META, AirtableWorld, lists, only_eligible, planned_releases, use_release_target


@pytest.fixture
def renamed_world(tmp_path: Path) -> Iterator[AirtableWorld]:
    """40 seeded change requests; the Releases table's primary field is "Release", not "Name"."""
    token = f"pat{secrets.token_urlsafe(10)}.{secrets.token_hex(32)}"
    app = create_airtable_app(records=40, seed=11, token=token, releases_primary="Release", behaviour="kind")
    running = serve(app)
    try:
        description = {"airtable": {"url": running.url, "env": {"RELSYNC_AIRTABLE_TOKEN": token}, "base": state_of(app).base_id,
                                    "table": CHANGE_REQUESTS, "releases_table": RELEASES}}
        path = write_config(description, tmp_path / "relsync.yaml")
        yield AirtableWorld(description, path, {"RELSYNC_AIRTABLE_TOKEN": token})
    finally:
        running.stop()


def test_linked_releases_use_the_primary_field_whatever_its_name(renamed_world):
    world = renamed_world
    schema = world.table(RELEASES).schema()
    assert schema.field(schema.primary_field_id).name == "Release"
    use_release_target(world, "link")
    chosen = only_eligible(world, approved=12)
    world.reset_calls()

    report = world.run()

    assert report.exit_code == 0, report.messages
    calls = world.calls()
    # The schema once; the pull, a compare read before each of the 2 PATCHes, Releases.
    assert calls[META] == 1 and calls["PATCH /v0/{base_id}/{table}"] == 2 and lists(calls) == 1 + 2 + 1
    planned = planned_releases(world)
    assert sorted(planned) == sorted(f"airtable:{rid}" for rid in chosen)
    releases = {r["id"]: r["fields"] for r in world.table(RELEASES).all()}
    assert all(set(fields) <= {"Release", "Deploy Date"} for fields in releases.values())
    names = {rid: fields["Release"] for rid, fields in releases.items()}
    links = {r["id"]: r["fields"]["Release Link"] for r in world.table().all(fields=["Release Link"]) if r["fields"]}
    for request, name in planned.items():
        assert [names[link] for link in links[request.split(":", 1)[1]]] == [name]
    created = sorted(n for n in names.values() if n not in {"2026.08", "2026.09", "2026.10"})
    assert created == sorted(set(planned.values()))  # each new release created once, by its primary field

    # The linked names read back through the primary field: the next runs write nothing.
    assert world.run().pushed["airtable"]["written"] == 0
    world.reset_calls()
    quiet = world.run()
    assert quiet.pushed["airtable"] == {"queued": 0, "written": 0, "conflicts": 0, "failed": 0, "pending": 0}
    assert world.calls() == {LIST[0]: 2, META: 1}


def test_a_link_table_missing_from_the_base_is_named(renamed_world):
    world = renamed_world
    use_release_target(world, "link")
    text = world.config_path.read_text().replace("link_table: Releases", "link_table: Release Trains")
    world.config_path.write_text(text)
    only_eligible(world, approved=3)

    report = world.run()

    assert report.exit_code == 2, report.messages
    assert "table 'Release Trains' (sources.airtable.write.release.link_table) does not exist in base" in "\n".join(report.messages)
