"""One bad record, in each system, quarantined while the rest of its source syncs.

Each test starts one sandbox, syncs it cleanly through ``relsync sync``, then breaks a
record through that system's real client library (pyairtable, simple-salesforce, jira)
as a person would: the next run exits 1 (not 2) naming the record and the field, the
other records and the watermark move on, ``relsync status`` lists the held record, and
fixing it releases it on the run after. API calls are read from each sandbox's counter.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from click.testing import CliRunner, Result

from relsync.cli import main
from relsync.demo import write_config
from sandboxes import ManualTime, edits
from sandboxes.salesforce.app import start_salesforce
from sandboxes.server import start_sandboxes
from sync.store import open_store


@dataclass
class Source:
    """One running sandbox, the config file pointing at it and the env holding its secrets."""

    system: str
    description: dict[str, Any]
    config_path: Path

    @property
    def env(self) -> dict[str, str]:
        return dict(self.description[self.system]["env"])

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(main, [*args, "--config", str(self.config_path)], env=self.env)

    def sync(self) -> Result:
        return self.cli("sync")

    def status(self) -> dict[str, Any]:
        result = self.cli("status", "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    def knob(self, path: str, method: str = "POST") -> Any:
        verify = str(self.config_path.parent / "salesforce-sandbox-ca.pem") if self.system == "salesforce" else True
        answer = requests.request(method, f"{self.description[self.system]['url']}/_sandbox{path}", timeout=10,
                                  verify=verify)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def calls(self) -> dict[str, int]:
        return self.knob("/calls", method="GET")["calls"]

    def reset_calls(self) -> None:
        self.knob("/calls/reset")

    def rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        db = open_store(self.config_path.with_suffix(".db"))
        try:
            return list(db.query(sql, params))
        finally:
            db.close()

    def request(self, key: str) -> dict[str, Any]:
        return self.rows("select * from change_requests where key = ?", [key])[0]

    def watermark(self) -> str:
        return self.rows("select watermark from sync_state where source = ? and stream = 'requests'",
                         [self.system])[0]["watermark"]

    def last_run(self) -> dict[str, Any]:
        return self.rows("select * from runs order by id desc limit 1")[0]

    def edit_fields(self, **fields: Any) -> None:
        """Change the source's field mapping in the config file."""
        data = yaml.safe_load(self.config_path.read_text())
        data["sources"][self.system]["fields"].update(fields)
        self.config_path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    """``start(system, records)``: that system's sandbox and a config for it, stopped at the test's end.

    The Salesforce org keeps its own time (a ManualTime): its modstamps are then settled
    against the server's Date header however fast the test runs, so the watermark moves
    deterministically.
    """
    running: list[Any] = []

    def started(system: str, records: int) -> Source:
        if system == "salesforce":
            org, box = start_salesforce(records, 11, time_source=ManualTime())
            running.append(org)
            description = {"salesforce": box}
        else:
            # Airtable kind: the test edits the base with its own unthrottled client, which the
            # real rate limit would answer with 30-second penalties.
            sandboxes = start_sandboxes(records=records, seed=11, systems=(system,),
                                        behaviour="kind" if system == "airtable" else "real")
            running.append(sandboxes)
            description = sandboxes.describe()
            if system == "jira":
                edits.jira_grant(description, "ADMINISTER_PROJECTS")  # relsync creates the release versions
        return Source(system, description, write_config(description, tmp_path / "relsync.yaml"))

    yield started
    for sandbox in running:
        sandbox.stop()


def held_in_status(source: Source) -> list[tuple[str, str, str]]:
    return [(r["request"], r["field"], r["error"]) for r in source.status()["quarantine"]]


def audited(source: Source, key: str, field: str) -> list[tuple[Any, Any]]:
    """(old, new) of every change pulled from the source to one field of one request."""
    return [(json.loads(e["old"]), json.loads(e["new"])) for e in source.rows(
        "select old, new from audit where request = ? and field = ? and origin = 'pulled' order by id", [key, field])]


