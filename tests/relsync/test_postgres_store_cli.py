"""Commands on a PostgreSQL store that cannot serve them, or cannot be reached: a clear refusal, no secret shown."""
from __future__ import annotations

import yaml
from click.testing import CliRunner

from relsync.cli import main
from relsync.demo import EXAMPLES


def test_browse_on_a_postgresql_store_says_what_reads_one(tmp_path):
    raw = yaml.safe_load((EXAMPLES / "jira.yaml").read_text())
    raw["store"] = "postgresql://relsync@db.example.com/relsync"
    path = tmp_path / "relsync.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))

    result = CliRunner().invoke(main, ["browse", "--config", str(path), "--metadata", str(tmp_path / "m.json")])

    assert result.exit_code == 2, result.output
    assert "opens a SQLite store in Datasette" in result.output and "relsync store copy" in result.output
    assert not (tmp_path / "m.json").exists()


def test_a_postgresql_store_that_cannot_be_reached_stops_sync_and_status_with_the_reason(tmp_path, monkeypatch):
    raw = yaml.safe_load((EXAMPLES / "jira.yaml").read_text())
    raw["store"] = "postgresql://relsync@127.0.0.1:1/relsync"  # nothing listens on port 1
    path = tmp_path / "relsync.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("RELSYNC_STORE_PASSWORD", "s3cret-pass")
    monkeypatch.setenv("RELSYNC_JIRA_EMAIL", "ops@example.com")
    monkeypatch.setenv("RELSYNC_JIRA_TOKEN", "token")

    for command in (["sync"], ["status"]):
        result = CliRunner().invoke(main, [*command, "--config", str(path)])
        assert result.exit_code == 2, (command, result.output)
        assert "cannot open the PostgreSQL store postgresql://relsync@127.0.0.1:1/relsync" in result.output
        assert "s3cret-pass" not in result.output
