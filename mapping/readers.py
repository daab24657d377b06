"""Field readers built once per mapping: a record's value read, converted and translated.

``SourceMapping`` interprets its config for a record (``SourceMapping._read``); with
many records to a page, the same decisions (which path, which converter, which table)
are taken over and over. A reader takes them once, when the mapping is built. It
answers only when the value translates: for a value the mapping refuses it answers
None, and the mapping's own reading raises the error with its words, so readers and
mapping cannot disagree on what an error says.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mapping.converters import CONVERTERS, ConversionError, map_key

if TYPE_CHECKING:
    from config.schema import FieldMap

__all__ = ["FieldReader", "field_reader", "path_reader", "read_path"]

_ABSENT = object()

FieldReader = Callable[[dict[str, Any]], tuple[str | None, str | None] | None]
"""A record's raw payload -> (source value before the value table, normalized value), or None: ask the mapping."""


def read_path(raw: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``raw`` (``fields.fixVersions.0.name``), or None.

    Integer segments index lists; anything absent or null along the way gives None.
    """
    current = raw
    for segment, index in _segments(path):
        if isinstance(current, dict):
            current = current.get(segment, _ABSENT)
        elif isinstance(current, list) and index is not None:
            current = current[index] if index < len(current) else _ABSENT
        else:
            return None
        if current is _ABSENT or current is None:
            return None
    return current


@functools.lru_cache(maxsize=1024)
def _segments(path: str) -> tuple[tuple[str, int | None], ...]:
    """``path``'s segments, each with its list index if it is one (paths are few; records are many)."""
    return tuple((part, int(part) if part.isdecimal() and part.isascii() else None) for part in path.split("."))


def path_reader(path: str) -> Callable[[Any], Any]:
    """``read_path(raw, path)`` as a function of ``raw``; a path of keys only, without a list index
    (``Subject``, ``fields.Title``, ``fields.status.name``: most of them), without the walk."""
    segments = _segments(path)
    if any(index is not None for _, index in segments):
        return functools.partial(_read_at, path=path)
    keys = [segment for segment, _ in segments]
    if len(keys) == 1:
        (only,) = keys

        def one(raw: Any) -> Any:
            return raw.get(only) if isinstance(raw, dict) else None

        return one
    if len(keys) == 2:
        outer, inner = keys

        def two(raw: Any) -> Any:
            if isinstance(raw, dict):
                found = raw.get(outer)
                if isinstance(found, dict):
                    return found.get(inner)
            return None

        return two

    def walk(raw: Any) -> Any:
        for key in keys:
            if not isinstance(raw, dict):
                return None
            raw = raw.get(key)
        return raw

    return walk


def _read_at(raw: Any, *, path: str) -> Any:
    return read_path(raw, path)


def field_reader(name: str, spec: FieldMap, vocabulary: tuple[str, ...] | None) -> FieldReader:
    """The reader of normalized field ``name`` as ``spec`` maps it (``vocabulary``: its fixed values, if any).

    Not for ``depends_on``, whose references the mapping reads itself.
    """
    read = path_reader(spec.path)
    converter = CONVERTERS[spec.convert] if spec.convert is not None else None
    translate = _translator(spec, vocabulary)

    def reader(raw: dict[str, Any]) -> tuple[str | None, str | None] | None:
        found = read(raw)
        if converter is not None:
            try:
                found = converter(found)
            except ConversionError:
                return None
        if found is None:
            return translate(None)
        if isinstance(found, (dict, list)):
            return None
        return translate(map_key(found))

    return reader


def _translator(
    spec: FieldMap, vocabulary: tuple[str, ...] | None
) -> Callable[[str | None], tuple[str | None, str | None] | None]:
    """``SourceMapping._translate`` for one field, its value table and defaults looked at once."""
    empty: tuple[str | None, str | None] = (None, spec.when_empty if spec.when_empty is not None else spec.default)
    default = spec.default
    if spec.map is not None:
        table = spec.map
    elif vocabulary is not None:
        table = {value: value for value in vocabulary}
    else:
        def as_is(value: str | None) -> tuple[str | None, str | None] | None:
            if value is None or not value.strip():
                return empty
            return value, value

        return as_is

    def translate(value: str | None) -> tuple[str | None, str | None] | None:
        if value is None or not value.strip():
            return empty
        found = table.get(value)
        if found is not None:
            return value, found
        if default is not None:
            return value, default
        return None  # not translatable: the mapping raises the error

    return translate
