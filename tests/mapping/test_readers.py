"""The field readers a mapping builds once give what interpreting the mapping for each record gives.

Every example config's sources, on records whose mapped paths hold odd values (absent,
null, blank, numbers, booleans, objects, lists, documents, dates that are not), must
normalize to the same request or fail with the same error whether the readers or the
mapping's own reading (``SourceMapping._read``) answer. The content hash is checked
against the formula stored hashes were made with.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.loader import load_config
from mapping import ChangeRequest, MappingError, SourceMapping, read_path
from mapping.model import PRIORITIES, STATUSES, SourceRecord
from mapping.readers import path_reader
from tests.mapping.test_mapping import json_values, segments

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "config" / "examples").glob("*.yaml"))
MAPPINGS = {
    f"{path.stem}/{name}": SourceMapping.for_source(name, source)
    for path in EXAMPLES
    for name, source in load_config(path).sources.items()
}


def interpreted(mapping: SourceMapping) -> SourceMapping:
    """The same mapping with no readers: every field read by interpreting its config."""
    plain = copy.copy(mapping)
    plain._readers = [(name, spec, None) for name, spec, _ in mapping._readers]
    return plain


def outcome(mapping: SourceMapping, record: SourceRecord) -> Any:
    try:
        request = mapping.normalize(record)
    except MappingError as error:
        return ("refused", str(error), error.path, error.field, repr(error.value))
    return request.as_row()


def put(raw: dict[str, Any], path: str, value: Any) -> None:
    """Set ``value`` at dotted ``path``, making the objects and lists on the way."""
    parts = path.split(".")
    current: Any = raw
    for part, following in zip(parts, parts[1:], strict=False):
        empty: Any = [] if following.isdecimal() else {}
        if isinstance(current, list):
            index = int(part)
            while len(current) <= index:
                current.append(None)
            if not isinstance(current[index], (dict, list)):
                current[index] = empty
            current = current[index]
        else:
            if not isinstance(current.get(part), (dict, list)):
                current[part] = empty
            current = current[part]
    if isinstance(current, list):
        index = int(parts[-1])
        while len(current) <= index:
            current.append(None)
        current[index] = value
    else:
        current[parts[-1]] = value


ADF = {"type": "doc", "version": 1, "content": [
    {"type": "paragraph", "content": [{"type": "text", "text": "Add a field "},
                                      {"type": "text", "text": "here", "marks": [{"type": "link", "attrs": {"href": "https://x.example"}}]}]},
    {"type": "bulletList", "content": [{"type": "listItem", "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": "one"}]}]}]},
]}
words = st.sampled_from(["", "  ", "Open", "Approved", "In Progress", "High", "Highest", "Critical", "Medium", "Low",
                         "Triage", "New", "Closed", "Deployed", "Nonsense", "OPS-12, OPS-14", "a;b c", " padded ",
                         *STATUSES, *PRIORITIES])
moments = st.sampled_from(["2026-11-20T10:15:30.123+0000", "2026-11-20T10:15:30Z", "2026-02-30T10:00:00Z", "2026-11-20",
                           "later"])
people = st.fixed_dictionaries({}, optional={"name": words, "displayName": words, "Name": words, "email": words,
                                             "emailAddress": words, "value": words, "id": words, "key": words})
odd = st.one_of(
    st.none(), words, moments, st.integers(-3, 3), st.booleans(), st.floats(allow_nan=False, width=16),
    people, st.lists(st.one_of(words, people, st.none()), max_size=3), st.just(ADF), st.just({"type": "doc"}),
    st.just([{"type": {"inward": "is blocked by"}, "inwardIssue": {"key": "OPS-3"}}]),
)


def likely(mapping: SourceMapping, path: str) -> st.SearchStrategy[Any]:
    """Values the field at ``path`` reads well, half the time (so that whole records get through), else odd ones."""
    good: list[Any] = []
    for name, spec in mapping._specs:
        if spec.path == path:
            good += list(spec.map or {"status": STATUSES, "priority": PRIORITIES}.get(name, ["Some text", True, 7]))
            good += {"datetime": ["2026-11-20T10:15:30.123+0000"], "join": [["a", "b"]], "names": [[{"name": "A"}]],
                     "first": [["a"]], "adf_to_text": [ADF], "person_name": [{"displayName": "Dana"}],
                     "person_email": [{"email": "d@x.example"}]}.get(spec.convert or "", [])
    return st.one_of(st.sampled_from(good), odd) if good else odd


@pytest.mark.parametrize("name", sorted(MAPPINGS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_readers_normalize_as_the_interpreted_mapping_does(name, data):
    mapping = MAPPINGS[name]
    raw: dict[str, Any] = {"id": "rec1"}
    for path in mapping.source_paths():
        if data.draw(st.booleans(), label=f"set {path}"):
            put(raw, path, data.draw(likely(mapping, path), label=path))
    record = SourceRecord(native_id="rec1", native_key=data.draw(st.sampled_from([None, "OPS-1"])), url=None,
                          version=data.draw(st.sampled_from([None, "2026-11-20T10:15:30.000+0000", "garbage"])), raw=raw)
    assert outcome(mapping, record) == outcome(interpreted(mapping), record)


@pytest.mark.parametrize("name", sorted(MAPPINGS))
def test_readers_answer_for_a_plain_record_and_refuse_a_bad_one_as_the_mapping_does(name):
    # A record where every path holds a text the mapping knows reads the same both ways...
    mapping = MAPPINGS[name]
    raw: dict[str, Any] = {"id": "rec1"}
    for field_name, spec in mapping._specs:
        if field_name == "depends_on":
            continue  # read by the mapping itself, never by a reader
        value = next(iter(spec.map)) if spec.map else {"status": "new", "priority": "high"}.get(field_name, "x")
        if spec.convert == "datetime":
            value = "2026-11-20T10:15:30.123+0000"
        elif spec.convert in ("join", "names", "first"):
            value = [{"name": value}] if spec.convert == "names" else [value]
        put(raw, spec.path, value)
    record = SourceRecord("rec1", None, None, None, raw)
    assert outcome(mapping, record) == outcome(interpreted(mapping), record)
    assert isinstance(outcome(mapping, record), dict)
    # ...and an unmapped status is refused with the same words both ways.
    put(raw, mapping.fields.status.path, "No Such Status")
    if mapping.fields.status.default is None:
        assert outcome(mapping, record)[0] == "refused"
    else:
        assert outcome(mapping, record)["status"] == mapping.fields.status.default
    assert outcome(mapping, record) == outcome(interpreted(mapping), record)


@given(json_values, st.lists(segments, min_size=1, max_size=5).map(".".join))
def test_path_reader_reads_what_read_path_reads(raw, path):
    assert path_reader(path)(raw) == read_path(raw, path)


def test_path_reader_on_paths_of_keys_and_of_indexes():
    raw = {"fields": {"status": {"name": "Open"}, "fixVersions": [{"name": "R1"}], "n": None, "t": "text", "l": [1]}}
    assert path_reader("fields.status.name")(raw) == "Open"
    assert path_reader("fields.fixVersions.0.name")(raw) == "R1"
    assert path_reader("fields.n.x")(raw) is None
    assert path_reader("fields.t.x")(raw) is None
    assert path_reader("fields.l.x")(raw) is None
    assert path_reader("fields")(["a"]) is None
    assert path_reader("a.b")({"a": ["b"]}) is None


# -- the content hash -----------------------------------------------------------------------------

BASE = ChangeRequest(
    key="jira:OPS-1", source="jira", system="jira", native_id="10001", native_key="OPS-1", url=None,
    title="Add Renewal Date", description="Line one\nline \"two\" é ☃ \x01", type="Field change", department=None,
    requester="Dana", owner=None, priority="high", status="approved", source_status="Approved", release=None,
    created_at="2026-11-20T10:15:30.123Z", updated_at="2026-11-21T10:15:30.123Z", source_version="v1",
    raw={"b": 1, "a": ["é", None]},
)


def hash_as_stored(request: ChangeRequest) -> str:
    """The content hash as stored hashes were made: sorted, compact, ASCII JSON of the hashed fields."""
    content = {
        field.name: getattr(request, field.name)
        for field in dataclasses.fields(request)
        if field.name not in ("raw", "source_version", "updated_at")
        and not (field.name in ("depends_on", "source_planned_date", "source_phase") and getattr(request, field.name) is None)
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def test_content_hash_of_a_known_request_is_unchanged():
    # Worked out before the hash was written key by key: stores hold hashes made this way.
    assert BASE.content_hash() == "0ffabef93ba43efffc6d76d7ba58c46833318db99c1723229097f11ddedc2081"


value_of_any_type = st.one_of(st.none(), st.text(), st.integers(), st.booleans(), st.floats(allow_nan=False))


@given(st.dictionaries(st.sampled_from([f.name for f in dataclasses.fields(ChangeRequest) if f.name not in ("raw", "source_version")]),
                       value_of_any_type))
def test_content_hash_and_row_are_those_of_the_stored_formula(changes):
    request = dataclasses.replace(BASE, **changes)
    row = request.as_row()
    assert request.content_hash() == row["content_hash"] == hash_as_stored(request)
    assert row["raw"] == json.dumps(BASE.raw, sort_keys=True)
