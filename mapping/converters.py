"""The named converters a field mapping may apply to a source value.

Each converter takes the value read from the source path and returns a string, or
None when there is nothing there (so the mapping's default applies). Bad input
raises ConversionError; mapping.fields adds the key path and the record.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from typing import Any

from mapping import clock

__all__ = [
    "CONVERTERS",
    "ConversionError",
    "adf_to_text",
    "convert",
    "datetime",
    "describe",
    "first",
    "join",
    "lower",
    "map_key",
    "names",
    "person_email",
    "person_name",
    "references",
    "text",
]


class ConversionError(ValueError):
    """A source value that a converter cannot read."""


def describe(value: Any) -> str:
    """A short, admin-readable description of a source value for error messages."""
    if isinstance(value, dict):
        keys = ", ".join(sorted(map(str, value))[:6])
        return f"an object with keys {keys}" if keys else "an empty object"
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def map_key(value: Any) -> str:
    """The text form of a source value as it is looked up in a value table (``map``)."""
    # YAML and JSON both spell booleans true/false; Python would say True/False.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _scalar(value: Any, converter: str) -> str:
    if isinstance(value, (dict, list)):
        raise ConversionError(f"{converter} expects a single value, got {describe(value)}")
    return map_key(value)


def text(value: Any) -> str | None:
    """The value as text, surrounding whitespace removed."""
    if value is None:
        return None
    return _scalar(value, "text").strip()


def lower(value: Any) -> str | None:
    """The value as lower-case text."""
    if value is None:
        return None
    return _scalar(value, "lower").lower()


def first(value: Any) -> Any:
    """The first element of a list (None for an empty list)."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise ConversionError(f"first expects a list, got {describe(value)}")
    return value[0] if value else None


def names(value: Any) -> str | None:
    """The ``name`` of each object in a list, joined with ", " in source order."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise ConversionError(f"names expects a list of objects with a name, got {describe(value)}")
    found = []
    for position, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ConversionError(
                f"names expects a list of objects with a name; item {position} is {describe(item)}"
            )
        found.append(item["name"])
    return ", ".join(found) or None


# Where each vendor puts a person's name and email: an Airtable collaborator {id, email,
# name}, a Jira user {accountId, displayName, emailAddress}, a Salesforce User or Queue
# (Owner: {Name, Email}).
_PERSON_KEYS = {"name": ("name", "displayName", "Name"), "email": ("email", "emailAddress", "Email")}


def _person(value: Any, part: str) -> str | None:
    converter = f"person_{part}"
    if value is None:
        return None
    people = value if isinstance(value, list) else [value]
    found = []
    for position, person in enumerate(people):
        if isinstance(person, str) and part == "email" and "@" in person:
            found.append(person)  # a plain email field holds the address itself
            continue
        if not isinstance(person, dict):
            where = f"item {position} is" if isinstance(value, list) else "got"
            raise ConversionError(f"{converter} expects a person (an object with a name), {where} {describe(person)}")
        keys = [key for key in _PERSON_KEYS[part] if isinstance(person.get(key), str) and person[key]]
        if keys:
            found.append(person[keys[0]])
        elif not any(key in person for keys_ in _PERSON_KEYS.values() for key in keys_):
            # Neither a name nor an email: not a person. A person without this part (Jira
            # hides most email addresses) reads as empty.
            raise ConversionError(
                f"{converter} expects a person with a {' or '.join(_PERSON_KEYS['name'])}, got {describe(person)}"
            )
    return ", ".join(found) or None


def person_name(value: Any) -> str | None:
    """A person's name: an Airtable collaborator, a Jira user, a Salesforce owner (a list: names joined)."""
    return _person(value, "name")


def person_email(value: Any) -> str | None:
    """A person's email address, from the same shapes as ``person_name`` (hidden addresses read as empty)."""
    return _person(value, "email")


def join(value: Any) -> str | None:
    """A list of values joined with ", " in source order."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise ConversionError(f"join expects a list, got {describe(value)}")
    parts = [_scalar(item, "join") for item in value if item is not None]
    return ", ".join(parts) or None


def datetime(value: Any) -> str | None:
    """A source timestamp as UTC ISO-8601 with milliseconds and ``Z``."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ConversionError("datetime expects a date-time with a time zone, got one without")
        return clock.stamp(value)
    if not isinstance(value, str):
        raise ConversionError(f"datetime expects a date-time text, got {describe(value)}")
    try:
        return clock.stamp(value)
    except clock.TimestampError:
        raise ConversionError(
            f"datetime expects a date-time with a time zone like 2026-11-20T10:15:30.123+0000, got {describe(value)}"
        ) from None


# -- Atlassian Document Format ------------------------------------------------------

_BLOCKS = frozenset(
    {
        "doc", "paragraph", "heading", "bulletList", "orderedList", "listItem", "codeBlock",
        "blockquote", "rule", "panel", "table", "tableRow", "tableHeader", "tableCell",
        "mediaSingle", "mediaGroup", "blockCard", "expand", "nestedExpand", "taskList",
        "taskItem", "decisionList", "decisionItem", "layoutSection", "layoutColumn",
    }
)


def _inline(node: Any) -> str:
    """Text of an inline node (or of any node, flattened to one run of text)."""
    if not isinstance(node, dict):
        return node if isinstance(node, str) else ""
    kind = node.get("type")
    attrs = node.get("attrs") or {}
    if kind == "text":
        value = str(node.get("text") or "")
        for mark in node.get("marks") or []:
            href = (mark.get("attrs") or {}).get("href") if isinstance(mark, dict) else None
            # A plain-text reader would lose the link target, so keep it beside the words.
            if mark.get("type") == "link" and href and href != value:
                value = f"{value} ({href})"
        return value
    if kind == "hardBreak":
        return "\n"
    if kind == "mention":
        return str(attrs.get("text") or "@" + str(attrs.get("id") or "someone"))
    if kind in ("emoji", "status"):
        return str(attrs.get("text") or attrs.get("shortName") or "")
    if kind in ("inlineCard", "blockCard"):
        return str(attrs.get("url") or "")
    if kind == "date" and str(attrs.get("timestamp", "")).isdigit():
        moment = dt.datetime.fromtimestamp(int(attrs["timestamp"]) / 1000, dt.UTC)
        return moment.date().isoformat()
    return "".join(_inline(child) for child in node.get("content") or [])


