"""Local fakes ("sandboxes") of the vendor APIs, faithful enough for the real client libraries.

Each sandbox is a Flask app built on :mod:`sandboxes.core`; :mod:`server` runs
them on 127.0.0.1. Test knobs live under ``/_sandbox/`` on every app. By default they
behave like the real services at their least kind; ``behaviour="kind"`` asks for the
kind profile by name (:mod:`sandboxes.behaviour`).
"""
from sandboxes.behaviour import BEHAVIOURS, KIND, REAL, Behaviour
from sandboxes.clock import (
    SYSTEM_TIME,
    Clock,
    ManualTime,
    SystemTime,
    TimeSource,
)
from sandboxes.core import (
    SandboxControls,
    controls,
    make_app,
    sandbox_route,
)
from sandboxes.jira.app import create_jira_app, state_of
from sandboxes.jira.jql import JqlError
from sandboxes.seed import (
    Person,
    SeedRequest,
    iter_seed_requests,
    seed_requests,
)
from sandboxes.server import RunningSandbox, Sandboxes, serve, start_sandboxes

__all__ = [
    "BEHAVIOURS",
    "KIND",
    "REAL",
    "SYSTEM_TIME",
    "Behaviour",
    "Clock",
    "JqlError",
    "ManualTime",
    "Person",
    "RunningSandbox",
    "SandboxControls",
    "Sandboxes",
    "SeedRequest",
    "SystemTime",
    "TimeSource",
    "controls",
    "create_jira_app",
    "iter_seed_requests",
    "make_app",
    "sandbox_route",
    "seed_requests",
    "serve",
    "start_sandboxes",
    "state_of",
]
