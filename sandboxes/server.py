"""Starting the three sandboxes together, each seeded with its own requests.

They behave like the real services at their least kind unless ``behaviour="kind"``
asks for full pages, no lag, no rate limit and cursors, iterators and sessions that
never expire (:mod:`sandboxes.behaviour`).
"""
from __future__ import annotations

from types import TracebackType
from typing import Any, Protocol

from sandboxes.airtable.app import start_airtable
from sandboxes.behaviour import REAL, check_behaviour
from sandboxes.clock import SYSTEM_TIME, TimeSource
from sandboxes.jira.app import start_jira
from sandboxes.salesforce.app import start_salesforce
from sandboxes.serving import RunningSandbox, serve

__all__ = ["STARTERS", "RunningSandbox", "Sandboxes", "Starter", "serve", "start_sandboxes"]

class Starter(Protocol):
    """Serves one system's sandbox: ``(running, description)``."""

    def __call__(self, records: int, seed: int, *, time_source: TimeSource = SYSTEM_TIME,
                 behaviour: str = REAL) -> tuple[RunningSandbox, dict[str, Any]]:
        """Start the sandbox."""


STARTERS: dict[str, Starter] = {
    "jira": start_jira,
    "airtable": start_airtable,
    "salesforce": start_salesforce,
}
"""How to start each system's sandbox."""


SEED_OFFSETS = {"jira": 0, "airtable": 1000, "salesforce": 2000}
"""Per system, added to the seed: the same seed gives each system different requests."""


class Sandboxes:
    """The running sandboxes of one start; attributes are named by system (``.jira``)."""

    def __init__(self) -> None:
        self.running: dict[str, RunningSandbox] = {}
        self._descriptions: dict[str, dict[str, Any]] = {}

    def add(self, system: str, running: RunningSandbox, description: dict[str, Any]) -> None:
        """Record a started sandbox."""
        self.running[system] = running
        self._descriptions[system] = description

    def __getattr__(self, system: str) -> RunningSandbox:
        running = self.__dict__.get("running", {})
        if system in running:
            return running[system]
        raise AttributeError(f"no {system!r} sandbox was started (started: {', '.join(running) or 'none'})")

    def describe(self) -> dict[str, Any]:
        """URL, credentials (as the env vars relsync reads) and names, per system."""
        return {system: {**d, "env": dict(d["env"])} for system, d in self._descriptions.items()}

    def stop(self) -> None:
        """Stop every sandbox."""
        for running in self.running.values():
            running.stop()

    def __enter__(self) -> Sandboxes:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.stop()


def start_sandboxes(*, records: int = 200, seed: int = 7, systems: tuple[str, ...] = ("jira",),
                    behaviour: str = REAL, time_source: TimeSource = SYSTEM_TIME) -> Sandboxes:
    """Start the sandboxes for ``systems``, each seeded with ``records`` requests.

    Each system draws from its own seed (``seed`` plus a fixed offset per system), so
    the three systems hold different requests, as three real teams' tools would.
    ``behaviour`` is ``"real"`` (the default) or ``"kind"``; ``time_source`` runs every
    sandbox's windows, lags and expiries (a test passes a ``ManualTime`` to move it).
    """
    unknown = [s for s in systems if s not in STARTERS]
    if unknown:
        raise ValueError(f"no sandbox for {', '.join(unknown)}; available: {', '.join(STARTERS)}")
    check_behaviour(behaviour)
    sandboxes = Sandboxes()
    try:
        for system in systems:
            sandboxes.add(system, *STARTERS[system](records, seed + SEED_OFFSETS.get(system, 0),
                                                     time_source=time_source, behaviour=behaviour))
    except BaseException:
        sandboxes.stop()
        raise
    return sandboxes
