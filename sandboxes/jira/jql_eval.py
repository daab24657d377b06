"""A JQL subset, part two: binding fields and compiling a parsed query to a filter and an order.

Which fields exist and what their values mean is the sandbox's business: it passes a
lookup of :class:`FieldBinding`. Empty values follow Jira: ``!=``, ``NOT IN``, ``~`` and
``NOT (...)`` never match an issue whose field is EMPTY (three-valued logic; only
``IS [NOT] EMPTY`` sees them). Every validation problem in a query is reported at once.
"""
from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sandboxes.clock import SYSTEM_TIME
from sandboxes.jira.jql import BoolOp, Clause, Function, JqlError, Value, parse

_DATE_FORMATS = "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'"

@dataclass(frozen=True)
class FieldBinding:
    """How the sandbox exposes one JQL field.

    ``get`` returns the record's value (a frozenset for ``multi`` fields, None when
    EMPTY); ``resolve`` turns a literal into the same kind of value or raises
    JqlError; ``sort`` returns a record's sort key (None: EMPTY); a field without
    ``sort`` cannot be ordered by. ``kind`` is ``value``, ``text`` or ``date``.
    """

    name: str
    kind: str
    get: Callable[[Any], Any]
    resolve: Callable[[str], Any] | None = None
    ordered: bool = False
    multi: bool = False
    sort: Callable[[Any], Any] | None = None
    functions: Mapping[str, Callable[[], Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class JqlContext:
    """Where bare dates are read (the account's profile time zone) and what "now" is."""

    timezone: str = "UTC"
    now: Callable[[], dt.datetime] = SYSTEM_TIME.utc


@dataclass(frozen=True)
class CompiledQuery:
    """A query ready to run: ``matches(record)`` and ``order(records)``."""

    bounded: bool
    matches: Callable[[Any], bool]
    order: Callable[[list[Any]], list[Any]]


def compile_query(
    query: str,
    lookup: Callable[[str], FieldBinding | None],
    context: JqlContext,
    *,
    record_id: Callable[[Any], int],
) -> CompiledQuery:
    """Parse and validate ``query`` against the fields ``lookup`` knows; collect every error."""
    tree = parse(query)
    errors: list[str] = []
    predicate = _Compiler(lookup, context, errors).node(tree.where) if tree.where is not None else None
    sorters = []
    for key in tree.order:
        binding = lookup(key.field)
        if binding is None:
            errors.append(_no_field(key.field))
        elif binding.sort is None:
            errors.append(f"Not able to sort using field '{key.field}'.")
        else:
            sorters.append((binding.sort, key.descending))
    if errors:
        raise JqlError(list(dict.fromkeys(errors)))

    def matches(record: Any) -> bool:
        return predicate is None or predicate(record) is True

    def order(records: list[Any]) -> list[Any]:
        ordered = sorted(records, key=record_id)
        for sort, descending in reversed(sorters):
            ordered.sort(key=_sorted_by(sort), reverse=descending)
        return ordered

    return CompiledQuery(bounded=tree.where is not None, matches=matches, order=order)


def _sorted_by(sort: Callable[[Any], Any]) -> Callable[[Any], tuple]:
    """The sort key of a record for one ORDER BY field."""
    return lambda record: _sort_key(sort(record))


def _sort_key(value: Any) -> tuple:
    # EMPTY sorts after every value ascending, before them descending.
    return (1,) if value is None else (0, value)


def _no_field(name: str) -> str:
    return f"Field '{name}' does not exist or you do not have permission to view it."


Predicate = Callable[[Any], "bool | None"]


class _Compiler:
    def __init__(self, lookup: Callable[[str], FieldBinding | None], context: JqlContext, errors: list[str]) -> None:
        self.lookup, self.context, self.errors = lookup, context, errors

    def node(self, node: Any) -> Predicate:
        if isinstance(node, BoolOp):
            parts = [self.node(child) for child in node.children]
            if node.op == "not":
                inner = parts[0]
                return lambda r: None if (v := inner(r)) is None else not v
            if node.op == "and":
                return lambda r: _kleene_and(p(r) for p in parts)
            return lambda r: _kleene_or(p(r) for p in parts)
        return self.clause(node)

    def clause(self, clause: Clause) -> Predicate:
        binding = self.lookup(clause.field)
        if binding is None:
            self.errors.append(_no_field(clause.field))
            return lambda r: None
        op = clause.op
        allowed = {"text": {"~", "!~", "is", "is not"}, "date": {"=", "!=", ">", ">=", "<", "<=", "in", "not in", "is", "is not"}}
        allowed_ops = allowed.get(binding.kind) or (
            {"=", "!=", "in", "not in", "is", "is not"} | ({">", ">=", "<", "<="} if binding.ordered else set())
        )
        if op not in allowed_ops:
            self.errors.append(f"The operator '{op.upper() if op.isalpha() else op}' is not supported by the '{clause.field}' field.")
            return lambda r: None
        items = clause.operand if isinstance(clause.operand, tuple) else (clause.operand,)
        wants_empty = any(isinstance(i, Value) and i.empty for i in items)
        if wants_empty and op in (">", ">=", "<", "<=", "~", "!~"):
            self.errors.append(f"The operator '{op}' does not support searching for EMPTY values.")
            return lambda r: None
        if op in ("=", "is") and wants_empty:
            return lambda r: _is_empty(binding.get(r))
        if op in ("!=", "is not") and wants_empty:
            return lambda r: not _is_empty(binding.get(r))
        if binding.kind == "text":
            return self.text(binding, clause, items[0])
        values = [self.resolve(binding, clause, i) for i in items if not (isinstance(i, Value) and i.empty)]
        if any(v is _INVALID for v in values):
            return lambda r: None
        return _comparison(binding, op, values, wants_empty)

    def resolve(self, binding: FieldBinding, clause: Clause, item: Any) -> Any:
        if isinstance(item, Function):
            return self.function(binding, clause, item)
        try:
            if binding.kind == "date":
                return _date_value(item.text, clause.field, self.context)
            return binding.resolve(item.text) if binding.resolve else item.text
        except JqlError as error:
            self.errors.extend(error.messages)
            return _INVALID

    def function(self, binding: FieldBinding, clause: Clause, call: Function) -> Any:
        name = call.name.lower()
        if binding.kind == "date" and name in _DATE_FUNCTIONS:
            if call.args:
                self.errors.append(f"Function '{call.name}' expected '0' arguments but received '{len(call.args)}'.")
                return _INVALID
            return _DATE_FUNCTIONS[name](self.context)
        if name in binding.functions:
            return binding.functions[name]()
        if name in _KNOWN_FUNCTIONS:
            self.errors.append(f"A value provided by the function '{call.name}' is invalid for the field '{clause.field}'.")
        else:
            self.errors.append(f"Unable to find JQL function '{call.name}({', '.join(call.args)})'.")
        return _INVALID

    def text(self, binding: FieldBinding, clause: Clause, item: Any) -> Predicate:
        if not isinstance(item, Value):
            self.errors.append(f"Unable to find JQL function '{item.name}({', '.join(item.args)})'.")
            return lambda r: None
        if not item.text.strip():
            self.errors.append(f"The field '{clause.field}' does not support searching for an empty string.")
            return lambda r: None
        needle = _text_terms(item.text)
        negate = clause.op == "!~"

        def predicate(record: Any) -> bool | None:
            haystack = binding.get(record)
            if _is_empty(haystack):
                return None
            found = _text_matches(haystack, needle)
            return not found if negate else found

        return predicate


_INVALID = object()
# Real Jira functions this sandbox only accepts on some fields; elsewhere they are refused
# the way Jira refuses a function that yields the wrong kind of value.
_KNOWN_FUNCTIONS = {"currentuser", "now", "startofday", "endofday", "membersof", "releasedversions", "unreleasedversions"}


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, (frozenset, set, tuple, list)) and not value)


