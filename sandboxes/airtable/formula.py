"""Airtable's formula language, the subset ``filterByFormula`` needs: tokens, grammar, checks.

A formula is parsed once into a small tree (:func:`compile_formula`), checked against the
table's fields and the known functions, then evaluated per record by
:mod:`airtable_formula_eval`. Anything the parser or the checks do not accept raises
:class:`FormulaError`, which the sandbox answers with Airtable's 422
``INVALID_FILTER_BY_FORMULA``; nothing is silently ignored.

Syntax, as Airtable documents and pyairtable writes it:
- field references in braces, ``{Field Name}``; inside them a backslash escapes the next
  character, so ``\\}`` is a literal brace (pyairtable's ``field_name()`` escapes that way);
  a one-word field may also be named bare (``Status = 'New'``);
- strings in single or double quotes, with backslash escapes (pyairtable's ``quoted()``
  writes ``'Jane\\'s'``);
- numbers, ``TRUE()``/``FALSE()``, function calls (names are case-insensitive);
- operators ``= != < > <= >=`` (lowest), ``&`` (concatenation), ``+ -``, ``* /``, unary ``-``.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

GENERIC_MESSAGE = "Invalid formula. Please check your formula text."


class FormulaError(ValueError):
    """A formula Airtable would refuse; ``detail`` follows "The formula ... is invalid: "."""

    def __init__(self, detail: str = GENERIC_MESSAGE) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Literal:
    """A number, string or boolean written in the formula."""

    value: object


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A field named in the formula (``{Name}`` or bare ``Name``)."""

    name: str


@dataclass(frozen=True, slots=True)
class Call:
    """A function call; ``name`` is upper-cased."""

    name: str
    args: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Binary:
    """``left op right``."""

    op: str
    left: object
    right: object


@dataclass(frozen=True, slots=True)
class Negate:
    """Unary minus."""

    operand: object


Node = Literal | FieldRef | Call | Binary | Negate

ARITY: dict[str, tuple[int, int | None]] = {
    "AND": (1, None), "OR": (1, None), "XOR": (1, None), "NOT": (1, 1), "IF": (2, 3),
    "BLANK": (0, 0), "TRUE": (0, 0), "FALSE": (0, 0),
    "IS_AFTER": (2, 2), "IS_BEFORE": (2, 2), "IS_SAME": (2, 3), "DATETIME_PARSE": (1, 3),
    "DATEADD": (3, 3), "NOW": (0, 0), "TODAY": (0, 0),
    "LAST_MODIFIED_TIME": (0, None), "CREATED_TIME": (0, 0), "RECORD_ID": (0, 0),
    "FIND": (2, 3), "SEARCH": (2, 3), "LOWER": (1, 1), "UPPER": (1, 1), "LEN": (1, 1),
    "TRIM": (1, 1), "CONCATENATE": (1, None),
}
"""The functions the sandbox evaluates, with (fewest, most) arguments."""

_COMPARISONS = ("=", "!=", "<", ">", "<=", ">=")
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # num, str, field, ident, op, (, ), ",", end
    value: object
    at: int


def _scan_delimited(text: str, start: int, closing: str, *, escapes: bool) -> tuple[str, int]:
    """The text up to the unescaped ``closing`` after ``start``, and the index after it."""
    out: list[str] = []
    index = start
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text) and (escapes or text[index + 1] == closing):
            # In strings every backslash escapes; in braces only "\}" does (pyairtable's
            # field_name() escapes nothing else, so other backslashes are part of the name).
            following = text[index + 1]
            out.append(_ESCAPES.get(following, following) if escapes else following)
            index += 2
            continue
        if char == closing:
            return "".join(out), index + 1
        out.append(char)
        index += 1
    raise FormulaError()


def tokenize(text: str) -> list[_Token]:
    """Split a formula into tokens, or raise :class:`FormulaError`."""
    tokens: list[_Token] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
        elif char == "{":
            name, index_after = _scan_delimited(text, index + 1, "}", escapes=False)
            tokens.append(_Token("field", name, index))
            index = index_after
        elif char in "'\"":
            value, index_after = _scan_delimited(text, index + 1, char, escapes=True)
            tokens.append(_Token("str", value, index))
            index = index_after
        elif char.isdigit() or (char == "." and text[index + 1:index + 2].isdigit()):
            match = _NUMBER.match(text, index)
            assert match is not None
            raw = match.group()
            tokens.append(_Token("num", float(raw) if "." in raw else int(raw), index))
            index = match.end()
        elif char.isalpha() or char == "_":
            match = _IDENT.match(text, index)
            assert match is not None
            tokens.append(_Token("ident", match.group(), index))
            index = match.end()
        elif text.startswith(("!=", "<=", ">="), index):
            tokens.append(_Token("op", text[index:index + 2], index))
            index += 2
        elif char in "=<>&+-*/":
            tokens.append(_Token("op", char, index))
            index += 1
        elif char in "(),":
            tokens.append(_Token(char, char, index))
            index += 1
        else:
            raise FormulaError()
    tokens.append(_Token("end", None, len(text)))
    return tokens