def test_an_airtable_row_without_a_title_is_quarantined_and_released_once_it_has_one(start):
    source = start("airtable", 40)
    assert source.sync().exit_code == 0
    # The shipped example titles a row without one "(no title)"; this admin holds such rows instead.
    config = yaml.safe_load(source.config_path.read_text())
    assert config["sources"]["airtable"]["fields"]["title"] == {"path": "fields.Title", "default": "(no title)"}
    config["sources"]["airtable"]["fields"]["title"] = "fields.Title"
    source.config_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    table = edits.airtable_table(source.description)
    written = source.rows("select distinct o.request, r.native_id from outbox o join change_requests r "
                          "on r.key = o.request where o.state = 'done' and o.field = 'release' order by o.request")
    blank, other = written[0]["native_id"], written[1]["native_id"]
    key = f"airtable:{blank}"
    before = source.request(key)
    watermark = source.watermark()
    table.update(blank, {"Title": ""})
    assert "Title" not in table.get(blank)["fields"]  # Airtable leaves empty fields out of a record
    table.update(other, {"Description": "Now with acceptance criteria"})
    # While it is held, someone pins the blank row to the last release: that must not be written yet.
    last = source.rows("select name from releases order by deploy_at desc limit 1")[0]["name"]
    assert source.cli("assign", key, last, "--reason", "customer escalation").exit_code == 0
    source.reset_calls()

    held = source.sync()

    assert held.exit_code == 1, held.output
    assert source.calls() == {"GET /v0/{base_id}/{table}": 1}  # one incremental listing; nothing written
    message = f"quarantined {key} fields.Title: required value is missing"
    assert held.output.splitlines()[1:] == [f"  {message}"]
    assert ", 1 quarantined;" in held.output.splitlines()[0]
    run = source.last_run()
    assert (run["status"], run["exit_code"]) == ("partial", 1)
    assert message in run["message"].splitlines()
    assert source.request(f"airtable:{other}")["description"] == "Now with acceptance criteria"
    assert source.watermark() > watermark
    kept = source.request(key)
    assert (kept["title"], kept["release"], kept["content_hash"]) == (
        before["title"], before["release"], before["content_hash"])
    assert source.rows("select state from outbox where request = ? and value = ?", [key, json.dumps(last)]) == []
    assert table.get(blank)["fields"]["Release"] == before["release"]
    assert held_in_status(source) == [(key, "fields.Title", "required value is missing")]
    text = source.cli("status")
    assert "quarantined records (1), held back until fixed in their source or in the mapping:" in text.output
    assert f"  {key} fields.Title: required value is missing (since " in text.output

    table.update(blank, {"Title": "Restored title"})
    source.reset_calls()

    released = source.sync()

    assert released.exit_code == 0, released.output
    # The pin goes out now: one listing, one compare read and one PATCH.
    assert source.calls() == {"GET /v0/{base_id}/{table}": 2, "PATCH /v0/{base_id}/{table}": 1}
    assert "quarantined" not in released.output
    assert source.request(key)["title"] == "Restored title"
    assert held_in_status(source) == []
    assert audited(source, key, "title") == [(before["title"], "Restored title")]
    reason = {"field": "fields.Title", "error": "required value is missing"}
    assert audited(source, key, "quarantine") == [(None, reason), (reason, None)]
    assert table.get(blank)["fields"]["Release"] == last


SALESFORCE_PULL = {"GET /services/data/v{version}/queryAll/": 1}
"""A run that writes nothing: one query of changes and soft deletions (the access token is the first run's;
Get Deleted waits for reconcile_every_hours)."""
SALESFORCE_HISTORY = {"GET /services/data/v{version}/query/": 1}
"""Records changed since the last run: one query of their field history (CaseHistory)."""


