"""What a person meets first: the demo's hints work as printed, every command speaks JSON,
and every ``relsync ...`` line quoted in the README and the example configs parses."""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest

from config.loader import load_config
from relsync.audit_commands import AuditGroup
from relsync.cli import main

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RELSYNC = str(BIN / "relsync")


def clean_env() -> dict[str, str]:
    """The environment of a person who has set nothing for relsync; the venv's relsync on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELSYNC_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@dataclass
class Demo:
    folder: Path
    output: str
    hint: list[str]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    folder = tmp_path_factory.mktemp("ergonomics") / "demo"
    done = subprocess.run([RELSYNC, "demo", "--dir", str(folder), "--records", "20"], capture_output=True,
                          text=True, env=clean_env(), timeout=180)
    assert done.returncode == 0, done.stderr
    explore = done.stdout.split("\nExplore:", 1)[1]
    hint = [line.strip() for line in explore.splitlines() if line.startswith("  ")]
    return Demo(folder, done.stdout, hint)


@dataclass
class Served:
    env: dict[str, str]
    description: dict[str, Any]
    config: Path
    env_file: Path
    told: str


@pytest.fixture(scope="module")
def served(demo: Demo) -> Iterator[Served]:
    """The sandboxes served again exactly as the demo's hint says, its env file sourced."""
    start = next(line for line in demo.hint if line.startswith("relsync sandbox "))
    args = shlex.split(start)
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
    try:
        assert process.stdout is not None and process.stderr is not None
        description = json.loads(process.stdout.readline())
        told = process.stderr.readline()
        config = Path(args[args.index("--write-config") + 1])
        env_file = Path(args[args.index("--env-file") + 1])
        yield Served(clean_env(), description, config, env_file, told)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def sourced(served: Served, command: str) -> subprocess.CompletedProcess[str]:
    """Run a shell command line after `. ENV_FILE`, as a person in a terminal would."""
    line = f". {shlex.quote(str(served.env_file))} && {command}"
    return subprocess.run(["sh", "-c", line], capture_output=True, text=True, env=served.env, timeout=180)


def test_demo_leaves_its_config_and_a_private_env_file_and_says_how_to_use_them(demo):
    env_file = demo.folder / "relsync.env"
    assert (demo.folder / "relsync.yaml").exists()
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert demo.hint[0].startswith("relsync sandbox --seed 7 --records 20 ")
    assert f"--env-file {env_file.resolve()}" in demo.hint[0]
    assert f". {env_file.resolve()}" in demo.hint
    assert any(line.startswith("relsync plan --config ") for line in demo.hint)


def test_sandbox_env_file_holds_every_credential_as_an_export_line(served):
    credentials = {k: v for box in served.description.values() if isinstance(box, dict) for k, v in box["env"].items()}
    assert {"RELSYNC_JIRA_TOKEN", "RELSYNC_AIRTABLE_TOKEN", "RELSYNC_SF_CLIENT_SECRET"} <= set(credentials)
    lines = [line for line in served.env_file.read_text().splitlines() if not line.startswith("#")]
    assert sorted(lines) == sorted(f"export {k}={shlex.quote(v)}" for k, v in credentials.items())
    assert stat.S_IMODE(served.env_file.stat().st_mode) == 0o600
    shown = sourced(served, "env")
    for name, value in credentials.items():
        assert f"{name}={value}\n" in shown.stdout
    # stderr says where the credentials went and names them, but never shows a value
    assert str(served.env_file) in served.told and "RELSYNC_JIRA_TOKEN" in served.told
    assert not any(value in served.told for value in credentials.values())


def test_every_hinted_command_works_after_sourcing_the_env_file(demo, served):
    commands = [line for line in demo.hint if line.startswith("relsync ") and not line.startswith("relsync sandbox")]
    assert len(commands) >= 3
    for command in commands:
        done = sourced(served, command)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        assert done.stdout.strip(), command
    listed = sourced(served, f"relsync release list --config {shlex.quote(str(served.config))}").stdout
    # name and id side by side, the fill, and the clashes the demo's plan shows
    assert re.search(r"BS \d{4}\.\d\d\.\d\d\s+business-systems-\d{8}\s+deploy ", listed)
    assert re.search(r"\d+/20 requests", listed)
    assert "CLASHES:" in listed
    # explained once, after the list, the first time a reader meets the word
    assert listed.count("two or more requests in one release change the same object") == 1
    assert listed.rstrip().splitlines()[-1].startswith("CLASHES: two or more requests")


