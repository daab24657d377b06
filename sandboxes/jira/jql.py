"""A JQL subset, part one: tokenizer and parser to an AST (:mod:`jql_eval` runs it).

The grammar covers what relsync and its tests send: clauses ``field op operand`` joined
by AND/OR/NOT and parentheses, then ``ORDER BY field [ASC|DESC], ...``, with quoted
strings (double or single quotes, backslash escapes). Errors carry Jira's own
sentences; nothing unsupported is ever ignored, it raises :class:`JqlError`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_OPERATORS = "The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'."
_KEYWORDS = {"and", "or", "not", "in", "is", "empty", "null", "order", "by", "asc", "desc", "was", "changed"}
_RESERVED = set(";?%^$#@{}\\+")
_SPECIAL = set(" \t\r\n\"'(),=!<>~&|") | _RESERVED
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t", "r": "\r", " ": " "}


class JqlError(Exception):
    """A query Jira would refuse with 400; ``messages`` are Jira's ``errorMessages``."""

    def __init__(self, messages: str | list[str]) -> None:
        self.messages = [messages] if isinstance(messages, str) else list(messages)
        super().__init__("; ".join(self.messages))


@dataclass(frozen=True)
class Token:
    """One lexical token; ``pos`` is the 0-based offset in the query."""

    kind: str  # word | string | op | ( | ) | , | eof
    text: str
    pos: int


def _syntax(message: str, pos: int | None = None) -> JqlError:
    where = f" (line 1, character {pos + 1})" if pos is not None else ""
    return JqlError(f"Error in the JQL Query: {message}{where}")


def tokenize(query: str) -> list[Token]:
    """Split ``query`` into tokens, decoding quoted strings and their backslash escapes."""
    tokens: list[Token] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
        elif ch in "\"'":
            start = i
            text, i = _read_string(query, i)
            tokens.append(Token("string", text, start))
        elif ch in "(),":
            tokens.append(Token(ch, ch, i))
            i += 1
        elif query.startswith(("!=", "!~", ">=", "<=", "&&", "||"), i):
            tokens.append(Token("op", query[i : i + 2], i))
            i += 2
        elif ch in "=~<>!":
            tokens.append(Token("op", ch, i))
            i += 1
        elif ch in _RESERVED or ch in "&|":
            raise _syntax(
                f"The character '{ch}' is a reserved JQL character. You must enclose it in a string "
                f"or use the escape '\\u{ord(ch):04x}' instead.",
                i,
            )
        else:
            start = i
            while i < n and query[i] not in _SPECIAL:
                i += 1
            tokens.append(Token("word", query[start:i], start))
    tokens.append(Token("eof", "", n))
    return tokens


def _read_string(query: str, start: int) -> tuple[str, int]:
    quote, i, out = query[start], start + 1, []
    while i < len(query):
        ch = query[i]
        if ch == "\\" and i + 1 < len(query):
            nxt = query[i + 1]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", query[i + 2 : i + 6]):
                out.append(chr(int(query[i + 2 : i + 6], 16)))
                i += 6
                continue
            if nxt not in _ESCAPES:
                raise _syntax(f"Illegal escape sequence '\\{nxt}' in the string '{''.join(out)}'.", i)
            out.append(_ESCAPES[nxt])
            i += 2
        elif ch == quote:
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise _syntax(f"The quoted string '{''.join(out)}' has not been completed.", start)


# -- AST ----------------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    """A literal operand; ``empty`` for the EMPTY/NULL keywords."""

    text: str
    pos: int
    empty: bool = False


@dataclass(frozen=True)
class Function:
    """A function operand such as ``currentUser()``."""

    name: str
    args: tuple[str, ...]
    pos: int


@dataclass(frozen=True)
class Clause:
    """``field op operand``; ``operand`` is a Value, a Function or a tuple of them (lists)."""

    field: str
    pos: int
    op: str
    operand: Any


@dataclass(frozen=True)
class BoolOp:
    """AND / OR over two or more children, or NOT over one."""

    op: str
    children: tuple[Any, ...]


@dataclass(frozen=True)
class SortKey:
    """One ORDER BY item."""

    field: str
    pos: int
    descending: bool


@dataclass(frozen=True)
class Query:
    """A parsed query: the filter (None when unbounded) and the ordering."""

    where: Any
    order: tuple[SortKey, ...]