def _kleene_and(values: Any) -> bool | None:
    result: bool | None = True
    for value in values:
        if value is False:
            return False
        if value is None:
            result = None
    return result


def _kleene_or(values: Any) -> bool | None:
    result: bool | None = False
    for value in values:
        if value is True:
            return True
        if value is None:
            result = None
    return result


def _comparison(binding: FieldBinding, op: str, values: list[Any], with_empty: bool) -> Predicate:
    wanted: set[Any] = set()
    for value in values:
        # A function such as releasedVersions() resolves to several values at once.
        wanted |= value if isinstance(value, frozenset) else {value}
    first = values[0] if values else None

    def predicate(record: Any) -> bool | None:
        own = binding.get(record)
        if _is_empty(own):
            return True if (op == "in" and with_empty) else (False if op == "not in" and with_empty else None)
        mine = own if binding.multi else {own}
        if op in ("=", "in"):
            return bool(mine & wanted)
        if op in ("!=", "not in"):
            return not (mine & wanted)
        return any(_ordered(v, op, first) for v in mine)

    return predicate


def _ordered(value: Any, op: str, bound: Any) -> bool:
    if op == ">":
        return value > bound
    if op == ">=":
        return value >= bound
    if op == "<":
        return value < bound
    return value <= bound


# -- dates --------------------------------------------------------------------

