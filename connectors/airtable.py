"""Airtable over ``pyairtable``.

Pull: with a last-modified-time field configured, only records modified since the
watermark minus the overlap (a ``filterByFormula`` built with pyairtable's formula
helpers, sorted by that field); otherwise the whole table, changes found by content
hash. An expired list iterator (422 LIST_RECORDS_ITERATOR_NOT_AVAILABLE) restarts
the listing (at most 3 times), skipping what this pull already yielded. Deleted
records are found by reconciling record ids: free after a full listing, otherwise
when due. A linked release is read back as the linked records' names.
Push: one read per 100 records to compare before writing, then ``batch_update``
10 records per call; a refused batch is retried record by record, then field by
field, so one bad value holds back nothing else. Requests are throttled to the
configured rate per base (Airtable allows 5/s; a 429 costs a 30-second penalty).
"""
from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlparse

import requests
from pyairtable import Api
from pyairtable.formulas import (
    AND,
    DATETIME_PARSE,
    EQ,
    IS_BEFORE,
    NOT,
    OR,
    RECORD_ID,
    Field,
    Formula,
    to_formula_str,
)

from config.schema import AirtableSource
from connectors.base import Page, SourceRecord, Write, WriteResult, compare
from connectors.errors import (
    ConnectorError,
    FatalError,
    RetriableError,
    SourceConfigError,
    classify_status,
)
from connectors.http import trust
from connectors.paging import iter_pages
from connectors.retry import RetryPolicy, call_with_retry
from connectors.throttle import Throttle
from mapping import clock

T = TypeVar("T")
SYSTEM = "airtable"
BATCH = 10
READ_BATCH = 100
ITERATOR_EXPIRED = "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"
RESTARTS = 3


class IteratorExpired(Exception):
    """Airtable dropped the list iterator; the listing must start again."""


def too_many_restarts() -> FatalError:
    """A listing whose iterator keeps expiring: stop rather than loop."""
    return FatalError(SYSTEM, f"{ITERATOR_EXPIRED}: the record listing expired {RESTARTS + 1} times in a row; giving up")


def connect(
    name: str, config: AirtableSource, paths: list[str], read_secret: Callable[[str, str], str]
) -> AirtableConnector:
    """A connector for one configured Airtable source; ``paths`` are the mapped source paths."""
    return AirtableConnector(name, config, paths=paths, token=read_secret(config.auth.token_env, "token_env"))


def field_of(path: str) -> str | None:
    """The Airtable field a mapping path reads (``fields.Status`` -> ``Status``)."""
    return path.split(".", 2)[1] if path.startswith("fields.") else None


def error_of(response: requests.Response | None) -> tuple[str, str]:
    """(type, message) of an Airtable error body."""
    if response is None:
        return "", "no response"
    try:
        body = response.json()
    except ValueError:
        return "", (response.text or f"HTTP {response.status_code}").strip()[:500]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("type", "")), str(error.get("message", error.get("type", "")))
    if isinstance(error, str):
        return error, str(body.get("message") or error)
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("error", "")), str(errors[0].get("message", ""))
    return "", str(body)[:500]


