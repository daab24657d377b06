"""How the config names a store: a SQLite path, or a PostgreSQL URL that never carries the password.

The password is read from an environment variable (``RELSYNC_STORE_PASSWORD`` unless
another is named), so it stays out of config files, shell history, process lists, logs
and error messages. This module imports no database client.
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

PASSWORD_ENV = "RELSYNC_STORE_PASSWORD"
"""The environment variable the PostgreSQL store's password is read from, unless another is named."""

_SCHEMES = ("postgresql", "postgres")


class StoreLocationError(ValueError):
    """A store location relsync will not use as given (a password inside a URL, a malformed URL)."""


def is_postgres(location: str) -> bool:
    """Whether ``location`` is a PostgreSQL URL rather than a SQLite path."""
    scheme, sep, _ = location.partition("://")
    return bool(sep) and scheme.lower() in _SCHEMES


def check_postgres_url(url: str, *, password_env: str = PASSWORD_ENV) -> None:
    """Refuse a URL that carries a password (in its user part or as ``?password=``)."""
    try:
        parts = urlsplit(url)
        has_password = parts.password is not None or "password" in {key.lower() for key in parse_qs(parts.query)}
    except ValueError:
        # Not the parser's words: they can quote a piece of the URL.
        raise StoreLocationError("the store URL is malformed: postgresql://USER@HOST[:PORT]/DATABASE") from None
    if has_password:
        # The URL is not repeated here: it holds the secret.
        raise StoreLocationError(f"the store URL carries a password: remove it from the URL and set the environment "
                                 f"variable {password_env} instead")
