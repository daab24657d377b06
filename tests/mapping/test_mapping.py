"""Mapping source records to ChangeRequests: paths, converters, value tables, errors."""
from __future__ import annotations

import copy
import datetime as dt
import json
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.loader import load_config
from config.schema import FieldMapping, WriteTargets
from mapping import ChangeRequest, MappingError, SourceMapping, read_path
from mapping.converters import (
    ConversionError,
    adf_to_text,
    datetime,
    first,
    join,
    lower,
    names,
    text,
)
from mapping.model import SourceRecord

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "examples" / "jira.yaml"

DESCRIPTION_ADF = {
    "type": "doc",
    "version": 1,
    "content": [
        {
            "type": "paragraph",
            "content": [
                {"type": "text", "text": "Add "},
                {"type": "text", "text": "Renewal Date", "marks": [{"type": "strong"}]},
                {"type": "text", "text": " to the Opportunity layout."},
                {"type": "hardBreak"},
                {"type": "text", "text": "Asked by "},
                {"type": "mention", "attrs": {"id": "5b10ac8d82e05b22cc7d4ef5", "text": "@Dana Whitfield"}},
                {"type": "text", "text": "."},
            ],
        },
        {"type": "heading", "attrs": {"level": 3}, "content": [{"type": "text", "text": "Acceptance"}]},
        {
            "type": "bulletList",
            "content": [
                {"type": "listItem", "content": [
                    {"type": "paragraph", "content": [{"type": "text", "text": "Visible to Sales"}]},
                    {"type": "bulletList", "content": [
                        {"type": "listItem", "content": [
                            {"type": "paragraph", "content": [{"type": "text", "text": "read-only for SDRs"}]}
                        ]}
                    ]},
                ]},
                {"type": "listItem", "content": [
                    {"type": "paragraph", "content": [
                        {"type": "text", "text": "See "},
                        {"type": "text", "text": "the spec", "marks": [
                            {"type": "link", "attrs": {"href": "https://wiki.example.com/spec"}}
                        ]},
                    ]}
                ]},
            ],
        },
        {"type": "orderedList", "attrs": {"order": 1}, "content": [
            {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Deploy"}]}]},
            {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Verify"}]}]},
        ]},
        {"type": "codeBlock", "attrs": {"language": "sql"}, "content": [
            {"type": "text", "text": "SELECT Id FROM Opportunity\nLIMIT 1"}
        ]},
        {"type": "paragraph", "content": []},
        {"type": "panel", "attrs": {"panelType": "info"}, "content": [
            {"type": "paragraph", "content": [
                {"type": "emoji", "attrs": {"shortName": ":warning:", "text": "⚠️"}},
                {"type": "text", "text": " Freeze starts "},
                {"type": "date", "attrs": {"timestamp": "1795392000000"}},
            ]}
        ]},
        {"type": "someFutureNode", "content": [{"type": "text", "text": "kept words"}]},
    ],
}

DESCRIPTION_TEXT = """Add Renewal Date to the Opportunity layout.
Asked by @Dana Whitfield.

Acceptance

- Visible to Sales
  - read-only for SDRs
- See the spec (https://wiki.example.com/spec)

1. Deploy
2. Verify

```sql
SELECT Id FROM Opportunity
LIMIT 1
```

⚠️ Freeze starts 2026-11-23

kept words"""

ISSUE = {
    "id": "10042",
    "key": "OPS-12",
    "self": "https://your-site.atlassian.net/rest/api/3/issue/10042",
    "fields": {
        "summary": "  Add Renewal Date to Opportunity layout",
        "description": DESCRIPTION_ADF,
        "customfield_10071": {"self": "…", "value": "Enhancement", "id": "10100"},
        "customfield_10070": {"self": "…", "value": "Sales Ops", "id": "10090"},
        "reporter": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Dana Whitfield"},
        "assignee": None,
        "priority": {"name": "Highest", "id": "1"},
        "status": {"name": "In Progress", "id": "3", "statusCategory": {"key": "indeterminate"}},
        "created": "2026-11-20T10:15:30.123+0100",
        "updated": "2026-11-21T08:00:00.000+0000",
        "fixVersions": [{"id": "10200", "name": "BS 2026.12.01"}, {"id": "10201", "name": "BS 2026.12.15"}],
    },
}


def record(raw: dict | None = None) -> SourceRecord:
    raw = ISSUE if raw is None else raw
    return SourceRecord(
        native_id=raw["id"],
        native_key=raw.get("key"),
        url=f"https://your-site.atlassian.net/browse/{raw.get('key')}",
        version=raw["fields"].get("updated"),
        raw=raw,
    )


def issue_with(**fields) -> dict:
    raw = copy.deepcopy(ISSUE)
    raw["fields"].update(fields)
    return raw


@pytest.fixture(scope="module")
def jira() -> SourceMapping:
    config = load_config(EXAMPLE)
    return SourceMapping.for_source("jira", config.sources["jira"])


def mapping_of(fields: dict, write: dict | None = None) -> SourceMapping:
    return SourceMapping(
        "crm", "jira", FieldMapping.model_validate(fields), WriteTargets.model_validate(write or {})
    )


# -- normalize end to end ------------------------------------------------------------------


def test_normalizes_a_jira_issue_with_the_example_mapping(jira):
    request = jira.normalize(record())

    assert request == ChangeRequest(
        key="jira:OPS-12",
        source="jira",
        system="jira",
        native_id="10042",
        native_key="OPS-12",
        url="https://your-site.atlassian.net/browse/OPS-12",
        title="  Add Renewal Date to Opportunity layout",
        description=DESCRIPTION_TEXT,
        type="Enhancement",
        department="Sales Ops",
        requester="Dana Whitfield",
        owner=None,
        priority="critical",
        status="in_progress",
        source_status="In Progress",
        release="BS 2026.12.01",
        created_at="2026-11-20T09:15:30.123Z",
        updated_at="2026-11-21T08:00:00.000Z",
        source_version="2026-11-21T08:00:00.000+0000",
    )
    assert request.raw is ISSUE


def test_key_falls_back_to_the_native_id(jira):
    bare = SourceRecord(native_id="10042", native_key=None, url=None, version=None, raw=ISSUE)
    assert jira.normalize(bare).key == "jira:10042"


def test_empty_values_become_none_or_the_default(jira):
    raw = issue_with(customfield_10070=None, fixVersions=[], description=None, reporter={})
    request = jira.normalize(record(raw))
    assert request.department == "Unassigned"
    assert (request.release, request.description, request.requester) == (None, None, None)


def test_unmapped_status_names_key_value_and_record(jira):
    with pytest.raises(MappingError) as caught:
        jira.normalize(record(issue_with(status={"name": "Blocked"})))
    error = caught.value
    assert (error.path, error.record, error.field, error.value) == (
        "sources.jira.fields.status.map", "jira:OPS-12", "fields.status.name", "Blocked"
    )
    assert str(error).startswith(
        "jira:OPS-12 fields.status.name: source value 'Blocked' is not mapped and no default is set; "
        "add it to sources.jira.fields.status.map (mapped now: 'Open', "
    )


def test_unmapped_priority_is_an_error_too(jira):
    with pytest.raises(MappingError) as caught:
        jira.normalize(record(issue_with(priority={"name": "Urgent"})))
    assert caught.value.path == "sources.jira.fields.priority.map"
    assert caught.value.value == "Urgent"


def test_status_default_catches_unmapped_values_and_keeps_the_source_status():
    mapping = mapping_of({
        "title": "fields.summary",
        "status": {"path": "fields.status.name", "map": {"Open": "new"}, "default": "triaged"},
    })
    request = mapping.normalize(record(issue_with(status={"name": "Blocked"})))
    assert (request.status, request.source_status) == ("triaged", "Blocked")
    assert mapping.normalize(record(issue_with(status={"name": "Open"}))).status == "new"


def test_missing_status_without_default_is_an_error_never_none(jira):
    with pytest.raises(MappingError) as caught:
        jira.normalize(record(issue_with(status=None)))
    assert caught.value.path == "sources.jira.fields.status"
    assert str(caught.value) == "jira:OPS-12 fields.status.name: required value is missing"


def test_missing_title_is_an_error(jira):
    with pytest.raises(MappingError) as caught:
        jira.normalize(record(issue_with(summary="")))
    assert caught.value.path == "sources.jira.fields.title"
    assert (caught.value.record, caught.value.field) == ("jira:OPS-12", "fields.summary")
    assert str(caught.value) == "jira:OPS-12 fields.summary: required value is missing"


def test_path_to_an_object_asks_for_a_key_or_converter():
    mapping = mapping_of({"title": "fields.summary", "status": "fields.status.name", "type": "fields.customfield_10071"})
    with pytest.raises(MappingError) as caught:
        mapping.normalize(record(issue_with(status={"name": "new"})))
    assert caught.value.path == "sources.crm.fields.type.path"
    assert str(caught.value).startswith(
        "crm:OPS-12 fields.customfield_10071: holds an object with keys id, self, value, not a single value; "
        "point sources.crm.fields.type.path at one of its keys"
    )


def test_converter_failure_names_the_convert_key_and_record(jira):
    with pytest.raises(MappingError) as caught:
        jira.normalize(record(issue_with(created="20 Nov 2026")))
    assert caught.value.path == "sources.jira.fields.created_at.convert"
    assert (caught.value.record, caught.value.field, caught.value.value) == ("jira:OPS-12", "fields.created", "20 Nov 2026")
    assert str(caught.value) == (
        "jira:OPS-12 fields.created: datetime expects a date-time with a time zone like "
        "2026-11-20T10:15:30.123+0000, got '20 Nov 2026'"
    )


def test_numbers_and_booleans_are_looked_up_as_text():
    mapping = mapping_of({
        "title": "fields.summary",
        "status": {"path": "fields.state", "map": {"1": "new", "true": "closed"}},
    })
    assert mapping.normalize(record(issue_with(state=1))).status == "new"
    assert mapping.normalize(record(issue_with(state=True))).status == "closed"


def test_names_converter_in_a_mapping():
    mapping = mapping_of({
        "title": "fields.summary",
        "status": {"path": "fields.status.name", "map": {"In Progress": "in_progress"}},
        "release": {"path": "fields.fixVersions", "convert": "names"},
    })
    assert mapping.normalize(record()).release == "BS 2026.12.01, BS 2026.12.15"


# -- what connectors and the engine ask the mapping ---------------------------------------------


def test_source_paths_list_every_mapped_path_once(jira):
    assert jira.source_paths() == [
        "fields.summary",
        "fields.description",
        "fields.customfield_10071.value",
        "fields.customfield_10070.value",
        "fields.reporter.displayName",
        "fields.assignee.displayName",
        "fields.priority.name",
        "fields.status.name",
        "fields.fixVersions.0.name",
        "fields.issuelinks",  # depends_on: links, then the text field beside them
        "fields.customfield_10073",
        "fields.components.0.name",
        "fields.created",
        "fields.updated",
        "fields.customfield_10080",  # the fields relsync writes (planned date, phase) are read back too
        "fields.customfield_10081",
    ]


def test_write_targets(jira):
    assert jira.source_status_for("scheduled") == "Scheduled"
    assert jira.source_status_for("deployed") is None
    assert jira.release_field() == "fixVersions"
    assert mapping_of({"title": "a", "status": "b"}).release_field() is None


# -- read_path -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("fields.summary", "  Add Renewal Date to Opportunity layout"),
        ("fields.fixVersions.0.name", "BS 2026.12.01"),
        ("fields.fixVersions.1.id", "10201"),
        ("fields.fixVersions.2.name", None),  # past the end
        ("fields.fixVersions.-1.name", None),  # no negative indexes
        ("fields.fixVersions.name", None),  # a name on a list
        ("fields.assignee.displayName", None),  # through null
        ("fields.summary.length", None),  # into a string
        ("fields.nope", None),
        ("key", "OPS-12"),
    ],
)
def test_read_path(path, expected):
    assert read_path(ISSUE, path) == expected


