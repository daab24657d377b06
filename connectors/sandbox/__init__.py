"""Local fakes ("sandboxes") of the vendor APIs, faithful enough for the real client libraries.

Each sandbox is a Flask app built on :mod:`connectors.sandbox.core`; :mod:`server` runs
them on 127.0.0.1. Test knobs live under ``/_sandbox/`` on every app.
"""
from connectors.sandbox.core import (
    Clock,
    SandboxControls,
    controls,
    make_app,
    sandbox_route,
)
from connectors.sandbox.jira import create_jira_app, state_of
from connectors.sandbox.jql import JqlError
from connectors.sandbox.seed import (
    Person,
    SeedRequest,
    iter_seed_requests,
    seed_requests,
)
from connectors.sandbox.server import RunningSandbox, Sandboxes, serve, start_sandboxes

__all__ = [
    "Clock",
    "JqlError",
    "Person",
    "RunningSandbox",
    "SandboxControls",
    "Sandboxes",
    "SeedRequest",
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