def run_json(served: Served, *args: str) -> tuple[int, Any]:
    done = subprocess.run([RELSYNC, *args, "--json"], capture_output=True, text=True, env=served_env(served),
                          timeout=180)
    try:
        return done.returncode, json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"relsync {' '.join(args)} --json printed no JSON (exit {done.returncode}):\n"
                    f"{done.stdout}\n{done.stderr}")


def served_env(served: Served) -> dict[str, str]:
    exports = dict(re.findall(r"^export (\w+)=(.*)$", served.env_file.read_text(), flags=re.M))
    return {**served.env, **{k: shlex.split(v)[0] for k, v in exports.items()}, "RELSYNC_CONFIG": str(served.config)}


def leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # the group imports its commands' modules only when asked for them
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            found |= leaf_commands(command, (*prefix, name))
        else:
            found.add((*prefix, name))
    return found


NO_JSON = {("sandbox",): "serves until interrupted; its one line of output is JSON already (parsed above)",
           ("browse",): "serves Datasette until interrupted (Datasette's own pages and JSON API); --metadata writes JSON"}


def test_every_command_with_output_takes_json_and_prints_it(served, tmp_path):
    assert "jira" in served.description  # the sandbox's own output is JSON
    ran: set[tuple[str, ...]] = set()

    def json_of(*args: str, ok: tuple[int, ...] = (0,)) -> Any:
        words = tuple(a for a in args if not a.startswith("-"))
        ran.update(c for c in leaf_commands(main) if words[: len(c)] == c)
        code, data = run_json(served, *args)
        assert code in ok, (args, data)
        return data

    assert json_of("check", "--online")["valid"] is True
    synced = json_of("sync", ok=(0, 1))
    assert synced and isinstance(synced, dict)
    status = json_of("status")
    assert status["releases"]
    releases = json_of("release", "list")
    assert [r["id"] for r in releases] == [r["id"] for r in status["releases"]]
    assert {"id", "name", "deploy_at", "requests", "capacity", "clashes"} <= set(releases[0])
    assert any(r["clashes"] for r in releases)
    full = next(r for r in releases if r["requests"])
    shown = json_of("release", "show", full["name"])
    key = shown["requests"][0]["key"] if isinstance(shown["requests"][0], dict) else shown["requests"][0]
    phase = shown["phases"][0]["phase"]
    signed = json_of("release", "signoff", full["id"], phase, "--by", "Dana (QA Lead)")
    assert (signed["phase"], signed["by"], signed["missing"]) == (phase, "Dana (QA Lead)", [])
    notes = json_of("release", "notes", full["name"])
    assert notes["id"] == full["id"] and notes["requests"] == full["requests"]
    written = json_of("release", "notes", full["id"], "--format", "html", "--output", str(tmp_path / "notes.html"))
    assert written["requests"] == full["requests"] and (tmp_path / "notes.html").exists()
    ics = tmp_path / "releases.ics"
    calendar = json_of("calendar", "--ics", str(ics))
    assert calendar["events"] == ics.read_bytes().count(b"BEGIN:VEVENT") > 0
    assert json_of("audit", key)
    assert any(e["request"] == key for e in json_of("audit", "list", "--request", key))  # as `relsync audit --request KEY`
    assert json_of("audit", "show", key)
    verified = json_of("audit", "verify")
    assert verified["ok"] is True
    # A consistent copy of the live store (into PostgreSQL in tests/relsync/test_store_copy.py).
    copied = json_of("store", "copy", load_config(served.config).store, str(tmp_path / "copy.db"))
    assert copied["audit"] == {"verified": True, "rows": verified["checked"], "anchor": verified["head"]}
    assert [r["id"] for r in json_of("plan")["releases"]] == [r["id"] for r in releases]
    listed = json_of("requests", "--release", full["name"])
    assert sorted(r["key"] for r in listed) == sorted(
        r["key"] if isinstance(r, dict) else r for r in shown["requests"])
    report = json_of("report", "--by", "month")
    everything = json_of("requests")
    assert sum(b["totals"]["arrived"] for b in report["volume"]) == len([r for r in everything if r["created_at"]])
    site = json_of("dashboard", "--out", str(tmp_path / "site"))
    assert site["pages"]["requests"] == len(everything) and (tmp_path / "site" / "index.html").exists()
    other = next(r for r in releases if r["id"] != full["id"])
    assert json_of("assign", key, other["id"], "--reason", "customer asked")["release"] == other["name"]
    assert json_of("unassign", key, "--reason", "planner decides")["previous"] in (other["id"], other["name"])
    assert json_of("release", "cancel", other["id"], "--reason", "no longer needed")["release"] == other["name"]
    demo_json = json_of("demo", "--dir", str(tmp_path / "again"), "--records", "10")
    assert Path(demo_json["env_file"]).exists()

    assert leaf_commands(main) - ran == set(NO_JSON), "a command with output was not run with --json here"


