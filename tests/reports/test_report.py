"""The report's figures, each recomputed independently with plain SQL on a store with history."""
from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator

import pytest
import sqlite_utils

from mapping import clock
from reports.analytics import Report, build_report
from reports.volume import buckets
from sync.store import open_store
from tests.reports.conftest import History

LIVE = "select key, department, type, source, priority, created_at from change_requests where deleted_at is null"


def pulled(status: str) -> str:
    """(request, at) of the first pulled event showing ``status``."""
    return (
        "select request, min(at) as at from audit where origin = 'pulled' and ((field = 'status' and new = "
        f"json_quote('{status}')) or (field = '*' and json_extract(new, '$.status') = '{status}')) group by request"
    )



FIRST_PLANNED = (
    "select request, min(at) as at from audit where field = 'release' and ((origin in ('planned', 'manual') "
    "and json_extract(new, '$.release') is not null) "
    "or (origin = 'pulled' and json_extract(new, '$') in (select name from releases))) group by request"
)
DEPLOYED = (
    "select r.key as request, coalesce(case when rel.state in ('released', 'deploying') then rel.deploy_at end, d.at) as at "
    f"from ({LIVE}) r left join assignments a on a.request = r.key left join releases rel on rel.id = a.release "
    f"left join ({pulled('deployed')}) d on d.request = r.key"
)


def moments_sql(metric: str) -> tuple[str, dict[str, str]]:
    """(request, at) of one volume figure, as SQL."""
    return {
        "arrived": ("select key as request, created_at as at from change_requests where deleted_at is null", {}),
        "approved": (pulled("approved"), {}),
        "planned": (FIRST_PLANNED, {}),
        "deployed": (DEPLOYED, {}),
        "rejected": (pulled("rejected"), {}),
    }[metric]


@pytest.fixture
def db(history: History) -> Iterator[sqlite_utils.Database]:
    store = open_store(history.config.store, create=False)
    yield store
    store.close()


def report_of(db: sqlite_utils.Database, history: History, **kwargs) -> Report:
    quotas = {train.name: train.quotas for train in history.config.trains}
    return build_report(db, quotas=quotas, now=later(history), **kwargs)


def later(history: History) -> dt.datetime:
    """When the report is asked for: a minute after the last sync."""
    return history.last_sync + dt.timedelta(minutes=1)


def sql_volume(db, by: str, since: str, until: str) -> Counter:
    """(bucket label, dimension, value, metric) -> count, grouped in SQL."""
    label = "strftime('%Y-%m', m.at)" if by == "month" else "date(m.at, '-6 days', 'weekday 1')"
    found: Counter = Counter()
    for metric in ("arrived", "approved", "planned", "deployed", "rejected"):
        inner, params = moments_sql(metric)
        for dimension in ("all", "department", "type", "source", "priority"):
            value = "''" if dimension == "all" else f"coalesce(r.{dimension}, '(none)')"
            for row in db.query(
                f"select {label} as bucket, {value} as value, count(*) as n from ({inner}) m "
                f"join ({LIVE}) r on r.key = m.request where m.at is not null "
                "and julianday(m.at) >= julianday(:since) and julianday(m.at) < julianday(:until) group by 1, 2",
                {**params, "since": since, "until": until},
            ):
                bucket = row["bucket"]
                if by == "week":
                    year, week, _ = dt.date.fromisoformat(bucket).isocalendar()
                    bucket = f"{year}-W{week:02d}"
                found[(bucket, dimension, row["value"], metric)] += row["n"]
    return found


def report_volume(report: Report) -> Counter:
    found: Counter = Counter()
    for bucket in report["volume"]:
        for metric, n in bucket["totals"].items():
            found[(bucket["bucket"], "all", "", metric)] += n
        for dimension, values in bucket["by"].items():
            for value, counts in values.items():
                for metric, n in counts.items():
                    found[(bucket["bucket"], dimension, value, metric)] += n
    return +found  # zeros dropped, as SQL has no row for them


@pytest.mark.parametrize("by", ["week", "month"])
def test_volume_per_bucket_and_split_matches_sql(db, history, by):
    report = report_of(db, history, by=by)
    expected = sql_volume(db, by, report["period"]["since"], report["period"]["until"])
    assert report_volume(report) == expected
    totals = Counter()
    for (_, dimension, _, metric), n in expected.items():
        if dimension == "all":
            totals[metric] += n
    # The history has every kind of event in it.
    assert totals["arrived"] == 40 and totals["rejected"] >= 1
    assert totals["approved"] > 2 and totals["planned"] > 2 and totals["deployed"] >= len(history.deployed)


