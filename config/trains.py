"""Release trains: cadence, naming, SDLC phases, freeze, horizon and capacity."""
from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from config.base import Strict, _one_of
from mapping.model import STATUSES

PHASES: tuple[str, ...] = (
    "planning",
    "requirements",
    "design",
    "development",
    "testing",
    "deployment",
    "maintenance",
)
"""SDLC phases of a release, in order."""

SAMPLE_DEPLOY = dt.datetime(2026, 11, 24, 18, 0)
"""A deploy time used to try out release name patterns."""


class Phase(Strict):
    """One SDLC phase of a release: its length in days and who owns it."""

    phase: Literal["planning", "requirements", "design", "development", "testing", "deployment", "maintenance"]
    days: int = Field(ge=0)
    owner: str = Field(min_length=1)


class Cadence(Strict):
    """Deploys happen every ``every_days`` days from ``anchor`` (a deploy date)."""

    every_days: int = Field(ge=1)
    anchor: dt.date


class Train(Strict):
    """A release train: a regular cadence of releases with phases and capacity."""

    name: str = Field(min_length=1)
    cadence: Cadence
    release_name: str = "{train} {deploy:%Y-%m-%d}"
    deploy_time: dt.time = dt.time(18, 0)
    freeze_days: int = Field(default=3, ge=0)
    horizon: int = Field(default=4, ge=1, le=52)
    capacity: int = Field(default=10, ge=1)
    eligible_statuses: list[str] = Field(default_factory=lambda: ["approved", "scheduled"])
    phases: list[Phase] = Field(default_factory=list)

    def release_name_for(self, deploy: dt.datetime | dt.date) -> str:
        """The name of this train's release deploying at ``deploy``."""
        return self.release_name.format(train=self.name, deploy=deploy)

    @field_validator("release_name")
    @classmethod
    def _release_name(cls, value: str, info: ValidationInfo) -> str:
        train = info.data.get("name", "train")
        try:
            sample = value.format(train=train, deploy=SAMPLE_DEPLOY)
        except KeyError as error:
            raise ValueError(
                f"unknown placeholder {{{error.args[0]}}}; use {{train}} and {{deploy:%Y-%m-%d}}"
            ) from None
        except (IndexError, ValueError, AttributeError) as error:
            raise ValueError(
                f"{value!r} is not a valid name pattern ({error}); "
                "write it like \"{train} {deploy:%Y-%m-%d}\""
            ) from None
        if not sample.strip():
            raise ValueError("gives an empty release name")
        cadence = info.data.get("cadence")
        if cadence is not None:
            # Release names must be unique: try a year of deploy dates on this cadence.
            seen: dict[str, dt.date] = {}
            for step in range(max(2, 366 // cadence.every_days + 1)):
                deploy = cadence.anchor + dt.timedelta(days=step * cadence.every_days)
                name = value.format(train=train, deploy=dt.datetime.combine(deploy, SAMPLE_DEPLOY.time()))
                if name in seen:
                    raise ValueError(
                        f"gives the same name {name!r} to the releases deploying on {seen[name]} "
                        f"and {deploy}; include the day, e.g. {{deploy:%Y-%m-%d}}"
                    )
                seen[name] = deploy
        return value

    @field_validator("eligible_statuses")
    @classmethod
    def _statuses(cls, value: list[str]) -> list[str]:
        for status in value:
            if status not in STATUSES:
                raise ValueError(f"{status!r} is not a relsync status; use one of {_one_of(STATUSES)}")
        return value

    @field_validator("phases")
    @classmethod
    def _phase_order(cls, value: list[Phase]) -> list[Phase]:
        names = [phase.phase for phase in value]
        if len(set(names)) != len(names):
            twice = sorted({name for name in names if names.count(name) > 1})
            raise ValueError(f"phase {', '.join(twice)} is listed more than once")
        if names != sorted(names, key=PHASES.index):
            raise ValueError(f"list the phases in SDLC order: {_one_of(PHASES)}")
        return value
