"""A release train for planner and calendar tests: biweekly from 2026-12-01, capacity 2."""
from __future__ import annotations

import datetime as dt

from config.schema import Train

UTC = dt.UTC
PHASES = [
    {"phase": "planning", "days": 3, "owner": "pm@example.com"},
    {"phase": "development", "days": 7, "owner": "dev-lead@example.com"},
    {"phase": "testing", "days": 3, "owner": "qa@example.com"},
    {"phase": "deployment", "days": 1, "owner": "release-manager@example.com"},
    {"phase": "maintenance", "days": 5, "owner": "ops@example.com"},
]


def at(text: str) -> dt.datetime:
    """A naive ISO timestamp read as UTC."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def train(**changes) -> Train:
    """The test train, with any keys replaced."""
    spec = {
        "name": "BS",
        "release_name": "{train} {deploy:%Y.%m.%d}",
        "cadence": {"every_days": 14, "anchor": "2026-12-01"},
        "capacity": 2,
        "phases": PHASES,
    }
    return Train.model_validate(spec | changes)
