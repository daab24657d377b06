"""``relsync requests`` and ``relsync report`` from the command line: formats, filters, errors, no API calls."""
from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from relsync.cli import main
from reports.analytics import build_report
from reports.requests import RequestFilter, list_requests
from reports.timeline import moment
from sync.store import open_store
from tests.reports.conftest import History


def run(history: History, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, [*args, "--config", str(history.config_path)], env=history.world.env)
    assert result.exit_code == code, result.output
    return result.output


def test_requests_json_csv_and_text_list_the_same_requests(history):
    as_json = json.loads(run(history, "requests", "--status", "scheduled", "--department", "Sales Ops", "--json"))
    as_csv = list(csv.DictReader(io.StringIO(run(history, "requests", "--status", "scheduled",
                                                 "--department", "Sales Ops", "--csv"))))
    text = run(history, "requests", "--status", "scheduled", "--department", "Sales Ops").splitlines()
    db = open_store(history.config.store, create=False)
    expected = [row["key"] for row in list_requests(db, RequestFilter(status=["scheduled"], department=["Sales Ops"]))]
    db.close()
    assert [row["key"] for row in as_json] == [row["key"] for row in as_csv] == expected != []
    assert all(row["status"] == "scheduled" and row["department"] == "Sales Ops" for row in as_csv)
    assert [line.split()[0] for line in text[:-1]] == expected and text[-1] == f"{len(expected)} requests"


def test_requests_unplanned_shows_age_and_reason(history):
    rows = json.loads(run(history, "requests", "--unplanned", "--sort", "age", "--json"))
    assert rows and all(row["status"] == "approved" and row["release"] is None for row in rows)
    assert all(row["reason"] and row["age_days"] is not None for row in rows)
    text = run(history, "requests", "--unplanned")
    assert all(f"waiting {row['age_days']} d: {row['reason']}" in text for row in rows)


def test_report_formats_agree_with_the_library_and_make_no_api_calls(history):
    history.world.reset_calls()
    period = ("--by", "month", "--since", "2026-05-01", "--until", "2027-01-01")
    as_json = json.loads(run(history, "report", *period, "--json"))
    as_csv = list(csv.DictReader(io.StringIO(run(history, "report", *period, "--csv"))))
    text = run(history, "report", *period)
    assert sum(history.world.calls().values()) == 0

    db = open_store(history.config.store, create=False)
    quotas = {train.name: train.quotas for train in history.config.trains}
    expected = build_report(db, by="month", since=moment("2026-05-01"), until=moment("2027-01-01"), quotas=quotas)
    db.close()
    assert as_json["volume"] == json.loads(json.dumps(expected["volume"]))
    assert as_json["flow"] == json.loads(json.dumps(expected["flow"]))
    assert as_json["period"]["buckets"] == [f"2026-{month:02d}" for month in range(5, 13)]
    assert as_csv[0].keys() == {"section", "bucket", "dimension", "value", "metric", "figure"}
    volume = {(r["bucket"], r["metric"]): int(r["figure"]) for r in as_csv if r["section"] == "volume"
              and r["dimension"] == "all"}
    assert volume == {(b["bucket"], metric): n for b in as_json["volume"] for metric, n in b["totals"].items()}
    backlog = next(int(r["figure"]) for r in as_csv if r["section"] == "backlog" and r["metric"] == "requests"
                   and r["dimension"] == "all")
    assert backlog == as_json["backlog"]["size"] > 0
    assert f"backlog (approved, no release) now: {backlog} requests" in text
    for bucket in as_json["volume"]:
        assert f"  {bucket['bucket']:<10}" + "".join(f"{n:>10}" for n in bucket["totals"].values()) in text


@pytest.mark.parametrize(("args", "message"), [
    (["report", "--json", "--csv"], "give --json or --csv, not both"),
    (["requests", "--since", "last tuesday"], "is not a date"),
    (["report", "--since", "2026-12-01", "--until", "2026-11-01"], "must be before --until"),
    (["report", "--by", "year"], "'year' is not one of 'week', 'month'"),
])
def test_bad_options_are_refused_with_a_message(history, args, message):
    assert message in run(history, *args, code=2)


def test_a_missing_store_is_not_created(history, tmp_path):
    config = tmp_path / "relsync.yaml"
    config.write_text(history.config_path.read_text().replace(str(history.config.store), str(tmp_path / "none.db")))
    result = CliRunner().invoke(main, ["report", "--config", str(config)], env=history.world.env)
    assert result.exit_code == 5, result.output
    assert not (tmp_path / "none.db").exists()
