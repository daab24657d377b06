"""Salesforce's value formats: record ids with their case-safe suffix, and timestamps.

Ids are 15 case-sensitive base-62 characters (3-character key prefix, 2-character pod,
one reserved character, 9-character record number) plus a 3-character suffix that makes
the 18-character form case-insensitive: each 5-character chunk of the 15 becomes a 5-bit
number (bit i set when character i is an upper-case letter), looked up in A-Z0-5.
Timestamps are stored to the second (Salesforce ignores milliseconds when comparing them)
and written ``2026-11-20T10:15:30.000+0000``.
"""
from __future__ import annotations

import datetime as dt
import re

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
"""Digits in ASCII order, so that ids of one prefix sort in creation order."""
SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
POD = "8d"
_ID_CHARS = re.compile(r"[0-9A-Za-z]+")
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:?\d{2})$"
)
UTC = dt.UTC


def id_suffix(id15: str) -> str:
    """The 3-character case-safe suffix of a 15-character id."""
    suffix = ""
    for start in (0, 5, 10):
        bits = 0
        for offset, char in enumerate(id15[start : start + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << offset
        suffix += SUFFIX_ALPHABET[bits]
    return suffix


def make_id(key_prefix: str, number: int) -> str:
    """The 18-character id of record ``number`` of the object with ``key_prefix``."""
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = BASE62[rest] + digits
    body = f"{key_prefix}{POD}0{digits.rjust(9, '0')}"
    if len(body) != 15:
        raise ValueError(f"record number too large for a Salesforce id: {number}")
    return body + id_suffix(body)


def canonical_id(value: object) -> str | None:
    """The 18-character form of a 15- or 18-character id (any letter case for 18), or None."""
    if not isinstance(value, str) or len(value) not in (15, 18) or not _ID_CHARS.fullmatch(value):
        return None
    if len(value) == 15:
        return value + id_suffix(value)
    suffix = value[15:].upper()
    if any(char not in SUFFIX_ALPHABET for char in suffix):
        return None
    chars = []
    for position, char in enumerate(value[:15]):
        upper = SUFFIX_ALPHABET.index(suffix[position // 5]) >> (position % 5) & 1
        chars.append(char.upper() if upper else char.lower())
    body = "".join(chars)
    return body + id_suffix(body)


def to_second(moment: dt.datetime) -> dt.datetime:
    """``moment`` in UTC, truncated to the second (the precision Salesforce keeps)."""
    return moment.astimezone(UTC).replace(microsecond=0)


def format_datetime(moment: dt.datetime | None) -> str | None:
    """A dateTime as the REST API writes it: ``2026-11-20T10:15:30.000+0000``."""
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def format_date(day: dt.date | None) -> str | None:
    """A date as the REST API writes it: ``2026-11-20``."""
    return None if day is None else day.isoformat()


def parse_datetime(text: str) -> dt.datetime | None:
    """An ISO 8601 dateTime with a zone (``Z``, ``+hh:mm`` or ``+hhmm``, up to 6 fractional digits), or None."""
    match = _DATETIME.match(text.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if zone == "Z":
        offset = dt.timedelta(0)
    else:
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    try:
        moment = dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                             int((fraction or "0").ljust(6, "0")), tzinfo=dt.timezone(offset))
    except ValueError:
        return None
    return moment.astimezone(UTC)


def parse_date(text: str) -> dt.date | None:
    """A ``YYYY-MM-DD`` date, or None."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None
