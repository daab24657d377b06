"""Evaluating a compiled Airtable formula against one record.

Values are Python ``None`` (blank), ``bool``, ``int``/``float``, ``str`` and aware UTC
``datetime``. A run-time failure (an unparseable date, a division by zero) is Airtable's
``#ERROR!``: :class:`EvalError`, and the record is left out of the result, because
Airtable keeps a record only when the formula's value "is not 0, false, "", NaN, [], or
#Error!". Dates compare with ISO strings by parsing the string, which is how
``{Created} >= '2026-05-01'`` and pyairtable's ``GTE(Field, datetime)`` behave.
"""
from __future__ import annotations

import calendar
import datetime as dt
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sandboxes.airtable.formula import (
    Binary,
    Call,
    FieldRef,
    Formula,
    Literal,
    Negate,
    Node,
)
from sandboxes.clock import SYSTEM_TIME

UTC = dt.UTC


class EvalError(ValueError):
    """Airtable's ``#ERROR!`` for one record."""


@dataclass(frozen=True)
class RecordContext:
    """What a formula can see of one record."""

    record_id: str
    created: dt.datetime
    last_modified: dt.datetime | None
    value: Callable[[str], object]
    modified: Callable[[str], dt.datetime | None]
    now: dt.datetime


def matches(formula: Formula, record: RecordContext) -> bool:
    """Whether Airtable would keep ``record``: a truthy value, and no ``#ERROR!``."""
    try:
        return truthy(evaluate(formula.tree, record))
    except (EvalError, OverflowError, TypeError, ValueError):
        return False


def truthy(value: object) -> bool:
    """Airtable's truth: not blank, 0, false, "", NaN."""
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    if isinstance(value, (bool, int, float)):
        return value != 0
    if isinstance(value, str):
        return value != ""
    return True


def text(value: object) -> str:
    """A value as Airtable concatenates it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return iso_millis(value)
    return str(value)


def iso_millis(moment: dt.datetime) -> str:
    """``2026-05-01T10:00:00.000Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def number(value: object) -> float | int:
    """A value as a number; blank is 0."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value) if value.strip() else 0
        except ValueError:
            raise EvalError(f"not a number: {value!r}") from None
    raise EvalError(f"not a number: {value!r}")


_ISO = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$"
)


def parse_iso(raw: str) -> dt.datetime:
    """An ISO 8601 date or date-time (no zone means UTC), or :class:`EvalError`."""
    match = _ISO.match(raw.strip())
    if not match:
        raise EvalError(f"not a date: {raw!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = dt.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
                             int((fraction or "0").ljust(6, "0")), tzinfo=UTC)
    except ValueError:
        raise EvalError(f"not a date: {raw!r}") from None
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        moment -= sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return moment


def moment_of(value: object) -> dt.datetime | None:
    """A value as a date-time; blank stays blank."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        return parse_iso(value)
    raise EvalError(f"not a date: {value!r}")


# Moment.js tokens DATETIME_PARSE formats use, longest first.
_FORMAT_TOKENS = {
    "YYYY": r"(?P<Y>\d{4})", "YY": r"(?P<y>\d{2})", "MM": r"(?P<M>\d{2})", "M": r"(?P<M>\d{1,2})",
    "DD": r"(?P<D>\d{2})", "D": r"(?P<D>\d{1,2})", "HH": r"(?P<H>\d{2})", "H": r"(?P<H>\d{1,2})",
    "hh": r"(?P<h>\d{2})", "h": r"(?P<h>\d{1,2})", "mm": r"(?P<m>\d{2})", "m": r"(?P<m>\d{1,2})",
    "ss": r"(?P<s>\d{2})", "s": r"(?P<s>\d{1,2})", "SSS": r"(?P<S>\d{3})", "A": r"(?P<A>[AaPp][Mm])",
    "a": r"(?P<A>[AaPp][Mm])", "X": r"(?P<X>\d+(?:\.\d+)?)", "x": r"(?P<x>\d+)", "Z": r"(?P<Z>Z|[+-]\d{2}:?\d{2})",
}
_FORMAT_SPLIT = re.compile(r"\[[^\]]*\]|" + "|".join(sorted(map(re.escape, _FORMAT_TOKENS), key=len, reverse=True)))


