"""Loading the configuration file, with errors that name the key to fix."""
from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from config.schema import Config, KeyPathError

__all__ = ["ConfigError", "load_config", "load_config_text", "secret"]


class ConfigError(Exception):
    """The configuration is wrong; the message names the key path and the problem.

    ``path`` is the dotted key path of the first problem ("" for the file as a whole);
    ``problems`` lists every (key path, problem) found. ``ConfigError("a.b: problem")``
    with one argument is read as key path and problem.
    """

    def __init__(
        self,
        path: str,
        problem: str | None = None,
        *,
        file: str | os.PathLike[str] | None = None,
        more: Sequence[tuple[str, str]] = (),
    ) -> None:
        if problem is None:
            head, sep, tail = path.partition(": ")
            path, problem = (head, tail) if sep and " " not in head else ("", path)
        self.path = path
        self.problem = problem
        self.file = None if file is None else str(file)
        self.problems: list[tuple[str, str]] = [(path, problem), *more]
        super().__init__(self._message())

    def _message(self) -> str:
        lines = [f"{path}: {problem}" if path else problem for path, problem in self.problems]
        if len(lines) == 1:
            body = lines[0]
        else:
            body = f"{len(lines)} problems:\n" + "\n".join(f"  {line}" for line in lines)
        return f"{self.file}: {body}" if self.file else body


def secret(env_name: str, key_path: str, env: Mapping[str, str] | None = None) -> str:
    """The secret held in environment variable ``env_name`` (named at ``key_path``).

    ``env`` replaces ``os.environ`` (the demo and tests pass the sandbox's variables).
    """
    value = (os.environ if env is None else env).get(env_name)
    if value is None:
        raise ConfigError(key_path, f"environment variable {env_name} is not set")
    # A trailing newline from `$(cat tokenfile)` would break the HTTP auth header.
    value = value.strip()
    if not value:
        raise ConfigError(key_path, f"environment variable {env_name} is set but empty")
    return value


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the YAML config file at ``path``; raises ConfigError."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("", "no such file", file=path) from None
    except IsADirectoryError:
        raise ConfigError("", "is a folder, not a config file", file=path) from None
    except PermissionError:
        raise ConfigError("", "cannot be read: permission denied", file=path) from None
    except UnicodeDecodeError:
        raise ConfigError("", "is not UTF-8 text", file=path) from None
    except OSError as error:
        raise ConfigError("", f"cannot be read: {error.strerror or error}", file=path) from None
    return load_config_text(text, base_dir=file.resolve().parent, file=str(path))


def load_config_text(
    text: str, *, base_dir: str | os.PathLike[str], file: str = "<config>"
) -> Config:
    """Validate config YAML given as text; relative paths are taken from ``base_dir``."""
    data = parse_yaml(text, file=file)
    if not isinstance(data, dict):
        found = "nothing" if data is None else f"a {type(data).__name__}"
        raise ConfigError(
            "", f"the top level must be a mapping of keys (store, sources, trains), found {found}", file=file
        )
    try:
        return Config.model_validate(data, context={"base_dir": Path(base_dir)})
    except ValidationError as error:
        problems = _drop_consequences([_describe(detail) for detail in error.errors()])
        # `from None`: the pydantic error carries input values, and inputs may be secrets.
        raise ConfigError(*problems[0], file=file, more=problems[1:]) from None


