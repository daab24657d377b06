"""Running sandboxes in-process: each app on its own free port of 127.0.0.1, in a daemon thread.

Nothing here prints; werkzeug's per-request log lines are switched off, and callers
decide what to tell the user (``describe()`` has everything a client needs).
"""
from __future__ import annotations

import secrets
import ssl
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

import flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from connectors.sandbox.jira import create_jira_app

SANDBOX_EMAIL = "relsync@example.com"
JIRA_PROJECT = "OPS"


class _QuietHandler(WSGIRequestHandler):
    """A request handler that keeps werkzeug's access log off stderr."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log(self, *args: Any, **kwargs: Any) -> None:
        pass


class RunningSandbox:
    """A sandbox app being served; ``url`` is its base URL. Stop it, or use ``with``."""

    def __init__(self, app: flask.Flask, server: BaseWSGIServer, thread: threading.Thread, scheme: str) -> None:
        self.app = app
        self._server = server
        self._thread = thread
        self.url = f"{scheme}://127.0.0.1:{server.server_port}"

    def stop(self) -> None:
        """Stop serving and wait for the server thread to end."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.stop()


def serve(app: flask.Flask, *, ssl_context: ssl.SSLContext | tuple[str, str] | None = None) -> RunningSandbox:
    """Serve ``app`` on 127.0.0.1 on a free port, threaded, in a daemon thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler, ssl_context=ssl_context)
    # A short poll interval keeps stop() quick; the default half second adds up in tests.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"sandbox-{app.name}", daemon=True)
    thread.start()
    return RunningSandbox(app, server, thread, "https" if ssl_context else "http")


def _start_jira(records: int, seed: int) -> tuple[RunningSandbox, dict[str, Any]]:
    token = secrets.token_urlsafe(24)
    app = create_jira_app(records=records, seed=seed, email=SANDBOX_EMAIL, token=token, project=JIRA_PROJECT)
    running = serve(app)
    description = {
        "url": running.url,
        "env": {"RELSYNC_JIRA_EMAIL": SANDBOX_EMAIL, "RELSYNC_JIRA_TOKEN": token},
        "project": JIRA_PROJECT,
    }
    return running, description


def _start_airtable(records: int, seed: int) -> tuple[RunningSandbox, dict[str, Any]]:
    from connectors.sandbox.airtable import start_airtable

    return start_airtable(records, seed)


def _start_salesforce(records: int, seed: int) -> tuple[RunningSandbox, dict[str, Any]]:
    from connectors.sandbox.salesforce import start_salesforce

    return start_salesforce(records, seed)


STARTERS: dict[str, Callable[[int, int], tuple[RunningSandbox, dict[str, Any]]]] = {
    "jira": _start_jira,
    "airtable": _start_airtable,
    "salesforce": _start_salesforce,
}
"""How to start each system's sandbox; Airtable and Salesforce register here too."""


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


def start_sandboxes(*, records: int = 200, seed: int = 7, systems: tuple[str, ...] = ("jira",)) -> Sandboxes:
    """Start the sandboxes for ``systems``, each seeded with ``records`` requests.

    Each system draws from its own seed (``seed`` plus a fixed offset per system), so
    the three systems hold different requests, as three real teams' tools would.
    """
    unknown = [s for s in systems if s not in STARTERS]
    if unknown:
        raise ValueError(f"no sandbox for {', '.join(unknown)}; available: {', '.join(STARTERS)}")
    sandboxes = Sandboxes()
    try:
        for system in systems:
            sandboxes.add(system, *STARTERS[system](records, seed + SEED_OFFSETS.get(system, 0)))
    except BaseException:
        sandboxes.stop()
        raise
    return sandboxes
