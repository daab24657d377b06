"""Where a store is: a SQLite file (a path) or a PostgreSQL database (a ``postgresql://`` URL).

A URL names the server, the user and the database, never the password: that is read from
an environment variable (``RELSYNC_STORE_PASSWORD`` unless another is named), so it stays
out of config files, shell history, process lists, logs and error messages. This module
imports no database client, so every command can tell the errors apart cheaply.
"""
from __future__ import annotations

from config.store_url import PASSWORD_ENV, StoreLocationError, check_postgres_url, is_postgres

__all__ = [
    "PASSWORD_ENV", "ChainBroken", "StoreConnectError", "StoreCopyRefused", "StoreDatabaseError", "StoreLocationError",
    "StoreMissing", "check_postgres_url", "is_postgres",
]


class StoreConnectError(ConnectionError):
    """The PostgreSQL store could not be reached or refused the login; the message names the URL, never the password."""


class StoreDatabaseError(RuntimeError):
    """PostgreSQL refused an operation on a store it let relsync open (a permission, a value it cannot hold)."""


class StoreCopyRefused(RuntimeError):
    """A store copy that would lose or mix data: a target that is not empty, schemas or histories that differ."""


class ChainBroken(RuntimeError):
    """The audit chain does not verify on a store a copy wrote."""


class StoreMissing(LookupError):
    """A command that only reads the store found none where the config says."""