class _Parser:
    """Recursive descent over the token list, one method per precedence level."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, kind: str) -> _Token:
        if self.peek().kind != kind:
            raise FormulaError()
        return self.take()

    def formula(self) -> Node:
        node = self.comparison()
        if self.peek().kind != "end":
            raise FormulaError()
        return node

    def _left_assoc(self, operators: tuple[str, ...], operand: Callable[[], Node]) -> Node:
        node = operand()
        while self.peek().kind == "op" and self.peek().value in operators:
            op = str(self.take().value)
            node = Binary(op, node, operand())
        return node

    def comparison(self) -> Node:
        return self._left_assoc(_COMPARISONS, self.concatenation)

    def concatenation(self) -> Node:
        return self._left_assoc(("&",), self.additive)

    def additive(self) -> Node:
        return self._left_assoc(("+", "-"), self.term)

    def term(self) -> Node:
        return self._left_assoc(("*", "/"), self.unary)

    def unary(self) -> Node:
        token = self.peek()
        if token.kind == "op" and token.value == "-":
            self.take()
            return Negate(self.unary())
        if token.kind == "op" and token.value == "+":
            self.take()
            return self.unary()
        return self.primary()

    def primary(self) -> Node:
        token = self.take()
        if token.kind in ("num", "str"):
            return Literal(token.value)
        if token.kind == "field":
            return FieldRef(str(token.value))
        if token.kind == "(":
            node = self.comparison()
            self.expect(")")
            return node
        if token.kind == "ident":
            name = str(token.value)
            if self.peek().kind == "(":
                self.take()
                return Call(name.upper(), self.arguments())
            if name.upper() in ("TRUE", "FALSE"):
                return Literal(name.upper() == "TRUE")
            return FieldRef(name)
        raise FormulaError()

    def arguments(self) -> tuple[Node, ...]:
        args: list[Node] = []
        if self.peek().kind == ")":
            self.take()
            return ()
        while True:
            args.append(self.comparison())
            token = self.take()
            if token.kind == ")":
                return tuple(args)
            if token.kind != ",":
                raise FormulaError()


def parse(text: str) -> Node:
    """The syntax tree of ``text``, or :class:`FormulaError`."""
    return _Parser(tokenize(text)).formula()


def _walk(node: Node) -> list[Node]:
    nodes: list[Node] = [node]
    if isinstance(node, Call):
        for arg in node.args:
            nodes.extend(_walk(arg))  # type: ignore[arg-type]
    elif isinstance(node, Binary):
        nodes.extend(_walk(node.left))  # type: ignore[arg-type]
        nodes.extend(_walk(node.right))  # type: ignore[arg-type]
    elif isinstance(node, Negate):
        nodes.extend(_walk(node.operand))  # type: ignore[arg-type]
    return nodes


@dataclass(frozen=True)
class Formula:
    """A parsed and checked formula; ``fields`` are the field names it reads."""

    text: str
    tree: Node
    fields: frozenset[str]


def compile_formula(text: str, is_field: Callable[[str], bool]) -> Formula:
    """Parse ``text`` and check it against the table's fields and the known functions.

    Unknown fields are reported together, lower-cased, as Airtable does ("Unknown field
    names: date added"); unknown functions, wrong argument counts and syntax errors get the
    generic "Invalid formula. Please check your formula text.".
    """
    tree = parse(text)
    nodes = _walk(tree)
    unknown = sorted({n.name for n in nodes if isinstance(n, FieldRef) and not is_field(n.name)}, key=str.lower)
    if unknown:
        raise FormulaError("Unknown field names: " + ", ".join(name.lower() for name in unknown))
    for node in nodes:
        if isinstance(node, Call):
            arity = ARITY.get(node.name)
            if arity is None:
                raise FormulaError()
            fewest, most = arity
            if len(node.args) < fewest or (most is not None and len(node.args) > most):
                raise FormulaError()
            if node.name == "LAST_MODIFIED_TIME" and not all(isinstance(a, FieldRef) for a in node.args):
                raise FormulaError()
    fields = frozenset(n.name for n in nodes if isinstance(n, FieldRef))
    return Formula(text=text, tree=tree, fields=fields)


__all__ = [
    "ARITY", "Binary", "Call", "FieldRef", "Formula", "FormulaError", "Literal", "Negate", "Node", "compile_formula", "parse", "tokenize",
]
