"""People as each vendor shapes them, read by name or email, and a value for an empty field."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from config.fieldmap import FieldMapping
from mapping.converters import ConversionError, person_email, person_name

COLLABORATOR = {"id": "usrKrFmqYlXJbVxAd", "email": "zoe.larsen@example.com", "name": "Zoë Larsen"}  # Airtable
JIRA_USER = {"accountId": "5b10a2844c20165700ede21g", "displayName": "Priya Patel", "active": True}  # email hidden
QUEUE = {"attributes": {"type": "Name"}, "Name": "Ops Intake", "Email": "ops-intake@example.com"}  # Salesforce Owner


@pytest.mark.parametrize(("value", "name", "email"), [
    (COLLABORATOR, "Zoë Larsen", "zoe.larsen@example.com"),
    (JIRA_USER, "Priya Patel", None),
    (QUEUE, "Ops Intake", "ops-intake@example.com"),
    ([COLLABORATOR, QUEUE], "Zoë Larsen, Ops Intake", "zoe.larsen@example.com, ops-intake@example.com"),
    ([], None, None),
    (None, None, None),
])
def test_a_person_reads_by_name_and_email_in_every_vendor_shape(value, name, email):
    assert (person_name(value), person_email(value)) == (name, email)


@pytest.mark.parametrize(("value", "message"), [
    ("Zoë Larsen", "person_name expects a person (an object with a name), got 'Zoë Larsen'"),
    ({"id": "usrX"}, "person_name expects a person with a name or displayName or Name, got an object with keys id"),
    ([COLLABORATOR, 7], "person_name expects a person (an object with a name), item 1 is 7"),
])
def test_a_shape_that_is_no_person_is_named(value, message):
    with pytest.raises(ConversionError) as raised:
        person_name(value)
    assert str(raised.value) == message


def test_when_empty_must_be_a_relsync_status_and_leaves_unmapped_values_unmapped():
    fields = FieldMapping.model_validate({"title": "fields.Title", "status": {
        "path": "fields.Status", "map": {"New": "new"}, "when_empty": "new"}})
    assert fields.status.when_empty == "new" and fields.status.default is None
    with pytest.raises(ValidationError, match="'fresh' is not a relsync status"):
        FieldMapping.model_validate({"title": "fields.Title", "status": {"path": "fields.Status", "when_empty": "fresh"}})
