"""Timestamps as the three APIs write them, and as relsync stores them (UTC ISO-8601 with ``Z``)."""
from __future__ import annotations

import datetime as dt


def parse_time(value: str) -> dt.datetime:
    """Jira's and Salesforce's ``2026-11-20T10:15:30.123+0000``, or ISO-8601 with ``Z`` or an offset."""
    text = value.replace("Z", "+00:00")
    if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":
        text = f"{text[:-2]}:{text[-2:]}"
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


def iso_utc(moment: dt.datetime | str) -> str:
    """UTC ISO-8601 with milliseconds and ``Z``: sortable as text, as watermarks are."""
    if isinstance(moment, str):
        moment = parse_time(moment)
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