_RELATIVE = re.compile(r"^([+-])?\s*((?:\d+\s*[yMwdhm]\s*)+)$")
_UNIT_MINUTES = {"y": 525_600, "M": 43_200, "w": 10_080, "d": 1_440, "h": 60, "m": 1}


def _epoch_ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _date_value(text: str, field_name: str, context: JqlContext) -> int:
    """Epoch ms for a JQL date literal: epoch ms, a Jira date format, or a period."""
    value = text.strip()
    if re.fullmatch(r"\d+", value):
        return int(value)
    zone = zoneinfo.ZoneInfo(context.timezone)
    for pattern in ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d"):
        try:
            return _epoch_ms(dt.datetime.strptime(value, pattern).replace(tzinfo=zone))
        except ValueError:
            continue
    match = _RELATIVE.match(value)
    if match:
        minutes = sum(int(n) * _UNIT_MINUTES[u] for n, u in re.findall(r"(\d+)\s*([yMwdhm])", match.group(2)))
        sign = -1 if match.group(1) == "-" else 1
        return _epoch_ms(context.now()) + sign * minutes * 60_000
    raise JqlError(f"Date value '{text}' for field '{field_name}' is invalid. Valid formats include: {_DATE_FORMATS}.")


def _start_of_day(context: JqlContext) -> int:
    local = context.now().astimezone(zoneinfo.ZoneInfo(context.timezone))
    return _epoch_ms(local.replace(hour=0, minute=0, second=0, microsecond=0))


_DATE_FUNCTIONS: dict[str, Callable[[JqlContext], int]] = {
    "now": lambda c: _epoch_ms(c.now()),
    "startofday": _start_of_day,
    "endofday": lambda c: _start_of_day(c) + 86_400_000 - 1,
}


# -- text search ----------------------------------------------------------------

_WORD = re.compile(r"\w+")


def _stem(word: str) -> str:
    # Jira's index stems English words; dropping a plural "s" covers what tests need.
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _text_terms(needle: str) -> list[list[str]]:
    """A ``~`` operand as AND-ed terms; each term is a phrase (list of words)."""
    terms: list[list[str]] = []
    for phrase, word in re.findall(r'"([^"]*)"|(\S+)', needle):
        if phrase:
            words = [_stem(w) for w in _WORD.findall(phrase.lower())]
        elif word.upper() in ("AND", "&&"):
            continue
        else:
            wildcard = word.endswith("*")
            words = [_stem(w) for w in _WORD.findall(word.lower())]
            if wildcard and words:
                words[-1] = words[-1] + "*"
        if words:
            terms.append(words)
    return terms


def _text_matches(haystack: str, terms: list[list[str]]) -> bool:
    words = [_stem(w) for w in _WORD.findall(haystack.lower())]
    return all(_phrase_in(words, term) for term in terms)


def _phrase_in(words: list[str], phrase: list[str]) -> bool:
    for start in range(len(words) - len(phrase) + 1):
        if all(_word_matches(words[start + k], p) for k, p in enumerate(phrase)):
            return True
    return False


def _word_matches(word: str, pattern: str) -> bool:
    if pattern.endswith("*"):
        return word.startswith(pattern[:-1])
    return word == pattern