# -- YAML -----------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML 1.2 scalars: `No`, `On`, `18:00` stay text instead of False, True, 1080.

    Dates stay text too, so pydantic checks them and the error names the key.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag.rsplit(":", 1)[-1] not in ("bool", "int", "float", "timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9_]*|0x[0-9a-fA-F_]+)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)?\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str, *, file: str = "<config>") -> Any:
    """Parse YAML text; syntax errors and repeated keys become ConfigError with line and column."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_repeated_keys(node, (), file, set())
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = ": ".join(part for part in (error.context, error.problem) if part)
        raise ConfigError("", f"{where}not valid YAML: {problem}{_yaml_hint(problem)}", file=file) from None
    except yaml.YAMLError as error:
        raise ConfigError("", f"not valid YAML: {error}", file=file) from None
    finally:
        loader.dispose()


def _yaml_hint(problem: str) -> str:
    # PyYAML speaks parser; say what an admin most likely has to change.
    if "'\\t'" in problem:
        return " (indent with spaces; YAML does not allow tabs)"
    if "block end" in problem or "mapping values are not allowed" in problem:
        return " (check the indentation of this line and the one before, and that each key ends with ': ')"
    if "found unexpected end of stream" in problem or "flow" in problem:
        return " (a quote or bracket opened here is not closed)"
    return ""


def _check_repeated_keys(node: yaml.Node, path: tuple[str, ...], file: str, seen_nodes: set[int]) -> None:
    # PyYAML silently keeps the last of two equal keys; an admin would lose half a mapping.
    if id(node) in seen_nodes:
        return  # an alias: checked where it was anchored (and no blow-up on nested aliases)
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key_node.tag != "tag:yaml.org,2002:merge":
                if key in seen:
                    raise ConfigError(
                        ".".join((*path, key)),
                        f"line {key_node.start_mark.line + 1}: this key is already set on line "
                        f"{seen[key]}; YAML would silently keep only the last one",
                        file=file,
                    )
                seen[key] = key_node.start_mark.line + 1
            _check_repeated_keys(value_node, (*path, str(key)), file, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_repeated_keys(item, (*path, str(index)), file, seen_nodes)


# -- pydantic errors in an admin's words ------------------------------------------------------

_EXPECTED = {
    "string_type": "expected text",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "dict_type": "expected a mapping (indented key: value lines)",
    "model_type": "expected a mapping (indented key: value lines)",
    "model_attributes_type": "expected a mapping (indented key: value lines)",
    "list_type": "expected a list (lines starting with '- ')",
    "date_type": "expected a date like 2026-01-06",
    "date_parsing": "expected a date like 2026-01-06",
    "date_from_datetime_parsing": "expected a date like 2026-01-06",
    "date_from_datetime_inexact": "expected a date like 2026-01-06, without a time",
    "time_type": "expected a time of day like 18:00",
    "time_parsing": "expected a time of day like 18:00",
}


def _drop_consequences(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop "required key missing" where a misspelt sibling key is already reported."""
    suggested = {
        f"{path.rpartition('.')[0]}.{match[1]}".lstrip(".")
        for path, problem in problems
        if (match := re.search(r"did you mean '([^']+)'", problem))
    }
    return [
        (path, problem)
        for path, problem in problems
        if not (problem == "required key missing" and path in suggested)
    ]


def _describe(detail: ErrorDetails) -> tuple[str, str]:
    """(dotted key path, problem in words) for one pydantic error."""
    loc = tuple(detail["loc"])
    kind = detail["type"]
    ctx = detail.get("ctx") or {}
    error = ctx.get("error")
    if isinstance(error, KeyPathError):
        loc = (*loc, *error.subpath)
    path, parent, here = _walk(loc)
    if kind == "missing":
        return path, "required key missing"
    if kind == "extra_forbidden":
        key = str(loc[-1])
        valid = [name for name in getattr(parent, "model_fields", {}) if name != "kind"]
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else (f"; valid keys here: {', '.join(valid)}" if valid else "")
        return path, f"unknown key {key!r}{hint}"
    if kind == "union_tag_not_found":
        return path, f"required key 'kind' missing; say which system this is ({_tags(here)})"
    if kind == "union_tag_invalid":
        return path, f"kind {ctx.get('tag')!r} is not a system relsync knows; use one of {_tags(here)}"
    if kind == "value_error" and error is not None:
        return path, str(error)
    if kind in _EXPECTED:
        return path, f"{_EXPECTED[kind]}, found {_found(detail.get('input'), loc)}"
    if kind == "literal_error":
        return path, f"must be one of {ctx.get('expected')}"
    if kind == "too_short" and isinstance(detail.get("input"), (list, dict)):
        return path, f"needs at least {ctx.get('min_length', 1)} item(s), found {len(detail['input'])}"
    if kind == "string_too_short":
        return path, "must not be empty"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        words = {"greater_than_equal": "at least", "greater_than": "more than",
                 "less_than_equal": "at most", "less_than": "less than"}[kind]
        limit = next(iter(ctx.values()), "")
        return path, f"must be {words} {limit}"
    return path, detail["msg"]


def _found(value: Any, loc: tuple[Any, ...]) -> str:
    """What the file has instead; values under ``auth`` are never shown (they may be secrets)."""
    if value is None:
        return "nothing"
    if isinstance(value, str) and "auth" not in loc and len(value) <= 60:
        return repr(value)
    return _kind_of(value)


def _kind_of(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def _tags(tp: Any) -> str:
    members = _members(tp) if tp is not None else []
    return ", ".join(tag for member in members for tag in _kinds(member))


def _walk(loc: tuple[Any, ...]) -> tuple[str, Any, Any]:
    """The dotted path for ``loc`` (discriminator tags dropped), the type holding its last key, and its type."""
    shown: list[str] = []
    current: Any = Config
    parent: Any = None
    for segment in loc:
        parent = current
        current, is_tag = _step(current, segment)
        if not is_tag:
            shown.append(str(segment))
    if loc and loc[-1] == "[key]":
        shown.pop()
    return ".".join(shown), _unwrap(parent), current


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and Optional from a type annotation."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [arg for arg in typing.get_args(tp) if arg is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp


def _members(tp: Any) -> list[Any]:
    tp = _unwrap(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [_unwrap(arg) for arg in typing.get_args(tp) if arg is not type(None)]
    return [tp]


def _kinds(model: Any) -> list[str]:
    field = getattr(model, "model_fields", {}).get("kind")
    return [str(tag) for tag in typing.get_args(field.annotation)] if field is not None else []


def _step(tp: Any, segment: Any) -> tuple[Any, bool]:
    """The type found at ``segment`` inside ``tp``, and whether the segment was a union tag."""
    if tp is None:
        return None, False
    for member in _members(tp):
        if isinstance(member, type) and issubclass(member, BaseModel):
            if segment in member.model_fields:
                return member.model_fields[segment].annotation, False
            if segment in _kinds(member):
                return member, True
    tp = _unwrap(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is dict and args:
        return args[1], False
    if origin is list and args:
        return args[0], False
    return None, False
