"""Which mapped paths and converters can produce one value from a source field's type."""
from __future__ import annotations

import pytest

from config.fieldmap import FieldMapping
from mapping.shapes import jira_type, shape_problems

AIRTABLE = {"Title": "singleLineText", "Owner": "singleCollaborator", "Reviewers": "multipleCollaborators",
            "Tags": "multipleSelects", "Files": "multipleAttachments", "Status": "singleSelect"}
JIRA = {
    "summary": jira_type({"type": "string", "system": "summary"}),
    "description": jira_type({"type": "string", "system": "description"}),
    "fixVersions": jira_type({"type": "array", "items": "version", "system": "fixVersions"}),
    "labels": jira_type({"type": "array", "items": "string", "system": "labels"}),
    "customfield_10070": jira_type({"type": "option", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:select"}),
    "status": jira_type({"type": "status", "system": "status"}),
}


def problems(system: str, types: dict[str, str], **fields) -> list[str]:
    mapping = FieldMapping.model_validate({"title": "fields.Title", "status": "fields.Status", **fields})
    return [line.split(": ", 1)[1] for line in shape_problems(system, mapping, types) if not line.startswith("fields.status")]


@pytest.mark.parametrize("owner", [
    "fields.Owner.name", "fields.Owner.email", {"path": "fields.Owner", "convert": "person_name"},
    {"path": "fields.Reviewers", "convert": "person_email"}, {"path": "fields.Reviewers", "convert": "names"},
    "fields.Reviewers.0.name", {"path": "fields.Tags", "convert": "join"}, {"path": "fields.Tags", "convert": "first"},
    "fields.Not In The Schema",
])
def test_airtable_paths_that_give_one_value_pass(owner):
    assert problems("airtable", AIRTABLE, owner=owner) == []


@pytest.mark.parametrize(("owner", "problem"), [
    ("fields.Owner.nickname", "fields.Owner.nickname holds a person {email, id, name}, which has no .nickname"),
    ({"path": "fields.Files", "convert": "join"}, "fields.Files holds a list of objects {filename, id, size, type, url}, "
                                                  "which convert: join cannot read"),
    ("fields.Tags.name", "fields.Tags.name holds a list of values: pick one with a number (.0) before .name, or use a converter"),
    ({"path": "fields.Owner", "convert": "lower"}, "fields.Owner holds a person {email, id, name}, which convert: lower cannot read"),
])
def test_airtable_paths_that_cannot_are_named_with_the_shape_found(owner, problem):
    assert problems("airtable", AIRTABLE, owner=owner) == [problem]


def test_jira_metadata_shapes():
    types = {**JIRA, "Title": jira_type({"type": "string"}), "Status": jira_type({"type": "status"})}
    assert problems("jira", types, release="fields.fixVersions.0.name", department="fields.customfield_10070.value",
                    description={"path": "fields.description", "convert": "adf_to_text"},
                    type={"path": "fields.labels", "convert": "join"}) == []
    assert problems("jira", types, release="fields.fixVersions", department="fields.customfield_10070",
                    type="fields.summary.value") == [
        "fields.summary.value holds text, which has no .value",
        "fields.customfield_10070 holds an object {id, value}, not a single value; read one of its keys",
        "fields.fixVersions holds a list of objects {id, name, releaseDate, released}, not a single value; add convert: join "
        "(first, or names for objects), or pick one with .0",
    ]


def test_written_fields_must_be_of_a_type_that_takes_a_date_or_a_phase():
    from config.fieldmap import WriteTargets
    from mapping.shapes import write_problems

    custom = "com.atlassian.jira.plugin.system.customfieldtypes:"
    jira = JIRA | {"customfield_10080": jira_type({"type": "date", "custom": custom + "datepicker"}),
                   "customfield_10081": jira_type({"type": "string", "custom": custom + "textfield"})}
    right = WriteTargets.model_validate({"planned_date": {"field": "customfield_10080"}, "phase": {"field": "customfield_10081"}})
    swapped = WriteTargets.model_validate({"planned_date": {"field": "customfield_10081"}, "phase": {"field": "customfield_10070"}})
    assert write_problems("jira", right, jira) == []
    assert write_problems("jira", swapped, jira) == [
        "write.planned_date: customfield_10081 is of type string; relsync writes a date (YYYY-MM-DD) there: "
        "point it at a field of type date",
        "write.phase: customfield_10070 is of type option; relsync writes the phase's name as text there: "
        "point it at a field of type string",
    ]
    salesforce = WriteTargets.model_validate({"planned_date": {"field": "Target_Date__c"}, "phase": {"field": "Release_Phase__c"}})
    assert write_problems("salesforce", salesforce, {"Target_Date__c": "date", "Release_Phase__c": "picklist"}) == []
    assert write_problems("airtable", right, {}) == []  # fields the schema does not name: the missing-field check says so
