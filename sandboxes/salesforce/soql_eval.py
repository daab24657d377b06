"""A SOQL subset, part two: bind a parsed query to the schema, then filter, order and project rows.

Binding is where Salesforce's semantic errors come from: unknown objects (INVALID_TYPE),
unknown fields and relationships (INVALID_FIELD, "No such column 'X' on entity 'Case'"),
long text areas in WHERE/ORDER BY, literals of the wrong type ("value of filter criterion
for field 'X' must be of type dateTime and should not be enclosed in quotes") and bad ids
("invalid ID field: X"). Matching follows SOQL: text compares case-insensitively, ``!=``
and NOT IN keep nulls, ORDER BY sorts text case-insensitively with nulls first unless
NULLS LAST, and dateTimes compare to the second.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandboxes.salesforce.schema import Field, SObject
from sandboxes.salesforce.soql import decode_string
from sandboxes.salesforce.soql_ast import (
    BoolOp,
    Comparison,
    FieldPath,
    Literal,
    Not,
    Query,
    SoqlError,
    Token,
    positioned,
)
from sandboxes.salesforce.values import (
    canonical_id,
    format_date,
    format_datetime,
    to_second,
)

MAX_OFFSET = 2000
_CUSTOM_FIELD_HINT = ("If you are attempting to use a custom field, be sure to append the '__c' after the custom field "
                      "name. Please reference your WSDL or the describe call for the appropriate names.")
_CUSTOM_RELATIONSHIP_HINT = ("If you are attempting to use a custom relationship, be sure to append the '__r' after the "
                             "custom relationship name. Please reference your WSDL or the describe call for the "
                             "appropriate names.")
_CUSTOM_OBJECT_HINT = ("If you are attempting to use a custom object, be sure to append the '__c' after the entity name. "
                       "Please reference your WSDL or the describe call for the appropriate names.")
_TYPE_NAMES = {"datetime": "dateTime", "date": "date", "boolean": "boolean"}

Row = dict[str, Any]
Lookup = Callable[[str, str], Row | None]
"""(entity, id) -> the referenced record's values, or None."""


@dataclass(frozen=True)
class Column:
    """A selected or ordered path, resolved: the relationship walked (if any) and the field read."""

    path: FieldPath
    steps: tuple[Field, ...]  # reference fields walked, in order
    field: Field
    entities: tuple[str, ...]  # entity of each step's target

    def read(self, row: Row, lookup: Lookup) -> Any:
        """The value of this path on ``row`` (None when a relationship on the way is empty)."""
        current: Row | None = row
        for step, entity in zip(self.steps, self.entities, strict=True):
            ref = current.get(step.name) if current else None
            current = lookup(entity, ref) if ref else None
        return current.get(self.field.name) if current else None


@dataclass(frozen=True)
class BoundQuery:
    """A query bound to the schema, ready to run over rows of ``sobject``."""

    query: Query
    sobject: SObject
    columns: tuple[Column, ...]
    predicate: Callable[[Row], bool]
    order: tuple[tuple[Column, bool, bool], ...]
    lookup: Lookup

    def run(self, rows: list[Row]) -> list[Row]:
        """Filter, order, then apply OFFSET and LIMIT."""
        matched = [row for row in rows if self.predicate(row)]
        for column, descending, nulls_last in reversed(self.order):
            matched = _sort_pass(matched, column, descending, nulls_last, self.lookup)
        start = self.query.offset or 0
        end = None if self.query.limit is None else start + self.query.limit
        return matched[start:end]

    def render(self, row: Row, version: str) -> dict[str, Any]:
        """The record as the query resource returns it, fields in SELECT order."""
        out: dict[str, Any] = {"attributes": _attributes(self.sobject.name, row["Id"], version)}
        for column in self.columns:
            _place(out, column, row, self.lookup, version)
        return out


def _attributes(entity: str, ident: str, version: str, url_type: str | None = None) -> dict[str, str]:
    return {"type": entity, "url": f"/services/data/v{version}/sobjects/{url_type or entity}/{ident}"}


def json_value(field: Field, value: Any) -> Any:
    """A stored value as JSON (dateTimes and dates in Salesforce's formats)."""
    if isinstance(value, dt.datetime):
        return format_datetime(value)
    if isinstance(value, dt.date):
        return format_date(value)
    return value


