"""The phase a requester is told their request's release is in."""
from __future__ import annotations

import datetime as dt

from releases.calendar import phase_at

UTC = dt.UTC


def at(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, tzinfo=UTC)


PHASES = [("development", at(1, 18), at(4, 18)), ("testing", at(4, 18), at(7, 18)), ("deployment", at(7, 18), at(8, 18))]
DEPLOY = at(8, 18)


def test_before_during_between_and_after_the_phases() -> None:
    assert phase_at(PHASES, DEPLOY, at(1, 6)) == "scheduled"
    assert phase_at(PHASES, DEPLOY, at(2)) == "development"
    assert phase_at(PHASES, DEPLOY, at(4, 18)) == "testing"  # windows touch: the later one has begun
    assert phase_at(PHASES, DEPLOY, at(8, 17)) == "deployment"
    assert phase_at(PHASES, DEPLOY, at(9)) == "deployed"


def test_a_gap_before_the_deploy_keeps_the_phase_last_begun_and_a_held_release_says_so() -> None:
    gapped = [("design", at(1), at(2)), ("testing", at(5), at(7))]
    assert phase_at(gapped, DEPLOY, at(3)) == "design"
    assert phase_at(PHASES, DEPLOY, at(9), held=True) == "held"
    assert phase_at(PHASES, DEPLOY, at(2), held=True) == "development"  # held only counts from the deploy time
    maintenance = [*PHASES, ("maintenance", at(8, 18), at(13, 18))]
    assert phase_at(maintenance, DEPLOY, at(10)) == "maintenance"