class _Parser:
    def __init__(self, query: str) -> None:
        self.tokens = tokenize(query)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def keyword(self, *words: str) -> bool:
        return self.tok.kind == "word" and self.tok.text.lower() in words

    def advance(self) -> Token:
        token = self.tok
        self.i += 1
        return token

    def parse(self) -> Query:
        where = None
        if self.tok.kind != "eof" and not self.keyword("order"):
            where = self.parse_or()
        order: list[SortKey] = []
        if self.keyword("order"):
            self.advance()
            if not self.keyword("by"):
                raise self.expected("'by'")
            self.advance()
            order.append(self.parse_sort())
            while self.tok.kind == ",":
                self.advance()
                order.append(self.parse_sort())
        if self.tok.kind != "eof":
            raise _syntax(f"Expecting either 'OR' or 'AND' but got '{self.tok.text}'.", self.tok.pos)
        return Query(where, tuple(order))

    def expected(self, what: str) -> JqlError:
        if self.tok.kind == "eof":
            return _syntax(f"Expecting {what} before the end of the query.")
        return _syntax(f"Expecting {what} but got '{self.tok.text}'.", self.tok.pos)

    def parse_sort(self) -> SortKey:
        name, pos = self.parse_field()
        descending = False
        if self.keyword("asc", "desc"):
            descending = self.advance().text.lower() == "desc"
        return SortKey(name, pos, descending)

    def parse_or(self) -> Any:
        children = [self.parse_and()]
        while self.keyword("or") or (self.tok.kind == "op" and self.tok.text == "||"):
            self.advance()
            children.append(self.parse_and())
        return children[0] if len(children) == 1 else BoolOp("or", tuple(children))

    def parse_and(self) -> Any:
        children = [self.parse_not()]
        while self.keyword("and") or (self.tok.kind == "op" and self.tok.text == "&&"):
            self.advance()
            children.append(self.parse_not())
        return children[0] if len(children) == 1 else BoolOp("and", tuple(children))

    def parse_not(self) -> Any:
        if self.keyword("not") or (self.tok.kind == "op" and self.tok.text == "!"):
            self.advance()
            return BoolOp("not", (self.parse_not(),))
        if self.tok.kind == "(":
            self.advance()
            inner = self.parse_or()
            if self.tok.kind != ")":
                raise self.expected("')'")
            self.advance()
            return inner
        return self.parse_clause()

    def parse_field(self) -> tuple[str, int]:
        token = self.tok
        if token.kind == "eof":
            raise _syntax("Expecting a field name at the end of the query.")
        if token.kind == "string" or (token.kind == "word" and token.text.lower() not in _KEYWORDS):
            self.advance()
            return token.text, token.pos
        raise _syntax(f"Expecting a field name but got '{token.text}'.", token.pos)

    def parse_clause(self) -> Clause:
        name, pos = self.parse_field()
        token = self.tok
        if token.kind == "op" and token.text in ("=", "!=", "~", "!~", ">", ">=", "<", "<="):
            self.advance()
            return Clause(name, pos, token.text, self.parse_operand(list_allowed=False))
        if self.keyword("in"):
            self.advance()
            return Clause(name, pos, "in", self.parse_operand(list_allowed=True))
        if self.keyword("not"):
            self.advance()
            if not self.keyword("in"):
                raise self.expected("'IN'")
            self.advance()
            return Clause(name, pos, "not in", self.parse_operand(list_allowed=True))
        if self.keyword("is"):
            self.advance()
            op = "is"
            if self.keyword("not"):
                self.advance()
                op = "is not"
            if not self.keyword("empty", "null"):
                raise self.expected("'EMPTY' or 'NULL'")
            return Clause(name, pos, op, Value(self.advance().text, self.tokens[self.i - 1].pos, empty=True))
        if self.keyword("was", "changed"):
            raise JqlError(f"The operator '{token.text.upper()}' is not supported by the relsync sandbox.")
        if token.kind == "eof":
            raise _syntax(f"Expecting operator before the end of the query. {_OPERATORS}")
        raise _syntax(f"Expecting operator but got '{token.text}'. {_OPERATORS}", token.pos)

    def parse_operand(self, *, list_allowed: bool) -> Any:
        if self.tok.kind == "(":
            if not list_allowed:
                raise self.expected("either a value, list or function")
            self.advance()
            items = [self.parse_single()]
            while self.tok.kind == ",":
                self.advance()
                items.append(self.parse_single())
            if self.tok.kind != ")":
                raise self.expected("')'")
            self.advance()
            return tuple(items)
        return self.parse_single()

    def parse_single(self) -> Any:
        token = self.tok
        if token.kind == "string":
            self.advance()
            return Value(token.text, token.pos)
        if token.kind == "word":
            lowered = token.text.lower()
            if lowered in ("empty", "null"):
                self.advance()
                return Value(token.text, token.pos, empty=True)
            if lowered in _KEYWORDS:
                raise _syntax(
                    f"Expecting either a value, list or function but got '{token.text}'. "
                    f"You must surround '{token.text}' in quotation marks to use it as a value.",
                    token.pos,
                )
            self.advance()
            if self.tok.kind == "(":
                return self.parse_call(token)
            return Value(token.text, token.pos)
        if token.kind == "eof":
            raise _syntax("Expecting either a value, list or function before the end of the query.")
        raise _syntax(
            f"Expecting either a value, list or function but got '{token.text}'. "
            f"You must surround '{token.text}' in quotation marks to use it as a value.",
            token.pos,
        )

    def parse_call(self, name: Token) -> Function:
        self.advance()
        args: list[str] = []
        while self.tok.kind in ("word", "string"):
            args.append(self.advance().text)
            if self.tok.kind == ",":
                self.advance()
        if self.tok.kind != ")":
            raise self.expected("')'")
        self.advance()
        return Function(name.text, tuple(args), name.pos)


def parse(query: str) -> Query:
    """Parse ``query``; raises :class:`JqlError` with Jira's syntax messages."""
    return _Parser(query).parse()