def _indent(text_: str, prefix: str, rest: str) -> str:
    lines = text_.split("\n")
    return "\n".join([prefix + lines[0], *(rest + line if line else line for line in lines[1:])])


def _list(node: dict[str, Any], ordered: bool) -> str:
    start = (node.get("attrs") or {}).get("order", 1) if ordered else 1
    items = []
    for number, item in enumerate(node.get("content") or [], start=start if isinstance(start, int) else 1):
        marker = f"{number}. " if ordered else "- "
        body = "\n".join(_block(child) for child in (item.get("content") or []) if isinstance(child, dict))
        items.append(_indent(body, marker, " " * len(marker)))
    return "\n".join(items)


def _block(node: dict[str, Any]) -> str:
    """Plain text of a block node."""
    kind = node.get("type")
    children = [child for child in node.get("content") or [] if isinstance(child, dict)]
    if kind in ("doc", "panel", "expand", "nestedExpand", "layoutSection", "layoutColumn", "mediaSingle"):
        return "\n\n".join(part for part in map(_block, children) if part)
    if kind in ("paragraph", "heading"):
        return "".join(map(_inline, children))
    if kind in ("bulletList", "taskList", "decisionList"):
        return _list(node, ordered=False)
    if kind == "orderedList":
        return _list(node, ordered=True)
    if kind == "codeBlock":
        language = (node.get("attrs") or {}).get("language") or ""
        return f"```{language}\n{''.join(map(_inline, children))}\n```"
    if kind == "blockquote":
        quoted = "\n\n".join(part for part in map(_block, children) if part)
        return "\n".join(f"> {line}" if line else ">" for line in quoted.split("\n"))
    if kind == "rule":
        return "---"
    if kind == "table":
        return "\n".join(_block(row) for row in children)
    if kind == "tableRow":
        return " | ".join(_block(cell).replace("\n", " ") for cell in children)
    if kind in ("tableCell", "tableHeader", "listItem", "taskItem", "decisionItem"):
        if any(child.get("type") in _BLOCKS for child in children):
            return "\n".join(part for part in map(_block, children) if part)
        return "".join(map(_inline, children))
    if kind in _BLOCKS or children and all(child.get("type") in _BLOCKS for child in children):
        return "\n\n".join(part for part in map(_block, children) if part)
    # Unknown or inline node standing where a block should be: keep its words.
    return _inline(node)


def adf_to_text(value: Any) -> str | None:
    """Atlassian Document Format (Jira Cloud rich text) as plain text; plain strings pass."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if not isinstance(value, dict) or "type" not in value:
        raise ConversionError(f"adf_to_text expects an Atlassian document, got {describe(value)}")
    rendered = _block(value)
    # Empty paragraphs in the editor become runs of blank lines; one blank line is enough.
    rendered = re.sub(r"\n{3,}", "\n\n", rendered)
    return "\n".join(line.rstrip() for line in rendered.split("\n")).strip() or None


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "text": text,
    "adf_to_text": adf_to_text,
    "datetime": datetime,
    "lower": lower,
    "first": first,
    "names": names,
    "join": join,
    "person_name": person_name,
    "person_email": person_email,
}
"""Converter name (as written in the config's ``convert:``) -> function."""


def convert(name: str, value: Any) -> Any:
    """Apply the converter called ``name`` to ``value``."""
    return CONVERTERS[name](value)


_REFERENCE_SEPARATORS = re.compile(r"[\s,;]+")


def references(value: Any, link_types: Sequence[str] | None = None) -> list[str]:
    """The request references a dependency field holds, in order, without repeats.

    ``value`` is text (``OPS-12, jira:OPS-14``: split on commas, semicolons and
    whitespace), one id, or a list of ids or of objects with an ``id`` or ``key`` (a
    linked-record or lookup field). With ``link_types``, ``value`` is Jira's
    ``issuelinks`` list: the key of each linked issue whose link, described from this
    issue (``type.inward`` for an ``inwardIssue``, ``type.outward`` for an
    ``outwardIssue``), is one of ``link_types`` (compared ignoring case).
    """
    if value is None:
        return []
    found: list[str] = []
    if link_types is not None:
        if not isinstance(value, list):
            raise ConversionError(f"issue links must be a list, got {describe(value)}")
        wanted = {name.casefold() for name in link_types}
        for link in value:
            if not isinstance(link, dict):
                raise ConversionError(f"an issue link must be an object, got {describe(link)}")
            kind = link.get("type") or {}
            for side, label in (("inwardIssue", "inward"), ("outwardIssue", "outward")):
                other = link.get(side)
                if isinstance(other, dict) and str(kind.get(label, "")).casefold() in wanted and other.get("key"):
                    found.append(str(other["key"]))
    else:
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                ident = item.get("id") or item.get("key")
                if ident is None:
                    raise ConversionError(f"a reference must have an id or a key, got {describe(item)}")
                found.append(str(ident))
            elif isinstance(item, list):
                raise ConversionError(f"a reference must be a single value, got {describe(item)}")
            else:
                found += [part for part in _REFERENCE_SEPARATORS.split(map_key(item)) if part]
    return list(dict.fromkeys(found))
