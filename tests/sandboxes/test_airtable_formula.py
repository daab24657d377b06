"""The Airtable sandbox's formula subset: parsing, checks and evaluation, without HTTP.

What the rules are modelled on (looked up, not guessed):
- pyairtable 3.5 ``formulas``: ``quoted()`` escapes backslashes and single quotes with a
  backslash; ``field_name()`` writes ``{Name}`` and escapes ``}`` as ``\\}``;
  ``to_formula()`` writes datetimes as ``DATETIME_PARSE('2026-05-01T10:00:00.000Z')`` and
  booleans as ``TRUE()``/``FALSE()``; ``match()`` joins comparisons with ``AND()``.
- Airtable's filterByFormula rule, quoted in Make's Airtable module docs: a record is kept
  "if the result is not 0, false, "", NaN, [], or #Error!", and ``NOT({Name} = '')`` is
  the way to ask for non-empty.
- Error texts seen in real 422 bodies (Airtable community threads, and client code that
  matches on them): "The formula for filtering records is invalid: Invalid formula.
  Please check your formula text." and "... Unknown field names: date added"
  (lower-cased names, comma-separated).
"""
from __future__ import annotations

import datetime as dt

import pytest
from pyairtable.formulas import (
    AND,
    EQ,
    GTE,
    IS_AFTER,
    LAST_MODIFIED_TIME,
    NE,
    Field,
    match,
    quoted,
    to_formula_str,
)

from sandboxes.airtable.formula import (
    GENERIC_MESSAGE,
    FieldRef,
    FormulaError,
    compile_formula,
    parse,
)
from sandboxes.airtable.formula_eval import (
    RecordContext,
    evaluate,
    matches,
    parse_with_format,
)

UTC = dt.UTC
CREATED = dt.datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
EDITED = dt.datetime(2026, 6, 15, 12, 30, 45, tzinfo=UTC)
FIELDS: dict[str, object] = {
    "Title": "Add 'Renewal Risk' to Opportunity",
    "Owner": None,
    "Status": "In Progress",
    "Priority": "High",
    "Weird } Name": "braced",
    "Path": "C:\\ops\\runbook",
    "Target Date": dt.datetime(2026, 7, 1, tzinfo=UTC),
    "Created": CREATED,
    "Last Modified": EDITED,
}
MODIFIED = {"Title": CREATED, "Status": EDITED}


def record(**overrides: object) -> RecordContext:
    values = {**FIELDS, **overrides}
    return RecordContext("rec0000000000000A", CREATED, EDITED, values.get, MODIFIED.get, dt.datetime(2026, 11, 26, tzinfo=UTC))


def keeps(formula: str, **overrides: object) -> bool:
    return matches(compile_formula(formula, lambda name: name in FIELDS), record(**overrides))


def value(formula: str) -> object:
    return evaluate(compile_formula(formula, lambda name: name in FIELDS).tree, record())


def refused(formula: str) -> str:
    with pytest.raises(FormulaError) as caught:
        compile_formula(formula, lambda name: name in FIELDS)
    return caught.value.detail


def test_pyairtable_match_and_quoting_round_trip() -> None:
    formula = to_formula_str(match({"Title": "Add 'Renewal Risk' to Opportunity", "Priority": ("!=", "Low")}))
    assert formula == "AND({Title}='Add \\'Renewal Risk\\' to Opportunity', {Priority}!='Low')"
    assert keeps(formula)
    assert not keeps(to_formula_str(match({"Title": "Add 'Renewal Risk' to Opportunity", "Priority": "Low"})))
    assert keeps(f"{{Path}} = {quoted(FIELDS['Path'])}")  # backslashes survive quoting
    assert value("'tab\\there ' & \"double \\\" quote\"") == 'tab\there double " quote'


def test_escaped_brace_in_field_names_and_bare_names() -> None:
    assert parse("{Weird \\} Name}") == FieldRef("Weird } Name")
    assert keeps(to_formula_str(EQ(Field("Weird } Name"), "braced")))
    assert keeps("Status = 'In Progress'")  # a one-word field may go unbraced
    assert refused("Stat = 'x'") == "Unknown field names: stat"


def test_precedence_and_arithmetic() -> None:
    assert value("1 + 2 * 3") == 7
    assert value("(1 + 2) * 3") == 9
    assert value("1 + 1 = 2") is True
    assert value("'a' & 1 + 1") == "a2"
    assert value("-2 * 3 + 10 / 4") == -3.5
    assert not keeps("1 / 0")  # #ERROR! leaves the record out


def test_blank_and_emptiness() -> None:
    assert keeps("{Owner} = ''")
    assert keeps("{Owner} = BLANK()")
    assert not keeps("NOT({Owner} = '')")
    assert keeps("NOT({Owner} = '')", Owner="Noah García")
    assert not keeps("{Owner}")
    assert not keeps("0") and keeps("'x'") and not keeps("''")


