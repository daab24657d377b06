"""The SOQL subset: tokens, escapes, Salesforce's error codes and sentences, matching and ordering.

Sources for the rules checked here:
- Escapes: SOQL and SOSL Reference, "Quoted String Escape Sequences" (\\n \\N \\r \\t \\b \\f \\" \\' \\\\,
  \\uXXXX, and \\_ \\% in LIKE only; "If you use a backslash character in any other context, an
  error occurs"); simple_salesforce.format.quote_soql_value escapes the same set.
- dateTime literals: "Date Formats and Date Literals" (YYYY-MM-DDThh:mm:ss+hh:mm / -hh:mm / Z),
  unquoted; a quoted one is refused with "value of filter criterion for field 'X' must be of
  type dateTime and should not be enclosed in quotes" (INVALID_FIELD, quoted in public code).
- ORDER BY: "Sorting is case insensitive"; "By default, null values are sorted first" (ORDER BY
  page of the SOQL reference).
- AND and OR cannot be mixed without parentheses: "MALFORMED_QUERY ... ERROR at Row:3:Column:61
  unexpected token: OR" (salesforce.stackexchange answer quoting the reference); ``AND NOT (...)``
  is refused with unexpected token 'NOT' (jetstreamapp/soql-parser-js issue 201).
- INVALID_FIELD text: "No such column 'Foo' on entity 'Case'. If you are attempting to use a
  custom field, be sure to append the '__c' ..." with "\\n<line>\\n<caret>\\nERROR at
  Row:1:Column:8" before it (messages quoted in many public integrations).
- Salesforce ignores milliseconds when comparing dateTimes (salesforce.stackexchange question
  234824, "Using SystemModstamp and a timestamp to implement incremental data fetch").
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from simple_salesforce import format_soql

from sandboxes.salesforce.schema import build_catalog
from sandboxes.salesforce.soql import SoqlError, decode_string, parse, tokenize
from sandboxes.salesforce.soql_eval import bind
from sandboxes.salesforce.values import (
    canonical_id,
    id_suffix,
    make_id,
    parse_datetime,
)

UTC = dt.UTC
CATALOG = build_catalog()
USER = {"Id": make_id("005", 1), "Name": "Zoë Novak", "Alias": "znovak", "Email": "zoe@example.com",
        "Username": "zoe@x", "IsActive": True, "Type": "User"}
QUEUE = {"Id": make_id("00G", 1), "Name": "Ops Intake", "Alias": None, "Email": None, "Username": None,
         "IsActive": True, "Type": "Queue"}
CHANGE = {"Id": make_id("012", 1), "Name": "Change Request", "DeveloperName": "Change_Request"}


def case(n: int, **values: Any) -> dict[str, Any]:
    row = {"Id": make_id("500", n), "IsDeleted": False, "CaseNumber": f"{1000 + n:08d}", "Subject": None,
           "Status": "New", "Priority": "Medium", "OwnerId": USER["Id"], "RecordTypeId": CHANGE["Id"],
           "Department__c": None, "Release__c": None, "Target_Date__c": None, "Description": "x",
           "SystemModstamp": dt.datetime(2026, 11, 20, 10, 0, n, tzinfo=UTC)}
    row.update(values)
    return row


ROWS = [
    case(1, Subject="Change lead routing", Status="Approved", Department__c="Sales Ops"),
    case(2, Subject="O'Brien's \"quoted\" request", Status="new", OwnerId=QUEUE["Id"]),
    case(3, Subject="100% done_ish", Priority="High", Release__c="2026.11", Target_Date__c=dt.date(2026, 12, 1)),
    case(4, Subject=None, Status="Rejected", RecordTypeId=None),
    case(5, Subject="apple", SystemModstamp=dt.datetime(2026, 11, 20, 10, 0, 3, tzinfo=UTC)),
]


def lookup(entity: str, ident: str) -> dict[str, Any] | None:
    return {USER["Id"]: USER, QUEUE["Id"]: QUEUE, CHANGE["Id"]: CHANGE}.get(ident)


def run(soql: str) -> list[int]:
    bound = bind(parse(soql), CATALOG, lookup)
    return [int(row["CaseNumber"]) - 1000 for row in bound.run(ROWS)]


def refused(soql: str) -> SoqlError:
    with pytest.raises(SoqlError) as caught:
        bind(parse(soql), CATALOG, lookup)
    return caught.value


def test_ids_get_the_documented_case_safe_suffix() -> None:
    # Worked examples from the published 15-to-18 conversion (codegolf 69127 test cases).
    assert id_suffix("a01M00000062mPg") == "IAI" and id_suffix("001M000000qfPyS") == "IAU"
    assert id_suffix("AbCdEfGhIjKlMnO") == "VKV" and id_suffix("aBcDEfgHIJKLMNO") == "025"
    ident = make_id("500", 123_456)
    assert len(ident) == 18 and ident.startswith("5008d0") and ident[15:] == id_suffix(ident[:15])
    assert canonical_id(ident[:15]) == ident and canonical_id(ident.lower()) == ident
    assert canonical_id("500xyz") is None and canonical_id(ident[:15] + "!!!") is None
    assert make_id("500", 2) > make_id("500", 1) and make_id("500", 62) > make_id("500", 61)  # ASCII order = creation order


def test_datetime_literals_in_every_documented_form() -> None:
    expected = dt.datetime(2026, 11, 20, 10, 15, 30, tzinfo=UTC)
    for text in ("2026-11-20T10:15:30Z", "2026-11-20T11:15:30+01:00", "2026-11-20T02:15:30-08:00",
                 "2026-11-20T10:15:30.000+0000", "2026-11-20T10:15:30.000Z"):
        assert parse_datetime(text) == expected, text
    kinds = [t.kind for t in tokenize("WHERE SystemModstamp > 2026-11-20T10:15:30Z AND Target_Date__c = 2026-12-01")]
    assert kinds == ["ident", "ident", "op", "datetime", "ident", "ident", "op", "date", "eof"]


@pytest.mark.parametrize("value", ["O'Brien", 'say "hi"', "back\\slash", "two\nlines\ttab\r", "naïve 東京 ✅", "\b\f"])
def test_format_soql_escapes_round_trip(value: str) -> None:
    soql = format_soql("SELECT Id FROM Case WHERE Subject = {}", value)
    literal = next(t for t in tokenize(soql) if t.kind == "string")
    assert decode_string(soql, literal) == value


def test_unicode_escape_and_illegal_escape() -> None:
    soql = "SELECT Id FROM Case WHERE Subject = 'caf\\u00e9'"
    assert decode_string(soql, next(t for t in tokenize(soql) if t.kind == "string")) == "café"
    error = refused("SELECT Id FROM Case WHERE Subject = 'a\\qb'")
    assert error.code == "MALFORMED_QUERY" and "Illegal character sequence '\\q'" in error.message
    assert refused("SELECT Id FROM Case WHERE Subject = '100\\%'").code == "MALFORMED_QUERY"  # \\% only in LIKE


def test_unknown_field_error_has_salesforce_position_and_text() -> None:
    error = refused("SELECT Id, Foo FROM Case")
    assert error.code == "INVALID_FIELD"
    assert error.message == (
        "\nSELECT Id, Foo FROM Case\n           ^\nERROR at Row:1:Column:12\n"
        "No such column 'Foo' on entity 'Case'. If you are attempting to use a custom field, be sure to append the "
        "'__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
    )
    nested = refused("SELECT Owner.Bogus FROM Case")
    assert nested.code == "INVALID_FIELD" and "No such column 'Bogus' on entity 'Name'" in nested.message
    relationship = refused("SELECT Manager.Name FROM Case")
    assert "Didn't understand relationship 'Manager' in field path" in relationship.message


def test_mixing_and_or_without_parentheses_is_refused_on_the_right_token() -> None:
    error = refused("SELECT Id FROM Case\nWHERE Status = 'New' AND Priority = 'High' OR Subject = 'x'")
    assert error.code == "MALFORMED_QUERY"
    assert error.message.endswith("ERROR at Row:2:Column:44\nunexpected token: 'OR'")
    assert refused("SELECT Id FROM Case WHERE Status = 'New' AND NOT (Priority = 'High')").message.endswith(
        "unexpected token: 'NOT'")
    assert run("SELECT Id FROM Case WHERE Status = 'New' AND (NOT Priority = 'High')") == [2, 5]


@pytest.mark.parametrize(
    ("soql", "code", "text"),
    [
        ("SELECT Id FROM Cases", "INVALID_TYPE", "sObject type 'Cases' is not supported."),
        ("SELECT Id FROM Case WHERE SystemModstamp > '2026-11-20T10:00:00Z'", "INVALID_FIELD",
         "value of filter criterion for field 'SystemModstamp' must be of type dateTime and should not be enclosed in quotes"),
        ("SELECT Id FROM Case WHERE Target_Date__c = 2026-12-01T00:00:00Z", "INVALID_FIELD", "must be of type date"),
        ("SELECT Id FROM Case WHERE Status = 5", "INVALID_FIELD", "must be of type string and should be enclosed in quotes"),
        ("SELECT Id FROM Case WHERE Id = 'abc'", "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: abc"),
        ("SELECT Id FROM Case WHERE Description = 'x'", "INVALID_FIELD", "field 'Description' can not be filtered"),
        ("SELECT Id FROM Case ORDER BY Description", "INVALID_FIELD", "field 'Description' can not be sorted"),
        ("SELECT Id FROM Case OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000"),
        ("SELECT Id, id FROM Case", "MALFORMED_QUERY", "duplicate field selected: id"),
        ("SELECT Status FROM Case GROUP BY Status", "MALFORMED_QUERY", "does not support GROUP BY"),
        ("SELECT Id, (SELECT Id FROM Tasks) FROM Case", "MALFORMED_QUERY", "unexpected token: '('"),
        ("SELECT Id FROM Case WHERE CreatedDate = TODAY", "MALFORMED_QUERY", "does not support the date literal"),
        ("SELECT Id FROM Case WHERE Id = :ident", "MALFORMED_QUERY", "unexpected token: ':'"),
        ("SELECT Id FROM Case LIMIT", "MALFORMED_QUERY", "unexpected token: <EOF>"),
        ("SELECT Id FROM Case WHERE Subject = 'open", "MALFORMED_QUERY", "unexpected token: <EOF>"),
        ("SELECT COUNT() FROM Case ORDER BY Id", "MALFORMED_QUERY", "ORDER BY with COUNT()"),
    ],
)
def test_refusals_carry_salesforce_codes(soql: str, code: str, text: str) -> None:
    error = refused(soql)
    assert error.code == code and text in error.message


@pytest.mark.parametrize(
    ("soql", "expected"),
    [
        ("SELECT Id FROM Case WHERE Status = 'NEW'", [2, 3, 5]),  # text compares case-insensitively
        ("SELECT Id FROM Case WHERE Status != 'New'", [1, 4]),
        ("SELECT Id FROM Case WHERE Subject != 'apple'", [1, 2, 3, 4]),  # != keeps nulls
        ("SELECT Id FROM Case WHERE Subject = null", [4]),
        ("SELECT Id FROM Case WHERE Subject != null AND Priority = 'High'", [3]),
        ("SELECT Id FROM Case WHERE Status IN ('approved', 'rejected')", [1, 4]),
        ("SELECT Id FROM Case WHERE Status NOT IN ('New')", [1, 4]),
        ("SELECT Id FROM Case WHERE Subject LIKE 'change%'", [1]),
        ("SELECT Id FROM Case WHERE Subject LIKE '%\\%%'", [3]),
        ("SELECT Id FROM Case WHERE Subject LIKE '%e\\_i%'", [3]),
        ("SELECT Id FROM Case WHERE Subject LIKE 'O\\'Brien%'", [2]),
        ("SELECT Id FROM Case WHERE Subject = 'O\\'Brien\\'s \\\"quoted\\\" request'", [2]),
        ("SELECT Id FROM Case WHERE NOT Subject LIKE '%a%'", [2, 3, 4]),
        ("SELECT Id FROM Case WHERE (Status = 'New' OR Status = 'Rejected') AND Subject != null", [2, 3, 5]),
        ("SELECT Id FROM Case WHERE Target_Date__c > 2026-11-30", [3]),
        ("SELECT Id FROM Case WHERE Owner.Name = 'Ops Intake'", [2]),
        ("SELECT Id FROM Case WHERE Owner.Type = 'User' AND RecordType.Name = 'Change Request'", [1, 3, 5]),
        ("SELECT Id FROM Case WHERE RecordTypeId = null", [4]),
        (f"SELECT Id FROM Case WHERE Id = '{make_id('500', 3)[:15]}'", [3]),  # 15-character ids work
        (f"SELECT Id FROM Case WHERE Id = '{make_id('500', 3).lower()}'", [3]),  # 18 are case-insensitive
        ("SELECT Id FROM Case WHERE SystemModstamp = 2026-11-20T10:00:03.999Z", [3, 5]),  # milliseconds ignored
        ("SELECT Id FROM Case WHERE SystemModstamp >= 2026-11-20T11:00:04+01:00", [4]),
        ("SELECT Id FROM Case WHERE IsDeleted = false AND Release__c = '2026.11'", [3]),
        ("SELECT Id FROM Case ORDER BY Subject", [4, 3, 5, 1, 2]),  # nulls first, case-insensitive
        ("SELECT Id FROM Case ORDER BY Subject DESC NULLS LAST", [2, 1, 5, 3, 4]),
        ("SELECT Id FROM Case ORDER BY Subject DESC", [4, 2, 1, 5, 3]),
        ("SELECT Id FROM Case ORDER BY Status, Id DESC", [1, 5, 3, 2, 4]),
        ("SELECT Id FROM Case ORDER BY Owner.Name NULLS LAST, Id LIMIT 2 OFFSET 1", [1, 3]),
        ("SELECT Id FROM Case ORDER BY SystemModstamp, Id", [1, 2, 3, 5, 4]),
    ],
)
def test_matching_and_ordering(soql: str, expected: list[int]) -> None:
    assert run(soql) == expected


def test_modstamp_tie_break_filter_resumes_after_the_last_seen_record() -> None:
    tie = "2026-11-20T10:00:03Z"
    after = make_id("500", 3)
    soql = (f"SELECT Id FROM Case WHERE SystemModstamp > {tie} OR (SystemModstamp = {tie} AND Id > '{after}') "
            "ORDER BY SystemModstamp, Id")
    assert run(soql) == [5, 4]


def test_count_and_projection_of_relationships() -> None:
    bound = bind(parse("SELECT COUNT() FROM Case WHERE Status = 'new'"), CATALOG, lookup)
    assert bound.query.count and len(bound.run(ROWS)) == 3
    bound = bind(parse("select id, owner.name, OWNER.type, RecordType.Name, SystemModstamp from case where Id = "
                       f"'{make_id('500', 2)}'"), CATALOG, lookup)
    rendered = bound.render(bound.run(ROWS)[0], "59.0")
    assert list(rendered) == ["attributes", "Id", "Owner", "RecordType", "SystemModstamp"]  # canonical names
    assert rendered["Owner"] == {"attributes": {"type": "Name", "url": f"/services/data/v59.0/sobjects/Group/{QUEUE['Id']}"},
                                 "Name": "Ops Intake", "Type": "Queue"}
    assert rendered["SystemModstamp"] == "2026-11-20T10:00:02.000+0000"
    empty = bind(parse("SELECT RecordType.Name FROM Case"), CATALOG, lookup)
    assert empty.render(ROWS[3], "59.0")["RecordType"] is None  # an empty relationship is null
