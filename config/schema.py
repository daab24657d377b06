"""The configuration file's schema. Every model forbids unknown keys.

Validators that check one key against another raise KeyPathError so the loader can
name the exact key to fix, not just the model that holds it.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from config.base import KeyPathError, Strict, _one_of, _resolve_path
from config.trains import Train
from mapping.converters import CONVERTERS as CONVERTER_FUNCTIONS
from mapping.converters import map_key
from mapping.model import PRIORITIES, STATUSES

CONVERTERS: tuple[str, ...] = tuple(CONVERTER_FUNCTIONS)
"""Named converters a field mapping may use (implemented in mapping.converters)."""

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET_WORDS = re.compile(r"token|password|passwd|secret|api_?key|credential|^pat$", re.IGNORECASE)


# -- field mapping ----------------------------------------------------------------------


def _text_key(value: Any) -> Any:
    # YAML reads `true:` or `3:` as a boolean or a number; source values are looked up as text.
    return map_key(value) if isinstance(value, (bool, int, float)) else value


class FieldMap(Strict):
    """How one normalized field is read from a source record.

    ``path`` is dotted (``fields.priority.name``); ``convert`` names a converter
    applied first; ``map`` translates source values; ``default`` is used when the
    path is absent or empty, or when the value is not in ``map``.
    """

    path: str
    map: dict[str, str] | None = None
    default: str | None = None
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

    @field_validator("default", mode="before")
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

    @field_validator("default")
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
    """Where the release name is written in the source."""

    field: str = Field(min_length=1)


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


# -- sources ----------------------------------------------------------------------------


class EnvAuth(Strict):
    """Credentials by environment-variable name: secrets never live in the config file."""

    secret_hint: ClassVar[str] = "token_env: RELSYNC_TOKEN"

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields and _SECRET_WORDS.search(str(key)):
                    env_key = cls.secret_hint.split(":")[0]
                    raise KeyPathError(
                        (key,),
                        f"secrets never go in the config file; put the secret in an environment "
                        f"variable and use {env_key} to name it (e.g. {cls.secret_hint})",
                    )
        return data

    @field_validator("*")
    @classmethod
    def _env_names(cls, value: Any) -> Any:
        # Deliberately not echoing the value: it may be a pasted secret.
        if isinstance(value, str) and not _ENV_NAME.fullmatch(value):
            raise ValueError(
                "must be the name of an environment variable (letters, digits and _, "
                f"like {cls.secret_hint.split(': ')[1]}), not the secret itself"
            )
        return value


class JiraAuth(EnvAuth):
    """Jira Cloud credentials: account email and API token, by environment-variable name."""

    secret_hint: ClassVar[str] = "token_env: RELSYNC_JIRA_TOKEN"

    email_env: str | None = None
    token_env: str


class JiraSource(Strict):
    """A Jira Cloud project as a source of change requests."""

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

    @field_validator("url")
    @classmethod
    def _site(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", value):
            raise ValueError(f"{value!r} is not a site address like https://your-site.atlassian.net")
        return value.rstrip("/")

    @field_validator("project")
    @classmethod
    def _project_key(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]+", value):
            raise ValueError(f"{value!r} is not a Jira project key like OPS (letters, digits and _)")
        return value.upper()

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        path = _resolve_path(value, info)
        if (info.context or {}).get("base_dir") is not None and not Path(path).is_file():
            raise ValueError(f"no file at {path} (the CA certificate bundle to trust)")
        return path

    @model_validator(mode="after")
    def _write_back_reads_back(self) -> JiraSource:
        check_write_status(self.fields, self.write)
        return self


Source = Annotated[JiraSource, Field(discriminator="kind")]
"""Any configured source, told apart by its ``kind``."""


class Config(Strict):
    """The whole configuration file."""

    store: str = "relsync.db"
    sources: dict[str, Source]
    trains: list[Train] = Field(min_length=1)

    @field_validator("store")
    @classmethod
    def _store(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            raise ValueError("must be the path of the SQLite file relsync keeps its data in")
        return _resolve_path(value, info)

    @field_validator("sources")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("at least one source is required")
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
                raise ValueError(f"source name {name!r} may use letters, digits, '-' and '_' only")
        return value

    @field_validator("trains")
    @classmethod
    def _unique_trains(cls, value: list[Train]) -> list[Train]:
        seen: set[str] = set()
        for index, train in enumerate(value):
            if train.name in seen:
                raise KeyPathError((index, "name"), f"another train is already called {train.name!r}")
            seen.add(train.name)
        return value
