"""`relsync browse`: Datasette metadata that names the store's real tables and columns, served read-only."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml
from click.testing import CliRunner

from relsync.cli import main
from relsync.demo import EXAMPLES
from reports.browse import TABLES, metadata
from sync.audit import AuditEvent, append_events
from sync.store import open_store


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    raw = yaml.safe_load((EXAMPLES / "jira.yaml").read_text())
    raw["store"] = str(tmp_path / "relsync.db")
    path = tmp_path / "relsync.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    db = open_store(tmp_path / "relsync.db")
    with db.atomic():
        db["change_requests"].insert({"key": "jira:OPS-1", "source": "jira", "system": "jira", "native_id": "10001",
                                      "title": "Add a field to the Opportunity layout", "department": "Sales Ops",
                                      "type": "configuration", "status": "approved"})
        append_events(db, [AuditEvent(at="2026-11-20T09:00:00.000Z", run=None, actor="jira", origin="pulled",
                                      request="jira:OPS-1", system="jira", field="*", old=None, new={"title": "x"})])
    db.close()
    return path


def test_the_metadata_names_only_real_tables_and_columns(tmp_path):
    db = open_store(tmp_path / "relsync.db")
    schema = {table: set(db[table].columns_dict) for table in db.table_names()}
    db.close()
    described = metadata("relsync")["databases"]["relsync"]["tables"]
    assert set(described) <= set(schema)
    for table, spec in described.items():
        named = set(spec["columns"]) | set(spec.get("facets", []))
        named |= {spec[key] for key in ("sort", "sort_desc", "label_column") if key in spec}
        assert named <= schema[table], (table, named - schema[table])
        assert spec["description"]
    assert {"department", "type", "source", "status", "release"} <= set(TABLES["change_requests"]["facets"])


def test_browse_metadata_writes_the_json_datasette_reads(config_file, tmp_path):
    out = tmp_path / "metadata.json"
    result = CliRunner().invoke(main, ["browse", "--config", str(config_file), "--metadata", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == metadata("relsync")


def test_without_datasette_browse_says_how_to_install_it(config_file):
    hide = ("import sys; sys.modules['datasette'] = None; from relsync.cli import main; "
            f"main(['browse', '--config', {str(config_file)!r}])")
    result = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "pip install 'relsync[browse]'" in result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.skipif(shutil.which("datasette", path=os.path.dirname(sys.executable)) is None,
                    reason="datasette is not installed (pip install 'relsync[browse]')")
def test_browse_serves_the_store_read_only_with_its_facets(config_file, tmp_path):
    port = free_port()
    store = tmp_path / "relsync.db"
    before = store.read_bytes()
    served = subprocess.Popen([sys.executable, "-c", "from relsync.cli import main; main()", "browse", "--config",
                               str(config_file), "--port", str(port)], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                page = requests.get(f"http://127.0.0.1:{port}/relsync/change_requests", timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "Datasette did not start"
                time.sleep(0.2)
        data = requests.get(f"http://127.0.0.1:{port}/relsync/change_requests.json?_shape=objects", timeout=5).json()
        refused = requests.post(f"http://127.0.0.1:{port}/relsync/-/query",
                                data={"sql": "delete from change_requests"}, timeout=5)
    finally:
        os.killpg(served.pid, signal.SIGTERM)
        served.wait(timeout=10)
    assert page.status_code == 200
    assert TABLES["change_requests"]["description"] in page.text
    for facet in ("department", "type", "source", "status"):  # facets with values show their counts
        assert f'id="facet-{facet}" data-column="{facet}"' in page.text
    assert [row["key"] for row in data["rows"]] == ["jira:OPS-1"]
    assert refused.status_code >= 400
    db = open_store(store)
    assert db["change_requests"].count == 1
    db.close()
    assert store.read_bytes() == before

