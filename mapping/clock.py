"""One clock: how relsync reads, writes and compares moments.

Every moment relsync stores, compares or hands to another package is a timezone-aware
``datetime`` in memory and, as text, UTC ISO-8601 with milliseconds and ``Z``
(``2026-12-08T18:00:00.500Z``): one shape, so text sorts as time does and a
comparison never mixes precisions. Vendors send other shapes (Jira's and
Salesforce's ``+0000``, offsets, more or fewer fraction digits); :func:`parse` reads
them all, and nothing else parses a timestamp.
"""
from __future__ import annotations

import datetime as dt
import re

__all__ = ["TimestampError", "now", "parse", "stamp"]

# Jira "…T10:15:30.123+0000", ISO "…Z" / "+00:00", Salesforce "….000+0000", Airtable "….000Z".
_TIMESTAMP = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<hour>\d{2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d{1,9}))?)?"
    r"(?P<zone>Z|[+-]\d{2}(?::?\d{2})?)"
)


class TimestampError(ValueError):
    """A text that is not a date-time with a time zone."""


def now() -> dt.datetime:
    """The current moment, UTC, to the millisecond (so it survives a round trip through :func:`stamp`)."""
    return _to_millisecond(dt.datetime.now(dt.UTC))


def parse(text: str) -> dt.datetime:
    """A date-time text with a time zone, as an aware UTC datetime.

    Raises:
        TimestampError: the text has no time zone or is not a date-time.
    """
    text = text.strip()
    if _TIMESTAMP.fullmatch(text) is None:
        raise TimestampError(f"not a date-time with a time zone like 2026-11-20T10:15:30.123+0000: {text!r}")
    try:
        # The pattern above decides what is accepted; the standard library (which reads every
        # shape it lets through, and keeps six fraction digits of more) does the arithmetic.
        moment = dt.datetime.fromisoformat(text)
    except ValueError as error:
        raise TimestampError(f"{text!r} is not a valid date-time ({error})") from None
    return moment.astimezone(dt.UTC)


def stamp(moment: dt.datetime | str | None = None) -> str:
    """``moment`` (default: now; a text is parsed first) as ``2026-11-20T10:15:30.123Z``.

    Raises:
        TimestampError: ``moment`` is naive, or a text that :func:`parse` refuses.
    """
    if moment is None:
        moment = now()
    elif isinstance(moment, str):
        moment = parse(moment)
    elif moment.tzinfo is None or moment.utcoffset() is None:
        raise TimestampError(f"naive datetime {moment.isoformat()}: pass a timezone-aware value")
    # isoformat() pads the year to four digits and cuts (does not round) to milliseconds.
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _to_millisecond(moment: dt.datetime) -> dt.datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
