"""The configured sources, built: each one's connector (by its kind) and mapping, its
secrets read from the environment, and what ``relsync check --online`` asks of them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from config.loader import ConfigError, secret
from config.schema import AirtableSource, Config, JiraSource, SalesforceSource
from config.schema import Source as SourceConfig
from connectors.base import Connector, Kept, ReadSecret, SourceCheck
from connectors.errors import ConnectorError, SourceConfigError, Unreachable
from connectors.retry import RetryPolicy
from mapping.fields import MappingError, SourceMapping
from mapping.shapes import shape_problems, write_problems
from releases.calendar import AFTER_PHASES, BEFORE_PHASES, HELD
from sync.db import Database
from sync.source_cache import StoreCache
from sync.store_location import is_postgres

CONFIG_ERRORS = (ConfigError, MappingError, SourceConfigError)
"""Errors that stop a source for its configuration or credentials (exit 2), never for the data."""


class ConnectorFactories(TypedDict):
    """Per source kind: ``connect(name, config, mapped paths, read_secret, policy, kept)`` -> its connector."""

    jira: Callable[[str, JiraSource, list[str], ReadSecret, RetryPolicy, Kept | None], Connector]
    airtable: Callable[[str, AirtableSource, list[str], ReadSecret, RetryPolicy, Kept | None], Connector]
    salesforce: Callable[[str, SalesforceSource, list[str], ReadSecret, RetryPolicy, Kept | None], Connector]


def _jira(name: str, spec: JiraSource, paths: list[str], read_secret: ReadSecret, policy: RetryPolicy,
          kept: Kept | None) -> Connector:
    from connectors import jira  # each vendor's client library is loaded only when a source of its kind is configured

    return jira.connect(name, spec, paths, read_secret, policy, kept)


def _airtable(name: str, spec: AirtableSource, paths: list[str], read_secret: ReadSecret, policy: RetryPolicy,
              kept: Kept | None) -> Connector:
    from connectors import airtable

    return airtable.connect(name, spec, paths, read_secret, policy, kept)


def _salesforce(name: str, spec: SalesforceSource, paths: list[str], read_secret: ReadSecret, policy: RetryPolicy,
                kept: Kept | None) -> Connector:
    from connectors import salesforce

    return salesforce.connect(name, spec, paths, read_secret, policy, kept)


CONNECTORS: ConnectorFactories = {"jira": _jira, "airtable": _airtable, "salesforce": _salesforce}


def connect(name: str, spec: SourceConfig, paths: list[str], read_secret: ReadSecret, policy: RetryPolicy,
            kept: Kept | None = None) -> Connector:
    """The connector for one configured source, by its kind."""
    if isinstance(spec, JiraSource):
        return CONNECTORS["jira"](name, spec, paths, read_secret, policy, kept)
    if isinstance(spec, AirtableSource):
        return CONNECTORS["airtable"](name, spec, paths, read_secret, policy, kept)
    return CONNECTORS["salesforce"](name, spec, paths, read_secret, policy, kept)


def token_file(store: str, source: str, env: Mapping[str, str] | None = None) -> Path | None:
    """Where a source's access token is kept between runs: beside a SQLite store (None for an in-memory one).

    A PostgreSQL store is shared by runners on several machines and must never hold a
    token: each runner keeps its own in its state folder (``$XDG_STATE_HOME/relsync``,
    else ``~/.local/state/relsync``, created private), named after the store's URL.
    """
    if store == ":memory:":
        return None
    if is_postgres(store):
        env = os.environ if env is None else env
        folder = Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "relsync"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        digest = hashlib.sha256(store.encode()).hexdigest()[:16]
        return folder / f"store-{digest}.{source}.token"
    path = Path(store)
    return path.with_name(f"{path.name}.{source}.token")


def describe(error: BaseException) -> str:
    """An error as one line for the report; unexpected ones keep their type name."""
    if isinstance(error, ConnectorError):
        return error.message
    if isinstance(error, CONFIG_ERRORS):
        return str(error)
    return f"{type(error).__name__}: {error}"


@dataclass
class Source:
    """A configured source: its connector and its mapping."""

    name: str
    connector: Connector
    mapping: SourceMapping
    cache: StoreCache | None = None
    """The metadata the connector keeps in the store between runs (saved by ``save_caches``)."""


def save_caches(db: Database, sources: Mapping[str, Source]) -> None:
    """Write what the connectors kept in their caches this run (from the thread that owns ``db``)."""
    for source in sources.values():
        if source.cache is not None:
            source.cache.save(db)


def build_sources(config: Config, env: Mapping[str, str] | None = None, *, policy: RetryPolicy | None = None,
                  broken: dict[str, BaseException] | None = None, db: Database | None = None) -> dict[str, Source]:
    """Connectors and mappings for every configured source; secrets read from the environment.

    With ``db`` (the store), connectors keep what they may between runs: metadata in the
    store's ``source_cache`` (see ``save_caches``), an access token in a 0600 file beside it.

    Each connector retries under ``policy`` (its waits, sleep and the run's deadline),
    with its own breaker after ``stop_after_server_errors`` server errors in a row.
    With ``broken``, a source that cannot be built (a missing secret) is left out and its
    error kept there, so it stops alone; without, the error is raised.
    """
    base = policy or RetryPolicy()
    sources: dict[str, Source] = {}
    for name, spec in config.sources.items():
        path = f"sources.{name}"
        mapping = SourceMapping(name, spec.kind, spec.fields, spec.write, config_path=path)

        def read_secret(env_name: str, key: str, _path: str = path) -> str:
            return secret(env_name, f"{_path}.auth.{key}", env)

        own = dataclasses.replace(base, breaker_after=spec.stop_after_server_errors)
        cache = StoreCache(db, name) if db is not None else None
        kept = Kept(cache, token_file(config.store, name, env)) if db is not None else None
        try:
            sources[name] = Source(name, connect(name, spec, mapping.source_paths(), read_secret, own, kept), mapping, cache)
        except CONFIG_ERRORS as error:
            if broken is None:
                raise
            broken[name] = error
    return sources


def written_phases(config: Config) -> set[str]:
    """Every phase a ``write.phase`` field may be given under this config's trains."""
    phases = {phase.phase for train in config.trains for phase in train.phases} | {BEFORE_PHASES, AFTER_PHASES}
    return phases | ({HELD} if any(train.requires_signoff for train in config.trains) else set())


def check_online(config: Config, env: Mapping[str, str] | None = None) -> dict[str, SourceCheck]:
    """What each source's live system says about the configuration and the permissions relsync needs there."""
    found: dict[str, SourceCheck] = {}
    for name, source in build_sources(config, env).items():
        spec = config.sources[name]
        statuses = sorted(set((spec.fields.status.map or {}).keys()) | set(spec.write.status.values()))
        try:
            found[name] = source.connector.check(statuses)
            found[name].problems += shape_problems(spec.kind, spec.fields, found[name].field_types)
            found[name].problems += write_problems(spec.kind, spec.write, found[name].field_types, found[name].choices,
                                                   written_phases(config))
        except Unreachable as error:
            found[name] = SourceCheck([error.message], reached=False)
        except ConnectorError as error:
            found[name] = SourceCheck([error.message])
    return found
