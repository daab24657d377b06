"""The JQL subset: parsing, Jira's error sentences, three-valued matching, dates, text, ordering.

Error sentences come from Jira's own messages as quoted in public reports and in
Atlassian's functional tests, e.g. "Error in the JQL Query: Expecting operator but got
'X'. The valid operators are ... (line 1, character N)", "Field 'x' does not exist or
you do not have permission to view it.", "Unable to find JQL function 'x()'." and the
date sentence "Date value 'x' for field 'y' is invalid. Valid formats include: ...".
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from sandboxes.jira.jql import BoolOp, Clause, JqlError, Value, parse, tokenize
from sandboxes.jira.jql_eval import FieldBinding, JqlContext, compile_query

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


@dataclass
class Row:
    id: int
    status: str | None
    rank: int | None
    tags: frozenset[str]
    title: str | None
    when: int


ROWS = [
    Row(1, "open", 3, frozenset({"a"}), "Change lead routing for EMEA", 1_000),
    Row(2, "done", None, frozenset(), "New dashboard: pipeline by region", 2_000),
    Row(3, None, 1, frozenset({"a", "b"}), None, 2_000),
    Row(4, "open", 2, frozenset({"b"}), 'Rename "Legacy Tier" field', 3_000),
]


def _status(text: str) -> str:
    if text.lower() not in ("open", "done"):
        raise JqlError(f"The value '{text}' does not exist for the field 'status'.")
    return text.lower()


FIELDS = {
    "status": FieldBinding("status", "value", lambda r: r.status, _status, sort=lambda r: r.status),
    "rank": FieldBinding("rank", "value", lambda r: r.rank, int, ordered=True, sort=lambda r: r.rank),
    "tags": FieldBinding("tags", "value", lambda r: r.tags, lambda t: t, multi=True),
    "title": FieldBinding("title", "text", lambda r: r.title, sort=lambda r: r.title),
    "when": FieldBinding("when", "date", lambda r: r.when, sort=lambda r: r.when),
    "owner": FieldBinding("owner", "value", lambda r: "me" if r.id == 1 else None, functions={"currentuser": lambda: "me"}),
}


def run(query: str, tz: str = "UTC") -> list[int]:
    compiled = compile_query(query, lambda n: FIELDS.get(n.lower()), JqlContext(tz, lambda: NOW), record_id=lambda r: r.id)
    return [r.id for r in compiled.order([r for r in ROWS if compiled.matches(r)])]


def error_of(query: str) -> list[str]:
    with pytest.raises(JqlError) as caught:
        run(query)
    return caught.value.messages


def test_and_binds_tighter_than_or_and_parentheses_override() -> None:
    tree = parse("a = 1 OR b = 2 AND c = 3")
    assert isinstance(tree.where, BoolOp) and tree.where.op == "or"
    assert run("status = done OR status = open AND rank = 2") == [2, 4]
    assert run("(status = done OR status = open) AND rank = 2") == [4]


def test_string_escapes_and_single_quotes() -> None:
    query = 'title ~ "say \\"hi\\" \\\\ \\u0041" AND x = \'it\\\'s\''
    assert query == r"""title ~ "say \"hi\" \\ \u0041" AND x = 'it\'s'"""
    tokens = tokenize(query)
    assert [t.text for t in tokens if t.kind == "string"] == ['say "hi" \\ A', "it's"]
    assert run(r'title ~ "\"Legacy Tier\""') == [4]  # escaped quotes make a phrase
    assert run("status = 'done'") == [2]


def test_not_equal_not_in_and_not_never_match_empty_values() -> None:
    assert run("status != open") == [2]
    assert run("status not in (open)") == [2]
    assert run("NOT status = open") == [2]
    assert run("status != open OR status is EMPTY") == [2, 3]
    assert run("status in (open, EMPTY)") == [1, 3, 4]
    assert run("status = EMPTY") == [3] and run("status is not empty") == [1, 2, 4]


def test_multi_valued_fields() -> None:
    assert run("tags = a") == [1, 3]
    assert run("tags != a") == [4]  # no tags at all is EMPTY, not "not a"
    assert run("tags in (b) AND tags not in (a)") == [4]


def test_ordered_comparisons_and_functions() -> None:
    assert run("rank >= 2") == [1, 4] and run("rank < 2") == [3]
    assert run("owner = currentUser()") == [1]


def test_dates_epoch_ms_formats_time_zone_and_periods() -> None:
    assert run("when >= 2000") == [2, 3, 4]
    day = int(dt.datetime(2026, 11, 3, tzinfo=dt.UTC).timestamp() * 1000)
    rows_then = [Row(10, "open", 1, frozenset(), "x", day - 1), Row(11, "open", 1, frozenset(), "x", day)]
    context = JqlContext("UTC", lambda: NOW)
    for query, expected in (('when >= "2026-11-03"', [11]), ('when >= "2026/11/03 00:00"', [11]), ("when >= 2026-11-03", [11])):
        compiled = compile_query(query, FIELDS.get, context, record_id=lambda r: r.id)
        assert [r.id for r in rows_then if compiled.matches(r)] == expected
    zurich = compile_query('when >= "2026-11-03"', FIELDS.get, JqlContext("Europe/Zurich", lambda: NOW), record_id=lambda r: r.id)
    assert [r.id for r in rows_then if zurich.matches(r)] == [10, 11]  # midnight in Zürich is 23:00 UTC the day before
    recent = [Row(12, "open", 1, frozenset(), "x", int(NOW.timestamp() * 1000) - 3 * 86_400_000)]
    assert [r.id for r in recent if compile_query("when >= -5d", FIELDS.get, context, record_id=lambda r: r.id).matches(r)] == [12]
    assert [r.id for r in recent if compile_query("when >= -2d", FIELDS.get, context, record_id=lambda r: r.id).matches(r)] == []


def test_text_search_words_phrases_wildcards_and_plurals() -> None:
    assert run('title ~ "routing emea"') == [1]  # words are AND-ed, in any order
    assert run('title ~ "\\"emea routing\\""') == []  # a phrase keeps word order
    assert run('title ~ "dash*"') == [2]
    assert run('title ~ "dashboards"') == [2]
    assert run('title !~ "dashboard"') == [1, 4]  # empty title matches neither ~ nor !~


def test_order_by_several_keys_with_id_tie_break() -> None:
    assert run("rank is not EMPTY OR rank is EMPTY ORDER BY when DESC") == [4, 2, 3, 1]  # 2 and 3 tie: id breaks it
    assert run("status is EMPTY OR status is not EMPTY ORDER BY status ASC, when DESC") == [2, 4, 1, 3]  # EMPTY last
    assert run("status is EMPTY OR status is not EMPTY ORDER BY status DESC") == [3, 1, 4, 2]  # EMPTY first


def test_unbounded_queries_are_flagged() -> None:
    compiled = compile_query("ORDER BY rank", FIELDS.get, JqlContext(), record_id=lambda r: r.id)
    assert compiled.bounded is False
    assert parse("").where is None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status = ", "Error in the JQL Query: Expecting either a value, list or function before the end of the query."),
        ("status = open AND", "Error in the JQL Query: Expecting a field name at the end of the query."),
        ("status open", "Error in the JQL Query: Expecting operator but got 'open'. The valid operators are '=', '!=', "
                        "'<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'. (line 1, character 8)"),
        ("status = open)", "Error in the JQL Query: Expecting either 'OR' or 'AND' but got ')'. (line 1, character 14)"),
        ("(status = open", "Error in the JQL Query: Expecting ')' before the end of the query."),
        ('title ~ "abc', "Error in the JQL Query: The quoted string 'abc' has not been completed. (line 1, character 9)"),
        ("status = a@b", "Error in the JQL Query: The character '@' is a reserved JQL character. "
                         "You must enclose it in a string or use the escape '\\u0040' instead. (line 1, character 11)"),
        ("status = and", "Error in the JQL Query: Expecting either a value, list or function but got 'and'. "
                         "You must surround 'and' in quotation marks to use it as a value. (line 1, character 10)"),
    ],
)
def test_syntax_errors_use_jiras_sentences(query: str, message: str) -> None:
    assert error_of(query) == [message]


def test_validation_errors_are_all_reported_at_once() -> None:
    assert error_of("nosuch = 1 AND status = nope AND owner = mystery() ORDER BY tags") == [
        "Field 'nosuch' does not exist or you do not have permission to view it.",
        "The value 'nope' does not exist for the field 'status'.",
        "Unable to find JQL function 'mystery()'.",
        "Not able to sort using field 'tags'.",
    ]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status ~ open", "The operator '~' is not supported by the 'status' field."),
        ("title = x", "The operator '=' is not supported by the 'title' field."),
        ("status > open", "The operator '>' is not supported by the 'status' field."),
        ('when > "yesterday"', "Date value 'yesterday' for field 'when' is invalid. Valid formats include: "
                               "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', "
                               "or a period format e.g. '-5d', '4w 2d'."),
        ('title ~ ""', "The field 'title' does not support searching for an empty string."),
        ("when > now(1)", "Function 'now' expected '0' arguments but received '1'."),
        ("status WAS open", "The operator 'WAS' is not supported by the relsync sandbox."),
    ],
)
def test_unsupported_operators_values_and_features_are_refused(query: str, message: str) -> None:
    assert error_of(query) == [message]


def test_clause_ast_keeps_positions_for_messages() -> None:
    tree = parse('"Request Type" in ("Data fix", EMPTY)')
    assert tree.where == Clause("Request Type", 0, "in", (Value("Data fix", 19), Value("EMPTY", 31, empty=True)))
