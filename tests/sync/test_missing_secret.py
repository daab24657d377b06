"""A missing secret stops its own source, like a refused credential, and the others sync."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from config.loader import load_config
from relsync.cli import main
from relsync.demo import write_config
from sandboxes import edits
from sandboxes.server import start_sandboxes
from sync import engine
from sync.store import open_store


def test_a_missing_secret_stops_only_its_source(tmp_path: Path) -> None:
    with start_sandboxes(records=30, seed=3, systems=("jira", "airtable")) as boxes:
        description = boxes.describe()
        edits.jira_grant(description, "ADMINISTER_PROJECTS")
        config = load_config(write_config(description, tmp_path / "relsync.yaml"))
        env = dict(description["jira"]["env"])  # the Airtable token is not set

        report = engine.run(config, env=env)

    assert report.exit_code == engine.EXIT_CONFIG and report.status == "config_error"
    assert report.messages[0] == ("airtable: sources.airtable.auth.token_env: environment variable "
                                  "RELSYNC_AIRTABLE_TOKEN is not set")
    assert report.pulled["jira"]["pulled"] == 30 and report.pulled["airtable"]["pulled"] == 0
    assert report.pushed["jira"]["written"] > 0
    db = open_store(config.store)
    try:
        stored = {row["source"]: row["n"] for row in db.query("select source, count(*) as n from change_requests group by source")}
    finally:
        db.close()
    assert stored == {"jira": 30}


def test_check_warns_of_unset_secrets_without_failing_offline(tmp_path: Path, monkeypatch) -> None:
    with start_sandboxes(records=5, seed=3, systems=("jira",)) as boxes:
        path = write_config(boxes.describe(), tmp_path / "relsync.yaml")
    monkeypatch.delenv("RELSYNC_JIRA_TOKEN", raising=False)
    monkeypatch.delenv("RELSYNC_JIRA_EMAIL", raising=False)

    result = CliRunner().invoke(main, ["check", "--config", str(path)])

    assert result.exit_code == 0, result.output
    assert ("jira: warning: sources.jira.auth.token_env: environment variable RELSYNC_JIRA_TOKEN is not set here; "
            "sync would stop jira") in result.output.splitlines()