def test_read_path_digit_keys_in_objects_and_falsy_values():
    raw = {"a": {"0": "zero"}, "b": [0, False, ""], "c": [[1, 2], [3]]}
    assert read_path(raw, "a.0") == "zero"
    assert read_path(raw, "b.0") == 0
    assert read_path(raw, "b.1") is False
    assert read_path(raw, "c.1.0") == 3
    assert read_path(None, "a") is None
    assert read_path("text", "0") is None


# -- converters --------------------------------------------------------------------------------


def test_text():
    assert text("  Sales Ops \n") == "Sales Ops"
    assert text(12) == "12"
    assert text(None) is None
    with pytest.raises(ConversionError, match="a list of 2"):
        text(["a", "b"])


def test_lower():
    assert lower("In Progress") == "in progress"
    assert lower(None) is None
    with pytest.raises(ConversionError):
        lower({"name": "x"})


def test_first():
    assert first([{"name": "a"}, {"name": "b"}]) == {"name": "a"}
    assert first([]) is None
    assert first(None) is None
    with pytest.raises(ConversionError, match="expects a list"):
        first("a")


def test_names():
    assert names([{"name": "Billing"}, {"name": "CPQ", "id": "2"}]) == "Billing, CPQ"
    assert names([]) is None
    with pytest.raises(ConversionError, match="item 1"):
        names([{"name": "Billing"}, "CPQ"])