def parse_with_format(raw: str, fmt: str, now: dt.datetime | None = None) -> dt.datetime:
    """DATETIME_PARSE with a moment.js format (the tokens above), UTC unless ``Z`` says otherwise.

    A format without a year takes the year of ``now`` (the sandbox's time; by default the machine's).
    """
    pattern, position = [], 0
    for match in _FORMAT_SPLIT.finditer(fmt):
        pattern.append(re.escape(fmt[position:match.start()]))
        token = match.group()
        pattern.append(re.escape(token[1:-1]) if token.startswith("[") else _FORMAT_TOKENS[token])
        position = match.end()
    pattern.append(re.escape(fmt[position:]))
    try:
        found = re.fullmatch("".join(pattern), raw.strip())
    except re.error:  # a token used twice: moment would take the last, we refuse
        raise EvalError(f"unsupported format {fmt!r}") from None
    if not found:
        raise EvalError(f"{raw!r} does not match {fmt!r}")
    parts = {k: v for k, v in found.groupdict().items() if v is not None}
    if "X" in parts:
        return dt.datetime.fromtimestamp(float(parts["X"]), UTC)
    if "x" in parts:
        return dt.datetime.fromtimestamp(int(parts["x"]) / 1000, UTC)
    year = int(parts["Y"]) if "Y" in parts else 2000 + int(parts["y"]) if "y" in parts else (now or SYSTEM_TIME.utc()).year
    hour = int(parts.get("H", parts.get("h", 0)))
    if "A" in parts and "h" in parts:
        hour = hour % 12 + (12 if parts["A"].lower() == "pm" else 0)
    day = f"{year:04d}-{int(parts.get('M', 1)):02d}-{int(parts.get('D', 1)):02d}"
    time_of_day = f"{hour:02d}:{int(parts.get('m', 0)):02d}:{int(parts.get('s', 0)):02d}.{parts.get('S', '000')}"
    text_value = f"{day}T{time_of_day}{parts.get('Z', 'Z')}"
    return parse_iso(text_value)


_UNITS = {
    "ms": "millisecond", "milliseconds": "millisecond", "millisecond": "millisecond",
    "s": "second", "seconds": "second", "second": "second", "m": "minute", "minutes": "minute", "minute": "minute",
    "h": "hour", "hours": "hour", "hour": "hour", "d": "day", "days": "day", "day": "day",
    "w": "week", "weeks": "week", "week": "week", "M": "month", "months": "month", "month": "month",
    "Q": "quarter", "quarters": "quarter", "quarter": "quarter", "y": "year", "years": "year", "year": "year",
}


def _unit(raw: object) -> str:
    name = text(raw)
    unit = _UNITS.get(name) or _UNITS.get(name.lower())
    if unit is None:
        raise EvalError(f"unknown unit {name!r}")
    return unit


def truncate(moment: dt.datetime, unit: str) -> dt.datetime:
    """The start of the ``unit`` containing ``moment`` (weeks start on Sunday, as moment.js's)."""
    if unit == "millisecond":
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    moment = moment.replace(microsecond=0)
    if unit == "second":
        return moment
    if unit == "minute":
        return moment.replace(second=0)
    if unit == "hour":
        return moment.replace(minute=0, second=0)
    day = moment.replace(hour=0, minute=0, second=0)
    if unit == "day":
        return day
    if unit == "week":
        return day - dt.timedelta(days=(day.weekday() + 1) % 7)
    if unit == "month":
        return day.replace(day=1)
    if unit == "quarter":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    return day.replace(month=1, day=1)


def add(moment: dt.datetime, count: float, unit: str) -> dt.datetime:
    """DATEADD: months and years keep the day where the month allows."""
    if unit in ("month", "quarter", "year"):
        months = int(count) * {"month": 1, "quarter": 3, "year": 12}[unit]
        index = moment.month - 1 + months
        year, month = moment.year + index // 12, index % 12 + 1
        return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))
    seconds = {"millisecond": 0.001, "second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}[unit]
    return moment + dt.timedelta(seconds=count * seconds)


def _compare(op: str, left: object, right: object) -> bool:
    if isinstance(left, dt.datetime) or isinstance(right, dt.datetime):
        first, second = moment_of(left), moment_of(right)
        if first is None or second is None:
            return (first is None and second is None) if op == "=" else (first is not None or second is not None) if op == "!=" else False
        return _holds(op, first, second)
    both_text = isinstance(left, str) and isinstance(right, str)
    if both_text or left is None and isinstance(right, str) or right is None and isinstance(left, str):
        return _holds(op, text(left), text(right))
    if isinstance(left, str) or isinstance(right, str):
        try:
            numbers = number(left), number(right)
        except EvalError:
            return _holds(op, text(left), text(right))
        return _holds(op, *numbers)
    return _holds(op, number(left), number(right))


_Comparable = TypeVar("_Comparable", dt.datetime, str, float)


def _holds(op: str, a: _Comparable, b: _Comparable) -> bool:
    """Whether ``a op b`` holds for two values of one kind."""
    if op == "=":
        return a == b
    if op == "!=":
        return a != b
    return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]


