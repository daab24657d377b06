"""Airtable over ``pyairtable``.

Pull: with a last-modified-time field configured, only records modified since the
watermark minus the overlap (a ``filterByFormula`` built with pyairtable's formula
helpers, sorted by that field); otherwise the whole table, changes found by content
hash. An expired list iterator (422 LIST_RECORDS_ITERATOR_NOT_AVAILABLE) restarts
the listing (at most 3 times), skipping what this pull already yielded. Deleted
records are found by reconciling record ids: free after a full listing, otherwise
when due. A linked release is read back as the linked records' names (their primary
field, found in the base schema).
Push: each batch of 10 records is read to compare right before its ``batch_update``
(Airtable has no conditional writes, so the read is kept next to the write: what is
left is the gap between two calls); a refused batch is retried record by record, then field by
field, so one bad value holds back nothing else. Requests are throttled to the
configured rate per base (Airtable allows 5/s; a 429 costs a 30-second penalty).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlparse

import requests
from pyairtable import Api
from pyairtable.api.types import UpdateRecordDict
from pyairtable.formulas import AND, DATETIME_PARSE, EQ, IS_BEFORE, NOT, OR, RECORD_ID, Field, Formula, to_formula_str

from config.schema import AirtableSource
from connectors.base import Estimate, Journal, Kept, Page, Permission, ReadSecret, SourceCheck, SourceRecord, Write, WriteResult
from connectors.calls import ApiCalls, push_until_stopped
from connectors.errors import AIRTABLE_ITERATOR_EXPIRED as ITERATOR_EXPIRED
from connectors.errors import (
    ConnectorError,
    FatalError,
    IteratorExpired,
    PermissionDenied,
    RetriableError,
    SourceConfigError,
    Stopped,
    airtable_refusal,
)
from connectors.history import HistoryBudget, HistoryPage, HistoryTarget
from connectors.http import timeouts, trust
from connectors.paging import iter_pages, restarting
from connectors.retry import RetryPolicy
from connectors.throttle import shared
from connectors.writeback import Pending, calls_for, compare_then_send, write_targets
from mapping import clock

SYSTEM = "airtable"
BATCH = 10
READ_BATCH = 100
RESTARTS = 3
EDITOR_LEVELS = ("edit", "create")  # a base's permissionLevel that may write records


def too_many_restarts() -> FatalError:
    """A listing whose iterator keeps expiring: stop rather than loop."""
    return FatalError(SYSTEM, f"{ITERATOR_EXPIRED}: the record listing expired {RESTARTS + 1} times in a row; giving up")


def connect(name: str, config: AirtableSource, paths: list[str], read_secret: ReadSecret,
            policy: RetryPolicy | None = None, kept: Kept | None = None) -> AirtableConnector:
    """A connector for one configured Airtable source; ``paths`` are the mapped source paths.

    ``kept`` is accepted as every connector's is; an Airtable run needs nothing kept (its token does not expire).
    """
    return AirtableConnector(name, config, paths=paths, token=read_secret(config.auth.token_env, "token_env"), policy=policy)


def field_of(path: str) -> str | None:
    """The Airtable field a mapping path reads (``fields.Status`` -> ``Status``)."""
    return path.split(".", 2)[1] if path.startswith("fields.") else None


def call_kind(response: requests.Response) -> str:
    """The method and what a call reads or writes: ``GET records`` or ``GET meta`` (the schema)."""
    return f"{response.request.method} {'meta' if '/meta/' in urlparse(response.request.url or '').path else 'records'}"


class AirtableConnector:
    """One Airtable table as a relsync source."""

    system = SYSTEM

    def __init__(self, name: str, config: AirtableSource, *, paths: list[str], token: str, policy: RetryPolicy | None = None) -> None:
        self.name = name
        self.config = config
        self.status_field = field_of(config.fields.status.path)
        release = config.write.release
        self.release_field = release.field if release else ""
        self.link_table = release.link_table if release else None  # set only for a linked release (as: link)
        self.fields = sorted({f for f in [*map(field_of, paths), config.modified_field] if f})
        self.targets = write_targets(self.release_field, self.status_field, config.write)
        self.typecast = release is not None and release.as_ == "select"  # a missing choice is added
        self._throttle = shared((config.url, config.base), config.requests_per_second)
        self.calls = ApiCalls(SYSTEM, config.url, kind=call_kind, refusal=self._refusal, policy=policy, throttle=self._throttle)
        # pyairtable annotates the timeout as whole seconds; requests, which receives it, takes floats.
        timeout = timeouts(config.timeout_seconds)
        self.api = Api(token, endpoint_url=config.url, retry_strategy=None, timeout=timeout)  # type: ignore[arg-type]
        self.calls.count(trust(self.api.session, config.ca_bundle))
        self.table = self.api.table(config.base, config.table)
        self._listed: set[str] | None = None
        self._links: dict[str, str] | None = None
        self._primary: str | None = None  # the link table's primary field

    @property
    def reconcile_every_hours(self) -> float:
        """How often an incremental source lists every record id to find deletions."""
        return self.config.reconcile_every_hours

    def stopped(self) -> Stopped | None:
        """Why this run sends nothing more to the source (None while it may)."""
        return self.calls.stopped()

    def call_counts(self) -> dict[str, int]:
        """API calls made so far, by method and kind."""
        return self.calls.counts()

    def _refusal(self, error: Exception) -> Exception | None:
        refused = airtable_refusal(error, self.name)
        if isinstance(refused, RetriableError) and refused.status == 429:
            self._throttle.hold(self.config.penalty_seconds)  # the 30 seconds Airtable penalizes a 429 with
        return refused

    def _list(self, options: dict[str, Any], table: str | None = None) -> Iterator[list[dict[str, Any]]]:
        """Pages of records, each page one throttled, retried call."""
        urls = (self.api.table(self.config.base, table) if table else self.table).urls

        def fetch(offset: str | None) -> dict[str, Any]:
            page_options = dict(options, offset=offset) if offset else options
            return self.calls(lambda: self.api.request("get", urls.records, fallback=("post", urls.records_post), options=page_options))

        for page in iter_pages(SYSTEM, fetch, "offset"):
            yield page.get("records", [])

    def _listing(self, options: dict[str, Any], table: str | None = None) -> Iterator[list[dict[str, Any]]]:
        """Pages of a whole listing; an expired iterator starts it again, so pages may repeat."""
        return restarting(lambda: self._list(options, table), IteratorExpired, restarts=RESTARTS, gave_up=too_many_restarts)

    # -- pull -------------------------------------------------------------------

    def _selection(self, since: str | None) -> str | None:
        parts: list[Formula] = []
        if self.config.formula:
            parts.append(Formula(self.config.formula))
        if since is not None and self.config.modified_field:
            start = clock.parse(since) - dt.timedelta(seconds=self.config.overlap_seconds)
            parts.append(NOT(IS_BEFORE(Field(self.config.modified_field), DATETIME_PARSE(clock.stamp(start)))))
        if not parts:
            return None
        return to_formula_str(parts[0] if len(parts) == 1 else AND(*parts))

    def pull(self, since: str | None) -> Iterator[Page]:
        """Yield pages of records (modified at or after ``since`` when a modified field is set)."""
        modified = self.config.modified_field
        incremental = modified is not None and since is not None
        listed: set[str] = set()
        yielded: dict[str, str | None] = {}
        latest: str | None = None

        def listing() -> Iterator[list[dict[str, Any]]]:
            # After an expired iterator, start again from the newest stamp already yielded
            # (when sorted by it); records this pull already yielded unchanged are skipped.
            start = latest if modified and latest is not None else since if incremental else None
            options = {"page_size": self.config.page_size, "fields": self.fields, "formula": self._selection(start),
                       "sort": [modified] if modified else None, "view": self.config.view}
            return self._list({k: v for k, v in options.items() if v})

        for records in restarting(listing, IteratorExpired, restarts=RESTARTS, gave_up=too_many_restarts):
            listed.update(record["id"] for record in records)
            page = self._page(records, yielded)
            if page.watermark and (latest is None or page.watermark > latest):
                latest = page.watermark
            yield page
        self._listed = None if incremental else listed

    def _page(self, records: list[dict[str, Any]], yielded: dict[str, str | None]) -> Page:
        modified = self.config.modified_field
        out: list[SourceRecord] = []
        stamps: list[str] = []
        for record in records:
            fields = record.get("fields") or {}
            version = clock.stamp(fields[modified]) if modified and fields.get(modified) else None
            if record["id"] in yielded and yielded[record["id"]] == version:
                continue
            yielded[record["id"]] = version
            if version:
                stamps.append(version)
            out.append(SourceRecord(native_id=record["id"], native_key=None, url=self._url(record["id"]), version=version,
                                    raw=self._named_links(record)))
        return Page(records=out, watermark=max(stamps) if stamps else None)

    def _named_links(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record with a linked release given as the linked records' names, as relsync writes it."""
        if self.link_table is None:
            return record
        fields = record.get("fields") or {}
        links = fields.get(self.release_field)
        if not links:
            return record
        names = self._link_names()
        return {**record, "fields": {**fields, self.release_field: [names.get(link, link) for link in links]}}

    def _url(self, record_id: str) -> str | None:
        table = self.config.table
        return f"https://airtable.com/{self.config.base}/{table}/{record_id}" if table.startswith("tbl") else None

    def reconcile(self, known: Callable[[], set[str]], *, due: bool, since: str | None = None) -> list[str] | None:
        """Known record ids Airtable no longer has (None when not checked this run); ``since`` is unused."""
        if self._listed is not None:
            return sorted(known() - self._listed)
        if not due:
            return None
        options: dict[str, Any] = {"page_size": READ_BATCH, "fields": [field_of(self.config.fields.title.path) or "Name"]}
        if formula := self._selection(None):
            options["formula"] = formula
        missing = known()  # crossed off page by page: one set of ids held, not two
        for records in self._listing(options):
            missing.difference_update(r["id"] for r in records)
        return sorted(missing)

    # -- push -------------------------------------------------------------------

    def push(self, writes: list[Write], journal: Journal | None = None) -> list[WriteResult]:
        """Per 10 records: read to compare, then write; conflicts and refusals become results."""
        return push_until_stopped(writes, journal, lambda recording: compare_then_send(
            writes, system="Airtable", targets=self.targets, read=self._current, read_batch=BATCH, send=self._send,
            send_batch=BATCH, gone="record {} no longer exists or left the selection", journal=recording))

    def _current(self, record_ids: list[str], fields: list[str]) -> dict[str, dict[str, Any]]:
        """What ``fields`` show now on the records (one listing); a linked release as the linked records' names."""
        formula = to_formula_str(OR(*[EQ(RECORD_ID(), record_id) for record_id in record_ids]))
        found: dict[str, dict[str, Any]] = {}
        for records in self._listing({"fields": fields, "formula": formula, "page_size": READ_BATCH}):
            found.update({r["id"]: {f: self._shown(f, (r.get("fields") or {}).get(f)) for f in fields} for r in records})
        return found

    def _shown(self, field: str, value: Any) -> Any:
        if self.link_table and field == self.release_field:
            names = self._link_names()
            return next((names.get(v, v) for v in value or []), None)
        return value if value not in ("", []) else None

    def _send(self, batch: list[Pending]) -> list[WriteResult]:
        """One batch_update; a batch Airtable refuses is sent again record by record, then field by field."""
        try:
            payload: list[UpdateRecordDict] = [{"id": p.record, "fields": {self.targets[w.field]: self._native(w) for w in p.writes}}
                                               for p in batch]
            self.calls(lambda: self.table.batch_update(payload, typecast=self.typecast))
        except PermissionDenied as error:
            problem = (f"Airtable: updating records in table {self.config.table!r} needs a token with the data.records:write "
                       f"scope and editor access to base {self.config.base} ({error.message})")
            return [WriteResult(w, "failed", problem) for p in batch for w in p.writes]
        except SourceConfigError:
            raise
        except ConnectorError as error:
            if (held := self.calls.held_back([w for p in batch for w in p.writes], error)) is not None:
                return held
            if isinstance(error, FatalError) and len(batch) > 1:
                # Airtable refuses the whole batch for one bad value: find it record by record,
                return [r for p in batch for r in self._send([p])]
            if isinstance(error, FatalError) and len(batch[0].writes) > 1:
                # then field by field, so a bad status does not hold back the release.
                return [r for w in batch[0].writes for r in self._send([dataclasses.replace(batch[0], writes=[w])])]
            return [WriteResult(w, "failed", error.message) for p in batch for w in p.writes]
        return [WriteResult(w, "ok") for p in batch for w in p.writes]

    def _native(self, write: Write) -> Any:
        if write.field == "release" and self.link_table:
            return [self._link_id(self.link_table, write.value)] if write.value else []
        return write.value

    def _link_primary(self) -> str:
        """The name of the link table's primary field, from the base schema (read once per run).

        A linked record shows as its primary field's value, whatever that field is called.
        """
        if self._primary is None:
            base = self.api.base(self.config.base)
            schema = self.calls(lambda: base.schema(force=True))
            try:
                table = schema.table(self.link_table or "")
            except KeyError:
                raise SourceConfigError(SYSTEM, f"table {self.link_table!r} (sources.{self.name}.write.release.link_table) "
                                                f"does not exist in base {self.config.base}") from None
            self._primary = table.field(table.primary_field_id).name
        return self._primary

    def _link_names(self) -> dict[str, str]:
        """Record id -> primary value in the release link table (read once per run)."""
        if self._links is None:
            primary = self._link_primary()
            names: dict[str, str] = {}
            for records in self._listing({"page_size": READ_BATCH, "fields": [primary]}, self.link_table):
                for record in records:
                    if value := (record.get("fields") or {}).get(primary):
                        names[record["id"]] = str(value)
            self._links = names
        return self._links

    def _link_id(self, link_table: str, name: str) -> str:
        names = self._link_names()
        if existing := next((record_id for record_id, value in names.items() if value == name), None):
            return existing
        table = self.api.table(self.config.base, link_table)
        primary = self._link_primary()

        def landed() -> str | None:  # a create that timed out or failed may have landed: look before repeating it
            formula = to_formula_str(EQ(Field(primary), name))
            return next((r["id"] for r in table.all(formula=formula, fields=[primary], max_records=1)), None)

        created = self.calls(lambda: table.create({primary: name})["id"], applied=landed)
        names[created] = name
        return created

    def estimate(self, writes: list[Write]) -> Estimate:
        """The calls ``push(writes)`` would make when nothing changed in between, and their time."""
        records = len({w.native_id for w in writes})
        calls = {"compare reads": calls_for(records, BATCH), "batch updates": calls_for(records, BATCH)}
        if self.link_table and any(w.field == "release" for w in writes):
            calls["release table schema and read"] = 2
        rate, total = self.config.requests_per_second, sum(calls.values())
        return {"calls": total, "by_kind": calls, "limit": f"{rate:g} requests/s per base: at least {total / rate:.1f} s"}

    # -- history ----------------------------------------------------------------

    history_kind = None
    """Airtable's API serves no record history: relsync's own observed changes stand in for it."""

    def history(self, targets: Iterable[HistoryTarget], since: str | None, budget: HistoryBudget) -> Iterator[HistoryPage]:
        """Nothing: there is no history to read."""
        return iter(())

    def history_estimate(self, targets: int) -> int:
        """No calls."""
        return 0

    # -- check ------------------------------------------------------------------

    def check(self, statuses: list[str]) -> SourceCheck:
        """Credentials, mapped fields and select choices against the metadata API, and what the token may do."""
        schema = self.calls(lambda: self.table.schema(force=True))
        by_name = {field.name: field for field in schema.fields}
        found = SourceCheck([f"field {name!r} does not exist in table {self.config.table!r}"
                             for name in [*self.fields, *([self.release_field] if self.release_field else [])]
                             if name not in by_name])
        status = by_name.get(self.status_field or "")
        choices = {c.name for c in getattr(getattr(status, "options", None), "choices", None) or []}
        found.problems += [f"status {value!r} is not a choice of single select {self.status_field!r}"
                           for value in statuses if choices and value not in choices]
        if self.config.modified_field and self.config.modified_field in by_name:
            kind = by_name[self.config.modified_field].type
            if kind != "lastModifiedTime":
                found.problems.append(f"modified_field {self.config.modified_field!r} is a {kind} field, not lastModifiedTime")
        found.field_types = {field.name: field.type for field in schema.fields}
        found.choices = {field.name: [c.name for c in getattr(getattr(field, "options", None), "choices", None) or []]
                         for field in schema.fields if field.type == "singleSelect"}
        found.permissions = self._permissions()
        return found

    def _permissions(self) -> list[Permission]:
        """The token's scopes (whoami names them for OAuth tokens only) and the account's access to the base."""
        scopes = self.calls(lambda: self.api.whoami()).get("scopes")
        writes = bool(self.targets)
        needed = [("schema.bases:read", "reading the base schema (it was just read)"), ("data.records:read", "reading records")]
        if writes:
            needed.append(("data.records:write", "writing the release and status"))
        levels = {base.id: base.permission_level for base in self.calls(lambda: self.api.bases(force=True))}
        level = levels.get(self.config.base)
        permissions = [Permission(f"token scope {scope}", needed_for,
                                  True if scope.startswith("schema") else None if scopes is None else scope in scopes)
                       for scope, needed_for in needed]
        if writes:
            permissions.append(Permission(f"editor access to base {self.config.base} (the account's is {level or 'none'})",
                                          "writing records", level in EDITOR_LEVELS))
        return permissions
