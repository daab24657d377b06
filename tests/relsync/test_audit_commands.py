"""`relsync audit`: filters and exports agree with plain SQL on the store; `audit KEY` is the merged timeline."""
from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from relsync.cli import main
from sandboxes import edits
from sync import engine
from sync.audit import AuditEvent, append_events
from sync.store import open_store


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """30 Jira requests synced, a person's edit, synced again (module-wide: the commands only read)."""
    from tests.conftest import make_world

    worlds = make_world(tmp_path_factory.mktemp("audit"), records=30)
    world = next(worlds)
    engine.run(world.config, env=world.env)
    dana = edits.jira_client_as(world.description, "Dana Whitfield", "dana.whitfield@example.com")
    dana.issue("OPS-3", fields="summary").update(fields={"summary": "Reworded by Dana"})
    edits.jira_wait_until_indexed(dana, "OPS-3")
    engine.run(world.config, env=world.env)
    yield world
    next(worlds, None)


def cli(world, *args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--config", str(world.config_path)], env=world.env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def sql(world, query: str, params=()) -> list[dict]:
    db = open_store(world.config.store)
    try:
        return list(db.query(query, params))
    finally:
        db.close()


def test_audit_key_is_one_timeline_with_the_persons_edit_from_jiras_history(audited):
    out = cli(audited, "audit", "jira:OPS-3")

    lines = out.splitlines()
    assert lines[0] == "timeline of jira:OPS-3 (oldest first):"
    dana = [line for line in lines if "Dana Whitfield" in line]
    assert len(dana) == 1 and "title:" in dana[0] and "-> Reworded by Dana" in dana[0] and "[jira history]" in dana[0]
    assert any("[relsync saw it in a pull]" in line for line in lines)
    moments = [line.split()[0] + " " + line.split()[1] for line in lines[1:]]
    assert moments == sorted(moments)
    data = json.loads(cli(audited, "audit", "jira:OPS-3", "--json"))
    assert [e["id"] for e in data["events"]] == [r["id"] for r in sql(
        audited, "select id from audit where request = 'jira:OPS-3' order by at, id")]
    assert [e["actor"] for e in data["events"] if e["from_source_history"] and e["field"] == "title"] == ["Dana Whitfield"]


@pytest.mark.parametrize(("options", "where", "params"), [
    (["--actor", "Dana Whitfield"], "actor = ?", ["Dana Whitfield"]),
    (["--origin", "history", "--field", "status"], "origin = 'history' and field = 'status'", []),
    (["--system", "jira", "--origin", "pushed"], "system = 'jira' and origin = 'pushed'", []),
    (["--request", "jira:OPS-7"], "request = 'jira:OPS-7'", []),
    (["--since", "2000-01-01", "--until", "2999-12-31", "--origin", "planned"], "origin = 'planned'", []),
    (["--until", "2000-01-01"], "0", []),
])
def test_filters_select_what_plain_sql_selects(audited, options, where, params):
    expected = [r["id"] for r in sql(audited, f"select id from audit where {where} order by at, id", params)]

    listed = json.loads(cli(audited, "audit", *options, "--json"))

    assert [e["id"] for e in listed] == expected
    if "--until" not in options:
        assert expected


def test_release_filter_takes_the_requests_in_that_release(audited):
    release = sql(audited, "select r.name, r.id from releases r join assignments a on a.release = r.id limit 1")[0]
    members = {r["request"] for r in sql(audited, "select request from assignments where release = ?", [release["id"]])}
    expected = [r["id"] for r in sql(audited, "select id from audit where request in (select request from assignments "
                                              "where release = ?) order by at, id", [release["id"]])]

    by_name = json.loads(cli(audited, "audit", "--release", release["name"], "--json"))
    by_id = json.loads(cli(audited, "audit", "--release", release["id"], "--json"))

    assert [e["id"] for e in by_name] == [e["id"] for e in by_id] == expected
    assert {e["request"] for e in by_name} == members


def test_csv_and_jsonl_exports_hold_the_same_events(audited):
    as_json = json.loads(cli(audited, "audit", "--origin", "history", "--json"))
    as_csv = list(csv.DictReader(io.StringIO(cli(audited, "audit", "--origin", "history", "--csv"))))
    as_jsonl = [json.loads(line) for line in cli(audited, "audit", "--origin", "history", "--jsonl").splitlines()]

    assert len(as_json) == len(as_csv) == len(as_jsonl) > 0
    assert [int(r["id"]) for r in as_csv] == [e["id"] for e in as_json] == [e["id"] for e in as_jsonl]
    assert as_csv[0].keys() == {"id", "at", "run", "actor", "origin", "request", "system", "field", "old", "new", "hash"}
    assert as_jsonl == as_json


def test_a_bad_time_is_refused_and_verify_still_checks_the_whole_chain(audited):
    result = CliRunner().invoke(main, ["audit", "--since", "last tuesday", "--config", str(audited.config_path)])
    assert result.exit_code == 2 and "is not a date" in result.output
    verified = json.loads(cli(audited, "audit", "verify", "--json"))
    assert verified["ok"] and verified["checked"] == sql(audited, "select count(*) as n from audit")[0]["n"]
    assert sql(audited, "select count(*) as n from audit where origin = 'history'")[0]["n"] > 0


def test_an_airtable_timeline_says_airtable_keeps_no_history(audited, tmp_path):
    db = open_store(audited.config.store)
    try:
        with db.atomic():
            append_events(db, [AuditEvent(at="2026-11-20T09:00:00.000Z", run=None, actor="airtable", origin="pulled",
                                          request="airtable:recA1b2C3d4E5f6G7", system="airtable", field="priority",
                                          old="low", new="high")])
    finally:
        db.close()

    out = cli(audited, "audit", "airtable:recA1b2C3d4E5f6G7")

    assert "Airtable's API keeps no record history" in out and "low -> high" in out
