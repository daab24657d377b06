"""Source history import from Jira: the real jira client against the sandbox, a real store, exact call counts."""
from __future__ import annotations

import math

import pytest

from sandboxes import edits
from sync import engine
from sync.audit import request_history, verify_chain
from sync.dryrun import dry_run
from sync.store import open_store
from tests.conftest import make_world

CHANGELOG = "POST /rest/api/3/changelog/bulkfetch"


def rows(world, sql: str, params=()) -> list[dict]:
    db = open_store(world.config.store)
    try:
        return list(db.query(sql, params))
    finally:
        db.close()


def history_of(world, key: str) -> list[dict]:
    db = open_store(world.config.store)
    try:
        return request_history(db, key)
    finally:
        db.close()


def test_an_edit_by_a_person_is_imported_with_their_name(small_world):
    world = small_world
    first = engine.run(world.config, env=world.env)
    assert first.exit_code == 0, first.messages
    dana = edits.jira_client_as(world.description, "Dana Whitfield", "dana.whitfield@example.com")
    edits.jira_set_priority(dana, "OPS-3", "Highest")
    edits.jira_wait_until_indexed(dana, "OPS-3")

    second = engine.run(world.config, env=world.env)

    assert second.exit_code == 0, second.messages
    imported = [e for e in history_of(world, "jira:OPS-3") if e["origin"] == "history" and e["field"] == "priority"]
    assert [(e["actor"], e["new"], e["system"]) for e in imported][-1:] == [("Dana Whitfield", "Highest", "jira")]
    assert second.history["jira"]["imported"] == 1  # only Dana's edit is new: nothing else changed since
    db = open_store(world.config.store)
    try:
        assert verify_chain(db).ok
    finally:
        db.close()


def test_relsyncs_own_writes_in_the_changelog_are_matched_to_its_pushes_not_imported(small_world):
    world = small_world
    first = engine.run(world.config, env=world.env)
    assert first.pushed["jira"]["written"] > 0
    second = engine.run(world.config, env=world.env)  # the written issues are updated: their changelogs are read

    # The import reads the mapped fields' history (the release and status here); the planned date
    # and phase relsync also writes are audited from its pushes and from pulled differences.
    done = rows(world, "select count(*) as n from outbox where state = 'done' and field in ('release', 'status')")[0]["n"]
    matched = rows(world, "select count(*) as n from imported_history where matched like 'outbox:%'")[0]["n"]
    assert second.history["jira"]["matched"] == matched == done
    as_people = rows(world, "select count(*) as n from audit where origin = 'history' and field in ('release', 'status') "
                            "and run = ?", [second.run_id])[0]["n"]
    assert as_people == 0
    third = engine.run(world.config, env=world.env)
    assert third.history["jira"] == {"records": 0, "imported": 0, "matched": 0, "known": 0, "calls": 0, "complete": True}


@pytest.fixture
def thousand(tmp_path):
    yield from make_world(tmp_path, records=1000)


def test_only_issues_updated_since_the_last_import_are_asked_for_1000_per_call(thousand):
    world = thousand
    first = engine.run(world.config, env=world.env)
    assert first.exit_code == 0, first.messages
    written = len(rows(world, "select distinct request from outbox where state = 'done'"))
    entries = rows(world, "select count(distinct entry) as n from imported_history")[0]["n"]
    # 1,000 issues in one call (10 mapped fields), its pages of 1,000 entries; then the push's own checks.
    assert first.history["jira"]["records"] == 1000
    assert world.calls()[CHANGELOG] == math.ceil(entries / 1000) + math.ceil(written / 100)
    engine.run(world.config, env=world.env)  # relsync's writes come back: their issues' changelogs are read

    person = edits.jira_client_as(world.description, "Ravi Menon", "ravi.menon@example.com")
    edited = [f"OPS-{n}" for n in range(7, 1000, 20)][:50]
    for key in edited:  # a new title: the plan stays as it was, so the run writes nothing back
        person.issue(key, fields="summary").update(fields={"summary": f"{key}: reworded by Ravi"})
    edits.jira_wait_until_indexed(person, *edited)
    planned = dry_run(world.config, env=world.env)  # `relsync plan` shows what the import will cost
    assert {k: planned.history["jira"][k] for k in ("calls", "records")} == {"calls": 1, "records": 50}
    assert "at most 50 calls a run" in planned.history["jira"]["limit"]
    world.reset_calls()

    third = engine.run(world.config, env=world.env)

    assert third.exit_code == 0, third.messages
    assert third.history["jira"]["records"] == 50
    assert third.pushed["jira"]["written"] == 0
    assert world.calls()[CHANGELOG] == 1
    by_ravi = rows(world, "select request from audit where origin = 'history' and actor = 'Ravi Menon'")
    assert sorted(r["request"] for r in by_ravi) == sorted(f"jira:{key}" for key in edited)
