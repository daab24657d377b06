"""Error classes every connector raises, classified where the knowledge lives.

The engine only ever sees these kinds:

- ``RetriableError``: try again later (429, 5xx, timeouts, dropped connections);
  ``retry_after`` carries the server's wish in seconds when it sent one.
- ``FatalError``: the request is wrong and repeating it will not help (4xx
  validation errors); the message is the API's own.
- ``SourceConfigError``: credentials, permissions or names in the configuration
  do not match the live system; the run cannot go on (exit code 2).
  ``PermissionDenied`` is the 403 kind of it: on a read it stops the source like any
  configuration error, while a connector's write path turns it into a failure of
  that one kind of write, naming the permission.
- ``Stopped``: this run sends nothing more to the source (``DeadlineReached``: the
  run's time is up; ``CircuitOpen``: the source kept failing); what was not sent
  waits in the outbox for the next run.

Each vendor's client library raises its own exception with the API's error body; the
``*_refusal`` functions below read those (ApiCalls asks them first, see connectors.calls).
"""
from __future__ import annotations

import datetime as dt
import socket
import sys
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, TypeGuard

import requests

from mapping import clock

if TYPE_CHECKING:
    from jira import JIRAError
    from simple_salesforce.exceptions import SalesforceError


def _loaded(module: str, name: str) -> type[BaseException] | None:
    """The exception class ``name`` of a vendor client, if that client is loaded at all.

    An error can only be one of a client's own once the client is imported, so the
    classifiers never import a vendor library for a source the config does not name.
    """
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def _is_jira_error(error: BaseException) -> TypeGuard[JIRAError]:
    kind = _loaded("jira.exceptions", "JIRAError")
    return kind is not None and isinstance(error, kind)


def _is_salesforce_error(error: BaseException) -> TypeGuard[SalesforceError]:
    kind = _loaded("simple_salesforce.exceptions", "SalesforceError")
    return kind is not None and isinstance(error, kind)


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


class Unreachable(ConnectorError):
    """The host refused the connection, has no address, or never answered the handshake.

    Not retried like a 503: a refused port or an unknown name does not heal in the
    seconds a backoff waits, and the operator needs the cause and the host at once.
    """


def unreachable_cause(error: BaseException) -> str | None:
    """Why a connection could not be made (refused, DNS, connect timeout), or None for other failures."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, socket.gaierror) or type(current).__name__ == "NameResolutionError":
            return "the host name could not be resolved (DNS)"
        if type(current).__name__ == "ConnectTimeoutError" or isinstance(current, requests.exceptions.ConnectTimeout):
            return "no answer to the connection attempt (connect timeout)"
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        pending += [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]
    return None


class PermissionDenied(SourceConfigError):
    """The account may not do this (HTTP 403): fatal for reading a source, one failed kind of write otherwise."""


class Stopped(ConnectorError):
    """Nothing more is sent to this source in this run; unsent writes stay pending."""


class DeadlineReached(Stopped):
    """The run reached ``max_run_seconds``: it ends cleanly and the next run continues."""


class CircuitOpen(Stopped):
    """The source answered with server errors too many times in a row; its writes wait for the next run."""


def is_server_error(error: BaseException) -> bool:
    """A failure that says the server is unwell: a 5xx, a timeout or a dropped connection (not a 429)."""
    return isinstance(error, RetriableError) and (error.status is None or error.status >= 500)


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
    return max(0.0, (when - clock.now()).total_seconds())


def classify_status(
    system: str, status: int | None, message: str, *, retry_after: str | None = None, source: str | None = None
) -> ConnectorError:
    """Map an HTTP status and the API's message to one of our error kinds.

    ``source`` is the source's name in the configuration (``sources.<name>``), which the
    401 message names; it defaults to the system's name.
    """
    if status is None or status == 429 or status >= 500 or status == 408:
        return RetriableError(system, message, status=status, retry_after=parse_retry_after(retry_after))
    if status == 401:
        return SourceConfigError(system, f"{message} (HTTP 401: check the credentials in sources.{source or system}.auth)", status=status)
    if status == 403:
        return PermissionDenied(system, f"{message} (HTTP 403: the account lacks a permission)", status=status)
    return FatalError(system, message, status=status)


# -- Jira ---------------------------------------------------------------------------


def jira_message(error: JIRAError) -> str:
    """The API's own words from a JIRAError, without request headers (they hold credentials)."""
    response = error.response
    if response is not None:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            parts = list(body.get("errorMessages") or [])
            parts += [f"{field}: {text}" for field, text in (body.get("errors") or {}).items()]
            if body.get("message"):
                parts.append(str(body["message"]))
            if parts:
                return "; ".join(parts)
        if response.text:
            return response.text.strip()[:500]
    return error.text or f"HTTP {error.status_code}"


