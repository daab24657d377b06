"""The dashboard: a static site whose numbers are the report's, whose links all resolve, and whose pages
escape what source systems send; rendered in a real browser; and ``relsync dashboard`` on the command line."""
from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
import yaml
from click.testing import CliRunner

from config.trains import Blackout
from mapping import clock
from relsync.cli import main
from reports.analytics import Report, backlog_counts, build_report, in_backlog
from reports.dashboard import build_dashboard
from reports.flow import cycle_times
from reports.request_pages import page_name
from reports.requests import RequestFilter, list_requests
from reports.timeline import request_facts
from reports.volume import buckets
from sync.audit import AuditEvent, append_events, request_history
from sync.schedule import release_plan
from sync.store import open_store
from tests.reports.conftest import History

HOSTILE = '<script>alert("x")</script> & "quotes" \'apos\' — Zürich 東京 ✅'
VOID = {"meta", "link", "br", "hr", "img", "input", "col", "area", "base", "wbr", "source"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    parts: list[str]

    @property
    def text(self) -> str:
        return "".join(self.parts)


class Page(HTMLParser):
    """Every element with its attributes and the text inside it (its descendants' included)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.nodes: list[Node] = []
        self._open: list[Node] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs), [])
        self.nodes.append(node)
        if tag not in VOID:
            self._open.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.nodes.append(Node(tag, dict(attrs), []))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for node in self._open:
            node.parts.append(data)

    def all(self, tag: str, **attrs: str) -> list[Node]:
        return [n for n in self.nodes if n.tag == tag and all(n.attrs.get(k.replace("_", "-")) == v
                                                                 for k, v in attrs.items())]


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


@dataclass
class Site:
    store: Path
    out: Path
    summary: Any
    report: Report
    generated: dt.datetime
    hostile_request: str
    hostile_release: str
    cancelled: str
    held: str


def _copy(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


@pytest.fixture(scope="module")
def site(history: History, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The history store copied, with hostile values from "source systems", a cancelled and a held release."""
    folder = tmp_path_factory.mktemp("dashboard")
    store = folder / "store.db"
    _copy(Path(history.config.store), store)
    db = open_store(store, create=False)
    release = next(db.query(
        "select a.release, min(a.request) as request from assignments a join releases rel on rel.id = a.release "
        "where rel.state != 'released' group by a.release order by rel.deploy_at limit 1"))
    plan = [r["id"] for r in db.query("select id from releases where state not in ('released', 'cancelled') "
                                      "and id != ? order by deploy_at", [release["release"]])]
    cancelled, held = plan[-1], plan[0]
    with db.atomic():
        db.execute("update change_requests set title = ?, department = ?, url = 'javascript:alert(1)' where key = ?",
                   [HOSTILE, "Ops <b>" + HOSTILE, release["request"]])
        db.execute("update releases set state = 'cancelled', cancelled_by = ?, cancel_reason = ? where id = ?",
                   ["Dana <dm>", HOSTILE, cancelled])
        db.execute("update releases set state = 'deploying', held_since = '2026-01-02T03:04:05.000Z', "
                   "requires_signoff = '[\"testing\"]' where id = ?", [held])
        append_events(db, [AuditEvent(at=clock.stamp(history.last_sync), run=None, actor=HOSTILE, origin="manual",
                                      request=release["request"], system="jira", field="release", old=None,
                                      new={"release": HOSTILE, "reason": HOSTILE})])
    generated = history.last_sync
    quotas = {train.name: train.quotas for train in history.config.trains}
    blackouts = [("business-systems", Blackout(name=HOSTILE, start=dt.date(2026, 12, 24), end=dt.date(2027, 1, 1)))]
    until = generated + dt.timedelta(days=1)
    summary = build_dashboard(db, folder / "site", until=until, quotas=quotas, blackouts=blackouts, generated=generated)
    report = build_report(db, until=until, quotas=quotas, now=generated)
    db.close()
    yield Site(store, folder / "site", summary, report, generated, release["request"], release["release"],
               cancelled, held)


@pytest.fixture
def db(site: Site) -> Iterator[sqlite_utils.Database]:
    store = open_store(site.store, create=False)
    yield store
    store.close()


def cells(page: Page, table: str) -> dict[tuple[str, str], str]:
    """(bucket, column) -> the cell's text, of the table ``data-table=table``."""
    start = next(i for i, n in enumerate(page.nodes) if n.tag == "table" and n.attrs.get("data-table") == table)
    end = next((i for i, n in enumerate(page.nodes[start + 1:], start + 1) if n.tag == "table"), len(page.nodes))
    found = {}
    for node in page.nodes[start:end]:
        if node.tag == "td" and "data-bucket" in node.attrs:
            column = node.attrs.get("data-key") or node.attrs.get("data-metric") or "total"
            found[(node.attrs["data-bucket"] or "", column or "")] = node.text
    return found


def rows_of(page: Page, css_class: str) -> list[list[str]]:
    """The cells' texts, row by row, of the first table with class ``css_class``."""
    start = next(i for i, n in enumerate(page.nodes) if n.tag == "table" and n.attrs.get("class") == css_class)
    end = next((i for i, n in enumerate(page.nodes[start + 1:], start + 1) if n.tag == "table"), len(page.nodes))
    rows: list[list[str]] = []
    for node in page.nodes[start:end]:
        if node.tag == "tr":
            rows.append([])
        elif node.tag == "td" and rows:
            rows[-1].append(node.text)
    return [row for row in rows if row]


def test_overview_numbers_are_the_reports(site: Site, db: sqlite_utils.Database) -> None:
    page = parse(site.out / "index.html")
    volume = site.report["volume"]
    assert site.summary["pages"]["overview"] == 1 and volume
    for dimension in ("department", "type", "source"):
        shown = cells(page, f"arrived-by-{dimension}")
        expected = {(b["bucket"], name): str(figures["arrived"]) for b in volume
                    for name, figures in b["by"][dimension].items() if figures["arrived"] or
                    any(o["by"][dimension].get(name, {}).get("arrived") for o in volume)}
        expected.update({(b["bucket"], "total"): str(b["totals"]["arrived"]) for b in volume})
        assert {k: v for k, v in shown.items() if v != "0" or k in expected} == expected
    totals = cells(page, "volume")
    assert totals == {(b["bucket"], metric): str(n) for b in volume for metric, n in b["totals"].items()}
    assert sum(int(v) for (_, metric), v in totals.items() if metric == "arrived") > 0
    trend = cells(page, "backlog-trend")
    assert trend == {(p["bucket"], "backlog"): str(p["size"]) for p in site.report["backlog"]["trend"]}
    headline = {n.attrs["data-figure"]: n.text for n in page.all("dd")}
    assert headline["arrived"] == str(sum(b["totals"]["arrived"] for b in volume))
    assert headline["deployed"] == str(sum(b["totals"]["deployed"] for b in volume))
    assert headline["backlog_size"] == str(site.report["backlog"]["size"])
    assert headline["median_cycle_days"] == str(site.report["flow"]["cycle_times"]["created_to_deployed"]["all"]["median_days"])


def test_chart_segments_add_up_to_the_buckets_arrivals(site: Site) -> None:
    page = parse(site.out / "index.html")
    section = next(i for i, n in enumerate(page.nodes) if n.attrs.get("id") == "by-department")
    chart = next(i for i, n in enumerate(page.nodes[section:], section) if n.tag == "svg")
    end = next(i for i, n in enumerate(page.nodes[chart:], chart) if n.tag == "ul")
    per_bucket: dict[str, int] = {}
    for node in page.nodes[chart:end]:
        if node.tag == "title" and " · " in node.text:
            match = re.fullmatch(r"(.+?) · (.+): (\d+)", node.text)
            if match:
                per_bucket[match[1]] = per_bucket.get(match[1], 0) + int(match[3])
    assert per_bucket == {b["bucket"]: b["totals"]["arrived"] for b in site.report["volume"] if b["totals"]["arrived"]}


def test_cycle_time_trend_is_each_buckets_cycle_time(site: Site, db: sqlite_utils.Database) -> None:
    shown = cells(parse(site.out / "index.html"), "cycle-time")
    facts = request_facts(db)
    period = site.report["period"]
    deployed = 0
    for bucket in buckets(clock.parse(period["since"]), clock.parse(period["until"]), period["by"]):
        expected = cycle_times(facts, bucket.start, bucket.end)["created_to_deployed"]["all"]
        deployed += expected["requests"]
        assert shown[(bucket.label, "requests")] == str(expected["requests"])
        assert shown[(bucket.label, "median_days")] == ("" if expected["median_days"] is None else str(expected["median_days"]))
        assert shown[(bucket.label, "p85_days")] == ("" if expected["p85_days"] is None else str(expected["p85_days"]))
    assert deployed == site.report["flow"]["cycle_times"]["created_to_deployed"]["all"]["requests"] > 0


def test_backlog_trend_in_one_pass_equals_asking_each_request(db: sqlite_utils.Database, site: Site) -> None:
    facts = request_facts(db)
    moments = sorted({at for request in facts for at, _ in request.statuses + request.releases}
                     | {site.generated, site.generated + dt.timedelta(days=30)})
    assert backlog_counts(facts, moments) == [sum(in_backlog(r, at) for r in facts) for at in moments]
    assert max(backlog_counts(facts, moments)) > 0


def test_every_release_has_a_page_with_its_requests(site: Site, db: sqlite_utils.Database) -> None:
    planned = release_plan(db, cancelled_after="2000-01-01T00:00:00Z")
    assert planned and site.summary["pages"]["releases"] == db.execute("select count(*) from releases").fetchone()[0]
    for release in planned:
        page = parse(site.out / "releases" / f"{release['id']}.html")
        members = {row["request"] for row in db.query(
            "select a.request from assignments a join change_requests r on r.key = a.request "
            "where a.release = ? and r.deleted_at is null", [release["id"]])}
        assert {n.attrs["data-request"] for n in page.all("tr") if "data-request" in n.attrs} == members
        assert {n.text for n in page.all("span") if n.attrs.get("data-figure") == "fill"} == {str(len(members))}
        assert {n.text for n in page.all("span") if n.attrs.get("data-figure") == "capacity"} == {str(release["capacity"])}
        phases = rows_of(page, "phases")
        assert [row[0] for row in phases] == [p["phase"] for p in release["phases"]]
        assert [row[3] for row in phases] == [p["owner"] or "" for p in release["phases"]]


def test_every_link_resolves_to_a_written_page_or_a_web_address(site: Site) -> None:
    pages = sorted(site.out.rglob("*.html"))
    assert len(pages) == site.summary["pages"]["total"]
    for path in pages:
        page = parse(path)
        targets = [n.attrs.get("href") or "" for n in page.all("a")] + [n.attrs.get("href") or "" for n in page.all("link")]
        assert targets
        for href in targets:
            if re.match(r"https?://", href):
                continue
            assert ":" not in href and not href.startswith("/"), (path, href)
            assert (path.parent / href.partition("#")[0]).resolve().is_file(), (path, href)


def test_a_request_page_shows_its_audit_in_order(site: Site, db: sqlite_utils.Database) -> None:
    history = request_history(db, site.hostile_request)
    page = parse(site.out / "requests" / f"{page_name(site.hostile_request)}.html")
    items = [n for n in page.all("li") if "data-event" in n.attrs]
    assert [int(n.attrs["data-event"] or 0) for n in items] == [event["id"] for event in history]
    assert [n.attrs["class"] for n in items] == [event["origin"] for event in history]
    assert {"pulled", "planned", "manual"} <= {event["origin"] for event in history}
    assert all(event["at"] in item.text and event["actor"] in item.text for event, item in zip(history, items, strict=True))
    last = items[-1].text
    assert HOSTILE in last and json.dumps({"reason": HOSTILE, "release": HOSTILE}, ensure_ascii=False,
                                          separators=(",", ":")) in last
    assert history == sorted(history, key=lambda event: event["id"])


def test_the_calendar_strikes_cancelled_releases_and_marks_held_ones(site: Site, db: sqlite_utils.Database) -> None:
    page = parse(site.out / "calendar.html")
    rows = [n for n in page.all("tr") if "data-release" in n.attrs]
    assert [n.attrs["data-release"] for n in rows] == [
        r["id"] for r in db.query("select id from releases order by deploy_at, id")]
    fills = {n.attrs["data-release"]: n for n in rows}
    for release in db.query(
        "select rel.id, rel.capacity, count(r.key) as n from releases rel left join assignments a on a.release = rel.id "
        "left join change_requests r on r.key = a.request and r.deleted_at is null group by rel.id"
    ):
        cell = next(c for c in page.nodes[page.nodes.index(fills[release["id"]]):] if c.attrs.get("data-figure") == "fill")
        assert cell.text == f"{release['n']} / {release['capacity']}"
    cancelled = next(n for n in rows if n.attrs["data-release"] == site.cancelled)
    assert "cancelled" in (cancelled.attrs["class"] or "") and f"cancelled by Dana <dm>: {HOSTILE}" in cancelled.text
    start = page.nodes.index(cancelled)
    assert page.nodes[start + 2].tag == "del"
    held = next(n for n in rows if n.attrs["data-release"] == site.held)
    assert "held since 2026-01-02T03:04:05.000Z: waiting for the sign-off of testing" in held.text
    owners = {row["owner"] for row in db.query("select owner from release_phases where owner is not null")}
    assert owners and all(owner in page.nodes[0].text or any(owner in r.text for r in rows) for owner in owners)
    blackouts = page.all("table", **{"class": "blackouts"})
    assert len(blackouts) == 1 and HOSTILE in blackouts[0].text and "2026-12-24" in blackouts[0].text


def test_the_backlog_page_lists_the_unplanned_requests_longest_waiting_first(site: Site, db: sqlite_utils.Database) -> None:
    page = parse(site.out / "backlog.html")
    waiting = list_requests(db, RequestFilter(unplanned=True), sort="age", now=site.generated)
    assert [n.attrs["data-request"] for n in page.all("tr") if "data-request" in n.attrs] == [r["key"] for r in waiting]
    assert waiting
    ages = {n.attrs["data-band"]: n.text for n in page.all("td") if "data-band" in n.attrs}
    assert ages == {band: str(n) for band, n in site.report["backlog"]["ages"].items()}
    assert sum(int(n) for n in ages.values()) == len(waiting)


def test_hostile_values_are_text_never_markup(site: Site) -> None:
    for path in site.out.rglob("*.html"):
        html = path.read_text(encoding="utf-8")
        page = parse(path)
        assert page.all("script") == [] and "javascript:" not in " ".join(n.attrs.get("href") or "" for n in page.all("a"))
        assert "<script>" not in html and "<b>" not in html
    release = parse(site.out / "releases" / f"{site.hostile_release}.html")
    assert HOSTILE in release.text and "Ops <b>" + HOSTILE in release.text
    row = next(n for n in release.all("tr") if n.attrs.get("data-request") == site.hostile_request)
    assert HOSTILE in row.text
    assert all(n.attrs.get("href", "").startswith("../requests/") for n in release.all("a") if HOSTILE in n.text) is True
    request = (site.out / "requests" / f"{page_name(site.hostile_request)}.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;quotes&#34; &#39;apos&#39; — Zürich 東京 ✅" in request


def test_page_names_are_safe_distinct_and_stable() -> None:
    keys = ["jira:OPS-12", "airtable:recAbC", "airtable:recabc", "a/b", "a:b", "a_b", "../etc/passwd", ".hidden",
            "salesforce:500XX000001", "jira:ÖPS-1", "jira:ÖPS-2", "", ":", "x" * 300]
    names = [page_name(key) for key in keys]
    assert len({name.casefold() for name in names}) == len(keys)
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]*", name) and len(name) < 120 for name in names)
    assert page_name("jira:OPS-12").startswith("jira-OPS-12-") and page_name("jira:OPS-12") == names[0]


def test_a_second_build_gives_the_same_bytes_and_drops_stale_pages(site: Site, db: sqlite_utils.Database,
                                                                   tmp_path: Path, history: History) -> None:
    def files(folder: Path) -> dict[str, bytes]:
        return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    quotas = {train.name: train.quotas for train in history.config.trains}
    blackouts = [("business-systems", Blackout(name=HOSTILE, start=dt.date(2026, 12, 24), end=dt.date(2027, 1, 1)))]
    again = tmp_path / "again"
    (again / "requests").mkdir(parents=True)
    (again / "requests" / "gone-0000.html").write_text("a request deleted since")
    (again / "notes.txt").write_text("not ours")
    summary = build_dashboard(db, again, until=site.generated + dt.timedelta(days=1), quotas=quotas,
                              blackouts=blackouts, generated=site.generated)
    assert summary == {**site.summary, "out": str(again)}
    built = files(again)
    assert built.pop("notes.txt") == b"not ours"
    assert built == files(site.out) and "dashboard.css" in built
    # An in-memory store has no file for worker processes to open: one process writes every page, the same.
    memory = open_store(":memory:")
    db.conn.backup(memory.conn)
    alone = tmp_path / "alone"
    build_dashboard(memory, alone, until=site.generated + dt.timedelta(days=1), quotas=quotas, blackouts=blackouts,
                    generated=site.generated)
    assert files(alone) == built


def test_the_default_build_counts_every_request_and_stamps_the_latest_change(history: History, tmp_path: Path) -> None:
    db = open_store(history.config.store, create=False)
    summary = build_dashboard(db, tmp_path / "site")
    latest = max(clock.parse(row[0]) for row in db.execute("select max(at) from audit union all select max(ended_at) from runs"))
    live = db.execute("select count(*) from change_requests where deleted_at is null").fetchone()[0]
    assert summary["generated"] == clock.stamp(latest)
    headline = {n.attrs["data-figure"]: n.text for n in parse(tmp_path / "site" / "index.html").all("dd")}
    assert headline["arrived"] == str(live)
    assert summary["pages"]["requests"] == db.execute("select count(*) from change_requests").fetchone()[0]
    db.close()


def _chromium() -> str:
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium); the pages are checked by the parser tests")
    return browser


