"""Release trains: cadence, timezone, naming, SDLC phases, freeze, blackouts, horizon,
capacity, expedite and which requests each train takes (``match``)."""
from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    TypeAdapter,
    ValidationInfo,
    WrapValidator,
    field_validator,
    model_validator,
)

from config.base import KeyPathError, Strict, _one_of
from mapping.model import PRIORITIES, STATUSES

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

WEEKDAYS: tuple[str, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

SAMPLE_DEPLOY = dt.datetime(2026, 11, 24, 18, 0)
"""A deploy time used to try out release name patterns."""

Priority = Literal["critical", "high", "medium", "low"]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def folded(text: str | None) -> str | None:
    """How department and type names are compared: case and outer spaces do not count."""
    return text.strip().casefold() if text is not None else None


class Phase(Strict):
    """One SDLC phase of a release: its length in days and who owns it."""

    phase: Literal["planning", "requirements", "design", "development", "testing", "deployment", "maintenance"]
    days: int = Field(ge=0)
    owner: str = Field(min_length=1)


class Cadence(Strict):
    """When a train deploys: every ``every_days`` days from ``anchor``, or every
    ``every_weeks`` weeks on ``weekday`` (``anchor``, a date on that weekday, says which
    weeks when ``every_weeks`` is more than 1)."""

    every_days: int | None = Field(default=None, ge=1)
    every_weeks: int | None = Field(default=None, ge=1)
    weekday: Weekday | None = None
    anchor: dt.date | None = None

    @field_validator("weekday", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_form(self) -> Cadence:
        if self.every_days is not None:
            if self.every_weeks is not None or self.weekday is not None:
                raise KeyPathError(
                    ("every_days",), "give either every_days (with anchor) or every_weeks with weekday, not both"
                )
            if self.anchor is None:
                raise KeyPathError(("anchor",), "required key missing: every_days counts from this deploy date")
            return self
        if self.every_weeks is None:
            raise KeyPathError(
                ("every_days",),
                "required key missing: say every_days with anchor, or every_weeks with weekday",
            )
        if self.weekday is None:
            raise KeyPathError(
                ("weekday",), f"required key missing: the day of the week to deploy on ({_one_of(WEEKDAYS)})"
            )
        if self.anchor is None and self.every_weeks > 1:
            raise KeyPathError(
                ("anchor",), f"required key missing: a {self.weekday} that deploys, so relsync knows which weeks",
            )
        if self.anchor is not None and WEEKDAYS[self.anchor.weekday()] != self.weekday:
            raise KeyPathError(
                ("anchor",), f"{self.anchor} is a {WEEKDAYS[self.anchor.weekday()]}, not a {self.weekday}",
            )
        return self

    @property
    def step_days(self) -> int:
        """Days between two deploys."""
        return self.every_days if self.every_days is not None else 7 * (self.every_weeks or 1)

    @property
    def origin(self) -> dt.date:
        """A deploy date on this cadence (the anchor, or the first such weekday of 2001)."""
        if self.anchor is not None:
            return self.anchor
        # 2001-01-01 was a Monday; with every_weeks 1 any such weekday will do.
        return dt.date(2001, 1, 1) + dt.timedelta(days=WEEKDAYS.index(self.weekday or "monday"))


class Match(Strict):
    """Which requests a train plans. Every key given must accept the request; a list
    accepts any of its values. Departments and types ignore case."""

    priorities: list[Priority] | None = Field(default=None, min_length=1)
    departments: list[str] | None = Field(default=None, min_length=1)
    types: list[str] | None = Field(default=None, min_length=1)
    sources: list[str] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _not_empty(self) -> Match:
        if all(value is None for value in (self.priorities, self.departments, self.types, self.sources)):
            raise ValueError("say what this train takes (priorities, departments, types, sources), "
                             "or leave match out to take every request")
        return self

    def accepts(self, *, priority: str | None, department: str | None, type: str | None, source: str | None) -> bool:
        """Whether a request with these values belongs to the train."""
        if self.priorities is not None and priority not in self.priorities:
            return False
        if self.departments is not None and folded(department) not in {folded(d) for d in self.departments}:
            return False
        if self.types is not None and folded(type) not in {folded(t) for t in self.types}:
            return False
        return self.sources is None or source in self.sources

    def describe(self) -> str:
        """The rule in words, for reasons and messages."""
        parts = [
            f"{key} {', '.join(values)}"
            for key, values in (("priority", self.priorities), ("department", self.departments),
                                ("type", self.types), ("source", self.sources))
            if values is not None
        ]
        return " and ".join(parts)


class Blackout(Strict):
    """Days (inclusive, in the train's timezone) on which nothing deploys. A release
    whose deploy date falls inside moves to the day after ``end`` or is skipped."""

    name: str = Field(min_length=1)
    start: dt.date
    end: dt.date
    action: Literal["move", "skip"] = "move"

    @model_validator(mode="after")
    def _ordered(self) -> Blackout:
        if self.end < self.start:
            raise KeyPathError(("end",), f"{self.end} is before start {self.start}")
        return self

    def covers(self, day: dt.date) -> bool:
        """Whether ``day`` is inside the blackout."""
        return self.start <= day <= self.end


class Capacity(Strict):
    """Requests per release, with optional department quotas inside the total."""

    total: int = Field(ge=1)
    by_department: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _within_total(self) -> Capacity:
        seen: dict[str | None, str] = {}
        for department in self.by_department:
            if not department.strip():
                raise KeyPathError(("by_department",), "a department name is empty")
            if folded(department) in seen:
                raise KeyPathError(
                    ("by_department", department),
                    f"{seen[folded(department)]!r} is already listed (names ignore case)",
                )
            seen[folded(department)] = department
        quotas = sum(self.by_department.values())
        if quotas > self.total:
            raise KeyPathError(
                ("by_department",), f"the quotas add up to {quotas}, more than the total of {self.total}"
            )
        return self


_COUNT = TypeAdapter(Annotated[int, Field(ge=1)])


def _count_or_split(value: Any, handler: Any) -> int | Capacity:
    # Dispatch on the shape ourselves: a plain union would report every mistake twice,
    # once per member, under key paths an admin never wrote ("capacity.int").
    if isinstance(value, (dict, Capacity)):
        return Capacity.model_validate(value)
    return _COUNT.validate_python(value)


class Expedite(Strict):
    """Requests that may still enter a frozen (not a deploying) release."""

    priorities: list[Priority] = Field(min_length=1)


class Train(Strict):
    """A release train: a regular cadence of releases with phases and capacity."""

    name: str = Field(min_length=1)
    cadence: Cadence
    release_name: str = "{train} {deploy:%Y-%m-%d}"
    deploy_time: dt.time = dt.time(18, 0)
    timezone: str = "UTC"
    freeze_days: int = Field(default=3, ge=0)
    horizon: int = Field(default=4, ge=1, le=52)
    open_releases: int | None = Field(default=None, ge=1)
    capacity: Annotated[int | Capacity, WrapValidator(_count_or_split)] = 10
    eligible_statuses: list[str] = Field(default_factory=lambda: ["approved", "scheduled"])
    match: Match | None = None
    expedite: Expedite | None = None
    blackouts: list[Blackout] = Field(default_factory=list)
    phases: list[Phase] = Field(default_factory=list)
    requires_signoff: list[str] = Field(default_factory=list)
    """Phases someone must sign off (``relsync release signoff``) before a release counts as deployed."""

    def release_name_for(self, deploy: dt.datetime | dt.date) -> str:
        """The name of this train's release deploying at ``deploy``."""
        return self.release_name.format(train=self.name, deploy=deploy)

    @property
    def zone(self) -> dt.tzinfo:
        """Where ``deploy_time`` is read: a fixed offset written on it, else ``timezone``."""
        if self.deploy_time.tzinfo is not None:
            return self.deploy_time.tzinfo
        return ZoneInfo(self.timezone)

    @property
    def total_capacity(self) -> int:
        """Requests per release, all departments together."""
        return self.capacity.total if isinstance(self.capacity, Capacity) else self.capacity

    @property
    def quotas(self) -> tuple[tuple[str, int], ...]:
        """Department quotas within the total, in config order (empty without any)."""
        return tuple(self.capacity.by_department.items()) if isinstance(self.capacity, Capacity) else ()

    @property
    def catch_all(self) -> bool:
        """Whether the train takes every request (no ``match``)."""
        return self.match is None

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA timezone name; write it like Europe/Berlin or UTC") from None
        return value

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
            # (Blackouts only move releases to other days and never put two on one day.)
            seen: dict[str, dt.date] = {}
            for step in range(max(2, 366 // cadence.step_days + 1)):
                deploy = cadence.origin + dt.timedelta(days=step * cadence.step_days)
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

    @model_validator(mode="after")
    def _signoffs_name_phases(self) -> Train:
        phases = [phase.phase for phase in self.phases]
        for index, name in enumerate(self.requires_signoff):
            if name not in phases:
                raise KeyPathError(
                    ("requires_signoff", index),
                    f"{name!r} is not a phase of this train; its phases: {', '.join(phases) or 'none (add phases:)'}",
                )
        return self

    @model_validator(mode="after")
    def _one_clock(self) -> Train:
        if self.deploy_time.tzinfo is not None and self.timezone != "UTC":
            raise KeyPathError(
                ("deploy_time",), f"write the time without an offset; timezone {self.timezone} says where it is"
            )
        return self


def check_trains(trains: Sequence[Train], sources: Collection[str] | None) -> None:
    """Checks across trains: requests go to the first train whose match takes them, so
    a catch-all (no ``match``) must be the last train; ``match.sources`` name sources;
    release names of different trains differ."""
    names: dict[str, str] = {}
    for index, train in enumerate(trains):
        # Release names are unique across trains too: two trains deploying on one day
        # must not name their releases alike.
        sample = train.release_name_for(SAMPLE_DEPLOY)
        if sample in names:
            raise KeyPathError(
                (index, "release_name"),
                f"gives the same names as train {names[sample]!r} (e.g. {sample!r}); include {{train}} or another word",
            )
        names[sample] = train.name
        if train.catch_all and index != len(trains) - 1:
            later = ", ".join(repr(t.name) for t in trains[index + 1:])
            raise KeyPathError(
                (index, "match"),
                f"train {train.name!r} takes every request (no match), so {later} after it would never get "
                "any; give it a match or move it to the end of the list",
            )
        if sources is not None and train.match is not None and train.match.sources is not None:
            for position, source in enumerate(train.match.sources):
                if source not in sources:
                    raise KeyPathError(
                        (index, "match", "sources", position),
                        f"no source is called {source!r}; sources: {', '.join(sorted(sources))}",
                    )


__all__ = [
    "PHASES",
    "PRIORITIES",
    "WEEKDAYS",
    "Blackout",
    "Cadence",
    "Capacity",
    "Expedite",
    "Match",
    "Phase",
    "Train",
    "check_trains",
    "folded",
]
