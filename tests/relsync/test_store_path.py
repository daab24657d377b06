"""A store path that cannot work is a configuration error naming `store`; reading commands never create one."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

RELSYNC = [sys.executable, "-m", "relsync"]


def with_store(world, tmp_path: Path, store: str) -> Path:
    data = yaml.safe_load(world.config_path.read_text())
    data["store"] = store
    path = tmp_path / "store.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def relsync(world, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RELSYNC, *args], env=os.environ | world.env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_a_store_in_a_missing_folder_is_a_config_error_for_every_command(small_world, tmp_path: Path):
    missing = tmp_path / "no" / "such" / "folder"
    config = with_store(small_world, tmp_path, str(missing / "c.db"))
    message = f"store: the folder {missing} does not exist"

    for command in (["sync"], ["check"], ["plan"]):
        done = relsync(small_world, *command, "--config", str(config))
        assert done.returncode == 2 and message in done.stdout + done.stderr, (command, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
    assert not missing.exists()  # nothing was created on the way


def test_reading_commands_never_create_a_store(small_world, tmp_path: Path):
    store = tmp_path / "mistyped.db"
    config = with_store(small_world, tmp_path, str(store))

    for command in (["status"], ["audit", "verify"], ["release", "list"]):
        done = relsync(small_world, *command, "--config", str(config))
        assert done.returncode == 5, (command, done.stdout, done.stderr)  # not found
        assert f"no store at {store}" in done.stdout + done.stderr and "Traceback" not in done.stderr
    assert not store.exists()

    assert relsync(small_world, "sync", "--config", str(config)).returncode == 0
    assert relsync(small_world, "status", "--config", str(config)).returncode == 0
