"""How source fields map to the normalized request, and what relsync writes back."""
from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from config.base import KeyPathError, Strict, _one_of
from mapping.converters import CONVERTERS as CONVERTER_FUNCTIONS
from mapping.converters import map_key
from mapping.model import PRIORITIES, STATUSES

CONVERTERS: tuple[str, ...] = tuple(CONVERTER_FUNCTIONS)
"""Named converters a field mapping may use (implemented in mapping.converters)."""


# -- field mapping ----------------------------------------------------------------------


def _text_key(value: Any) -> Any:
    # YAML reads `true:` or `3:` as a boolean or a number; source values are looked up as text.
    return map_key(value) if isinstance(value, (bool, int, float)) else value


class FieldMap(Strict):
    """How one normalized field is read from a source record.

    ``path`` is dotted (``fields.priority.name``); ``convert`` names a converter
    applied first; ``map`` translates source values; ``default`` is used when the
    path is absent or empty, or when the value is not in ``map``; ``when_empty``,
    only when the path is absent or empty (an unmapped value is still an error).
    """

    path: str
    map: dict[str, str] | None = None
    default: str | None = None
    when_empty: str | None = None
    convert: str | None = None

    @field_validator("path")
    @classmethod
    def _dotted(cls, value: str) -> str:
        if not value or any(not segment.strip() for segment in value.split(".")):
            raise ValueError(
                f"{value!r} is not a dotted path; write the keys to follow separated by dots, "
                "like fields.priority.name"
            )
        return value

    @field_validator("map", mode="before")
    @classmethod
    def _text_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {_text_key(key): _text_key(target) for key, target in value.items()}
        return value

    @field_validator("default", "when_empty", mode="before")
    @classmethod
    def _text_default(cls, value: Any) -> Any:
        return _text_key(value)

    @field_validator("convert")
    @classmethod
    def _known_converter(cls, value: str | None) -> str | None:
        if value is not None and value not in CONVERTERS:
            raise ValueError(f"unknown converter {value!r}; choose one of {_one_of(CONVERTERS)}")
        return value


class _VocabularyFieldMap(FieldMap):
    """A field whose normalized values come from a fixed vocabulary."""

    vocabulary: ClassVar[tuple[str, ...]] = ()
    noun: ClassVar[str] = ""

    @field_validator("map")
    @classmethod
    def _map_targets(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        wrong = [f"{source!r} maps to {target!r}" for source, target in (value or {}).items()
                 if target not in cls.vocabulary]
        if wrong:
            raise ValueError(
                f"{'; '.join(wrong)}, which is not a relsync {cls.noun}; "
                f"use one of {_one_of(cls.vocabulary)}"
            )
        return value

    @field_validator("default", "when_empty")
    @classmethod
    def _default_target(cls, value: str | None) -> str | None:
        if value is not None and value not in cls.vocabulary:
            raise ValueError(
                f"{value!r} is not a relsync {cls.noun}; use one of {_one_of(cls.vocabulary)}"
            )
        return value


class StatusFieldMap(_VocabularyFieldMap):
    """How the workflow status is read: every source status must map to a relsync status."""

    vocabulary: ClassVar[tuple[str, ...]] = STATUSES
    noun: ClassVar[str] = "status"


class PriorityFieldMap(_VocabularyFieldMap):
    """How the priority is read: mapped values must be relsync priorities."""

    vocabulary: ClassVar[tuple[str, ...]] = PRIORITIES
    noun: ClassVar[str] = "priority"


class DependsOnFieldMap(FieldMap):
    """Where the requests a request depends on are read: a text or lookup field holding
    references (``OPS-12``, ``jira:OPS-12``, an Airtable record id, a Salesforce Id), a
    list of them (an Airtable linked-record field), or, with ``link_types``, Jira's
    ``issuelinks``: the issues on the far side of links described by one of these names
    (``is blocked by``, ``depends on``), as Jira describes the link from this issue."""

    link_types: list[str] | None = None
    also: list[str] = Field(default_factory=list)
    """More source paths whose references count too (Jira links reach Jira issues only, so a
    text field beside them names requests in the other systems)."""


class FieldMapping(Strict):
    """Normalized field -> how it is read from the source. A bare string is a path."""

    title: FieldMap
    description: FieldMap | None = None
    type: FieldMap | None = None
    department: FieldMap | None = None
    requester: FieldMap | None = None
    owner: FieldMap | None = None
    priority: PriorityFieldMap | None = None
    status: StatusFieldMap
    release: FieldMap | None = None
    depends_on: DependsOnFieldMap | None = None
    affected: FieldMap | None = None
    """What the change touches (a Salesforce object, an Airtable table, a Jira component):
    two requests in one release touching the same thing are flagged as a clash."""
    created_at: FieldMap | None = None
    updated_at: FieldMap | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: {"path": value} if isinstance(value, str) else value for key, value in data.items()}
        return data