def test_join():
    assert join(["Sales", "Finance", 3]) == "Sales, Finance, 3"
    assert join([]) is None
    with pytest.raises(ConversionError):
        join("Sales")
    with pytest.raises(ConversionError):
        join([{"name": "x"}])


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("2026-11-20T10:15:30.123+0000", "2026-11-20T10:15:30.123Z"),  # Jira
        ("2026-11-20T10:15:30.000+0000", "2026-11-20T10:15:30.000Z"),  # Salesforce
        ("2026-11-20T10:15:30.000Z", "2026-11-20T10:15:30.000Z"),  # Airtable
        ("2026-11-20T10:15:30Z", "2026-11-20T10:15:30.000Z"),
        ("2026-11-20T10:15:30+00:00", "2026-11-20T10:15:30.000Z"),
        ("2026-11-20T10:15:30.5-0530", "2026-11-20T15:45:30.500Z"),
        ("2026-11-20T23:59:59.999999+01:00", "2026-11-20T22:59:59.999Z"),
        ("2026-01-01T00:30:00.000+0100", "2025-12-31T23:30:00.000Z"),
    ],
)
def test_datetime_formats(source, expected):
    assert datetime(source) == expected


@pytest.mark.parametrize("bad", ["2026-11-20", "2026-11-20T10:15:30", "20 Nov 2026", "2026-02-30T10:00:00Z", 1732877091000])
def test_datetime_refuses_what_it_cannot_place_in_time(bad):
    with pytest.raises(ConversionError):
        datetime(bad)