# -- quoted command lines ------------------------------------------------------------------


def quoted_command_lines() -> list[tuple[str, str]]:
    """Every `relsync ...` command quoted in README.md and in the example configs' comments."""
    sources = {"README.md": (ROOT / "README.md").read_text()}
    for example in sorted((ROOT / "config" / "examples").glob("*.yaml")):
        comments = [line.split("#", 1)[1] for line in example.read_text().splitlines() if "#" in line]
        sources[f"config/examples/{example.name}"] = "\n".join(comments)
    found = []
    for where, text in sources.items():
        blocks = re.findall(r"```[a-z]*\n(.+?)```", text, flags=re.S)
        spans = re.findall(r"`([^`]+)`", re.sub(r"```.+?```", "", text, flags=re.S))
        pieces = [line for block in blocks for line in block.splitlines()] + [" ".join(span.split()) for span in spans]
        for piece in pieces:
            for match in re.finditer(r"(?:^|[\s;&(])(?:\S*/)?relsync ([a-z][^\n]*)", piece):
                line = re.split(r"\s(?:&&|\|\||>>|>|;|&)(?:\s|$)|\s2>&1", match.group(1))[0]
                found.append((where, "relsync " + line.strip()))
    return found


PLACEHOLDERS = {"N": "1", "S": "1"}


def words_of(line: str, existing: str) -> list[str]:
    """The argument words of a quoted command: optional brackets dropped, first of `a\\|b` kept."""
    words = []
    for word in shlex.split(line.replace("\\|", "|").replace("[", " ").replace("]", " "))[1:]:
        if word == "|":
            continue
        word = word.split("|")[0]
        words.append(existing if word == "FILE" else PLACEHOLDERS.get(word, word))
    return words


def parse(words: list[str]) -> click.Command:
    """Resolve and parse the words as ``relsync`` would, running nothing; raise click's error if it would refuse."""
    group: click.Group = main
    ctx = click.Context(main, info_name="relsync")
    while True:
        words = group.route(words) if isinstance(group, AuditGroup) else words
        if not words or words[0].startswith("-"):
            raise click.UsageError(f"no command in {words}")
        name, command, rest = group.resolve_command(ctx, words)
        assert name is not None and command is not None
        if isinstance(command, click.Group):
            group, ctx, words = command, click.Context(command, info_name=name, parent=ctx), rest
            continue
        with command.make_context(name, list(rest), parent=ctx):
            return command


def test_command_lines_are_found_in_the_readme_and_the_examples():
    found = quoted_command_lines()
    places = {where for where, _ in found}
    assert {"README.md", "config/examples/jira.yaml", "config/examples/airtable.yaml"} <= places
    assert ("config/examples/jira.yaml", "relsync check --config relsync.yaml") in found
    assert any(line.startswith("relsync audit verify --config relsync.yaml --anchor ") for _, line in found)


@pytest.mark.parametrize(("where", "line"), quoted_command_lines(), ids=lambda value: str(value))
def test_quoted_command_line_parses_with_the_real_cli(where, line, tmp_path):
    existing = tmp_path / "relsync.yaml"
    existing.write_text("")
    try:
        parse(words_of(line, str(existing)))
    except click.BadParameter as error:
        # a path quoted for the reader's machine (an anchor under /mnt) need not exist on this one
        if "does not exist" not in error.format_message():
            pytest.fail(f"{where}: `{line}` does not parse: {error.format_message()}")
    except click.ClickException as error:
        pytest.fail(f"{where}: `{line}` does not parse: {error.format_message()}")


@pytest.mark.parametrize("line", ["relsync check -c relsync.yaml", "relsync release notes R --format pdf",
                                  "relsync calendar", "relsync releases list"])
def test_a_wrong_command_line_is_refused(line, tmp_path):
    with pytest.raises(click.ClickException):
        parse(words_of(line, str(tmp_path)))
