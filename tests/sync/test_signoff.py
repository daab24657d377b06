"""Phase sign-offs: a release whose required sign-offs are missing is held at its deploy
time, and its requests keep "testing" in their source until someone signs off."""
from __future__ import annotations

import datetime as dt
import json

import pytest
import yaml
from click.testing import CliRunner

from config.loader import ConfigError, load_config
from mapping import clock
from relsync.cli import main
from relsync.demo import write_config
from sandboxes import edits
from sandboxes.server import start_sandboxes
from sync import engine
from sync.store import open_store


def rows(config, sql, params=()):
    db = open_store(config.store)
    try:
        return list(db.query(sql, params))
    finally:
        db.close()


def test_a_sign_off_must_name_a_phase_of_the_train(tmp_path):
    with start_sandboxes(records=5, seed=3, systems=("airtable",)) as boxes:
        path = write_config(boxes.describe(), tmp_path / "relsync.yaml")
    data = yaml.safe_load(path.read_text())
    data["trains"][-1]["requires_signoff"] = ["testing", "qa"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert "requires_signoff.1" in str(raised.value) and "'qa' is not a phase of this train" in str(raised.value)


def test_a_release_waits_at_its_deploy_time_for_its_sign_offs_and_its_requests_keep_testing(tmp_path):
    with start_sandboxes(records=30, seed=3, systems=("airtable",)) as boxes:
        description = boxes.describe()
        path = write_config(description, tmp_path / "relsync.yaml")
        data = yaml.safe_load(path.read_text())
        data["trains"] = [train for train in data["trains"] if "match" not in train]  # one train: business-systems
        data["trains"][0]["requires_signoff"] = ["testing"]
        data["sources"]["airtable"]["write"]["status"] |= {"testing": "Testing", "deployed": "Deployed"}
        path.write_text(yaml.safe_dump(data))
        config = load_config(path)
        env = dict(description["airtable"]["env"])
        engine.run(config, env=env)
        first = rows(config, "select id, name, deploy_at from releases order by deploy_at limit 1")[0]
        members = [r["request"].split(":", 1)[1] for r in rows(
            config, "select request from assignments where release = ?", [first["id"]])]
        assert members
        after_deploy = clock.parse(first["deploy_at"]) + dt.timedelta(hours=1)

        held = engine.run(config, env=env, now=after_deploy)

        assert held.exit_code == 0, held.messages
        assert rows(config, "select state from releases where id = ?", [first["id"]]) == [{"state": "deploying"}]
        listed = edits.airtable_records(description)
        assert {listed[m]["Status"] for m in members} == {"Testing"}  # not Deployed: nobody signed testing off
        assert {listed[m].get("Release") for m in members} == {first["name"]}  # still in their release
        shown = CliRunner().invoke(main, ["release", "show", first["id"], "--config", str(path)])
        assert ": past its deploy time, waiting for the sign-off of testing" in shown.output and "HELD since" in shown.output
        assert "sign-off required, not given" in shown.output

        signed = CliRunner().invoke(main, ["release", "signoff", first["name"], "testing", "--by", "Dana (QA Lead)",
                                           "--note", "UAT-42 passed", "--config", str(path)])
        assert signed.exit_code == 0, signed.output
        assert "testing of" in signed.output and "no sign-off left to give" in signed.output
        again = CliRunner().invoke(main, ["release", "signoff", first["name"], "testing", "--by", "Eve",
                                          "--config", str(path)])
        assert again.exit_code == engine.EXIT_NOT_FOUND and "was signed off by Dana (QA Lead)" in again.output
        audit = rows(config, "select actor, field, new from audit where field = 'signoff.testing'")
        assert len(audit) == 1 and json.loads(audit[0]["new"])["by"] == "Dana (QA Lead)"

        released = engine.run(config, env=env, now=after_deploy + dt.timedelta(minutes=5))

        assert released.exit_code == 0, released.messages
        assert rows(config, "select state, held_since from releases where id = ?", [first["id"]]) == [
            {"state": "deploying", "held_since": None}]  # its deployment phase runs on, no longer held
        listed = edits.airtable_records(description)
        assert {listed[m]["Status"] for m in members} == {"Deployed"}
        shown = CliRunner().invoke(main, ["release", "show", first["id"], "--config", str(path)])
        assert "HELD" not in shown.output and "signed off by Dana (QA Lead)" in shown.output and "UAT-42" in shown.output
        engine.run(config, env=env, now=after_deploy + dt.timedelta(days=3))
        assert rows(config, "select state from releases where id = ?", [first["id"]]) == [{"state": "released"}]


def test_a_release_still_unsigned_after_its_deployment_phase_stays_held(tmp_path):
    with start_sandboxes(records=30, seed=3, systems=("airtable",)) as boxes:
        description = boxes.describe()
        path = write_config(description, tmp_path / "relsync.yaml")
        data = yaml.safe_load(path.read_text())
        data["trains"] = [train for train in data["trains"] if "match" not in train]
        data["trains"][0]["requires_signoff"] = ["testing", "deployment"]
        path.write_text(yaml.safe_dump(data))
        config = load_config(path)
        env = dict(description["airtable"]["env"])
        engine.run(config, env=env)
        first = rows(config, "select id, deploy_at from releases order by deploy_at limit 1")[0]
        members = rows(config, "select request from assignments where release = ?", [first["id"]])
        later = clock.parse(first["deploy_at"]) + dt.timedelta(days=5)

        engine.run(config, env=env, now=later)

        stored = rows(config, "select state, held_since from releases where id = ?", [first["id"]])[0]
        assert stored["state"] == "deploying" and stored["held_since"] == clock.stamp(later)
        # Its requests stay in it, neither re-planned nor released.
        assert rows(config, "select request from assignments where release = ?", [first["id"]]) == members
        status = json.loads(CliRunner().invoke(main, ["status", "--json", "--config", str(path)]).output)
        shown = next(r for r in status["releases"] if r["id"] == first["id"])
        assert shown["held"] and shown["missing_signoffs"] == ["testing", "deployment"]