# -- write-back -------------------------------------------------------------------------


class ReleaseTarget(Strict):
    """Where the release name is written in the source.

    ``as`` says what kind of field it is where the system has several: ``text``
    (the default), ``select`` (a single select; a missing choice is added) or
    ``link`` (Airtable: a linked record in ``link_table``, found or created by
    its primary field). Jira always writes ``fixVersions``.
    """

    field: str = Field(min_length=1)
    as_: Literal["text", "select", "link"] = Field(default="text", alias="as")
    link_table: str | None = None

    @model_validator(mode="after")
    def _link_needs_table(self) -> ReleaseTarget:
        if self.as_ == "link" and not self.link_table:
            raise KeyPathError(("link_table",), "a linked release field needs link_table: the table it links to")
        if self.as_ != "link" and self.link_table:
            raise KeyPathError(("link_table",), "link_table only applies with as: link")
        return self


class FieldTarget(Strict):
    """A source field relsync owns and keeps equal to the plan (the planned deploy date, the phase).

    ``field`` is the field's name in the source (a Jira custom field id such as
    ``customfield_10080``, an Airtable field name, a Salesforce field API name); ``map``
    translates relsync's values into the source's own (a picklist's labels). relsync
    reads the field on every pull, so a person's edit of it is audited, and writes it
    only when it differs from the plan.
    """

    field: str = Field(min_length=1)
    map: dict[str, str] | None = None

    def native(self, value: str | None) -> str | None:
        """The source's value for relsync's ``value`` (None clears the field)."""
        if value is None or self.map is None:
            return value
        return self.map.get(value, value)


class WriteTargets(Strict):
    """Engine-owned fields written back to the source.

    ``status`` maps a normalized status the engine sets (``scheduled``) to the
    source's own status name; Jira reaches it by the transition whose target
    status has that name. ``planned_date`` receives the planned deploy date of the
    request's release (``YYYY-MM-DD`` in the train's timezone) and ``phase`` the phase
    the release is in (``scheduled`` before its first phase starts, then each phase's
    name, ``held`` while a required sign-off is missing at its deploy time, and
    ``deployed`` once its phases are over); both are cleared when the request leaves
    its release, if relsync wrote what they show.
    """

    release: ReleaseTarget | None = None
    status: dict[str, str] = Field(default_factory=dict)
    planned_date: FieldTarget | None = None
    phase: FieldTarget | None = None

    def field_targets(self) -> dict[str, FieldTarget]:
        """The plain fields relsync writes (engine name -> target): the planned date and the phase, when set."""
        return {name: target for name, target in (("planned_date", self.planned_date), ("phase", self.phase)) if target}

    @field_validator("status")
    @classmethod
    def _statuses(cls, value: dict[str, str]) -> dict[str, str]:
        wrong = [repr(normalized) for normalized in value if normalized not in STATUSES]
        if wrong:
            raise ValueError(
                f"{', '.join(wrong)} is not a relsync status; the keys here are relsync statuses "
                f"({_one_of(STATUSES)}) and the values the source's own status names"
            )
        return value


def check_write_status(fields: FieldMapping, write: WriteTargets) -> None:
    """Each status relsync writes must read back as the same status on the next pull."""
    spec = fields.status
    for normalized, native in write.status.items():
        back: str | None
        if spec.map is None:
            back = native
        else:
            back = spec.map.get(native, spec.default)
        if back == normalized:
            continue
        if spec.map is not None and native not in spec.map:
            problem = (
                f"{native!r} is not in fields.status.map, so relsync could not read it back "
                f"after writing it; add {native!r}: {normalized} to fields.status.map"
            )
        else:
            problem = (
                f"{native!r} reads back as {back!r} (fields.status.map), not {normalized!r}; "
                "relsync would keep rewriting it"
            )
        raise KeyPathError(("write", "status", normalized), problem)


