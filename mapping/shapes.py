"""Can a mapped path, with its converter, produce one value from the field's type in the source?

``relsync check --online`` reads each source's field types (Airtable's base schema,
Salesforce describe, Jira ``GET /field``); this module, pure, says which mapped fields
cannot work with them: an object read without a key or a converter (``fields.Owner`` on a
collaborator), a key read on text (``.value`` on a text field), a list without ``join`` or
``first``, rich text without ``adf_to_text``. Each vendor type is first reduced to a
shape; the converters say which shapes they take.
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config.fieldmap import FieldMapping, WriteTargets

__all__ = ["Shape", "jira_type", "shape_of", "shape_problems", "write_problems"]


@dataclass(frozen=True)
class Shape:
    """What a field's value looks like: ``text``, ``object``, ``person`` or ``document``, or a list of one."""

    kind: str
    listed: bool = False
    keys: frozenset[str] = frozenset()
    """The keys an object is known to have (empty: not known)."""

    def describe(self) -> str:
        """``a list of objects``, ``text``, ``a person {email, id, name}``."""
        noun = {"text": "text", "object": "an object", "person": "a person", "document": "an Atlassian document"}[self.kind]
        keys = f" {{{', '.join(sorted(self.keys))}}}" if self.keys else ""
        if self.listed:
            plural = {"text": "values", "object": "objects", "person": "people", "document": "documents"}[self.kind]
            return f"a list of {plural}{keys}"
        return f"{noun}{keys}"


_TEXT = Shape("text")
_COLLABORATOR = frozenset({"id", "email", "name"})
_AIRTABLE: dict[str, Shape] = {
    "singleCollaborator": Shape("person", keys=_COLLABORATOR),
    "multipleCollaborators": Shape("person", True, _COLLABORATOR),
    "createdBy": Shape("person", keys=_COLLABORATOR),
    "lastModifiedBy": Shape("person", keys=_COLLABORATOR),
    "multipleSelects": Shape("text", True),
    "multipleRecordLinks": Shape("text", True),
    "multipleLookupValues": Shape("text", True),
    "multipleAttachments": Shape("object", True, frozenset({"id", "url", "filename", "size", "type"})),
    "barcode": Shape("object", keys=frozenset({"text", "type"})),
    "button": Shape("object", keys=frozenset({"label", "url"})),
}
_JIRA_OBJECTS: dict[str, frozenset[str]] = {
    "user": frozenset({"accountId", "displayName", "emailAddress", "active", "timeZone"}),
    "option": frozenset({"id", "value"}),
    "status": frozenset({"id", "name", "statusCategory"}),
    "priority": frozenset({"id", "name"}),
    "issuetype": frozenset({"id", "name"}),
    "version": frozenset({"id", "name", "released", "releaseDate"}),
    "component": frozenset({"id", "name"}),
    "project": frozenset({"id", "key", "name"}),
}
_RICH_TEXT_JIRA = ("description", "environment", "com.atlassian.jira.plugin.system.customfieldtypes:textarea")

# Converter -> the shapes it reads (None: any; the references reader is not checked here).
_TAKES: dict[str, tuple[str, ...]] = {
    "text": ("text",), "lower": ("text",), "datetime": ("text",), "adf_to_text": ("text", "document"),
    "first": ("list",), "join": ("list text",), "names": ("list object", "list person"),
    "person_name": ("person", "list person"), "person_email": ("person", "list person", "text", "list text"),
}


def shape_of(system: str, vendor_type: str) -> Shape:
    """The shape of a field's value from the type the system's metadata gives.

    Airtable: the field ``type``. Salesforce: the describe ``type``, or ``relationship``
    for a relationship name (``Owner``). Jira: ``schema.type``, then ``:items`` for arrays
    and ``|system or custom`` (``array:version|fixVersions``, ``string|description``).
    """
    if system == "airtable":
        return _AIRTABLE.get(vendor_type, _TEXT)
    if system == "salesforce":
        return Shape("object") if vendor_type == "relationship" else _TEXT
    kind, _, origin = vendor_type.partition("|")
    base, _, items = kind.partition(":")
    if base == "string" and origin in _RICH_TEXT_JIRA:
        return Shape("document", keys=frozenset({"type", "version", "content"}))
    if base == "array":
        inner = _JIRA_OBJECTS.get(items)
        if items == "user":
            return Shape("person", True, inner or frozenset())
        if inner is not None:
            return Shape("object", True, inner)
        return Shape("text", True) if items in ("string", "") else Shape("object", True)
    if base == "user":
        return Shape("person", keys=_JIRA_OBJECTS["user"])
    if base in _JIRA_OBJECTS:
        return Shape("object", keys=_JIRA_OBJECTS[base])
    if base in ("any", "issuelinks", "sd-customerrequesttype"):
        return Shape("object")
    return _TEXT