@pytest.mark.slow
@pytest.mark.parametrize("which", ["index.html", "release", "request"])
def test_pages_render_in_a_real_browser(site: Site, tmp_path: Path, which: str) -> None:
    browser = _chromium()
    page = {"index.html": site.out / "index.html", "release": site.out / "releases" / f"{site.hostile_release}.html",
            "request": site.out / "requests" / f"{page_name(site.hostile_request)}.html"}[which]
    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()],
        check=True, timeout=120, capture_output=True, cwd=tmp_path,
    )
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 30_000  # a blank page compresses to a few KB


@pytest.mark.slow
def test_the_browsers_dom_shows_the_reports_figures(site: Site, tmp_path: Path) -> None:
    browser = _chromium()
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
         "--dump-dom", (site.out / "index.html").as_uri()],
        check=True, timeout=120, capture_output=True, cwd=tmp_path, text=True,
    ).stdout
    page = Page()
    page.feed(dom)
    shown = cells(page, "arrived-by-department")
    volume = site.report["volume"]
    for bucket in volume:
        for name, figures in bucket["by"]["department"].items():
            if figures["arrived"]:
                assert shown[(bucket["bucket"], name)] == str(figures["arrived"])
        assert shown[(bucket["bucket"], "total")] == str(bucket["totals"]["arrived"])
    assert page.all("svg") and page.all("script") == []
    headline = {n.attrs["data-figure"]: n.text for n in page.all("dd")}
    assert headline["backlog_size"] == str(site.report["backlog"]["size"])


