"""A SOQL subset, part one: tokenizer and parser to an AST (:mod:`soql_eval` binds and runs it).

Grammar (keywords in any letter case)::

    SELECT (COUNT() | path {, path}) FROM object
      [WHERE condition] [ORDER BY path [ASC|DESC] [NULLS FIRST|LAST] {, ...}] [LIMIT n] [OFFSET n]
    condition  := NOT term | term {AND term} | term {OR term}
    term       := ( condition ) | path op value | path [NOT] IN ( value {, value} ) | path LIKE 'pattern'

As in Salesforce, AND and OR cannot be mixed without parentheses and NOT only starts a
(parenthesised) condition. Literals: quoted strings with SOQL's escapes, dateTimes
(``2026-11-20T10:15:30Z``, ``+hh:mm``, the API's own ``.000+0000`` form, and up to 6
fractional digits as Python's ``isoformat()`` writes them, which Salesforce accepts), dates,
numbers, ``null``, ``true``, ``false``. Anything else raises :class:`SoqlError` with
``MALFORMED_QUERY`` and Salesforce's "ERROR at Row:R:Column:C" position; nothing is ignored.
"""
from __future__ import annotations

import re
from typing import Any

from sandboxes.salesforce.soql_ast import (
    BoolOp,
    Comparison,
    FieldPath,
    Literal,
    Not,
    OrderItem,
    Query,
    SoqlError,
    Token,
    malformed,
    positioned,
)
from sandboxes.salesforce.values import parse_date, parse_datetime

__all__ = ["BoolOp", "Comparison", "FieldPath", "Literal", "Not", "OrderItem", "Query", "SoqlError", "Token",
           "decode_string", "malformed", "parse", "positioned", "tokenize"]

_KEYWORDS = {"select", "from", "where", "and", "or", "not", "in", "like", "order", "by", "asc", "desc", "nulls",
             "first", "last", "limit", "offset", "null", "true", "false", "count"}
_UNSUPPORTED = {"group": "GROUP BY", "having": "HAVING", "for": "FOR clauses", "with": "WITH clauses",
                "typeof": "TYPEOF", "using": "USING SCOPE", "includes": "INCLUDES", "excludes": "EXCLUDES",
                "update": "UPDATE TRACKING"}
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:?\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?![\dT])")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def _read_string(query: str, start: int) -> tuple[str, int]:
    i = start + 1
    while i < len(query):
        if query[i] == "\\":
            i += 2
            continue
        if query[i] == "'":
            return query[start + 1 : i], i + 1
        i += 1
    raise malformed(query, start, "unexpected token: <EOF>")


def tokenize(query: str) -> list[Token]:
    """Split ``query`` into tokens (strings keep their escapes in ``raw``)."""
    tokens: list[Token] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
        elif ch == "'":
            raw, end = _read_string(query, i)
            tokens.append(Token("string", query[i:end], i, raw))
            i = end
        elif ch in "(),":
            tokens.append(Token(ch, ch, i))
            i += 1
        elif query.startswith(("!=", "<>", "<=", ">="), i):
            tokens.append(Token("op", query[i : i + 2], i))
            i += 2
        elif ch in "=<>":
            tokens.append(Token("op", ch, i))
            i += 1
        elif ch.isdigit() or (ch in "+-" and i + 1 < n and query[i + 1].isdigit()):
            for kind, pattern in (("datetime", _DATETIME), ("date", _DATE), ("number", _NUMBER)):
                match = pattern.match(query, i)
                if match:
                    tokens.append(Token(kind, match.group(), i))
                    i = match.end()
                    break
        elif ch.isalpha() or ch == "_":
            match = _IDENT.match(query, i)
            assert match is not None
            tokens.append(Token("ident", match.group(), i))
            i = match.end()
        else:
            raise malformed(query, i, f"unexpected token: '{ch}'")
    tokens.append(Token("eof", "<EOF>", n))
    return tokens


