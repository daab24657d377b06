"""SOQL text for the Salesforce connector: literals, the configured selection, the pull's order and resume points.

Values are quoted by simple-salesforce's ``format_soql``; only the configured ``where``
is taken as written (it is SOQL by definition).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from simple_salesforce import format_soql

from config.schema import SalesforceSource
from mapping import clock

PULL_ORDER = "SystemModstamp ASC, Id ASC"


def soql_datetime(moment: dt.datetime) -> str:
    """A SOQL dateTime literal (unquoted, UTC)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def select(config: SalesforceSource, fields: list[str], conditions: list[str], order: str = PULL_ORDER) -> str:
    """``SELECT fields`` from the configured object and selection (record type, ``where``), with ``conditions``."""
    where = [f"({c})" for c in conditions]
    if config.record_type:
        where.insert(0, format_soql("RecordType.Name = {}", config.record_type))
    if config.where:
        where.insert(0, f"({config.where})")
    soql = f"SELECT {', '.join(fields)} FROM {config.object}"
    if where:
        soql += " WHERE " + " AND ".join(where)
    return f"{soql} ORDER BY {order}"


def by_ids(config: SalesforceSource, fields: list[str], ids: list[str]) -> str:
    """The records with ``ids`` (deleted ones too, with IsDeleted), in ``fields``."""
    return format_soql(f"SELECT Id, IsDeleted, {', '.join(fields)} FROM {config.object} WHERE Id IN {{}}", ids)


def modified_since(moment: dt.datetime) -> str:
    """Records modified at or after ``moment``."""
    return f"SystemModstamp >= {soql_datetime(moment)}"


def watermark_of(record: dict[str, Any]) -> str:
    """A pull's watermark, ``<SystemModstamp as ISO Z>|<Id>``: sorts as text the way the pull orders records."""
    return f"{clock.stamp(record['SystemModstamp'])}|{record['Id']}"


def after_record(last: dict[str, Any]) -> str:
    """Records after ``last`` in the pull's order (SystemModstamp, Id): where a restarted query resumes."""
    return format_soql(
        "SystemModstamp > {0:literal} OR (SystemModstamp = {0:literal} AND Id > {1})",
        soql_datetime(clock.parse(last["SystemModstamp"])), last["Id"],
    )


def after_id(record_id: str) -> str:
    """Records after ``record_id`` in Id order."""
    return format_soql("Id > {}", record_id)