def _arithmetic(op: str, left: object, right: object) -> float | int:
    a, b = number(left), number(right)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:
        raise EvalError("division by zero")
    return a / b


def evaluate(node: Node, record: RecordContext) -> object:
    """The value of ``node`` for ``record``; may raise :class:`EvalError`."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, FieldRef):
        return record.value(node.name)
    if isinstance(node, Negate):
        return -number(evaluate(node.operand, record))  # type: ignore[arg-type]
    if isinstance(node, Binary):
        left = evaluate(node.left, record)  # type: ignore[arg-type]
        right = evaluate(node.right, record)  # type: ignore[arg-type]
        if node.op == "&":
            return text(left) + text(right)
        if node.op in "+-*/":
            return _arithmetic(node.op, left, right)
        return _compare(node.op, left, right)
    assert isinstance(node, Call)
    return _call(node, record)


def _call(node: Call, record: RecordContext) -> object:
    name, args = node.name, node.args
    if name == "IF":  # lazy, like Airtable: the branch not taken may be an error
        chosen = args[1] if truthy(evaluate(args[0], record)) else (args[2] if len(args) > 2 else None)  # type: ignore[arg-type]
        return None if chosen is None else evaluate(chosen, record)  # type: ignore[arg-type]
    if name == "LAST_MODIFIED_TIME":
        if not args:
            return record.last_modified
        stamps = [record.modified(arg.name) for arg in args if isinstance(arg, FieldRef)]
        known = [s for s in stamps if s is not None]
        return max(known) if known else None
    values = [evaluate(arg, record) for arg in args]  # type: ignore[arg-type]
    return _FUNCTIONS[name](values, record)


def _find(values: list[object], *, fold: bool) -> int | None:
    needle, haystack = text(values[0]), text(values[1])
    if fold:
        needle, haystack = needle.lower(), haystack.lower()
    start = max(int(number(values[2])) - 1, 0) if len(values) > 2 else 0
    found = haystack.find(needle, start) + 1
    return found if found or not fold else None  # SEARCH gives blank where FIND gives 0


def _parse(values: list[object], record: RecordContext) -> dt.datetime | None:
    if values[0] is None or values[0] == "":
        return None
    if isinstance(values[0], dt.datetime):
        return values[0]
    if len(values) > 1 and values[1] is not None:
        return parse_with_format(text(values[0]), text(values[1]), record.now)
    return parse_iso(text(values[0]))


def _same(values: list[object], _: RecordContext) -> bool:
    a, b = moment_of(values[0]), moment_of(values[1])
    if a is None or b is None:
        return False
    unit = _unit(values[2]) if len(values) > 2 else "millisecond"
    return truncate(a, unit) == truncate(b, unit)


def _after(values: list[object], _: RecordContext, *, before: bool = False) -> bool:
    a, b = moment_of(values[0]), moment_of(values[1])
    if a is None or b is None:
        return False
    return a < b if before else a > b


def _date_add(values: list[object], _: RecordContext) -> dt.datetime | None:
    moment = moment_of(values[0])
    return None if moment is None else add(moment, float(number(values[1])), _unit(values[2]))


_FUNCTIONS: dict[str, Callable[[list[object], RecordContext], object]] = {
    "AND": lambda v, _: all(truthy(x) for x in v),
    "OR": lambda v, _: any(truthy(x) for x in v),
    "XOR": lambda v, _: sum(truthy(x) for x in v) % 2 == 1,
    "NOT": lambda v, _: not truthy(v[0]),
    "BLANK": lambda v, _: None,
    "TRUE": lambda v, _: True,
    "FALSE": lambda v, _: False,
    "IS_AFTER": _after,
    "IS_BEFORE": lambda v, r: _after(v, r, before=True),
    "IS_SAME": _same,
    "DATETIME_PARSE": _parse,
    "DATEADD": _date_add,
    "NOW": lambda v, r: r.now,
    "TODAY": lambda v, r: truncate(r.now, "day"),
    "CREATED_TIME": lambda v, r: r.created,
    "RECORD_ID": lambda v, r: r.record_id,
    "FIND": lambda v, _: _find(v, fold=False),
    "SEARCH": lambda v, _: _find(v, fold=True),
    "LOWER": lambda v, _: text(v[0]).lower(),
    "UPPER": lambda v, _: text(v[0]).upper(),
    "LEN": lambda v, _: len(text(v[0])),
    "TRIM": lambda v, _: text(v[0]).strip(),
    "CONCATENATE": lambda v, _: "".join(text(x) for x in v),
}


__all__ = ["EvalError", "RecordContext", "evaluate", "iso_millis", "matches", "parse_iso", "parse_with_format", "text", "truthy"]
