"""The README's commands and the shipped examples are exercised, so they stay true."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from config.loader import load_config
from relsync.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def quick_start() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section, flags=re.S)


def test_quick_start_is_two_commands_demo_then_tests():
    commands = quick_start()
    assert len(commands) == 2
    assert commands[0].endswith("relsync demo")
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text()
    assert quick_start()[1] in ci


@pytest.mark.parametrize("example", sorted((ROOT / "config" / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_loads(example):
    config = load_config(example)
    assert config.sources
    assert config.trains


def test_every_command_in_the_readme_exists():
    table = README.split("## Commands", 1)[1].split("\n## ", 1)[0]
    commands = set(re.findall(r"`relsync ([a-z]+)", table))
    assert {"sync", "check", "status", "audit", "demo", "sandbox"} <= commands
    for command in commands:
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 0, (command, result.output)


def test_the_readme_names_every_auth_key():
    from config.sources import AirtableAuth, JiraAuth, SalesforceAuth

    config_section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for model in (JiraAuth, AirtableAuth, SalesforceAuth):
        for key in model.model_fields:
            assert f"`{key}`" in config_section, (model.__name__, key)
    assert "`cloud_id`" in config_section and "`gateway`" in config_section


def test_the_commented_jira_token_kind_in_the_example_loads(tmp_path):
    text = (ROOT / "config" / "examples" / "jira.yaml").read_text()
    for key in ("token_kind", "cloud_id", "gateway"):
        assert f"# {key}: " in text, key
        text = text.replace(f"# {key}: ", f"{key}: ", 1)
    path = tmp_path / "relsync.yaml"
    path.write_text(text)
    jira = load_config(path).sources["jira"]
    assert (jira.auth.kind, jira.cloud_id, jira.gateway) == ("scoped", "1a11d016-8984-4c3e-b9ab-142dd06acb1b", "https://api.atlassian.com")


def test_the_readme_sets_salesforce_up_with_an_external_client_app():
    assert "connected app with" not in README
    assert "External Client App" in README.split("## Running it against the real systems", 1)[1]


def test_the_readme_exit_code_table_is_the_code_s():
    """Every exit code the commands use has a row in the README's table, and no row is invented."""
    from sync import engine

    readme = (ROOT / "README.md").read_text()
    table = readme.split("### Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", table, flags=re.MULTILINE)}
    used = {value for name, value in vars(engine).items() if name.startswith("EXIT_")}
    assert documented == used == {0, 1, 2, 3, 4, 5}