def test_a_cut_period_counts_only_what_falls_inside_it_and_buckets_are_contiguous(db, history):
    since, until = clock.parse("2026-07-15T00:00:00Z"), clock.parse("2026-10-01T00:00:00Z")
    report = report_of(db, history, by="week", since=since, until=until)
    assert report_volume(report) == sql_volume(db, "week", clock.stamp(since), clock.stamp(until))
    starts = [clock.parse(b["start"]) for b in report["volume"]]
    assert starts[0] == since and report["volume"][-1]["end"] == clock.stamp(until)
    assert all(later - earlier <= dt.timedelta(days=7) for earlier, later in zip(starts, starts[1:], strict=False))
    assert len(report["volume"]) == len(buckets(since, until, "week")) == 12


def median(values: list[float]) -> float:
    ordered, middle = sorted(values), len(values) // 2
    return ordered[middle] if len(values) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def p85(values: list[float]) -> float:
    ordered = sorted(values)
    return next(v for i, v in enumerate(ordered, 1) if i / len(ordered) >= 0.85)


def test_cycle_times_match_sql(db, history):
    report = report_of(db, history, by="month")
    period = report["period"]
    for name, start in (("created_to_deployed", "r.created_at"), ("approved_to_deployed", "ap.at")):
        rows = list(db.query(
            f"select r.type, r.department, julianday(d.at) - julianday({start}) as days from ({LIVE}) r "
            f"join ({DEPLOYED}) d on d.request = r.key left join ({pulled('approved')}) ap on ap.request = r.key "
            f"where d.at is not null and {start} is not null and julianday({start}) <= julianday(d.at) "
            "and julianday(d.at) >= julianday(:since) and julianday(d.at) < julianday(:until)",
            {"since": period["since"], "until": period["until"]},
        ))
        shown = report["flow"]["cycle_times"][name]
        assert shown["all"]["requests"] == len(rows)
        for key, split in (("type", "by_type"), ("department", "by_department")):
            groups: dict[str, list[float]] = {}
            for row in rows:
                groups.setdefault(row[key] or "(none)", []).append(row["days"])
            assert set(shown[split]) == set(groups)
            for group, days in groups.items():
                assert shown[split][group]["requests"] == len(days)
                assert shown[split][group]["median_days"] == pytest.approx(median(days), abs=0.006)
                assert shown[split][group]["p85_days"] == pytest.approx(p85(days), abs=0.006)
    assert report["flow"]["cycle_times"]["created_to_deployed"]["all"]["requests"] >= len(history.deployed)
    assert report["flow"]["cycle_times"]["approved_to_deployed"]["all"]["requests"] >= 1


def test_throughput_and_fill_match_sql(db, history):
    report = report_of(db, history, by="month")
    period = {"since": report["period"]["since"], "until": report["period"]["until"]}
    shipped = [
        (row["name"], row["n"]) for row in db.query(
            "select rel.name, count(r.key) as n from releases rel left join assignments a on a.release = rel.id "
            "left join change_requests r on r.key = a.request and r.deleted_at is null "
            "where rel.state in ('released', 'deploying') and julianday(rel.deploy_at) >= julianday(:since) "
            "and julianday(rel.deploy_at) < julianday(:until) group by rel.id order by rel.deploy_at, rel.name", period)
    ]
    assert [(r["release"], r["requests"]) for r in report["flow"]["throughput"]] == shipped
    assert sum(n for _, n in shipped) >= len(history.deployed)

    fills = report["flow"]["fill"]
    expected = list(db.query(
        "select rel.name, rel.capacity, count(r.key) as n, sum(r.department = 'Sales Ops') as sales "
        "from releases rel left join assignments a on a.release = rel.id "
        "left join change_requests r on r.key = a.request and r.deleted_at is null where rel.state != 'cancelled' "
        "and ((julianday(rel.deploy_at) >= julianday(:since) and julianday(rel.deploy_at) < julianday(:until)) "
        "or rel.state in ('planned', 'open', 'frozen', 'deploying')) group by rel.id order by rel.deploy_at, rel.name",
        period,
    ))
    assert [(f["release"], f["capacity"], f["requests"]) for f in fills] == [
        (row["name"], row["capacity"], row["n"]) for row in expected]
    business = [f for f in fills if f["train"] == "business-systems" and f["state"] == "open"]
    assert business and all(f["requests"] <= 4 for f in business)
    for fill, row in zip(fills, expected, strict=True):
        if fill["train"] == "business-systems":
            sales, shared = fill["quotas"]
            assert (sales["department"], sales["seats"], sales["requests"]) == ("Sales Ops", 1, row["sales"] or 0)
            assert (shared["seats"], shared["requests"]) == (3, row["n"] - (row["sales"] or 0))
        assert sum(fill["by_department"].values()) == fill["requests"]