def _place(out: dict[str, Any], column: Column, row: Row, lookup: Lookup, version: str) -> None:
    target: dict[str, Any] | None = out
    current: Row | None = row
    for step, entity in zip(column.steps, column.entities, strict=True):
        ref = current.get(step.name) if current else None
        current = lookup(entity, ref) if ref else None
        assert step.relationship is not None and target is not None
        if current is None:
            target.setdefault(step.relationship, None)
            return
        nested = target.get(step.relationship)
        if nested is None:
            url_type = current.get("Type") if entity == "Name" else None
            url_type = "Group" if url_type == "Queue" else url_type
            nested = {"attributes": _attributes(entity, current["Id"], version, url_type)}
            target[step.relationship] = nested
        target = nested
    assert target is not None and current is not None
    target[column.field.name] = json_value(column.field, current.get(column.field.name))


def _sort_key(field: Field, value: Any) -> Any:
    if field.type in ("string", "textarea", "picklist", "email"):
        return str(value).upper()
    return value


def _sort_pass(rows: list[Row], column: Column, descending: bool, nulls_last: bool, lookup: Lookup) -> list[Row]:
    values = [(column.read(row, lookup), row) for row in rows]
    present = [(v, r) for v, r in values if v is not None]
    missing = [r for v, r in values if v is None]
    present.sort(key=lambda pair: _sort_key(column.field, pair[0]), reverse=descending)
    ordered = [r for _, r in present]
    return ordered + missing if nulls_last else missing + ordered


