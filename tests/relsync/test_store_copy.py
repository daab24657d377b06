"""`relsync store copy`: a store made by a real sync, into a real PostgreSQL server and back, unchanged."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from relsync.cli import main
from sync import engine
from sync.audit import verify_chain
from sync.pg_store import PostgresStore
from sync.pg_store import verify_chain as verify_pg_chain
from sync.store import open_store
from sync.store_copy import TABLES, SqliteStore, Store
from sync.store_location import PASSWORD_ENV
from tests.conftest import make_world


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The config of a store filled by one real sync of 30 seeded Jira requests (the sandbox gone afterwards)."""
    for world in make_world(tmp_path_factory.mktemp("world"), records=30):
        assert engine.run(world.config, env=world.env).exit_code == engine.EXIT_OK
        return world.config_path
    raise AssertionError("no world")


def store_of(config_path: Path) -> str:
    return str(config_path.parent / yaml.safe_load(config_path.read_text())["store"])


def copy(*args: str) -> Result:
    return CliRunner().invoke(main, ["store", "copy", *args], catch_exceptions=False)


def contents(store: Store) -> dict[str, list[dict[str, object]]]:
    """Every table's rows, in the order the copy reads them (primary key), as column -> value."""
    tables = {}
    for table in TABLES:
        columns = sorted(store.columns(table))
        tables[table] = [dict(zip(columns, row, strict=True)) for row in store.rows(table, columns)]
    return tables


def test_a_synced_store_goes_to_postgresql_and_back_unchanged(synced, pg_url, tmp_path, postgres_server):
    source = store_of(synced)
    db = open_store(source, create=False)
    before = contents(SqliteStore(source, db))
    chain = verify_chain(db)
    db.close()
    assert chain.ok and chain.checked > 30
    assert {table for table, rows in before.items() if rows} >= {
        "change_requests", "releases", "release_phases", "assignments", "sync_state", "outbox", "audit", "runs"}

    there = copy(source, pg_url)

    assert there.exit_code == 0, there.output
    counts = ", ".join(f"{table} {len(rows)}" for table, rows in before.items())
    assert there.output == (f"copied {source} -> {pg_url}: {counts}; audit chain verified to row {chain.head_id} "
                            f"with hash {chain.head}\n")
    assert postgres_server.password not in there.output
    pg = PostgresStore.open(pg_url)
    assert contents(pg) == before
    assert verify_pg_chain(pg.connection) == chain
    pg.close()

    back = tmp_path / "back" / "relsync.db"
    back.parent.mkdir()
    again = copy(pg_url, str(back), "--json")

    assert again.exit_code == 0, again.output
    assert json.loads(again.output) == {
        "source": pg_url, "target": str(back), "rows": {table: len(rows) for table, rows in before.items()},
        "audit": {"verified": True, "rows": chain.checked, "anchor": str(chain.anchor)}}
    db = open_store(back, create=False)
    assert contents(SqliteStore(str(back), db)) == before
    assert verify_chain(db) == chain
    db.close()
    # The copy back is a store relsync works with: its audit verifies against the original head.
    config = yaml.safe_load(synced.read_text()) | {"store": str(back)}
    (back.parent / "relsync.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "audit.anchor").write_text(f"{chain.anchor}\n")
    verified = CliRunner().invoke(main, ["audit", "verify", "--config", str(back.parent / "relsync.yaml"),
                                         "--anchor", str(tmp_path / "audit.anchor")], catch_exceptions=False)
    assert verified.exit_code == 0, verified.output
    assert f"head: {chain.anchor}" in verified.output


def test_a_target_that_is_not_empty_is_refused_by_name(synced, pg_url, tmp_path):
    source = store_of(synced)
    assert copy(source, pg_url).exit_code == 0

    into_pg = copy(source, pg_url)
    into_sqlite = copy(pg_url, source)

    assert into_pg.exit_code == 1
    assert f"the target store {pg_url} is not empty (change_requests 30" in into_pg.output
    assert into_sqlite.exit_code == 1
    assert f"the target store {source} is not empty (change_requests 30" in into_sqlite.output


def test_the_password_never_appears_in_output_or_errors(synced, pg_url, postgres_server, monkeypatch):
    source = store_of(synced)

    monkeypatch.setenv(PASSWORD_ENV, "wrong-Pa55word-7")
    wrong = copy(source, pg_url)
    in_url = copy(source, pg_url.replace("@", f":{postgres_server.password}@", 1))
    monkeypatch.delenv(PASSWORD_ENV)
    monkeypatch.setenv("OPS_DB_PASSWORD", postgres_server.password)
    named = copy(source, pg_url, "--password-env", "OPS_DB_PASSWORD", "--json")

    assert wrong.exit_code == 2
    assert wrong.output.startswith(f"Error: cannot open the PostgreSQL store {pg_url}: ")
    assert "password authentication failed" in wrong.output and "wrong-Pa55word-7" not in wrong.output
    assert in_url.exit_code == 2
    assert "the store URL carries a password" in in_url.output and postgres_server.password not in in_url.output
    assert named.exit_code == 0, named.output
    assert json.loads(named.output)["audit"]["verified"] is True and postgres_server.password not in named.output


def test_a_missing_source_is_not_found(pg_url, tmp_path):
    from_sqlite = copy(str(tmp_path / "nowhere.db"), pg_url)
    from_pg = copy(pg_url, str(tmp_path / "new.db"))

    assert from_sqlite.exit_code == 5
    assert f"no SQLite store at {tmp_path / 'nowhere.db'}" in from_sqlite.output
    assert not (tmp_path / "nowhere.db").exists()
    assert from_pg.exit_code == 5
    assert f"no relsync store in the PostgreSQL database {pg_url}" in from_pg.output
    assert not (tmp_path / "new.db").exists()


def test_a_target_in_a_missing_folder_is_a_configuration_error(synced, tmp_path):
    result = copy(store_of(synced), str(tmp_path / "no-such-folder" / "relsync.db"))

    assert result.exit_code == 2
    assert f"the folder {tmp_path / 'no-such-folder'} does not exist" in result.output


def test_copying_a_store_onto_itself_is_refused(synced, pg_url):
    result = copy(store_of(synced), store_of(synced))
    with_password = pg_url.replace("@", ":s3cret-word@", 1)
    secret = copy(with_password, with_password)

    assert result.exit_code == 1 and "the source and the target are the same store" in result.output
    assert secret.exit_code == 2 and "carries a password" in secret.output and "s3cret-word" not in secret.output


def test_an_account_without_the_right_to_create_tables_gets_the_servers_reason(synced, pg_url, postgres_server,
                                                                                monkeypatch):
    with postgres_server.admin() as admin:
        admin.execute("create role reader login password 'reader-pw-41'")
    monkeypatch.setenv(PASSWORD_ENV, "reader-pw-41")
    as_reader = pg_url.replace(f"{postgres_server.user}@", "reader@", 1)

    result = copy(store_of(synced), as_reader)

    assert result.exit_code == 1
    assert result.output.startswith(f"Error: opening the store {as_reader} failed in PostgreSQL: ")
    assert "permission denied for schema public" in result.output and "reader-pw-41" not in result.output