def _config_with_store(history: History, tmp_path: Path, store: Path) -> Path:
    data = yaml.safe_load(history.config_path.read_text())
    data["store"] = str(store)
    path = tmp_path / "relsync.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_dashboard_command_says_what_it_wrote(site: Site, history: History, tmp_path: Path) -> None:
    config = _config_with_store(history, tmp_path, site.store)
    out = tmp_path / "site"
    result = CliRunner().invoke(main, ["dashboard", "--out", str(out), "--by", "month", "--json", "--config", str(config)],
                                env=history.world.env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    db = open_store(site.store, create=False)
    releases = db.execute("select count(*) from releases").fetchone()[0]
    requests = db.execute("select count(*) from change_requests").fetchone()[0]
    db.close()
    assert summary["out"] == str(out)
    assert summary["pages"] == {"overview": 1, "calendar": 1, "backlog": 1, "releases": releases,
                                "requests": requests, "total": 3 + releases + requests}
    assert len(list((out / "requests").glob("*.html"))) == requests
    assert len(list((out / "releases").glob("*.html"))) == releases
    assert re.search(r"\d{4}-\d{2}</th>", (out / "index.html").read_text())  # month buckets


def test_the_dashboard_command_refuses_an_empty_period(site: Site, history: History, tmp_path: Path) -> None:
    config = _config_with_store(history, tmp_path, site.store)
    result = CliRunner().invoke(main, ["dashboard", "--out", str(tmp_path / "site"), "--since", "2027-01-01",
                                       "--until", "2026-01-01", "--config", str(config)], env=history.world.env)
    assert result.exit_code == 2 and "--since" in result.output
    assert not (tmp_path / "site").exists()


def test_the_dashboard_command_refuses_a_missing_store(history: History, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.db"
    config = _config_with_store(history, tmp_path, missing)
    result = CliRunner().invoke(main, ["dashboard", "--out", str(tmp_path / "site"), "--config", str(config)],
                                env=history.world.env)
    assert result.exit_code == 5, result.output
    assert "no store at" in result.output
    assert not missing.exists() and not (tmp_path / "site").exists()
