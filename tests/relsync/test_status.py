"""`relsync status` adds up: live, deleted and quarantined per source; runs with their kind and what went wrong."""
from __future__ import annotations

import json
import time

import yaml
from click.testing import CliRunner

from config.loader import load_config
from relsync.cli import main
from sandboxes import edits
from sync import engine


def status(config_path, env) -> dict:
    result = CliRunner().invoke(main, ["status", "--json", "--config", str(config_path)], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_counts_add_up_after_a_deletion_and_runs_say_what_they_were(world, tmp_path):
    data = yaml.safe_load(world.config_path.read_text())
    data["sources"]["jira"]["reconcile_every_hours"] = 0
    path = tmp_path / "reconcile.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_config(path)
    engine.run(config, env=world.env)
    client = edits.jira_client(world.description)
    client.issue("OPS-7").delete()
    listed = lambda: {i["key"] for i in client.enhanced_search_issues(  # noqa: E731
        "project = OPS", maxResults=5000, fields=["key"], json_result=True)["issues"]}
    while "OPS-7" in listed():  # Jira's search shows the deletion a few seconds late
        time.sleep(0.25)
    after_deletion = engine.run(config, env=world.env)
    assert "(0 new, 0 changed, 1 deleted)" in after_deletion.summary()
    planned = CliRunner().invoke(main, ["plan", "--config", str(path)], env=world.env)
    assert planned.exit_code == 0, planned.output
    world.fault(method="GET", path="/rest/api/3/search/jql", status=400, times=1,
                body={"errorMessages": ["The JQL query is refused"], "errors": {}})
    assert engine.run(config, env=world.env).exit_code == 1

    shown = status(path, world.env)

    assert shown["requests"]["by_source"] == {"jira": {"live": 249, "deleted": 1, "quarantined": 0}}
    assert sum(shown["requests"]["by_status"].values()) == 249
    runs = [(r["kind"], r["status"]) for r in shown["runs"]]
    assert runs[:2] == [("sync", "failed"), ("plan", "ok")]
    text = CliRunner().invoke(main, ["status", "--config", str(path)], env=world.env).output
    assert "requests: jira 249 live, 1 deleted, 0 quarantined" in text
    assert any(line.strip().startswith("#") and "sync" in line and "failed (exit 1): jira: The JQL query is refused" in line
               for line in text.splitlines()), text