def test_adf_to_text_on_a_realistic_document():
    assert adf_to_text(DESCRIPTION_ADF) == DESCRIPTION_TEXT


def test_adf_to_text_edges():
    assert adf_to_text("  already plain  ") == "already plain"
    assert adf_to_text(None) is None
    assert adf_to_text({"type": "doc", "version": 1, "content": []}) is None
    table = {"type": "doc", "content": [{"type": "table", "content": [
        {"type": "tableRow", "content": [
            {"type": "tableHeader", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Field"}]}]},
            {"type": "tableHeader", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Object"}]}]},
        ]},
        {"type": "tableRow", "content": [
            {"type": "tableCell", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Renewal_Date__c"}]}]},
            {"type": "tableCell", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Opportunity"}]}]},
        ]},
    ]}, {"type": "blockquote", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "quoted"}]}]},
        {"type": "rule"}]}
    assert adf_to_text(table) == "Field | Object\nRenewal_Date__c | Opportunity\n\n> quoted\n\n---"
    with pytest.raises(ConversionError):
        adf_to_text(["not", "a", "document"])


# -- properties --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=20,
)
segments = st.one_of(st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=3),
                     st.integers(0, 4).map(str))


@given(json_values, st.lists(segments, min_size=1, max_size=5).map(".".join))
def test_read_path_never_raises(raw, path):
    read_path(raw, path)


@given(json_values)
def test_read_path_finds_every_leaf(raw):
    # Walk the value, and check that each reachable (key-safe) path reads back what is there.
    def walk(value, path):
        if path and value is not None:
            assert read_path(raw, ".".join(path)) == value
        children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
        for key, child in children:
            if isinstance(key, int) or (key and "." not in key and not key.isdecimal()):
                walk(child, [*path, str(key)])

    walk(raw, [])


offsets = st.integers(-14 * 60, 14 * 60).map(lambda minutes: dt.timezone(dt.timedelta(minutes=minutes)))
moments = st.datetimes(
    min_value=dt.datetime(1900, 1, 2), max_value=dt.datetime(2200, 1, 1), timezones=offsets
)


def jira_style(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}" + moment.strftime("%z")


@given(moments, st.sampled_from(["jira", "iso", "utc_z", "object"]))
def test_datetime_round_trips_to_the_same_instant(moment, style):
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)  # sources carry milliseconds
    source = {
        "jira": jira_style(moment),
        "iso": moment.isoformat(timespec="milliseconds"),
        "utc_z": moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "object": moment,
    }[style]
    converted = datetime(source)
    assert converted.endswith("Z") and len(converted) == len("2026-11-20T10:15:30.123Z")
    assert dt.datetime.fromisoformat(converted.replace("Z", "+00:00")) == moment
    assert datetime(converted) == converted  # already normalized values stay put


def test_change_request_json_round_trip_of_normalized_values(jira):
    # The store keeps raw as JSON; the normalized row must serialize as-is.
    row = jira.normalize(record()).as_row()
    assert json.loads(row["raw"])["key"] == "OPS-12"
    assert row["status"] == "in_progress"


def test_status_without_a_map_must_already_be_a_relsync_status():
    mapping = mapping_of({"title": "fields.summary", "status": "fields.state"})
    assert mapping.normalize(record(issue_with(state="approved"))).status == "approved"
    with pytest.raises(MappingError) as caught:
        mapping.normalize(record(issue_with(state="Approved")))
    assert caught.value.path == "sources.crm.fields.status.map"
    assert str(caught.value).startswith("crm:OPS-12 fields.state: source value 'Approved' is not a relsync status (new, ")


def test_status_written_back_reads_as_the_status_it_was_written_for(jira):
    for normalized in ("scheduled",):
        assert jira.status_from_source(jira.source_status_for(normalized)) == normalized
    assert jira.status_from_source("In Testing") == "testing"
    with pytest.raises(MappingError) as caught:
        jira.status_from_source("Parked")
    assert (caught.value.path, caught.value.value, caught.value.record) == ("sources.jira.fields.status.map", "Parked", None)
    assert str(caught.value).startswith("sources.jira.fields.status.map: source value 'Parked' is not mapped")
