"""What every config model shares: strictness, key-path errors, paths beside the file."""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationInfo


class KeyPathError(ValueError):
    """A validation problem at a key below the model that found it (``subpath``)."""

    def __init__(self, subpath: tuple[str | int, ...], problem: str) -> None:
        self.subpath = subpath
        self.problem = problem
        super().__init__(problem)


def _one_of(values: tuple[str, ...]) -> str:
    return ", ".join(values)


def _resolve_path(value: str, info: ValidationInfo) -> str:
    # The loader passes the config file's folder: relative paths mean "beside the config".
    base = (info.context or {}).get("base_dir")
    path = Path(value).expanduser()
    if base is not None and not path.is_absolute():
        path = Path(base) / path
    return str(path.resolve()) if base is not None else str(path)


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, values are read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True)
