"""Replay tests: a whole sync replayed from a vcrpy cassette recorded against the sandbox.

The cassette holds real HTTP exchanges of the real jira client with credentials
filtered out. In CI nothing is recorded (record mode ``none``): a request the
cassette does not hold fails the test. To record anew:

    RELSYNC_RECORD=all python -m pytest tests/test_replay.py
"""
from __future__ import annotations

import pytest

from config.loader import load_config
from relsync.demo import write_config
from sync import engine
from tests.recording import CASSETTES, NOW, RECORD_MODE, recorder

FAKE_ENV = {"RELSYNC_JIRA_EMAIL": "relsync@example.com", "RELSYNC_JIRA_TOKEN": "replayed-token"}


@pytest.fixture
def replay_config(tmp_path):
    """A config for the recorded sandbox; while recording, a live sandbox behind it."""
    if RECORD_MODE == "none":
        description = {"jira": {"url": "http://127.0.0.1:9", "project": "OPS", "env": FAKE_ENV}}
        yield load_config(write_config(description, tmp_path / "relsync.yaml")), FAKE_ENV
        return
    from sandboxes.server import start_sandboxes

    with start_sandboxes(records=30, seed=5) as sandboxes:
        description = sandboxes.describe()
        yield load_config(write_config(description, tmp_path / "relsync.yaml")), description["jira"]["env"]


def test_first_sync_replays_from_the_cassette(replay_config):
    config, env = replay_config
    with recorder.use_cassette("jira_first_sync.yaml") as cassette:
        report = engine.run(config, env=env, now=NOW)

    assert report.exit_code == 0, report.messages
    assert report.pulled["jira"]["pulled"] == 30
    assert report.pushed["jira"]["written"] > 0
    if RECORD_MODE == "none":
        assert cassette.all_played


def test_cassettes_hold_no_credentials():
    shapes = ("Basic ", "Bearer ", "client_secret=", "client_id=", "refresh_token=", "ATATT")
    for path in CASSETTES.glob("*.yaml"):
        text = path.read_text()
        assert [shape for shape in shapes if shape in text] == [], path
        assert "authorization" not in text.lower(), path
        assert "access_token" not in text or '"access_token": "FILTERED"' in text, path