def decode_string(query: str, token: Token, *, like: bool = False) -> str:
    """The value of a string literal; in a LIKE pattern ``\\%`` and ``\\_`` stay escaped."""
    out: list[str] = []
    raw, i = token.raw, 0
    while i < len(raw):
        ch = raw[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = raw[i + 1] if i + 1 < len(raw) else ""
        if nxt and nxt.lower() in "nrtbf":
            out.append(_ESCAPES[nxt.lower()])
            i += 2
        elif nxt and nxt in "\"'\\":
            out.append(nxt)
            i += 2
        elif nxt == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", raw[i + 2 : i + 6]):
            out.append(chr(int(raw[i + 2 : i + 6], 16)))
            i += 6
        elif like and nxt and nxt in "%_":
            out.append("\\" + nxt)
            i += 2
        else:
            reason = f"Invalid string literal '{raw}'. Illegal character sequence '\\{nxt}' in string literal."
            raise malformed(query, token.pos, reason)
    return "".join(out)


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = tokenize(query)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def unexpected(self, token: Token | None = None) -> SoqlError:
        token = token or self.tok
        word = token.word
        if word in _UNSUPPORTED:
            return malformed(self.query, token.pos, f"the relsync sandbox does not support {_UNSUPPORTED[word]}")
        shown = "<EOF>" if token.kind == "eof" else f"'{token.text}'"
        return malformed(self.query, token.pos, f"unexpected token: {shown}")

    def keyword(self, word: str) -> Token:
        if self.tok.word != word:
            raise self.unexpected()
        return self.advance()

    def accept(self, word: str) -> bool:
        if self.tok.word == word:
            self.i += 1
            return True
        return False

    def path(self) -> FieldPath:
        token = self.tok
        if token.kind != "ident" or token.word in _KEYWORDS:
            raise self.unexpected()
        self.advance()
        if self.tok.kind == "(":
            if token.word == "select":
                raise malformed(self.query, token.pos, "the relsync sandbox does not support subqueries")
            raise malformed(self.query, token.pos, f"the relsync sandbox does not support the function {token.text}()")
        return FieldPath(tuple(token.text.split(".")), token.pos)

    def parse(self) -> Query:
        self.keyword("select")
        fields: list[FieldPath] = []
        count = False
        if self.tok.word == "count" and self.tokens[self.i + 1].kind == "(":
            self.advance()
            self.advance()
            if self.tok.kind != ")":
                raise malformed(self.query, self.tok.pos, "the relsync sandbox only supports COUNT() without a field")
            self.advance()
            count = True
        else:
            fields.append(self.path())
            while self.tok.kind == ",":
                self.advance()
                fields.append(self.path())
        self.keyword("from")
        obj = self.tok
        if obj.kind != "ident" or "." in obj.text or obj.word in _KEYWORDS:
            raise self.unexpected()
        self.advance()
        where = None
        if self.accept("where"):
            where = self.condition()
        order: list[OrderItem] = []
        if self.tok.word == "order":
            self.advance()
            self.keyword("by")
            order.append(self.order_item())
            while self.tok.kind == ",":
                self.advance()
                order.append(self.order_item())
        limit = self.count_clause("limit")
        offset = self.count_clause("offset")
        if self.tok.kind != "eof":
            raise self.unexpected()
        return Query(self.query, tuple(fields), count, obj.text, obj.pos, where, tuple(order), limit, offset)

    def count_clause(self, word: str) -> int | None:
        if not self.accept(word):
            return None
        token = self.tok
        if token.kind != "number" or not token.text.isdigit():
            raise self.unexpected()
        self.advance()
        return int(token.text)

    def order_item(self) -> OrderItem:
        path = self.path()
        descending = False
        if self.accept("desc"):
            descending = True
        else:
            self.accept("asc")
        nulls_last = False
        if self.accept("nulls"):
            if self.accept("last"):
                nulls_last = True
            elif not self.accept("first"):
                raise self.unexpected()
        return OrderItem(path, descending, nulls_last)

    def condition(self) -> Any:
        if self.accept("not"):
            operand = self.term()
            if self.tok.word in ("and", "or"):
                raise self.unexpected()
            return Not(operand)
        first = self.term()
        joiner = self.tok.word
        if joiner not in ("and", "or"):
            return first
        operands = [first]
        while self.tok.word in ("and", "or"):
            if self.tok.word != joiner:
                raise self.unexpected()  # mixing AND and OR needs parentheses
            self.advance()
            operands.append(self.term())
        return BoolOp(joiner.upper(), tuple(operands))

    def term(self) -> Any:
        if self.tok.kind == "(":
            self.advance()
            inner = self.condition()
            if self.tok.kind != ")":
                raise self.unexpected()
            self.advance()
            return inner
        path = self.path()
        token = self.tok
        if token.kind == "op":
            self.advance()
            return Comparison(path, "!=" if token.text == "<>" else token.text, self.value())
        if token.word == "like":
            self.advance()
            return Comparison(path, "LIKE", self.value())
        negated = token.word == "not"
        if negated:
            self.advance()
        if self.tok.word != "in":
            raise self.unexpected()
        self.advance()
        if self.tok.kind != "(":
            raise self.unexpected()
        self.advance()
        values = [self.value()]
        while self.tok.kind == ",":
            self.advance()
            values.append(self.value())
        if self.tok.kind != ")":
            raise self.unexpected()
        self.advance()
        return Comparison(path, "NOT IN" if negated else "IN", tuple(values))

    def value(self) -> Literal:
        token = self.advance()
        if token.kind == "string":
            return Literal("string", None, token.text, token.pos, token.raw)
        if token.kind == "datetime":
            moment = parse_datetime(token.text)
            if moment is None:
                raise malformed(self.query, token.pos, f"invalid dateTime: {token.text}")
            return Literal("datetime", moment, token.text, token.pos)
        if token.kind == "date":
            day = parse_date(token.text)
            if day is None:
                raise malformed(self.query, token.pos, f"invalid date: {token.text}")
            return Literal("date", day, token.text, token.pos)
        if token.kind == "number":
            return Literal("number", float(token.text), token.text, token.pos)
        if token.word in ("null", "true", "false"):
            kind = "null" if token.word == "null" else "boolean"
            return Literal(kind, None if kind == "null" else token.word == "true", token.text, token.pos)
        if token.kind == "ident":
            raise malformed(self.query, token.pos,
                            f"the relsync sandbox does not support the date literal or bind variable {token.text}")
        raise self.unexpected(token)


def parse(query: str) -> Query:
    """Parse ``query`` or raise :class:`SoqlError` (MALFORMED_QUERY)."""
    return _Parser(query).parse()
