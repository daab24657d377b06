"""`relsync audit verify` with an anchor: the chain head printed, kept in a file, and checked again."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from relsync.cli import main
from sync.audit import AuditEvent, append_events
from sync.store import open_store

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "examples" / "jira.yaml"


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    """The Jira example config with a store of 300 audit events beside it."""
    path = tmp_path / "relsync.yaml"
    path.write_text(EXAMPLE.read_text())
    db = open_store(tmp_path / "relsync.db")
    events = [AuditEvent(at=f"2026-11-20T09:{n // 60:02d}:{n % 60:02d}Z", run=1, actor="jira", origin="pulled",
                         request=f"jira:OPS-{n % 9}", system="jira", field="title", old=None, new=f"title {n}")
              for n in range(1, 301)]
    with db.atomic():
        append_events(db, events)
    db.close()
    return path


def verify(config_path: Path, *args: str):
    return CliRunner().invoke(main, ["audit", "verify", "--config", str(config_path), *args], catch_exceptions=False)


def cut_the_last_hundred_rows(store: Path) -> None:
    """Drop the guards, delete rows 201-300 and set sqlite_sequence back, as someone with shell access could."""
    conn = sqlite3.connect(store)
    for (name,) in conn.execute("select name from sqlite_master where type = 'trigger' and tbl_name = 'audit'").fetchall():
        conn.execute(f"drop trigger {name}")
    conn.execute("delete from audit where id > 200")
    conn.execute("update sqlite_sequence set seq = 200 where name = 'audit'")
    conn.commit()
    conn.close()


def test_verify_prints_the_head_and_writes_it_as_an_anchor(config_path, tmp_path):
    anchor_file = tmp_path / "elsewhere" / "audit.anchor"
    anchor_file.parent.mkdir()
    head = sqlite3.connect(tmp_path / "relsync.db").execute("select hash from audit where id = 300").fetchone()[0]

    result = verify(config_path, "--write-anchor", str(anchor_file))

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "audit chain intact: 300 events", f"head: 300:{head}", f"wrote the head to {anchor_file}",
    ]
    assert anchor_file.read_text() == f"300:{head}\n"
    assert json.loads(verify(config_path, "--json").output)["head"] == f"300:{head}"


def test_the_truncation_attack_passes_alone_and_fails_against_the_anchor(config_path, tmp_path):
    anchor_file = tmp_path / "audit.anchor"
    assert verify(config_path, "--write-anchor", str(anchor_file)).exit_code == 0
    copied = verify(config_path).output.splitlines()[1].removeprefix("head: ")

    cut_the_last_hundred_rows(tmp_path / "relsync.db")

    alone = verify(config_path)
    assert alone.exit_code == 0 and alone.output.startswith("audit chain intact: 200 events")
    for args in (["--anchor", str(anchor_file)], ["--expect", copied]):
        result = verify(config_path, *args)
        assert result.exit_code == 1, args
        assert result.output.splitlines()[0] == (
            "audit chain BROKEN at event 201: the chain ends at row 200 but the anchor says it reached row 300 "
            "(rows were cut from the end)"
        )
    # A failed check does not overwrite the anchor kept from before.
    assert verify(config_path, "--anchor", str(anchor_file), "--write-anchor", str(anchor_file)).exit_code == 1
    assert anchor_file.read_text() == f"{copied}\n"


def test_a_reached_anchor_passes(config_path, tmp_path):
    head = sqlite3.connect(tmp_path / "relsync.db").execute("select hash from audit where id = 120").fetchone()[0]
    result = verify(config_path, "--expect", f"120:{head}")
    assert result.exit_code == 0, result.output
    assert "reaches the anchor 120 with the anchored hash" in result.output
    other = verify(config_path, "--expect", f"120:{'ab' * 32}")
    assert other.exit_code == 1 and f"not {'ab' * 32} as anchored" in other.output


def test_bad_anchors_are_usage_errors(config_path, tmp_path):
    empty = tmp_path / "empty.anchor"
    empty.write_text("")
    for args in (["--anchor", str(empty)], ["--expect", "300"], ["--expect", "head"]):
        result = verify(config_path, *args)
        assert result.exit_code == 2, args
        assert "an anchor is N:HASH" in result.output
    both = verify(config_path, "--anchor", str(empty), "--expect", "1:" + "0" * 64)
    assert both.exit_code == 2 and "not both" in both.output
    missing = verify(config_path, "--anchor", str(tmp_path / "nope"))
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_the_readme_daily_job_checks_the_last_head_and_keeps_the_new_one(config_path, tmp_path):
    anchor_file = tmp_path / "relsync.anchor"
    assert verify(config_path, "--write-anchor", str(anchor_file)).exit_code == 0
    db = open_store(tmp_path / "relsync.db")
    with db.atomic():
        append_events(db, [AuditEvent(at="2026-11-21T09:00:00Z", run=2, actor="planner", origin="planned",
                                      request="jira:OPS-1", system="jira", field="release", old=None, new="BS 2026.12.01")])
    db.close()

    result = verify(config_path, "--anchor", str(anchor_file), "--write-anchor", str(anchor_file))

    assert result.exit_code == 0, result.output
    assert "reaches the anchor 300 with the anchored hash" in result.output
    assert anchor_file.read_text().startswith("301:")
