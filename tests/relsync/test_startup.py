"""`relsync --help`, `relsync status` and a no-op `relsync sync` import only what they use.

Each command runs in a fresh interpreter, which then lists the modules it loaded. How
long that takes is measured in bench/startup.py, not here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from sync import engine

PROBE = """
import json, sys
from relsync.cli import main
try:
    main.main(sys.argv[1:], prog_name="relsync", standalone_mode=False)
    code = 0
except SystemExit as stop:
    code = stop.code
print(json.dumps({"exit": code, "modules": sorted(sys.modules)}))
"""
"""Runs the command as the console script does, then prints its exit code and every module imported, as the last line."""

VENDOR_CLIENTS = {"jira", "pyairtable", "simple_salesforce", "requests", "tenacity"}
WEB_AND_TEMPLATES = {"flask", "jinja2", "datasette"}


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, set[str]]:
    """Exit code, output and the top-level packages loaded by ``relsync ARGS`` in a fresh process."""
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr
    *output, last = done.stdout.splitlines()
    probed: dict[str, Any] = json.loads(last)
    return probed["exit"], "\n".join(output), set(probed["modules"])


def packages(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_help_loads_no_client_no_web_framework_no_pydantic_and_no_engine():
    code, output, modules = run("--help")

    assert code == 0 and "Usage: relsync" in output and "status" in output and "dashboard" in output
    assert packages(modules) & (VENDOR_CLIENTS | WEB_AND_TEMPLATES | {"pydantic", "connectors"}) == set()
    # Of the config package only the store URL rules (the standard library's urllib), never the loader or the models.
    assert {name for name in modules if name.startswith("config.")} <= {"config.store_url"}
    assert "sync.engine" not in modules


@pytest.mark.slow
def test_status_reads_the_store_without_loading_a_client_or_the_engine(small_world):
    assert engine.run(small_world.config, env=small_world.env).exit_code == engine.EXIT_OK

    code, output, modules = run("status", "--json", "--config", str(small_world.config_path))

    assert code == 0 and json.loads(output)["requests"]["by_source"]["jira"]["live"] == 30
    assert packages(modules) & (VENDOR_CLIENTS | WEB_AND_TEMPLATES | {"connectors", "sandboxes"}) == set()
    assert "sync.engine" not in modules


@pytest.mark.slow
def test_a_sync_with_nothing_to_do_loads_no_web_framework_and_no_report(small_world):
    assert engine.run(small_world.config, env=small_world.env).exit_code == engine.EXIT_OK

    code, output, modules = run("sync", "--json", "--config", str(small_world.config_path), env=small_world.env)

    assert code == 0 and json.loads(output)["status"] == "ok", output
    assert {"jira", "sync.engine"} <= modules  # it did pull
    assert packages(modules) & (WEB_AND_TEMPLATES | {"reports", "sandboxes"}) == set()
    # The config names Jira only: the other vendors' clients (zeep and lxml come with Salesforce's) stay unloaded.
    assert packages(modules) & {"pyairtable", "simple_salesforce", "zeep"} == set()