def jira_type(schema: dict[str, Any] | None) -> str:
    """A Jira field's ``schema`` (from ``GET /rest/api/3/field``) as the text ``shape_of`` reads."""
    schema = schema or {}
    kind = str(schema.get("type") or "")
    if schema.get("items"):
        kind += f":{schema['items']}"
    return f"{kind}|{schema.get('system') or schema.get('custom') or ''}"


def _split(system: str, path: str) -> tuple[str, list[str]] | None:
    parts = path.split(".")
    if system == "salesforce":
        return parts[0], parts[1:]
    if parts[0] != "fields" or len(parts) < 2:
        return None  # Airtable's id and createdTime, Jira's key: not fields with a type
    return parts[1], parts[2:]


def _after(shape: Shape, rest: list[str]) -> tuple[Shape | None, str | None]:
    """The shape reached by walking ``rest`` into ``shape``, or a problem."""
    for position, segment in enumerate(rest):
        if shape.listed:
            if not segment.isdecimal():
                return None, f"holds {shape.describe()}: pick one with a number (.0) before .{segment}, or use a converter"
            shape = Shape(shape.kind, False, shape.keys)
            continue
        if shape.kind == "text":
            return None, f"holds {shape.describe()}, which has no .{segment}"
        if shape.keys and segment not in shape.keys:
            return None, f"holds {shape.describe()}, which has no .{segment}"
        if position < len(rest) - 1 or shape.kind in ("object", "person", "document"):
            return None, None  # inside an object: what is further in, the metadata does not say
    return shape, None


def _problem(system: str, shape: Shape, converter: str | None) -> str | None:
    token = f"list {shape.kind}" if shape.listed else shape.kind
    if converter is None:
        if not shape.listed and shape.kind == "text":
            return None
        if shape.kind == "person":
            hint = "read its .name (or .email), or add convert: person_name" if not shape.listed else "add convert: person_name"
        elif shape.kind == "document":
            hint = "add convert: adf_to_text"
        elif shape.listed:
            hint = "add convert: join (first, or names for objects), or pick one with .0"
        else:
            hint = "read one of its keys"
        return f"holds {shape.describe()}, not a single value; {hint}"
    takes = _TAKES.get(converter)
    if takes is None or token in takes or ("list" in takes and shape.listed):
        return None
    return f"holds {shape.describe()}, which convert: {converter} cannot read"


def shape_problems(system: str, fields: FieldMapping, types: dict[str, str]) -> list[str]:
    """What each mapped field cannot produce, given the source's field types (name or id -> vendor type).

    Fields the types do not name are left to the missing-field check.
    """
    problems = []
    for name in type(fields).model_fields:
        spec = getattr(fields, name)
        if spec is None or name == "depends_on":  # references read ids, lists and issue links alike
            continue
        split = _split(system, spec.path)
        if split is None or split[0] not in types:
            continue
        field, rest = split
        shape, problem = _after(shape_of(system, types[field]), rest)
        if problem is None and shape is not None:
            problem = _problem(system, shape, spec.convert)
        if problem is not None:
            problems.append(f"fields.{name}: {spec.path} {problem}")
    return problems


_WRITABLE: dict[str, dict[str, tuple[str, ...]]] = {
    "jira": {"planned_date": ("date|",), "phase": ("string|",)},
    "airtable": {"planned_date": ("date",), "phase": ("singleLineText", "multilineText", "singleSelect")},
    "salesforce": {"planned_date": ("date",), "phase": ("picklist", "string", "textarea")},
}
"""Per system, the field types each plain written field may go to (a Jira type is matched by its kind)."""
_WRITTEN_AS = {"planned_date": "a date (YYYY-MM-DD)", "phase": "the phase's name as text"}


def write_problems(system: str, write: WriteTargets, types: dict[str, str], choices: dict[str, list[str]] | None = None,
                   phases: Collection[str] = ()) -> list[str]:
    """Which plain written fields (the planned date, the phase) point at a field of a type that cannot take them,
    or at a field of listed values (``choices``) missing one of the ``phases`` relsync may write.

    Jira's bulk edit sets a date picker and a single-line text field; a select would need
    option ids. Fields the types do not name are left to the missing-field check.
    """
    problems = []
    phase = write.phase
    if phase is not None and phase.field in (choices or {}):
        listed = set((choices or {})[phase.field])
        missing = sorted({native for name in phases if (native := phase.native(name)) and native not in listed})
        if missing:
            problems.append(f"write.phase: {phase.field} has no value {', '.join(map(repr, missing))} (relsync writes it "
                            "for a phase of the configured trains); add it to the field's values, or map the phase to "
                            "one of them in write.phase.map")
    for name, target in write.field_targets().items():
        found = types.get(target.field)
        accepted = _WRITABLE.get(system, {}).get(name, ())
        if found is None or any(found == kind or (kind.endswith("|") and found.startswith(kind)) for kind in accepted):
            continue
        shown = found.split("|", 1)[0] or found
        problems.append(f"write.{name}: {target.field} is of type {shown}; relsync writes {_WRITTEN_AS[name]} there: "
                        f"point it at a field of type {' or '.join(k.rstrip('|') for k in accepted)}")
    return problems
