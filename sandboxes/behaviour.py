"""The sandboxes' two profiles: the real services at their least kind (the default), or kind.

``real`` is what the vendors do and document, so the suite meets real conditions unless
a test asks otherwise: Jira's search pages come back short when many fields are asked
for and its search index lags writes by a few seconds; Airtable allows 5 requests a
second per base with a 30-second penalty and times idle list iterators out; Salesforce
ends idle sessions, expires query cursors and returns batches of other sizes than
asked. ``kind`` switches every one of these off: full pages, no lag, no rate limit,
iterators, cursors and sessions that never expire, batches of exactly the size asked.
Each sandbox's module docstring lists its own defaults; ``GET /_sandbox/config`` shows
the current values, and each one can still be changed there or on the vendor's knob.
"""
from __future__ import annotations

from typing import Literal

Behaviour = Literal["real", "kind"]
REAL: Behaviour = "real"
KIND: Behaviour = "kind"
BEHAVIOURS: tuple[Behaviour, ...] = (REAL, KIND)


def check_behaviour(name: str) -> Behaviour:
    """``name`` as a profile, or ValueError naming the profiles there are."""
    if name == REAL:
        return REAL
    if name == KIND:
        return KIND
    raise ValueError(f"no sandbox behaviour {name!r}; choose {' or '.join(repr(b) for b in BEHAVIOURS)}")


def is_real(name: str) -> bool:
    """Whether ``name`` is the real profile (ValueError for a name that is no profile)."""
    return check_behaviour(name) == REAL


__all__ = ["BEHAVIOURS", "KIND", "REAL", "Behaviour", "check_behaviour", "is_real"]