def test_logic_is_lazy_where_airtable_is_and_names_are_case_insensitive() -> None:
    assert keeps("IF({Status} = 'In Progress', 1, 1/0)")
    assert not keeps("IF({Status} = 'Done', 1)")
    assert keeps("and(TRUE(), or(FALSE(), true))")
    assert keeps("XOR(TRUE(), FALSE())") and not keeps("XOR(TRUE(), TRUE())")
    assert keeps(to_formula_str(AND(NE(Field("Status"), "Closed"), EQ(Field("Priority"), "High"))))


def test_dates_compare_with_strings_and_pyairtable_datetimes() -> None:
    assert keeps("{Created} >= '2026-05-01'")
    assert not keeps("{Created} > '2026-05-01T10:00:00.000Z'")
    assert keeps(to_formula_str(GTE(Field("Last Modified"), dt.datetime(2026, 6, 15, 12, 30, 45, tzinfo=UTC))))
    assert keeps("IS_AFTER(LAST_MODIFIED_TIME(), '2026-06-15T12:30:44.999Z')")
    assert not keeps("IS_AFTER(LAST_MODIFIED_TIME(), '2026-06-15T12:30:45.000Z')")
    assert keeps(to_formula_str(IS_AFTER(LAST_MODIFIED_TIME(), dt.datetime(2026, 6, 1, tzinfo=UTC))))
    assert keeps("IS_BEFORE({Target Date}, DATETIME_PARSE('02/07/2026', 'DD/MM/YYYY'))")
    assert keeps("IS_SAME({Last Modified}, '2026-06-15T23:59:00Z', 'day')")
    assert not keeps("IS_SAME({Last Modified}, '2026-06-15T23:59:00Z')")
    assert keeps("IS_SAME({Created}, DATETIME_PARSE('2026-05-01 12:00+02:00'), 'hours')")
    assert not keeps("IS_AFTER({Created}, DATETIME_PARSE('not a date'))")
    assert not keeps("NOT(IS_AFTER({Created}, DATETIME_PARSE('not a date')))")  # the error, not false


def test_datetime_parse_formats() -> None:
    assert parse_with_format("07/01/2026 3:04 pm", "MM/DD/YYYY h:mm a") == dt.datetime(2026, 7, 1, 15, 4, tzinfo=UTC)
    assert parse_with_format("1782900000", "X") == dt.datetime.fromtimestamp(1782900000, UTC)
    assert parse_with_format("2026-07-01T10:00:00+0200", "YYYY-MM-DD[T]HH:mm:ssZ") == dt.datetime(2026, 7, 1, 8, tzinfo=UTC)
    in_2031 = dt.datetime(2031, 5, 5, tzinfo=UTC)
    assert parse_with_format("07/01", "MM/DD", in_2031) == dt.datetime(2031, 7, 1, tzinfo=UTC)  # no year: the sandbox's "now"


def test_record_functions_and_field_change_times() -> None:
    assert value("RECORD_ID()") == "rec0000000000000A"
    assert value("CREATED_TIME()") == CREATED
    assert value("LAST_MODIFIED_TIME({Title})") == CREATED
    assert value("LAST_MODIFIED_TIME({Title}, {Status})") == EDITED
    assert value("LAST_MODIFIED_TIME({Owner})") is None  # never set
    assert value("DATEADD({Created}, 1, 'months')") == dt.datetime(2026, 6, 1, 10, tzinfo=UTC)


def test_text_functions() -> None:
    assert value("FIND('Risk', {Title})") == 14
    assert value("FIND('risk', {Title})") == 0
    assert value("SEARCH('risk', {Title})") == 14
    assert value("SEARCH('nope', {Title})") is None
    assert value("LOWER({Status}) & UPPER('x') & LEN({Priority})") == "in progressX4"
    assert keeps("FIND('Opportunity', {Title})")


@pytest.mark.parametrize("formula", [
    "{Status} = ", "AND({Status} = 'x'", "{Status} = 'unterminated", "{Unterminated = 'x'", "AND(,)",
    "{Status} == 'x'", "1 2", "#", "NOPE()", "NOT()", "IF(1)", "LAST_MODIFIED_TIME('Title')", "TRUE(1)",
])
def test_syntax_errors_unknown_functions_and_arity_get_the_generic_message(formula: str) -> None:
    assert refused(formula) == GENERIC_MESSAGE


def test_unknown_fields_are_reported_together_lower_cased() -> None:
    assert refused("AND({Date Added} > 1, {firstname} = 'x', {Status} = 'New')") == "Unknown field names: date added, firstname"
