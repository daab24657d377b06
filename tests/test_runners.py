"""Runners that share one store: one per source side by side, two of one source racing, one killed.

Each world is three sandboxes with the same seed (tests.test_crash). One is synced by a
single `relsync sync` on a SQLite store; the other, on a SQLite store or on a PostgreSQL
database of a real server (``store``), by separate `relsync sync --source NAME` processes started
together, as a scheduler with one job per source would, plus a second runner of one source
racing the first. Both must end with the same store: requests, releases, assignments and
what relsync pushed; no write sent twice (the sandboxes' write counters agree); the audit
chain intact.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from sync.audit import verify_chain
from sync.store import open_database
from sync.store_location import PASSWORD_ENV
from tests.postgres import PostgresServer
from tests.test_crash import RELSYNC, World, held, snapshot, world

RECORDS = 150
SYSTEMS = ("jira", "airtable", "salesforce")


def runner(w: World, source: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([*RELSYNC, "sync", "--source", source, "--config", str(w.config)], env=os.environ | w.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> str:
    """The kind of store the runners share."""
    if request.param == "postgresql":
        request.getfixturevalue("postgres_server")
    return str(request.param)


def shared(w: World, kind: str, request: pytest.FixtureRequest) -> World:
    """``w`` with its config's store moved to a new PostgreSQL database, for ``kind`` postgresql."""
    if kind == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        data = yaml.safe_load(w.config.read_text())
        data["store"] = server.create_database()
        w.config.write_text(yaml.safe_dump(data, sort_keys=False))
        w.env = w.env | {PASSWORD_ENV: server.password}
    return w


def chain_ok(w: World) -> bool:
    db = open_database(yaml.safe_load(w.config.read_text())["store"], env=w.env)
    try:
        return verify_chain(db).ok
    finally:
        db.close()


@pytest.mark.slow
def test_one_runner_per_source_and_a_racing_pair_end_where_one_run_ends(tmp_path, store, request):
    with world(tmp_path / "one", RECORDS) as one, world(tmp_path / "many", RECORDS) as many:
        many = shared(many, store, request)
        assert one.sync().returncode == 0

        outcomes: list[dict[str, int]] = []
        for _ in range(2):  # the second round finds nothing to do: the runners have converged
            started = {name: runner(many, name) for name in SYSTEMS} | {"jira again": runner(many, "jira")}
            ended = {name: process.communicate(timeout=300) for name, process in started.items()}
            outcomes.append({name: process.returncode for name, process in started.items()})
            for name, (out, err) in ended.items():
                code = started[name].returncode
                assert code in (0, 3), (name, code, out, err)
                if code == 3:  # the racer that lost is told who holds its source, and does nothing
                    assert re.search(r"locked: the source 'jira' is locked by (relsync )?pid \d+", out + err), (out, err)
        for round_codes in outcomes:
            assert [round_codes[name] for name in SYSTEMS] == [0, 0, 0] or round_codes["jira"] == 3
            assert 0 in (round_codes["jira"], round_codes["jira again"])

        assert snapshot(many.config, many.env) == snapshot(one.config)
        assert many.writes() == one.writes()  # no write went out twice
        assert chain_ok(many) and chain_ok(one)


@pytest.mark.slow
def test_a_runner_killed_mid_push_is_finished_by_another_from_its_own_folder(tmp_path, store, request):
    with world(tmp_path / "one", RECORDS) as one, world(tmp_path / "killed", RECORDS) as killed:
        killed = shared(killed, store, request)
        assert one.sync().returncode == 0
        for name in ("airtable", "salesforce"):
            assert runner(killed, name).wait(timeout=300) == 0

        # The Jira runner is killed right after one of its writes reached Jira (which holds the answer back).
        first = runner(killed, "jira")
        ready = held(killed, "jira", "PUT", "/rest/api/3/issue/*")
        while not ready():
            assert first.poll() is None, first.communicate()
        first.send_signal(signal.SIGKILL)
        first.communicate()
        assert first.returncode == -signal.SIGKILL
        killed.clear_faults()

        elsewhere = tmp_path / "another-machine"
        elsewhere.mkdir()
        second = runner(killed, "jira", cwd=elsewhere)
        out, err = second.communicate(timeout=300)
        assert second.returncode == 0, (out, err)

        after = snapshot(killed.config, killed.env)
        assert after == snapshot(one.config)  # no false pin, no write lost, nothing said to be a person's
        assert after["open_outbox"] == 0 and not after["pulled_engine_fields"]
        assert all(a["pinned"] == 0 for a in after["assignments"])
        assert chain_ok(killed)
        db = open_database(yaml.safe_load(killed.config.read_text())["store"], env=killed.env)
        try:
            abandoned = db.execute("select count(*) from runs where status = 'failed' and message like 'the process ended%'")
            assert abandoned.fetchone()[0] == 1  # the killed runner's row, closed by the runner that took its lock
            last_jira = db.execute("select max(id) from runs where sources = '[\"jira\"]'").fetchone()[0]
        finally:
            db.close()
        # The operator's view: each source's own last sync, and which sources each run did.
        status = subprocess.run([*RELSYNC, "status", "--config", str(killed.config)], env=os.environ | killed.env,
                                capture_output=True, text=True, timeout=120)
        assert status.returncode == 0, status.stderr
        assert f"jira #{last_jira} ok" in status.stdout and "[jira]" in status.stdout and "[salesforce]" in status.stdout