def test_a_salesforce_case_in_an_unmapped_status_is_quarantined_until_its_case_or_the_map_is_fixed(start):
    source = start("salesforce", 60)
    assert source.sync().exit_code == 0
    sf = edits.salesforce_client(source.description, str(source.config_path.parent / "salesforce-sandbox-ca.pem"))
    first, second, other = (r["native_id"] for r in source.rows(
        "select native_id from change_requests where status = 'scheduled' order by native_id limit 3"))
    watermark = source.watermark()
    # Case Status is an unrestricted standard picklist: the API stores a value the picklist lacks.
    sf.Case.update(first, {"Status": "Bogus"})
    sf.Case.update(second, {"Status": "Bogus"})
    assert sf.Case.get(first)["Status"] == "Bogus"
    sf.Case.update(other, {"Subject": "Renamed in Salesforce"})
    source.reset_calls()

    held = source.sync()

    assert held.exit_code == 1, held.output
    assert source.calls() == SALESFORCE_PULL | SALESFORCE_HISTORY
    problem = ("source value 'Bogus' is not mapped and no default is set; add it to "
               "sources.salesforce.fields.status.map (mapped now: 'New', 'Working', 'Escalated', 'Closed', 'Triage', "
               "'Approved', 'Scheduled', 'In Progress', 'Testing', 'Deployed', 'Rejected')")
    keys = sorted([f"salesforce:{first}", f"salesforce:{second}"])
    assert held.output.splitlines()[1:] == [f"  quarantined {key} Status: {problem}" for key in keys]
    assert source.last_run()["status"] == "partial"
    assert source.request(f"salesforce:{other}")["title"] == "Renamed in Salesforce"
    assert source.watermark() > watermark
    assert source.request(keys[0])["status"] == "scheduled"  # its last good values
    assert held_in_status(source) == [(key, "Status", problem) for key in keys]

    sf.Case.update(first, {"Status": "Triage"})  # the first Case is fixed where it lives
    status = yaml.safe_load(source.config_path.read_text())["sources"]["salesforce"]["fields"]["status"]
    source.edit_fields(status={**status, "map": {**status["map"], "Bogus": "triaged"}})  # the map learns the other
    source.reset_calls()

    released = source.sync()

    assert released.exit_code == 0, released.output
    assert source.calls() == SALESFORCE_PULL | SALESFORCE_HISTORY  # released from the store's copy: no extra read
    assert held_in_status(source) == []
    for native_id in (first, second):
        assert source.request(f"salesforce:{native_id}")["status"] == "triaged"
    assert source.request(f"salesforce:{second}")["source_status"] == "Bogus"
    assert audited(source, f"salesforce:{second}", "status") == [("scheduled", "triaged")]


JIRA_PULL = {"GET /rest/api/3/search/jql": 1}
"""A run that writes nothing: one search from the watermark (server info and fields are kept in the store)."""
JIRA_HISTORY = {"POST /rest/api/3/changelog/bulkfetch": 1}
"""Issues edited since the last run: one read of their changelogs."""


def test_a_jira_issue_with_a_date_that_does_not_parse_is_quarantined_until_it_does(start):
    source = start("jira", 30)
    # This site keeps when a request was raised in a free-text field, as teams that moved
    # from spreadsheets often do; relsync reads it as the request's creation date.
    source.edit_fields(created_at={"path": "fields.customfield_10072", "convert": "datetime"})
    assert source.sync().exit_code == 0
    client = edits.jira_client(source.description)
    client.issue("OPS-5").update(fields={"customfield_10072": "2026-11-02T09:30:00.000+0000"})
    edits.jira_wait_until_indexed(client, "OPS-5")  # Jira's search lags writes
    assert source.sync().exit_code == 0
    assert source.request("jira:OPS-5")["created_at"] == "2026-11-02T09:30:00.000Z"
    watermark = source.watermark()
    client.issue("OPS-5").update(fields={"customfield_10072": "next Tuesday"})
    client.issue("OPS-6").update(fields={"summary": "Clearer summary"})
    edits.jira_wait_until_indexed(client, "OPS-5", "OPS-6")
    source.reset_calls()

    held = source.sync()

    assert held.exit_code == 1, held.output
    assert source.calls() == JIRA_PULL | JIRA_HISTORY
    problem = ("datetime expects a date-time with a time zone like 2026-11-20T10:15:30.123+0000, "
               "got 'next Tuesday'")
    assert held.output.splitlines()[1:] == [f"  quarantined jira:OPS-5 fields.customfield_10072: {problem}"]
    assert source.last_run()["message"] == f"quarantined jira:OPS-5 fields.customfield_10072: {problem}"
    assert source.request("jira:OPS-6")["title"] == "Clearer summary"
    assert source.watermark() > watermark
    assert source.request("jira:OPS-5")["created_at"] == "2026-11-02T09:30:00.000Z"
    assert held_in_status(source) == [("jira:OPS-5", "fields.customfield_10072", problem)]

    client.issue("OPS-5").update(fields={"customfield_10072": "2026-11-03T14:00:00.000+0100"})
    edits.jira_wait_until_indexed(client, "OPS-5")
    source.reset_calls()

    released = source.sync()

    assert released.exit_code == 0, released.output
    assert source.calls() == JIRA_PULL | JIRA_HISTORY
    assert held_in_status(source) == []
    assert source.request("jira:OPS-5")["created_at"] == "2026-11-03T13:00:00.000Z"
    assert audited(source, "jira:OPS-5", "quarantine") == [
        (None, {"field": "fields.customfield_10072", "error": problem}),
        ({"field": "fields.customfield_10072", "error": problem}, None),
    ]