def test_slips_match_sql(db, history):
    report = report_of(db, history, by="month")
    rows = list(db.query(
        "select e.request, json_extract(e.old, '$') as old, json_extract(e.new, '$.release') as new, "
        "json_extract(e.new, '$.reason') as reason from audit e "
        "join releases f on f.name = json_extract(e.old, '$') join releases t on t.name = json_extract(e.new, '$.release') "
        "where e.origin = 'planned' and e.field = 'release' and julianday(t.deploy_at) > julianday(f.deploy_at) "
        "and e.request in (select key from change_requests where deleted_at is null) "
        "and e.at >= :since and e.at < :until order by e.id", report["period"],
    ))
    slips = report["flow"]["slipped"]
    assert [(s["request"], s["from_release"], s["to_release"], s["reason"]) for s in slips["requests"]] == [
        (row["request"], row["old"], row["new"], row["reason"]) for row in rows]
    assert rows, "the release that deployed left requests behind, and they moved on"
    assert sum(slips["by_cause"].values()) == len(rows)
    assert all(s["cause"] in s["reason"] or s["cause"].startswith("bumped by") for s in slips["requests"])


def test_backlog_now_and_its_trend_match_sql(db, history):
    report = report_of(db, history, by="month")
    backlog = report["backlog"]
    now = clock.stamp(later(history))
    rows = list(db.query(
        f"select r.key, w.reason, julianday(:now) - julianday(coalesce(ap.at, r.created_at)) as age from ({LIVE}) r "
        f"join change_requests c on c.key = r.key left join ({pulled('approved')}) ap on ap.request = r.key "
        "left join waiting w on w.request = r.key "
        "where c.status = 'approved' and r.key not in (select request from assignments)",
        {"now": now},
    ))
    assert backlog["size"] == len(rows) > 0
    assert {r["key"]: r["reason"] for r in backlog["requests"]} == {row["key"]: row["reason"] for row in rows}
    assert all(row["reason"] for row in rows), "the planner said why each one waits"
    ages = [row["age"] for row in rows]
    assert list(backlog["ages"].values()) == [
        sum(1 for a in ages if a < 7), sum(1 for a in ages if 7 <= a < 30),
        sum(1 for a in ages if 30 <= a < 90), sum(1 for a in ages if a >= 90)]
    assert sum(backlog["by_reason"].values()) == len(rows)

    for point in backlog["trend"]:
        year, month = map(int, point["bucket"].split("-"))
        end = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=dt.UTC)
        at = clock.stamp(min(end, later(history)))
        assert point["at"] == at
        size = db.execute(
            "select count(*) from change_requests r where r.deleted_at is null and "
            "(select case when e.field = '*' then json_extract(e.new, '$.status') else json_extract(e.new, '$') end "
            " from audit e where e.request = r.key and e.origin = 'pulled' and e.field in ('*', 'status') "
            " and e.at <= :at order by e.at desc, e.id desc limit 1) = 'approved' and coalesce("
            "(select case when e.origin = 'pulled' then json_extract(e.new, '$') else json_extract(e.new, '$.release') end "
            " from audit e where e.request = r.key and e.field = 'release' and (e.origin in ('planned', 'manual') "
            " or (e.origin = 'pulled' and json_extract(e.new, '$') in (select name from releases))) "
            " and e.at <= :at order by e.at desc, e.id desc limit 1), '') = ''",
            {"at": at},
        ).fetchone()[0]
        assert point["size"] == size, point
    assert any(point["size"] for point in backlog["trend"])


def test_an_empty_period_is_refused(db, history):
    with pytest.raises(ValueError, match="period is empty"):
        report_of(db, history, since=history.last_sync, until=history.last_sync)