class AirtableConnector:
    """One Airtable table as a relsync source."""

    system = SYSTEM

    def __init__(self, name: str, config: AirtableSource, *, paths: list[str], token: str, policy: RetryPolicy | None = None) -> None:
        self.name = name
        self.config = config
        self.status_field = field_of(config.fields.status.path)
        self.release_target = config.write.release
        self.fields = sorted({f for f in [*map(field_of, paths), config.modified_field] if f})
        self._policy = policy or RetryPolicy()
        self._calls: Counter[str] = Counter()
        self._throttle = Throttle(config.requests_per_second)
        self.api = Api(token, endpoint_url=config.url, retry_strategy=None, timeout=(10, config.timeout_seconds))
        trust(self.api.session, config.ca_bundle)
        self.api.session.hooks["response"].append(self._count)
        self.table = self.api.table(config.base, config.table)
        self._listed: set[str] | None = None
        self._links: dict[str, str] | None = None

    # -- plumbing ---------------------------------------------------------------

    def _count(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        path = urlparse(response.request.url or "").path
        kind = "meta" if "/meta/" in path else "records"
        self._calls[f"{response.request.method} {kind}"] += 1

    def call_counts(self) -> dict[str, int]:
        """API calls made so far, by method and kind."""
        return dict(self._calls)

    def _call(self, fn: Callable[[], T]) -> T:
        """One throttled API call under the retry policy, its failures classified."""

        def attempt() -> T:
            try:
                with self._throttle.slot():
                    return fn()
            except requests.HTTPError as error:
                kind, message = error_of(error.response)
                status = error.response.status_code if error.response is not None else None
                if status == 422 and kind == ITERATOR_EXPIRED:
                    raise IteratorExpired(message) from None
                if status == 429:
                    # Airtable sends no Retry-After: the penalty is documented as 30 seconds.
                    self._throttle.hold(self.config.penalty_seconds)
                    raise RetriableError(SYSTEM, message or "rate limited", status=429, retry_after=0) from None
                text = f"{kind}: {message}" if kind and kind not in message else message
                raise classify_status(SYSTEM, status, text) from None
            except requests.exceptions.SSLError as error:
                raise SourceConfigError(SYSTEM, f"TLS verification failed for {self.config.url}: {error}") from None
            except requests.RequestException as error:
                raise RetriableError(SYSTEM, f"{type(error).__name__} talking to {self.config.url}") from None

        return call_with_retry(attempt, self._policy)

    def _list(self, options: dict[str, Any], table: str | None = None) -> Iterator[list[dict[str, Any]]]:
        """Pages of records, each page one throttled, retried call."""
        urls = (self.api.table(self.config.base, table) if table else self.table).urls

        def fetch(offset: str | None) -> dict[str, Any]:
            page_options = dict(options, offset=offset) if offset else options
            return self._call(
                lambda: self.api.request("get", urls.records, fallback=("post", urls.records_post), options=page_options)
            )

        for page in iter_pages(SYSTEM, fetch, "offset"):
            yield page.get("records", [])

    def _listing(self, options: dict[str, Any], table: str | None = None) -> Iterator[list[dict[str, Any]]]:
        """Pages of a whole listing; an expired iterator starts it again, so pages may repeat."""
        for _ in range(RESTARTS + 1):
            try:
                yield from self._list(options, table)
                return
            except IteratorExpired:
                continue
        raise too_many_restarts()

    # -- pull -------------------------------------------------------------------

    def _selection(self, since: str | None) -> str | None:
        parts: list[Formula] = []
        if self.config.formula:
            parts.append(Formula(self.config.formula))
        if since is not None and self.config.modified_field:
            start = clock.parse(since) - dt.timedelta(
                seconds=self.config.overlap_seconds
            )
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
        start = since if incremental else None
        latest: str | None = None
        for _ in range(RESTARTS + 1):
            options = {"page_size": self.config.page_size, "fields": self.fields, "formula": self._selection(start),
                       "sort": [modified] if modified else None, "view": self.config.view}
            try:
                for records in self._list({k: v for k, v in options.items() if v}):
                    listed.update(record["id"] for record in records)
                    page = self._page(records, yielded)
                    if page.watermark and (latest is None or page.watermark > latest):
                        latest = page.watermark
                    yield page
                break
            except IteratorExpired:
                # Start again (from the newest stamp already yielded, when sorted by it);
                # records this pull already yielded unchanged are skipped.
                if modified and latest is not None:
                    start = latest
        else:
            raise too_many_restarts()
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
            raw = self._named_links(record)
            out.append(SourceRecord(native_id=record["id"], native_key=None, url=self._url(record["id"]), version=version, raw=raw))
        return Page(records=out, watermark=max(stamps) if stamps else None)

    def _named_links(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record with a linked release given as the linked records' names, as relsync writes it."""
        if self.release_target is None or self.release_target.as_ != "link":
            return record
        fields = record.get("fields") or {}
        links = fields.get(self.release_target.field)
        if not links:
            return record
        names = self._link_names()
        return {**record, "fields": {**fields, self.release_target.field: [names.get(link, link) for link in links]}}

    def _url(self, record_id: str) -> str | None:
        table = self.config.table
        return f"https://airtable.com/{self.config.base}/{table}/{record_id}" if table.startswith("tbl") else None

    def reconcile(self, known: set[str], *, due: bool, since: str | None = None) -> list[str] | None:
        """Known record ids Airtable no longer has (None when not checked this run); ``since`` is unused."""
        if self._listed is not None:
            return sorted(known - self._listed)
        if not due:
            return None
        options: dict[str, Any] = {"page_size": READ_BATCH, "fields": [field_of(self.config.fields.title.path) or "Name"]}
        if formula := self._selection(None):
            options["formula"] = formula
        present: set[str] = set()
        for records in self._listing(options):
            present.update(r["id"] for r in records)
        return sorted(known - present)

    # -- push -------------------------------------------------------------------

    def _target(self, write: Write) -> str | None:
        if write.field == "release" and self.release_target is not None:
            return self.release_target.field
        if write.field == "status":
            return self.status_field
        return None

    def _current(self, record_ids: list[str], fields: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(record_ids), READ_BATCH):
            batch = record_ids[start : start + READ_BATCH]
            formula = to_formula_str(OR(*[EQ(RECORD_ID(), record_id) for record_id in batch]))
            options = {"fields": fields, "formula": formula, "page_size": READ_BATCH}
            for records in self._listing(options):
                found.update({r["id"]: r.get("fields") or {} for r in records})
        return found

    def _shown(self, write: Write, fields: dict[str, Any]) -> Any:
        value = fields.get(self._target(write) or "")
        if write.field == "release" and self.release_target is not None and self.release_target.as_ == "link":
            names = self._link_names()
            return next((names.get(v, v) for v in value or []), None)
        return value if value not in ("", []) else None

    def push(self, writes: list[Write]) -> list[WriteResult]:
        """Compare, then write in batches of 10; conflicts and refusals become results."""
        results: list[WriteResult] = []
        targets = sorted({t for w in writes if (t := self._target(w))})
        current = self._current(sorted({w.native_id for w in writes}), targets)
        pending: dict[str, list[Write]] = {}
        for write in writes:
            target = self._target(write)
            if target is None:
                results.append(WriteResult(write, "failed", f"relsync has no Airtable field configured for {write.field!r}"))
                continue
            if write.native_id not in current:
                results.append(WriteResult(write, "failed", f"record {write.native_id} no longer exists or left the selection"))
                continue
            shown = self._shown(write, current[write.native_id])
            done = compare(write, shown, "Airtable", f"{write.native_id} {target}")
            if done is None:
                pending.setdefault(write.native_id, []).append(write)
            else:
                results.append(done)
        record_ids = list(pending)
        for start in range(0, len(record_ids), BATCH):
            chunk = {rid: pending[rid] for rid in record_ids[start : start + BATCH]}
            results.extend(self._update(chunk))
        return results

    def _update(self, chunk: dict[str, list[Write]]) -> list[WriteResult]:
        typecast = self.release_target is not None and self.release_target.as_ == "select"
        try:
            payload = [{"id": rid, "fields": {self._target(w): self._native(w) for w in ws}} for rid, ws in chunk.items()]
            self._call(lambda: self.table.batch_update(payload, typecast=typecast))
        except SourceConfigError:
            raise
        except ConnectorError as error:
            if isinstance(error, FatalError) and len(chunk) > 1:
                # Airtable refuses the whole batch for one bad value: find it record by record,
                return [r for rid, ws in chunk.items() for r in self._update({rid: ws})]
            [(rid, ws)] = chunk.items()
            if isinstance(error, FatalError) and len(ws) > 1:
                # then field by field, so a bad status does not hold back the release.
                return [r for w in ws for r in self._update({rid: [w]})]
            return [WriteResult(w, "failed", error.message) for w in ws]
        return [WriteResult(w, "ok") for ws in chunk.values() for w in ws]

    def _native(self, write: Write) -> Any:
        if write.field == "release" and self.release_target is not None and self.release_target.as_ == "link":
            return [self._link_id(write.value)] if write.value else []
        return write.value

    def _link_names(self) -> dict[str, str]:
        """Record id -> primary value in the release link table (read once per run)."""
        if self._links is None:
            assert self.release_target is not None and self.release_target.link_table
            names: dict[str, str] = {}
            for records in self._listing({"page_size": READ_BATCH}, self.release_target.link_table):
                for record in records:
                    fields = record.get("fields") or {}
                    if primary := fields.get("Name", next(iter(fields.values()), None)):
                        names[record["id"]] = str(primary)
            self._links = names
        return self._links

    def _link_id(self, name: str) -> str:
        names = self._link_names()
        for record_id, value in names.items():
            if value == name:
                return record_id
        assert self.release_target is not None and self.release_target.link_table
        table = self.api.table(self.config.base, self.release_target.link_table)
        created = self._call(lambda: table.create({"Name": name}))
        names[created["id"]] = name
        return created["id"]

    def estimate(self, writes: list[Write]) -> dict[str, Any]:
        """The calls ``push(writes)`` would make when nothing changed in between, and their time."""
        records = {w.native_id for w in writes}
        calls = {"compare reads": -(-len(records) // READ_BATCH), "batch updates": -(-len(records) // BATCH)}
        if self.release_target is not None and self.release_target.as_ == "link" and any(w.field == "release" for w in writes):
            calls["release table read"] = 1
        total = sum(calls.values())
        seconds = total / self.config.requests_per_second
        return {"calls": total, "by_kind": calls,
                "limit": f"{self.config.requests_per_second:g} requests/s per base: at least {seconds:.1f} s"}

    # -- check ------------------------------------------------------------------

    def check(self, statuses: list[str]) -> list[str]:
        """Credentials, mapped fields and select choices against the metadata API."""
        schema = self._call(lambda: self.table.schema(force=True))
        problems: list[str] = []
        by_name = {field.name: field for field in schema.fields}
        for name in self.fields + [t for t in (self.release_target.field if self.release_target else None,) if t]:
            if name not in by_name:
                problems.append(f"field {name!r} does not exist in table {self.config.table!r}")
        status = by_name.get(self.status_field or "")
        choices = {c.name for c in getattr(getattr(status, "options", None), "choices", None) or []}
        problems += [f"status {value!r} is not a choice of single select {self.status_field!r}"
                     for value in statuses if choices and value not in choices]
        if self.config.modified_field and self.config.modified_field in by_name:
            kind = by_name[self.config.modified_field].type
            if kind != "lastModifiedTime":
                problems.append(f"modified_field {self.config.modified_field!r} is a {kind} field, not lastModifiedTime")
        return problems