class _Binder:
    def __init__(self, query: Query, catalog: dict[str, SObject], lookup: Lookup) -> None:
        self.query, self.catalog, self.lookup = query, catalog, lookup

    def error(self, code: str, pos: int, reason: str) -> SoqlError:
        return SoqlError(code, positioned(self.query.text, pos, reason))

    def sobject(self) -> SObject:
        obj = self.catalog.get(self.query.sobject.lower())
        if obj is None or obj.name == "Name":
            reason = f"sObject type '{self.query.sobject}' is not supported. {_CUSTOM_OBJECT_HINT}"
            raise self.error("INVALID_TYPE", self.query.sobject_pos, reason)
        return obj

    def column(self, obj: SObject, path: FieldPath) -> Column:
        steps: list[Field] = []
        entities: list[str] = []
        current = obj
        for part in path.parts[:-1]:
            ref = current.relationship(part)
            if ref is None or ref.target is None:
                reason = f"Didn't understand relationship '{part}' in field path. {_CUSTOM_RELATIONSHIP_HINT}"
                raise self.error("INVALID_FIELD", path.pos, reason)
            steps.append(ref)
            entities.append(ref.target)
            current = self.catalog[ref.target.lower()]
        field = current.field(path.parts[-1])
        if field is None:
            reason = f"No such column '{path.parts[-1]}' on entity '{current.name}'. {_CUSTOM_FIELD_HINT}"
            raise self.error("INVALID_FIELD", path.pos, reason)
        return Column(path, tuple(steps), field, tuple(entities))

    def condition(self, obj: SObject, node: Any) -> Callable[[Row], bool]:
        if isinstance(node, Not):
            inner = self.condition(obj, node.operand)
            return lambda row: not inner(row)
        if isinstance(node, BoolOp):
            parts = [self.condition(obj, operand) for operand in node.operands]
            if node.op == "AND":
                return lambda row: all(part(row) for part in parts)
            return lambda row: any(part(row) for part in parts)
        assert isinstance(node, Comparison)
        return self.comparison(obj, node)

    def literal(self, column: Column, literal: Literal, *, like: bool = False) -> Any:
        field, name = column.field, column.path.text
        if literal.kind == "null":
            return None
        if field.type in ("id", "reference"):
            if literal.kind != "string":
                raise SoqlError("INVALID_FIELD", f"value of filter criterion for field '{name}' must be of type id "
                                                 "and should be enclosed in quotes")
            text = decode_string(self.query.text, _as_token(literal))
            ident = canonical_id(text)
            if ident is None:
                raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {text}")
            return ident
        if field.type in _TYPE_NAMES:
            if literal.kind != field.type:
                raise SoqlError("INVALID_FIELD", f"value of filter criterion for field '{name}' must be of type "
                                                 f"{_TYPE_NAMES[field.type]} and should not be enclosed in quotes")
            return to_second(literal.value) if field.type == "datetime" else literal.value
        if literal.kind != "string":
            raise SoqlError("INVALID_FIELD", f"value of filter criterion for field '{name}' must be of type string "
                                             "and should be enclosed in quotes")
        return decode_string(self.query.text, _as_token(literal), like=like)

    def comparison(self, obj: SObject, node: Comparison) -> Callable[[Row], bool]:
        column = self.column(obj, node.path)
        field, lookup = column.field, self.lookup
        if not field.filterable:
            raise SoqlError("INVALID_FIELD", positioned(self.query.text, node.path.pos,
                                                        f"field '{field.name}' can not be filtered in a query call"))
        text = field.type in ("string", "textarea", "picklist", "email")
        if node.op == "LIKE":
            if not text:
                raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", f"invalid operator on {field.type} field: LIKE")
            assert isinstance(node.value, Literal)
            pattern = _like_regex(self.literal(column, node.value, like=True))
            return lambda row: (v := column.read(row, lookup)) is not None and pattern.fullmatch(str(v)) is not None
        if node.op in ("IN", "NOT IN"):
            assert isinstance(node.value, tuple)
            wanted = {_equality_key(field, self.literal(column, v)) for v in node.value}
            if node.op == "IN":
                return lambda row: _equality_key(field, column.read(row, lookup)) in wanted
            return lambda row: _equality_key(field, column.read(row, lookup)) not in wanted
        assert isinstance(node.value, Literal)
        value = self.literal(column, node.value)
        if field.type == "boolean" and node.op not in ("=", "!="):
            raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", f"invalid operator on boolean field: {node.op}")
        key = _equality_key(field, value)
        if node.op == "=":
            return lambda row: _equality_key(field, column.read(row, lookup)) == key
        if node.op == "!=":
            return lambda row: _equality_key(field, column.read(row, lookup)) != key
        compare = _ORDERING[node.op]
        bound = _sort_key(field, value) if value is not None else None
        return lambda row: (bound is not None and (v := column.read(row, lookup)) is not None
                            and compare(_sort_key(field, v), bound))

    def bind(self) -> BoundQuery:
        query = self.query
        obj = self.sobject()
        columns: list[Column] = []
        seen: set[str] = set()
        for path in query.fields:
            column = self.column(obj, path)
            key = ".".join([s.relationship or "" for s in column.steps] + [column.field.name]).lower()
            if key in seen:
                raise SoqlError("MALFORMED_QUERY", f"duplicate field selected: {path.text}")
            seen.add(key)
            columns.append(column)
        predicate = self.condition(obj, query.where) if query.where is not None else (lambda row: True)
        order = []
        for item in query.order_by:
            column = self.column(obj, item.path)
            if not column.field.sortable:
                raise SoqlError("INVALID_FIELD", positioned(query.text, item.path.pos,
                                                            f"field '{column.field.name}' can not be sorted in a query call"))
            order.append((column, item.descending, item.nulls_last))
        if query.count and order:
            raise SoqlError("MALFORMED_QUERY", positioned(query.text, query.order_by[0].path.pos,
                                                          "the relsync sandbox does not support ORDER BY with COUNT()"))
        if query.offset is not None and query.offset > MAX_OFFSET:
            raise SoqlError("NUMBER_OUTSIDE_VALID_RANGE", f"Maximum SOQL offset allowed is {MAX_OFFSET}")
        return BoundQuery(query, obj, tuple(columns), predicate, tuple(order), self.lookup)


def _as_token(literal: Literal) -> Token:
    return Token("string", literal.text, literal.pos, literal.raw)


def _equality_key(field: Field, value: Any) -> Any:
    if value is None:
        return None
    if field.type in ("string", "textarea", "picklist", "email"):
        return str(value).casefold()
    return value


def _like_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "%_":
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


_ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b,
}


def bind(query: Query, catalog: dict[str, SObject], lookup: Lookup) -> BoundQuery:
    """Bind ``query`` to the schema or raise :class:`SoqlError` with Salesforce's code and message."""
    return _Binder(query, catalog, lookup).bind()
