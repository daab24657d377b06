"""Logging for the ``relsync`` command: one place configures the handlers, once per command.

Library modules only call ``logging.getLogger(__name__)``. Here the command decides
where records go: problems (warnings and errors) to stderr, ``-v`` adds every page,
batch and retry, ``-q`` keeps errors only; ``--log-file`` keeps a rotating file with
timestamps and the run id, as text or one JSON object a line. Secrets never reach a
handler: every record passes ``Redact`` first.
"""
from __future__ import annotations

import json
import logging
import logging.handlers
import os
import re
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

OUR_PACKAGES = ("config", "connectors", "mapping", "releases", "relsync", "reports", "sync")
"""The loggers ``-v`` opens up; the client libraries' own stay at warnings."""

SECRET_NAME = re.compile(r"(TOKEN|PASSWORD|SECRET|API_?KEY|CLIENT_KEY)", re.IGNORECASE)
SECRET_TEXT = re.compile(
    r"(?P<key>authorization|x-api-key|api[_-]?key|access_token|refresh_token|client_secret|token|password|secret)"
    r"(?P<sep>[\"']?\s*[:=]\s*[\"']?)(?P<scheme>(?:bearer|basic)\s+)?(?P<value>[^\s\"',;&}]+)",
    re.IGNORECASE,
)
BEARER = re.compile(r"\b(bearer|basic)\s+(?=[A-Za-z]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
"""A credential after its scheme; it holds a digit or a symbol, so "basic authentication" stays readable."""
MASK = "[redacted]"
REPORT = "relsync.report"
"""The logger a command's report lines (the summary's warnings and errors) go through."""


class RunId(logging.Filter):
    """Stamps every record with the run id of the store's ``runs`` row ("-" before the run starts)."""

    value = "-"

    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = RunId.value
        return True


class Redact(logging.Filter):
    """Masks secret values known by name (from the environment) and anything that looks like a credential."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)

    def clean(self, text: str) -> str:
        """``text`` with every secret masked."""
        for value in self.secrets:
            text = text.replace(value, MASK)
        text = SECRET_TEXT.sub(lambda m: f"{m['key']}{m['sep']}{m['scheme'] or ''}{MASK}", text)
        return BEARER.sub(lambda m: f"{m[1]} {MASK}", text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.clean(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.clean(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonLines(logging.Formatter):
    """One JSON object a line: time, level, logger, run id, message (and the exception, if any)."""

    converter = staticmethod(time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "run_id": getattr(record, "run_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_text:
            data["exception"] = record.exc_text
        return json.dumps(data, ensure_ascii=False)


class Console(logging.Formatter):
    """Stderr lines: the command's own report lines as they are, library records with their level and logger."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == REPORT:
            return record.getMessage()
        return f"{record.levelname.lower()}: {record.name}: {super().format(record)}"


def secrets_from_env(env: dict[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names say they hold a secret (RELSYNC_JIRA_TOKEN, ...)."""
    env = dict(os.environ) if env is None else env
    return [value for name, value in env.items() if SECRET_NAME.search(name) and value]


def setup(*, verbose: bool = False, quiet: bool = False, log_file: Path | None = None, log_format: str = "text",
          stream: IO[str] | None = None) -> None:
    """Configure the handlers for one command: stderr for problems (or more with ``verbose``), and the file."""
    teardown()
    root = logging.getLogger()
    RunId.value = "-"
    redact, run_id = Redact(secrets_from_env()), RunId()
    console = logging.StreamHandler(stream or sys.stderr)
    console.setLevel(logging.ERROR if quiet else logging.DEBUG if verbose else logging.WARNING)
    handlers: list[logging.Handler] = [console]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        rotating = logging.handlers.RotatingFileHandler(log_file, maxBytes=10_000_000, backupCount=5, encoding="utf-8")
        rotating.setLevel(logging.DEBUG if verbose else logging.INFO)
        handlers.append(rotating)
    text = logging.Formatter("%(asctime)s.%(msecs)03dZ %(levelname)s run=%(run_id)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    text.converter = time.gmtime
    for handler in handlers:
        handler.addFilter(run_id)
        handler.addFilter(redact)
        setattr(handler, "relsync", True)  # noqa: B010 -- marks our own handlers for the next setup
        root.addHandler(handler)
    console.setFormatter(JsonLines() if log_format == "json" else Console())
    if log_file is not None:
        handlers[1].setFormatter(JsonLines() if log_format == "json" else text)
    for package in OUR_PACKAGES:
        logging.getLogger(package).setLevel(logging.DEBUG if verbose else logging.INFO)


def teardown() -> None:
    """Remove the handlers ``setup`` added and the levels it set (the command has ended)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "relsync", False):
            root.removeHandler(handler)
            handler.close()
    for package in OUR_PACKAGES:
        logging.getLogger(package).setLevel(logging.NOTSET)


class LiveProgress:
    """A table on the terminal, redrawn in place: per source its phase, records and API calls.

    Fed by the engine's ``Progress`` events (anything with phase, source, records,
    calls and run_id); also stamps the log records with the run id once it is known.
    """

    PHASES = {"start": "starting", "pull": "pulling", "plan": "planning", "push": "pushing"}

    def __init__(self, stream: IO[str] | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=stream or sys.stderr)
        self.live = Live(console=self.console, refresh_per_second=8, transient=False, redirect_stdout=False,
                         redirect_stderr=False)
        self.phase, self.run_id, self.planned = "start", None, 0
        self.rows: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> LiveProgress:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.update(self.table(done=True), refresh=True)
        self.live.__exit__(None, None, None)

    def __call__(self, event: Any) -> None:
        track_run(event)
        self.phase, self.run_id = event.phase, event.run_id
        if event.phase == "plan":
            self.planned = event.records
        elif event.source:
            row = self.rows.setdefault(event.source, {"pulled": 0, "pushed": 0, "calls": 0})
            row["pulled" if event.phase == "pull" else "pushed"] = event.records
            row["calls"] = event.calls
            row["phase"] = event.phase
        self.live.update(self.table(), refresh=True)

    def table(self, *, done: bool = False) -> Any:
        """The display as it stands."""
        from rich.table import Table

        state = "done" if done else self.PHASES.get(self.phase, self.phase)
        table = Table(title=f"relsync run {self.run_id or ''}: {state}, {self.planned} planned in", title_justify="left")
        for column in ("source", "phase", "pulled", "written back", "API calls"):
            table.add_column(column, justify="left" if column in ("source", "phase") else "right")
        for name, row in self.rows.items():
            table.add_row(name, "done" if done else row.get("phase", ""), str(row["pulled"]), str(row["pushed"]),
                          str(row["calls"]))
        return table


def track_run(event: Any) -> None:
    """Progress callback that only stamps the log records with the run id (no display)."""
    if getattr(event, "run_id", None) is not None:
        RunId.value = str(event.run_id)
