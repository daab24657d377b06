"""Error classes every connector raises, classified where the knowledge lives.

The engine only ever sees these three kinds:

- ``RetriableError``: try again later (429, 5xx, timeouts, dropped connections);
  ``retry_after`` carries the server's wish in seconds when it sent one.
- ``FatalError``: the request is wrong and repeating it will not help (4xx
  validation errors); the message is the API's own.
- ``SourceConfigError``: credentials, permissions or names in the configuration
  do not match the live system; the run cannot go on (exit code 2).
"""
from __future__ import annotations

import datetime as dt
from email.utils import parsedate_to_datetime


class ConnectorError(Exception):
    """Base class: a source system refused or failed a request."""

    def __init__(self, system: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{system}: {message}")
        self.system = system
        self.message = message
        self.status = status


class RetriableError(ConnectorError):
    """A transient failure: the same request may succeed later."""

    def __init__(
        self, system: str, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(system, message, status=status)
        self.retry_after = retry_after


class FatalError(ConnectorError):
    """A permanent failure of one request: report it with the API's message."""


class SourceConfigError(ConnectorError):
    """Credentials, permissions or configured names are wrong for the live system."""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def classify_status(
    system: str, status: int | None, message: str, *, retry_after: str | None = None
) -> ConnectorError:
    """Map an HTTP status and the API's message to one of our error kinds."""
    if status is None or status == 429 or status >= 500 or status == 408:
        return RetriableError(system, message, status=status, retry_after=parse_retry_after(retry_after))
    if status == 401:
        return SourceConfigError(system, f"{message} (HTTP 401: check the credentials in sources.*.auth)", status=status)
    if status == 403:
        return SourceConfigError(system, f"{message} (HTTP 403: the account lacks a permission)", status=status)
    return FatalError(system, message, status=status)
