"""The configuration file's schema. Every model forbids unknown keys.

Validators that check one key against another raise KeyPathError so the loader can
name the exact key to fix, not just the model that holds it. The models live in
config.fieldmap (field mapping and write-back), config.sources (one model per
system) and config.trains (release trains); this module assembles them.
"""
from __future__ import annotations

import re
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from config.base import KeyPathError, Strict, _resolve_path
from config.fieldmap import (  # noqa: F401 - re-exported
    CONVERTERS,
    FieldMap,
    FieldMapping,
    ReleaseTarget,
    WriteTargets,
    check_write_status,
)
from config.sources import AirtableSource, JiraSource, SalesforceSource, Source  # noqa: F401
from config.store_url import check_postgres_url, is_postgres
from config.trains import (  # noqa: F401
    PHASES,
    Blackout,
    Cadence,
    Capacity,
    Expedite,
    Match,
    Phase,
    Train,
    check_trains,
)


class Config(Strict):
    """The whole configuration file."""

    store: str = "relsync.db"
    max_run_seconds: float = Field(default=600, gt=0)
    """A run ends cleanly (exit 1) once this long has passed; the next run continues. Keep it under the cron interval."""
    sources: dict[str, Source]
    trains: list[Train] = Field(min_length=1)

    @field_validator("store")
    @classmethod
    def _store(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            raise ValueError("must be the path of the SQLite file relsync keeps its data in, or a postgresql:// URL")
        if is_postgres(value.strip()):
            check_postgres_url(value.strip())  # the password comes from RELSYNC_STORE_PASSWORD, never the file
            return value.strip()
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
    def _unique_trains(cls, value: list[Train], info: ValidationInfo) -> list[Train]:
        seen: set[str] = set()
        for index, train in enumerate(value):
            if train.name in seen:
                raise KeyPathError((index, "name"), f"another train is already called {train.name!r}")
            seen.add(train.name)
        sources = info.data.get("sources")  # absent when the sources themselves are wrong
        check_trains(value, None if sources is None else set(sources))
        return value
