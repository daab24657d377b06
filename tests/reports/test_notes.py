"""Release notes (Markdown, HTML) and the release calendar (.ics) from a store."""
from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import icalendar
import pytest

from reports.ics import UnknownTrainError, calendar_ics
from reports.notes import (
    UnknownReleaseError,
    release_notes,
    render_html,
    render_markdown,
)
from sync.db import Database, insert, insert_all, update
from sync.store import open_database, open_store
from tests.conftest import store_location

HOSTILE = '<script>alert("x")</script> & "quotes" — Zürich 東京 ✅'
MD_HOSTILE = "[not a link](http://evil) *bold* _under_ `code` | pipe"
UTC = dt.UTC

RELEASES = [
    {"id": "bs-20261201", "name": "BS 2026.12.01", "train": "business-systems", "deploy_at": "2026-12-01T18:00:00Z",
     "freeze_at": "2026-11-28T18:00:00Z", "capacity": 10, "state": "open", "revision": 0},
    {"id": "hotfix-20261125", "name": "HF 2026.11.25", "train": "hotfix", "deploy_at": "2026-11-25T00:00:00Z",
     "freeze_at": "2026-11-24T00:00:00Z", "capacity": 3, "state": "frozen", "revision": 0},
    {"id": "bs-20261117", "name": "BS 2026.11.17", "train": "business-systems", "deploy_at": "2026-11-17T18:00:00Z",
     "freeze_at": "2026-11-14T18:00:00Z", "capacity": 10, "state": "cancelled", "revision": 1},
]
PHASES = [
    {"release": "bs-20261201", "phase": "development", "starts": "2026-11-24T18:00:00Z",
     "ends": "2026-11-29T18:00:00Z", "owner": "Systems Developer"},
    {"release": "bs-20261201", "phase": "testing", "starts": "2026-11-29T18:00:00Z",
     "ends": "2026-12-01T18:00:00Z", "owner": "QA Lead"},
    {"release": "bs-20261201", "phase": "deployment", "starts": "2026-12-01T18:00:00Z",
     "ends": "2026-12-02T18:00:00Z", "owner": "Release Manager"},
    # Midnight to midnight: an all-day event in the calendar.
    {"release": "hotfix-20261125", "phase": "testing", "starts": "2026-11-24T00:00:00Z",
     "ends": "2026-11-25T00:00:00Z", "owner": "On-call <QA> & Co"},
]


def _request(source: str, native: str, title: str, department: str | None, type_: str | None,
             priority: str, status: str, url: str | None, updated: str) -> dict[str, Any]:
    return {"key": f"{source}:{native}", "source": source, "system": source, "native_id": native, "url": url,
            "title": title, "department": department, "type": type_, "priority": priority, "status": status,
            "updated_at": updated}


REQUESTS = [
    _request("jira", "OPS-12", "Add Region to Opportunity layout", "Sales", "Layout", "high", "scheduled",
             "https://example.atlassian.net/browse/OPS-12", "2026-11-10T09:00:00Z"),
    _request("jira", "OPS-15", HOSTILE, "Sales", "Workflow", "critical", "approved",
             "https://example.atlassian.net/browse/OPS-15?a=1&b=2", "2026-11-12T09:30:00Z"),
    _request("airtable", "recA1", MD_HOSTILE, "Finance", "Report", "medium", "scheduled",
             "https://airtable.com/appX/tblY/recA1", "2026-11-11T08:00:00Z"),
    _request("salesforce", "500X1", "Lead routing for EMEA", "Marketing", None, "low", "scheduled",
             "https://example.my.salesforce.com/500X1", "2026-11-09T07:00:00Z"),
    _request("salesforce", "500X2", "Unsafe link", None, "Field", "medium", "scheduled",
             "javascript:alert(1)", "2026-11-09T07:30:00Z"),
    _request("airtable", "recHF", "Fix broken approval email", "Finance", "Bug", "critical", "testing",
             "https://airtable.com/appX/tblY/recHF", "2026-11-20T10:00:00Z"),
]
ASSIGNMENTS = [
    ("jira:OPS-12", "bs-20261201", "2026-11-20T10:00:00.250Z"),
    ("jira:OPS-15", "bs-20261201", "2026-11-21T11:00:00Z"),
    ("airtable:recA1", "bs-20261201", "2026-11-20T10:00:00.250Z"),
    ("salesforce:500X1", "bs-20261201", "2026-11-20T10:00:00.250Z"),
    ("salesforce:500X2", "bs-20261201", "2026-11-20T10:00:00.250Z"),
    ("airtable:recHF", "hotfix-20261125", "2026-11-22T12:30:00Z"),
]