def jira_refusal(error: Exception, source: str = "jira") -> ConnectorError | None:
    """Our error kind for a JIRAError (None for anything else), Retry-After kept; ``source`` as configured."""
    if not _is_jira_error(error):
        return None
    retry_after = error.response.headers.get("Retry-After") if error.response is not None else None
    return classify_status("jira", error.status_code, jira_message(error), retry_after=retry_after, source=source)


# -- Airtable -----------------------------------------------------------------------

AIRTABLE_ITERATOR_EXPIRED = "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"


class IteratorExpired(Exception):
    """Airtable dropped the list iterator; the listing must start again."""


def airtable_error(response: requests.Response | None) -> tuple[str, str]:
    """(type, message) of an Airtable error body."""
    if response is None:
        return "", "no response"
    try:
        body = response.json()
    except ValueError:
        return "", (response.text or f"HTTP {response.status_code}").strip()[:500]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("type", "")), str(error.get("message", error.get("type", "")))
    if isinstance(error, str):
        return error, str(body.get("message") or error)
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("error", "")), str(errors[0].get("message", ""))
    return "", str(body)[:500]


def airtable_refusal(error: Exception, source: str = "airtable") -> Exception | None:
    """Our error kind for an HTTP error pyairtable raised (None for anything else); ``source`` as configured.

    Airtable documents no Retry-After with a 429: its penalty window is 30 seconds,
    which the connector's throttle waits out, so the retry itself waits nothing unless
    the answer did carry a Retry-After, which is then honoured like any other system's.
    """
    if not isinstance(error, requests.HTTPError):
        return None
    kind, message = airtable_error(error.response)
    status = error.response.status_code if error.response is not None else None
    if status == 422 and kind == AIRTABLE_ITERATOR_EXPIRED:
        return IteratorExpired(message)
    if status == 429:
        header = error.response.headers.get("Retry-After") if error.response is not None else None
        wait = parse_retry_after(header) or 0.0
        return RetriableError("airtable", message or "rate limited", status=429, retry_after=wait)
    text = f"{kind}: {message}" if kind and kind not in message else message
    return classify_status("airtable", status, text, source=source)


# -- Salesforce ---------------------------------------------------------------------


class QuotaReached(Stopped):
    """The configured share of the org's daily API quota is used: stop, resume next run."""


class LocatorExpired(Exception):
    """Salesforce dropped the query cursor; the query must start again."""


def salesforce_error(error: SalesforceError) -> tuple[str, str]:
    """(errorCode, message) from a Salesforce error body."""
    content = error.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        return str(first.get("errorCode", "")), str(first.get("message", ""))
    if isinstance(content, dict):
        return str(content.get("error", "")), str(content.get("error_description") or content.get("message") or content)
    return "", str(content)[:500]


def salesforce_refusal(error: Exception) -> Exception | None:
    """Our error kind for a SalesforceError, by its errorCode and message (None for anything else)."""
    if not _is_salesforce_error(error):
        return None
    code, message = salesforce_error(error)
    if code == "INVALID_QUERY_LOCATOR":
        return LocatorExpired(message)
    text = f"{code}: {message}" if code else message
    if "ConcurrentPerOrg" in message:  # 403 REQUEST_LIMIT_EXCEEDED too, but transient: too many long requests
        return RetriableError("salesforce", text, status=error.status)
    if code == "REQUEST_LIMIT_EXCEEDED":  # the daily allocation is spent
        return QuotaReached("salesforce", text, status=error.status)
    return classify_status("salesforce", error.status, text)
