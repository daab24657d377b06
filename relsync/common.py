"""What every ``relsync`` command shares: the --config and --json options, one error table, output, the store.

Exit codes (one table, see ``sync.exits``): 0 clean; 1 partial (a source, record or
write failed, the rest done); 2 configuration or credentials; 3 locked; 4 interrupted;
5 a release, request or store named on the command line does not exist.
"""
from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from sync.exits import EXIT_CONFIG, EXIT_LOCKED, EXIT_NOT_FOUND, EXIT_PARTIAL

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="RELSYNC_CONFIG",
    default="relsync.yaml",
    show_default=True,
    help="The relsync YAML file (or $RELSYNC_CONFIG).",
)
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")


class Failure(click.ClickException):
    """An error message; the run failed in part or was refused (exit 1)."""

    exit_code = EXIT_PARTIAL


class ConfigFailure(Failure):
    """A configuration or credential error (exit 2)."""

    exit_code = EXIT_CONFIG


class NotFoundFailure(Failure):
    """A release, request or store named on the command line does not exist (exit 5)."""

    exit_code = EXIT_NOT_FOUND


class LockedFailure(Failure):
    """Another run holds the store's lock (exit 3)."""

    exit_code = EXIT_LOCKED


def library_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn relsync's exceptions into messages and exit codes, in one place."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except click.ClickException:
            raise
        except Exception as error:
            failure = failure_for(error)
            if failure is None:
                raise
            raise failure from None

    return wrapper


def failure_for(error: Exception) -> Failure | None:
    """The message and exit code one of relsync's exceptions stands for; None for any other exception."""
    # Imported once an error happens, not at start-up: these modules load pydantic, jinja2 and the vendor clients.
    from config.loader import ConfigError
    from connectors.errors import ConnectorError, SourceConfigError
    from mapping.fields import MappingError
    from reports.ics import UnknownTrainError
    from reports.notes import UnknownReleaseError
    from sync.lock import LockedError
    from sync.manual import ManualError
    from sync.store import StoreMissing
    from sync.store_location import ChainBroken, StoreConnectError, StoreCopyRefused, StoreDatabaseError, StoreLocationError

    table: list[tuple[tuple[type[Exception], ...], type[Failure]]] = [
        ((ConfigError, MappingError, SourceConfigError, StoreLocationError, StoreConnectError), ConfigFailure),
        ((LockedError,), LockedFailure),
        # A release, request or train the user named does not exist (or the action cannot be done).
        ((ManualError, UnknownReleaseError, UnknownTrainError, StoreMissing), NotFoundFailure),
        ((ConnectorError, StoreCopyRefused, StoreDatabaseError, ChainBroken), Failure),
    ]
    for kinds, failure in table:
        if isinstance(error, kinds):
            return failure(str(error))
    return None


def emit(data: Any, as_json: bool, text: str) -> None:
    """Print JSON or text."""
    click.echo(json.dumps(data, indent=2, default=str) if as_json else text)


@contextlib.contextmanager
def store_of(config_path: Path, *, locked: bool = False) -> Iterator[Any]:
    """The configured store, open for one command; ``locked`` holds the plan lock (a runner planning -> exit 3)."""
    from config.loader import load_config
    from sync.lock import plan_lock
    from sync.store import open_database

    config = load_config(config_path)
    with plan_lock(config.store) if locked else contextlib.nullcontext():
        db = open_database(config.store, create=False)
        try:
            yield db
        finally:
            db.close()