def build_store(location: str | Path, *, reverse: bool = False) -> Database:
    """A store with three releases, phases, six requests from three systems, assigned."""
    order = (lambda rows: list(reversed(rows))) if reverse else list
    db = open_database(location)
    insert_all(db, "releases", order(RELEASES))
    insert_all(db, "release_phases", order(PHASES))
    insert_all(db, "change_requests", order(REQUESTS))
    insert_all(db, "assignments", [
        {"request": key, "release": release, "pinned": 0, "reason": "planned", "assigned_by": "planner",
         "assigned_at": at}
        for key, release, at in order(ASSIGNMENTS)
    ])
    return db


@pytest.fixture
def db(tmp_path: Path, store_kind: str, request: pytest.FixtureRequest) -> Database:
    """The store: a SQLite file, then a PostgreSQL database."""
    return build_store(store_location(store_kind, tmp_path, request))


class Page(HTMLParser):
    """Everything the tests look at in an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.decls: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._open: list[str] = []

    def handle_decl(self, decl: str) -> None:
        self.decls.append(decl)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def test_notes_group_by_department_then_type(db: Database) -> None:
    notes = release_notes(db, "BS 2026.12.01")
    assert notes == release_notes(db, "bs-20261201")  # by id or by name
    assert notes.request_count == 5 and notes.capacity == 10
    assert notes.deploy_at == dt.datetime(2026, 12, 1, 18, tzinfo=UTC)
    assert [(p.phase, p.owner) for p in notes.phases] == [
        ("development", "Systems Developer"), ("testing", "QA Lead"), ("deployment", "Release Manager"),
    ]
    shape = {d.department: {t.type: [r.key for r in t.requests] for t in d.types} for d in notes.departments}
    assert shape == {
        "Finance": {"Report": ["airtable:recA1"]},
        "Marketing": {"(no type)": ["salesforce:500X1"]},
        "Sales": {"Layout": ["jira:OPS-12"], "Workflow": ["jira:OPS-15"]},
        "(no department)": {"Field": ["salesforce:500X2"]},
    }
    assert list(shape) == ["Finance", "Marketing", "Sales", "(no department)"]
    assert {r.system_label for d in notes.departments for t in d.types for r in t.requests} == {
        "Jira", "Airtable", "Salesforce",
    }


def test_unknown_release_names_the_request_and_the_known_releases(db: Database) -> None:
    with pytest.raises(UnknownReleaseError) as caught:
        release_notes(db, "BS 1999.01.01")
    assert isinstance(caught.value, LookupError)
    message = str(caught.value)
    assert "'BS 1999.01.01'" in message
    assert caught.value.known == ["BS 2026.11.17", "HF 2026.11.25", "BS 2026.12.01"]
    for name in caught.value.known:
        assert name in message


def test_markdown_has_headings_phase_table_and_linked_bullets(db: Database) -> None:
    md = render_markdown(release_notes(db, "bs-20261201"))
    lines = md.splitlines()
    assert lines[0] == "# Release notes: BS 2026.12.01"
    assert "| Phase | Starts | Ends | Owner | Sign-off |" in lines
    assert "| testing | 2026-11-29 18:00 UTC | 2026-12-01 18:00 UTC | QA Lead |  |" in lines
    assert "| Sales | 2 |" in lines and "| Finance | 1 |" in lines
    headings = [line for line in lines if line.startswith(("## ", "### "))]
    assert headings[headings.index("## Finance"):] == [
        "## Finance", "### Report", "## Marketing", "### \\(no type\\)",
        "## Sales", "### Layout", "### Workflow", "## \\(no department\\)", "### Field",
    ]
    assert (
        "- [Add Region to Opportunity layout](https://example.atlassian.net/browse/OPS-12)"
        " — jira:OPS-12 · high · scheduled · Jira"
    ) in lines
    # A javascript: URL from a source record is shown, never linked.
    assert "- Unsafe link — salesforce:500X2 · medium · scheduled · Salesforce" in lines


def test_markdown_escapes_special_characters_in_titles(db: Database) -> None:
    md = render_markdown(release_notes(db, "bs-20261201"))
    assert "<script>" not in md
    assert (
        '- [\\<script\\>alert\\("x"\\)\\</script\\> \\& "quotes" — Zürich 東京 ✅]'
        "(https://example.atlassian.net/browse/OPS-15?a=1&b=2)"
    ) in md
    assert (
        "[\\[not a link\\]\\(http://evil\\) \\*bold\\* \\_under\\_ \\`code\\` \\| pipe]"
        "(https://airtable.com/appX/tblY/recA1)"
    ) in md


def test_html_is_a_complete_document_with_everything_escaped(db: Database) -> None:
    html = render_html(release_notes(db, "BS 2026.12.01"))
    page = parse(html)
    assert html.startswith("<!DOCTYPE html>") and page.decls == ["DOCTYPE html"]
    assert page.all("meta")[0] == {"charset": "utf-8"}
    assert [name for name, _ in page.tags[:2]] == ["html", "head"]
    assert page.all("style") and page.all("title") and page.all("body")
    assert "Release notes: BS 2026.12.01" in page.text
    # The hostile title is text, exactly, and no script element exists.
    assert page.all("script") == []
    assert HOSTILE in page.text and MD_HOSTILE in page.text
    assert "&lt;script&gt;" in html and "&#34;quotes&#34;" in html and "Zürich 東京 ✅" in html
    links = {attrs["href"]: attrs for attrs in page.all("a")}
    assert set(links) == {
        "https://example.atlassian.net/browse/OPS-12",
        "https://example.atlassian.net/browse/OPS-15?a=1&b=2",
        "https://airtable.com/appX/tblY/recA1",
        "https://example.my.salesforce.com/500X1",
    }
    assert all(attrs["rel"] == "noopener" for attrs in links.values())
    assert "javascript:" not in html


def test_html_has_phase_table_and_department_counts(db: Database) -> None:
    page = parse(render_html(release_notes(db, "bs-20261201")))
    cells = [t.strip() for t in page.text if t.strip()]
    for row in (["testing", "2026-11-29 18:00 UTC", "2026-12-01 18:00 UTC", "QA Lead"],
                ["Finance", "1"], ["Sales", "2"], ["(no department)", "1"]):
        start = cells.index(row[0])
        assert cells[start:start + len(row)] == row
    assert {"class": "phases"} in page.all("table") and {"class": "departments"} in page.all("table")
    assert {"datetime": "2026-12-01T18:00:00.000Z"} in page.all("time")


@pytest.mark.slow
def test_html_renders_in_a_real_browser(db: Database, tmp_path: Path) -> None:
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium); HTML structure is checked by the parser tests")
    page = tmp_path / "notes.html"
    page.write_text(render_html(release_notes(db, "bs-20261201")), encoding="utf-8")
    shot = tmp_path / "out.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
        check=True, timeout=120, capture_output=True, cwd=tmp_path,
    )
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 20_000  # a blank 1200x1600 page compresses to a few KB


def test_notes_say_what_each_request_needs_first(db: Database) -> None:
    key = next(iter(db.query("select request from assignments where release = 'bs-20261201' order by request")))["request"]
    update(db, "change_requests", {"key": key}, {"depends_on": "airtable:recPRE, OPS-<b>7</b>"})
    notes = release_notes(db, "bs-20261201")
    line = next(line for line in render_markdown(notes).splitlines() if key in line)
    assert "· needs airtable:recPRE, OPS-" in line and "<b>" not in line  # source text is escaped
    html = render_html(notes)
    assert '<span class="meta needs">needs airtable:recPRE, OPS-&lt;b&gt;7&lt;/b&gt;</span>' in html


def test_notes_show_each_phase_sign_off_and_those_still_required(db: Database) -> None:
    update(db, "releases", {"id": "bs-20261201"}, {"requires_signoff": '["testing", "deployment"]'})
    insert(db, "phase_signoffs", {"release": "bs-20261201", "phase": "testing", "signed_by": "Dana <QA>",
                                 "signed_at": "2026-12-01T10:00:00.000Z", "recorded_by": "ops"})
    notes = release_notes(db, "bs-20261201")
    assert {p.phase: p.signoff for p in notes.phases} == {
        "development": "", "testing": "signed off by Dana <QA>, 2026-12-01 10:00 UTC", "deployment": "required, not given",
    }
    table = {line.split(" | ")[0]: line for line in render_markdown(notes).splitlines() if line.startswith("| ")}
    assert "signed off by Dana" in table["| testing"] and "2026-12-01 10:00 UTC |" in table["| testing"]
    assert table["| deployment"].endswith("| required, not given |")
    assert "<td>signed off by Dana &lt;QA&gt;, 2026-12-01 10:00 UTC</td>" in render_html(notes)


def events(ics: bytes) -> dict[str, icalendar.Event]:
    calendar = icalendar.Calendar.from_ical(ics)
    return {str(event["UID"]): event for event in calendar.walk("VEVENT")}


def test_calendar_has_deploys_freezes_and_phases_in_utc(db: Database) -> None:
    ics = calendar_ics(db)
    found = events(ics)
    assert set(found) == {
        "bs-20261201@relsync", "bs-20261201-freeze@relsync", "bs-20261201-development@relsync",
        "bs-20261201-testing@relsync", "bs-20261201-deployment@relsync",
        "hotfix-20261125@relsync", "hotfix-20261125-freeze@relsync", "hotfix-20261125-testing@relsync",
        "bs-20261117@relsync", "bs-20261117-freeze@relsync",
    }
    # The cancelled release stays, so subscribers' calendars drop it: same UIDs, STATUS:CANCELLED, a higher SEQUENCE.
    cancelled = found["bs-20261117@relsync"]
    assert (str(cancelled["STATUS"]), cancelled["SEQUENCE"], str(cancelled["SUMMARY"])) == (
        "CANCELLED", 1, "Cancelled: Deploy BS 2026.11.17")
    assert str(found["bs-20261117-freeze@relsync"]["STATUS"]) == "CANCELLED"
    deploy = found["bs-20261201@relsync"]
    assert (str(deploy["STATUS"]), deploy["SEQUENCE"]) == ("CONFIRMED", 0)
    assert str(deploy["SUMMARY"]) == "Deploy BS 2026.12.01"
    assert deploy.decoded("DTSTART") == dt.datetime(2026, 12, 1, 18, tzinfo=UTC)
    # Written in UTC ("Z"), not a floating or TZID time (icalendar 5 adds VALUE=DATE-TIME).
    assert re.search(r"^DTSTART(;VALUE=DATE-TIME)?:20261201T180000Z\r$", ics.decode(), re.MULTILINE)
    assert "URL" not in deploy
    description = str(deploy["DESCRIPTION"])
    assert "5 requests (capacity 10)" in description and "testing: QA Lead" in description
    testing = found["bs-20261201-testing@relsync"]
    assert str(testing["SUMMARY"]) == "BS 2026.12.01: testing (QA Lead)"
    assert testing.decoded("DTSTART") == dt.datetime(2026, 11, 29, 18, tzinfo=UTC)
    assert testing.decoded("DTEND") == dt.datetime(2026, 12, 1, 18, tzinfo=UTC)
    assert found["bs-20261201-freeze@relsync"].decoded("DTSTART") == dt.datetime(2026, 11, 28, 18, tzinfo=UTC)
    hotfix = found["hotfix-20261125-testing@relsync"]
    assert str(hotfix["SUMMARY"]) == "HF 2026.11.25: testing (On-call <QA> & Co)"
    assert hotfix.decoded("DTSTART") == dt.date(2026, 11, 24)  # all day
    assert hotfix.decoded("DTEND") == dt.date(2026, 11, 25)
    assert "1 request (capacity 3)" in str(found["hotfix-20261125@relsync"]["DESCRIPTION"])
    # DTSTAMP is the latest change in the data, not the time the file was made.
    assert {event.decoded("DTSTAMP") for event in found.values()} == {dt.datetime(2026, 11, 22, 12, 30, tzinfo=UTC)}


def test_blackouts_are_events_of_their_own(db: Database) -> None:
    from config.trains import Blackout

    holidays = Blackout(name="Year-end freeze", start=dt.date(2026, 12, 24), end=dt.date(2027, 1, 1), action="skip")
    found = events(calendar_ics(db, blackouts=[("business-systems", holidays), ("nightly", holidays)]))
    blackout = found["blackout-business-systems-20261224@relsync"]
    assert str(blackout["SUMMARY"]) == "Blackout (business-systems): Year-end freeze"
    assert (blackout.decoded("DTSTART"), blackout.decoded("DTEND")) == (dt.date(2026, 12, 24), dt.date(2027, 1, 2))
    assert "skipped" in str(blackout["DESCRIPTION"])
    assert not [uid for uid in found if "nightly" in uid]  # a train without releases here shows no blackout


def test_calendar_is_identical_for_identical_data(db: Database, tmp_path: Path) -> None:
    twin = build_store(tmp_path / "twin.db", reverse=True)  # the same rows in another order, on SQLite
    first = calendar_ics(db)
    assert first == calendar_ics(db) == calendar_ics(twin)
    assert first.startswith(b"BEGIN:VCALENDAR\r\n")
    update(twin, "releases", {"id": "hotfix-20261125"}, {"deploy_at": "2026-11-26T00:00:00Z"})
    assert calendar_ics(twin) != first


def test_calendar_for_some_trains(db: Database) -> None:
    assert set(events(calendar_ics(db, trains=["hotfix"]))) == {
        "hotfix-20261125@relsync", "hotfix-20261125-freeze@relsync", "hotfix-20261125-testing@relsync",
    }
    with pytest.raises(UnknownTrainError, match="'nightly'.*business-systems, hotfix"):
        calendar_ics(db, trains=["nightly", "hotfix"])


def test_empty_store_gives_an_empty_calendar(tmp_path: Path) -> None:
    calendar = icalendar.Calendar.from_ical(calendar_ics(open_store(tmp_path / "empty.db")))
    assert calendar.walk("VEVENT") == [] and str(calendar["VERSION"]) == "2.0"


def test_release_notes_and_calendar_from_the_cli_after_a_sync(small_world, tmp_path):
    import icalendar
    from click.testing import CliRunner

    from relsync.cli import main
    from sync import engine

    world = small_world
    engine.run(world.config, env=world.env)
    runner = CliRunner()
    listed = runner.invoke(main, ["release", "list", "--json", "--config", str(world.config_path)], env=world.env)
    first = __import__("json").loads(listed.output)[0]

    md = runner.invoke(main, ["release", "notes", first["name"], "--config", str(world.config_path)], env=world.env)
    html_file = tmp_path / "notes.html"
    html = runner.invoke(main, ["release", "notes", first["id"], "--format", "html", "--output", str(html_file),
                                "--config", str(world.config_path)], env=world.env)
    ics_file = tmp_path / "plan.ics"
    ics = runner.invoke(main, ["calendar", "--ics", str(ics_file), "--config", str(world.config_path)], env=world.env)

    assert md.exit_code == 0 and first["name"] in md.output and "/browse/OPS-" in md.output
    assert html.exit_code == 0 and html_file.read_text().startswith("<!DOCTYPE html>")
    assert ics.exit_code == 0
    parsed = icalendar.Calendar.from_ical(ics_file.read_bytes())
    deploys = [e for e in parsed.walk("VEVENT") if str(e["SUMMARY"]).startswith("Deploy ")]
    assert sorted(str(e["UID"]) for e in deploys) == sorted(f"{r['id']}@relsync" for r in __import__("json").loads(listed.output))
