"""The SOQL subset's syntax tree and errors, shared by :mod:`soql` (parser) and :mod:`soql_eval`.

Errors carry Salesforce's errorCode and message; positioned messages use its layout: the
offending line, a caret, ``ERROR at Row:R:Column:C`` and the reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class SoqlError(Exception):
    """A query Salesforce refuses with 400; ``code`` is its errorCode, ``message`` its message."""

    def __init__(self, code: str, message: str) -> None:
        self.code, self.message = code, message
        super().__init__(f"{code}: {message}")


def positioned(query: str, pos: int, reason: str) -> str:
    """Salesforce's positioned message: the line, a caret, ``ERROR at Row:R:Column:C`` and the reason."""
    before = query[:pos]
    row = before.count("\n") + 1
    line_start = before.rfind("\n") + 1
    line_end = query.find("\n", pos)
    line = query[line_start : len(query) if line_end < 0 else line_end]
    column = pos - line_start + 1
    start = 0 if len(line) <= 100 else max(0, column - 41)
    snippet = line[start : start + 100]
    return f"\n{snippet}\n{' ' * (column - 1 - start)}^\nERROR at Row:{row}:Column:{column}\n{reason}"


def malformed(query: str, pos: int, reason: str) -> SoqlError:
    """A MALFORMED_QUERY at ``pos``."""
    return SoqlError("MALFORMED_QUERY", positioned(query, pos, reason))


@dataclass(frozen=True)
class Token:
    """One lexical token; ``pos`` is the 0-based offset in the query."""

    kind: str  # ident | string | datetime | date | number | op | ( | ) | , | eof
    text: str
    pos: int
    raw: str = ""  # a string literal's text between the quotes, escapes intact

    @property
    def word(self) -> str:
        """The lower-cased identifier text ('' for other kinds)."""
        return self.text.lower() if self.kind == "ident" else ""


@dataclass(frozen=True)
class FieldPath:
    """A field reference such as ``Status`` or ``Owner.Name``."""

    parts: tuple[str, ...]
    pos: int

    @property
    def text(self) -> str:
        """The path as written."""
        return ".".join(self.parts)


@dataclass(frozen=True)
class Literal:
    """A value in a condition: kind is string | datetime | date | number | boolean | null."""

    kind: str
    value: Any
    text: str
    pos: int
    raw: str = ""


@dataclass(frozen=True)
class Comparison:
    """``path op value``; op is = != < > <= >= (``<>`` read as ``!=``), LIKE, IN or NOT IN."""

    path: FieldPath
    op: str
    value: Literal | tuple[Literal, ...]


@dataclass(frozen=True)
class Not:
    """NOT applied to a term."""

    operand: Any


@dataclass(frozen=True)
class BoolOp:
    """Terms joined by one operator (AND or OR)."""

    op: str
    operands: tuple[Any, ...]


@dataclass(frozen=True)
class OrderItem:
    """One ORDER BY key."""

    path: FieldPath
    descending: bool
    nulls_last: bool


@dataclass(frozen=True)
class Query:
    """A parsed query; ``fields`` is empty for ``SELECT COUNT()``."""

    text: str
    fields: tuple[FieldPath, ...]
    count: bool
    sobject: str
    sobject_pos: int
    where: Any
    order_by: tuple[OrderItem, ...]
    limit: int | None
    offset: int | None
