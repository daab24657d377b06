"""The configuration file's schema. Every model forbids unknown keys."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mapping.model import PRIORITIES, STATUSES

CONVERTERS: tuple[str, ...] = (
    "text",
    "adf_to_text",
    "datetime",
    "lower",
    "first",
    "names",
    "join",
)
"""Named converters a field mapping may use (see mapping.fields)."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldMap(Strict):
    """How one normalized field is read from a source record.

    ``path`` is dotted (``fields.priority.name``); ``map`` translates source values;
    ``default`` is used when the path is absent or empty, or the value is not in
    ``map`` and ``default`` is set; ``convert`` names a converter applied first.
    """

    path: str
    map: dict[str, str] | None = None
    default: str | None = None
    convert: str | None = None

    @field_validator("convert")
    @classmethod
    def _known_converter(cls, value: str | None) -> str | None:
        if value is not None and value not in CONVERTERS:
            raise ValueError(f"unknown converter {value!r}; choose one of {', '.join(CONVERTERS)}")
        return value


def _field_map(value: Any) -> Any:
    # A bare string is shorthand for {path: <string>}.
    return {"path": value} if isinstance(value, str) else value



class FieldMapping(Strict):
    """Normalized field -> how it is read from the source."""

    title: FieldMap
    description: FieldMap | None = None
    type: FieldMap | None = None
    department: FieldMap | None = None
    requester: FieldMap | None = None
    owner: FieldMap | None = None
    priority: FieldMap | None = None
    status: FieldMap
    release: FieldMap | None = None
    created_at: FieldMap | None = None
    updated_at: FieldMap | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: _field_map(value) for key, value in data.items()}
        return data

    @model_validator(mode="after")
    def _vocabularies(self) -> FieldMapping:
        for name, allowed in (("status", STATUSES), ("priority", PRIORITIES)):
            spec = getattr(self, name)
            if spec is None:
                continue
            for source_value, target in (spec.map or {}).items():
                if target not in allowed:
                    raise ValueError(
                        f"{name}.map: {source_value!r} maps to {target!r}, "
                        f"which is not one of {', '.join(allowed)}"
                    )
            if spec.default is not None and spec.default not in allowed:
                raise ValueError(f"{name}.default: {spec.default!r} is not one of {', '.join(allowed)}")
        return self


class ReleaseTarget(Strict):
    """Where the release name is written in the source."""

    field: str


class WriteTargets(Strict):
    """Engine-owned fields written back to the source.

    ``status`` maps a normalized status the engine sets (``scheduled``) to the
    source's own status name; Jira reaches it by the transition whose target
    status has that name.
    """

    release: ReleaseTarget | None = None
    status: dict[str, str] = Field(default_factory=dict)

    @field_validator("status")
    @classmethod
    def _statuses(cls, value: dict[str, str]) -> dict[str, str]:
        for normalized in value:
            if normalized not in STATUSES:
                raise ValueError(f"{normalized!r} is not one of {', '.join(STATUSES)}")
        return value


class JiraAuth(Strict):
    """Jira Cloud credentials, by environment-variable name."""

    email_env: str | None = None
    token_env: str


class JiraSource(Strict):
    kind: Literal["jira"]
    url: str
    auth: JiraAuth
    ca_bundle: str | None = None
    project: str
    jql: str | None = None
    page_size: int = Field(default=100, ge=1, le=100)
    overlap_seconds: int = Field(default=120, ge=0)
    timeout_seconds: float = Field(default=30, gt=0)
    fields: FieldMapping
    write: WriteTargets = Field(default_factory=WriteTargets)


Source = Annotated[JiraSource, Field(discriminator="kind")]


class Phase(Strict):
    """One SDLC phase of a release: its length in days and who owns it."""

    phase: Literal[
        "planning", "requirements", "design", "development", "testing", "deployment", "maintenance"
    ]
    days: int = Field(ge=0)
    owner: str


class Cadence(Strict):
    """Deploys happen every ``every_days`` days from ``anchor`` (a deploy date)."""

    every_days: int = Field(ge=1)
    anchor: dt.date


class Train(Strict):
    """A release train: a regular cadence of releases with phases and capacity."""

    name: str
    release_name: str = "{train} {deploy:%Y-%m-%d}"
    cadence: Cadence
    deploy_time: dt.time = dt.time(18, 0)
    freeze_days: int = Field(default=3, ge=0)
    horizon: int = Field(default=4, ge=1, le=52)
    capacity: int = Field(default=10, ge=1)
    eligible_statuses: list[str] = Field(default_factory=lambda: ["approved", "scheduled"])
    phases: list[Phase] = Field(default_factory=list)

    @field_validator("eligible_statuses")
    @classmethod
    def _statuses(cls, value: list[str]) -> list[str]:
        for status in value:
            if status not in STATUSES:
                raise ValueError(f"{status!r} is not one of {', '.join(STATUSES)}")
        return value


class Config(Strict):
    """The whole configuration file."""

    store: str = "relsync.db"
    sources: dict[str, Source]
    trains: list[Train] = Field(min_length=1)

    @field_validator("sources")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("at least one source is required")
        for name in value:
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"source name {name!r} may use letters, digits, '-' and '_' only")
        return value
