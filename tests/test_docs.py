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
