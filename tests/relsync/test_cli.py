"""The relsync command as a user runs it: arguments, output, exit codes."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from relsync.cli import main

RELSYNC = [sys.executable, "-m", "relsync.cli"]


def invoke(world, *args: str, env: dict[str, str] | None = None):
    runner = CliRunner()
    return runner.invoke(main, list(args), env=world.env if env is None else env, catch_exceptions=False)


def test_sync_json_reports_counts_and_exit_code(world):
    result = invoke(world, "sync", "--config", str(world.config_path), "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["pulled"]["jira"]["pulled"] == 250
    assert report["status"] == "ok"


def test_sync_text_is_one_summary_line(world):
    result = invoke(world, "sync", "--config", str(world.config_path))

    assert result.exit_code == 0
    assert result.output.startswith("run 1 ok: pulled jira 250 (250 new, 0 changed)")


def test_missing_secret_exits_2_naming_the_key(world):
    env = {k: v for k, v in world.env.items() if k != "RELSYNC_JIRA_TOKEN"}
    env["RELSYNC_JIRA_TOKEN"] = ""

    result = invoke(world, "sync", "--config", str(world.config_path), env=env)

    assert result.exit_code == 2
    assert "sources.jira.auth.token_env" in result.output
    assert "RELSYNC_JIRA_TOKEN" in result.output


def _edited_config(world, tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(world.config_path.read_text())
    edit(data)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_unknown_key_exits_2_naming_the_key(world, tmp_path):
    path = _edited_config(world, tmp_path, lambda d: d["sources"]["jira"].update(feilds={}))

    result = invoke(world, "check", "--config", str(path))

    assert result.exit_code == 2
    assert "sources.jira.feilds" in result.output


def test_unmapped_status_quarantines_its_issues_and_exits_1_naming_them_the_key_and_value(world, tmp_path):
    def unmap(data):
        data["sources"]["jira"]["fields"]["status"]["map"].pop("Approved")
        data["sources"]["jira"]["write"]["status"].pop("approved")  # relsync no longer writes it back either

    path = _edited_config(world, tmp_path, unmap)

    result = invoke(world, "sync", "--config", str(path))

    assert result.exit_code == 1
    summary, *messages = result.output.splitlines()
    db = sqlite3.connect(world.config.store)
    held = db.execute("select count(*) from quarantine").fetchone()[0]
    stored = db.execute("select count(*) from change_requests").fetchone()[0]
    db.close()
    assert held > 5 and stored == 250 - held
    assert summary.startswith(f"run 1 partial: pulled jira 250 ({stored} new, 0 changed), {held} quarantined; ")
    assert len(messages) == 6 and messages[-1] == f"  quarantined {held - 5} more (relsync status lists them)"
    assert all(m.startswith("  quarantined jira:OPS-") and " fields.status.name: source value 'Approved' is not mapped"
               " and no default is set; add it to sources.jira.fields.status.map (mapped now: " in m
               for m in messages[:5])


def test_a_second_run_while_locked_exits_3(world):
    from sync.lock import source_lock

    with source_lock(world.config.store, "jira"):
        result = invoke(world, "sync", "--config", str(world.config_path))
        unknown = invoke(world, "sync", "--source", "jria", "--config", str(world.config_path))

    assert result.exit_code == 3
    assert result.output.startswith("locked: the source 'jira' is locked by pid ") and "None" not in result.output
    assert unknown.exit_code == 2
    assert "--source: no source 'jria' in the config; its sources are jira" in unknown.output


def test_check_online_passes_against_the_sandbox(world):
    result = invoke(world, "check", "--config", str(world.config_path), "--online", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["problems"] == {"jira": []}


def test_check_online_names_a_missing_field(world, tmp_path):
    path = _edited_config(
        world, tmp_path, lambda d: d["sources"]["jira"]["fields"].update(owner="fields.customfield_99999.value")
    )

    result = invoke(world, "check", "--config", str(path), "--online")

    assert result.exit_code == 2
    assert "customfield_99999" in result.output


def test_check_online_names_a_jira_field_whose_type_cannot_give_the_mapped_value(world, tmp_path):
    def edit(data):
        data["sources"]["jira"]["fields"].update(
            description="fields.description",  # rich text (ADF) without adf_to_text
            type="fields.customfield_10073.value",  # a text field has no .value
            owner={"path": "fields.assignee", "convert": "join"},  # a user is no list
        )

    result = invoke(world, "check", "--config", str(_edited_config(world, tmp_path, edit)), "--online", "--json")

    assert result.exit_code == 2, result.output
    assert json.loads(result.output)["problems"] == {"jira": [
        "fields.description: fields.description holds an Atlassian document {content, type, version}, not a single value; "
        "add convert: adf_to_text",
        "fields.type: fields.customfield_10073.value holds text, which has no .value",
        "fields.owner: fields.assignee holds a person {accountId, active, displayName, emailAddress, timeZone}, "
        "which convert: join cannot read",
    ]}


def test_status_and_audit_commands(world):
    invoke(world, "sync", "--config", str(world.config_path))

    status = json.loads(invoke(world, "status", "--config", str(world.config_path), "--json").output)
    assert sum(c["live"] for c in status["requests"]["by_source"].values()) == 250
    assert status["releases"]

    history = invoke(world, "audit", "jira:OPS-1", "--config", str(world.config_path))
    assert history.exit_code == 0
    assert "timeline of jira:OPS-1" in history.output
    assert "[relsync saw it in a pull]" in history.output

    verified = invoke(world, "audit", "verify", "--config", str(world.config_path))
    assert verified.exit_code == 0
    assert "intact" in verified.output


def test_audit_verify_fails_after_a_row_is_altered_with_sqlite3(world):
    invoke(world, "sync", "--config", str(world.config_path))
    conn = sqlite3.connect(world.config.store)
    for (name,) in conn.execute("select name from sqlite_master where type = 'trigger'").fetchall():
        conn.execute(f"drop trigger {name}")
    conn.execute("update audit set actor = 'mallory' where id = 2")
    conn.commit()
    conn.close()

    result = invoke(world, "audit", "verify", "--config", str(world.config_path))

    assert result.exit_code == 1
    assert "BROKEN at event 2" in result.output


@pytest.mark.slow
def test_demo_runs_as_a_real_subprocess(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELSYNC_")}
    completed = subprocess.run(
        [sys.executable, "-c", "from relsync.cli import main; main()", "demo", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )

    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert "== Release plan ==" in out
    assert "== Second sync ==" in out
    assert "timeline of jira:OPS-" in out
    assert "audit chain: intact" in out
    assert (tmp_path / "demo" / "relsync.db").exists()
