"""``relsync store``: the store itself, as a whole (for now: copying it between SQLite and PostgreSQL)."""
from __future__ import annotations

import click

from relsync.common import JSON_OPTION, emit, library_errors
from sync.store_location import PASSWORD_ENV


@click.group()
def store() -> None:
    """Copy the whole store between SQLite and PostgreSQL."""


@store.command("copy")
@click.argument("source")
@click.argument("target")
@click.option("--password-env", default=PASSWORD_ENV, show_default=True, metavar="NAME",
              help="The environment variable holding the PostgreSQL password (never put it in the URL).")
@JSON_OPTION
@library_errors
def copy_command(source: str, target: str, password_env: str, as_json: bool) -> None:
    """Copy every table of the store SOURCE into the empty store TARGET and verify the audit chain there.

    Each is a SQLite file or a postgresql://USER@HOST[:PORT]/DATABASE URL. The target is
    created or migrated first, and refused unless it is empty.
    """
    from sync.store_copy import copy_between

    report = copy_between(source, target, password_env=password_env)
    emit(report.as_dict(), as_json, report.summary())
