"""Salesforce over ``simple-salesforce``.

Login: an OAuth 2.0 token from the org's My Domain (client credentials, or a
refresh token), then ``Salesforce(instance_url=..., session_id=..., session=...)``;
an expired session logs in again once. Pull: one ``queryAll`` ordered by
(SystemModstamp, Id) from the watermark minus the overlap, so records sharing a
modstamp are never lost across page or run boundaries and soft deletes arrive in the
same query (IsDeleted); hard deletes come from Get Deleted, or from a full id
reconcile when its window was missed. An expired query locator restarts the query
just after the last settled record. Every response's Sforce-Limit-Info is read, and
the pull stops cleanly once the configured share of the daily quota is used.
Push: one query per 400 records compares before writing, then Composite calls of 25
record PATCHes each, every one conditional (``If-Unmodified-Since`` the record's
LastModifiedDate as the compare read it), allOrNone false: an edit that lands after
the read makes its record's write a 412 conflict instead of being overwritten.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlparse

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError

from config.schema import SalesforceSource
from connectors import soql
from connectors.base import Estimate, Journal, Kept, Page, Permission, ReadSecret, SourceCheck, SourceRecord, Write, WriteResult
from connectors.calls import ApiCalls, push_until_stopped
from connectors.errors import (
    ConnectorError,
    FatalError,
    LocatorExpired,
    PermissionDenied,
    QuotaReached,
    RetriableError,
    SourceConfigError,
    Stopped,
    classify_status,
    salesforce_error,
    salesforce_refusal,
)
from connectors.history import HistoryBudget, HistoryPage, HistoryTarget
from connectors.http import timeouts, trust
from connectors.paging import iter_pages, restarting
from connectors.retry import RetryPolicy
from connectors.salesforce_history import history_object, read_field_history, tracked_fields
from connectors.token_file import Session, TokenFile, fingerprint
from connectors.writeback import Pending, calls_for, compare_then_send, write_targets
from mapping import clock

T = TypeVar("T")
SYSTEM = "salesforce"
WRITE_BATCH = 25  # subrequests per Composite call
READ_BATCH = 400  # ids per compare query: URI and headers may take 16,384 bytes (28 per encoded id)
DELETED_WINDOW = dt.timedelta(days=15)
HORIZON_MARGIN = dt.timedelta(seconds=5)
"""How far before the first page's answer its query is taken to have run (when no login dated the pull)."""
BASE_FIELDS = ("Id", "SystemModstamp", "IsDeleted")
LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")
RESTARTS = 3
"""Expired query cursors one listing restarts from before it gives up (each restart costs a query)."""


def too_many_restarts() -> FatalError:
    """A listing whose cursor keeps expiring stops: what it stored stays, the next run continues after it."""
    return FatalError(SYSTEM, f"INVALID_QUERY_LOCATOR: the query cursor expired {RESTARTS + 1} times in one listing; "
                              "stopped (the pages stored so far are kept and the next run continues after them)")


def connect(name: str, config: SalesforceSource, paths: list[str], read_secret: ReadSecret,
            policy: RetryPolicy | None = None, kept: Kept | None = None) -> SalesforceConnector:
    """A connector for one configured Salesforce source; ``paths`` are the mapped source paths.

    With ``kept.token_file``, the access token is reused across runs until Salesforce refuses it.
    """
    auth = config.auth
    refresh_token = read_secret(auth.refresh_token_env, "refresh_token_env") if auth.refresh_token_env else None
    client_id = read_secret(auth.client_id_env, "client_id_env")
    tokens = None
    if kept is not None and kept.token_file is not None:
        tokens = TokenFile(kept.token_file, fingerprint(config.url, client_id, "refresh" if refresh_token else "client"))
    return SalesforceConnector(name, config, paths=paths, client_id=client_id,
                               client_secret=read_secret(auth.client_secret_env, "client_secret_env"), refresh_token=refresh_token,
                               policy=policy, tokens=tokens)


def unmodified_since(last_modified: str) -> str:
    """The If-Unmodified-Since header for a record last modified at ``last_modified``.

    HTTP dates have whole seconds: the moment is rounded up, so the record's own last
    change never trips the condition, and any later one does once that second is over.
    """
    moment = clock.parse(last_modified)
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + dt.timedelta(seconds=1)
    return email.utils.format_datetime(moment.astimezone(dt.UTC), usegmt=True)


def call_kind(response: requests.Response) -> str:
    """The method and resource of a call: ``GET query``, ``PATCH composite``, ``POST services/oauth2/token``."""
    parts = [p for p in urlparse(response.request.url or "").path.split("/") if p]
    kind = parts[3] if len(parts) > 3 and parts[0] == "services" and parts[1] == "data" else "/".join(parts[:3])
    return f"{response.request.method} {kind}"


class SalesforceConnector:
    """One Salesforce object as a relsync source."""

    system = SYSTEM

    def __init__(self, name: str, config: SalesforceSource, *, paths: list[str], client_id: str, client_secret: str,
                 refresh_token: str | None = None, policy: RetryPolicy | None = None, tokens: TokenFile | None = None) -> None:
        self.name = name
        self.config = config
        self.fields = list(dict.fromkeys([*BASE_FIELDS, *paths]))
        self.status_field = config.fields.status.path
        self.targets = write_targets(config.write.release.field if config.write.release else None, self.status_field,
                                     config.write)
        self._credentials = (client_id, client_secret, refresh_token)
        self.usage: tuple[int, int] | None = None
        self.server_time: dt.datetime | None = None  # from the last answer's Date header
        self.calls = ApiCalls(SYSTEM, config.url, kind=call_kind, refusal=salesforce_refusal, policy=policy)
        # simple-salesforce passes no timeout: the session's adapter adds one.
        self.session = self.calls.count(trust(requests.Session(), config.ca_bundle, timeout=timeouts(config.timeout_seconds)))
        self.session.hooks["response"].append(self._read_limits)
        self._sf: Salesforce | None = None
        self._tokens = tokens
        self._kept_tried = False  # the kept token was tried (or replaced) this run
        self._since: str | None = None  # the watermark this run's pull started from

    @property
    def reconcile_every_hours(self) -> float:
        """How often Get Deleted is asked (soft deletes arrive with every pull's queryAll)."""
        return self.config.reconcile_every_hours

    def _read_limits(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """Keep the org's API usage (Sforce-Limit-Info) and the server's clock (Date) from every answer."""
        found = LIMIT_INFO.search(response.headers.get("Sforce-Limit-Info", ""))
        if found:
            self.usage = (int(found.group(1)), int(found.group(2)))
        with contextlib.suppress(TypeError, ValueError):  # no Date, or not one we can read: keep the last
            stamp = email.utils.parsedate_to_datetime(response.headers.get("Date", ""))
            self.server_time = stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)

    def stopped(self) -> Stopped | None:
        """Why this run sends nothing more to the source (None while it may)."""
        return self.calls.stopped()

    def call_counts(self) -> dict[str, int]:
        """API calls made so far, by method and resource."""
        return self.calls.counts()

    def _guard_quota(self) -> None:
        used, limit = self.usage or (0, 0)
        if limit and used >= self.config.quota_share * limit:
            share = f"{self.config.quota_share:.0%} of the limit, sources.{self.name}.quota_share"
            raise QuotaReached(SYSTEM, f"stopped at {used}/{limit} daily API requests ({share}); "
                               "the next run continues where this one stopped")

    def _call(self, fn: Callable[[Salesforce], T]) -> T:
        """One API call under the retry policy (logging in first if need be); a refused session logs in again once."""
        renewed = False

        def attempt() -> T:
            nonlocal renewed
            self._guard_quota()
            if self._sf is None:
                self._sf = self._resume() or self._login()
            try:
                return fn(self._sf)
            except SalesforceError as error:
                if renewed or salesforce_error(error)[0] != "INVALID_SESSION_ID":
                    raise
                renewed, self._sf = True, None
                if self._tokens is not None:
                    self._tokens.clear()
                raise RetriableError(SYSTEM, "the session expired; logging in again", status=401) from None

        return self.calls(attempt)

    def _client(self, session: Session) -> Salesforce:
        return Salesforce(instance_url=session.instance_url, session_id=session.access_token, session=self.session,
                          version=self.config.api_version)

    def _resume(self) -> Salesforce | None:
        """A client on the token kept by an earlier run (once a run: a refused one is not tried again)."""
        if self._tokens is None or self._kept_tried:
            return None
        kept = self._tokens.load()
        if kept is None:
            return None
        self._kept_tried = True
        return self._client(kept)

    def _login(self) -> Salesforce:
        """A client on a new session: a token from the org's OAuth endpoint (refusals name the auth keys)."""
        client_id, client_secret, refresh_token = self._credentials
        grant = {"grant_type": "refresh_token", "refresh_token": refresh_token} if refresh_token else {"grant_type": "client_credentials"}
        response = self.session.post(f"{self.config.url}/services/oauth2/token",
                                     data={"client_id": client_id, "client_secret": client_secret, **grant})
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == 200 and isinstance(body, dict) and body.get("access_token"):
            session = Session(body["access_token"], body["instance_url"])
            self._kept_tried = True  # a token refused later in this run means logging in again, not reading the file
            if self._tokens is not None:
                self._tokens.save(session)
            return self._client(session)
        if isinstance(body, dict) and body.get("error"):
            refusal = f"{body['error']}: {body.get('error_description')}"
        else:  # a 200 without a token is not echoed: it could hold one
            shown = response.text[:200] if response.status_code != 200 else "no token"
            refusal = f"HTTP {response.status_code}: {shown}"
        if response.status_code in (400, 401, 403):
            raise SourceConfigError(SYSTEM, f"login refused by {self.config.url}: {refusal} (check sources.{self.name}.auth)")
        raise classify_status(SYSTEM, response.status_code, f"login at {self.config.url} failed: {refusal}",
                              retry_after=response.headers.get("Retry-After"))

    # -- pull -------------------------------------------------------------------

    def _query(self, query: str) -> Iterator[dict[str, Any]]:
        """Pages of one queryAll (deleted records included), following nextRecordsUrl."""
        headers = {"Sforce-Query-Options": f"batchSize={self.config.page_size}"}

        def fetch(locator: str | None) -> dict[str, Any]:
            return self._call(lambda sf: sf.query_more(locator, identifier_is_url=True, headers=headers) if locator
                              else sf.query(query, include_deleted=True, headers=headers))

        return iter_pages(SYSTEM, fetch, "nextRecordsUrl")

    def pull(self, since: str | None) -> Iterator[Page]:
        """Pages of records changed (or soft-deleted) at or after ``since`` minus the overlap.

        A cursor renders each page as the records are now, so one edited while we page
        arrives with a modstamp newer than the query, out of order. Only records older
        than the server's time before the query (``settled``) may advance the watermark or
        the point an expired locator's query restarts from; the others are stored anyway.
        """
        conditions: list[str] = []
        if since is not None:
            start = clock.parse(since.split("|", 1)[0]) - dt.timedelta(seconds=self.config.overlap_seconds)
            conditions.append(soql.modified_since(start))
        self._since = since
        horizon = self._call(lambda sf: self.server_time)  # a login's answer dated it; a kept token has none yet
        last: dict[str, Any] | None = None

        def query() -> Iterator[dict[str, Any]]:  # after an expired locator: just after the last settled record
            resume = [] if last is None else [soql.after_record(last)]
            return self._query(soql.select(self.config, self.fields, conditions + resume))

        for response in restarting(query, LocatorExpired, restarts=RESTARTS, gave_up=too_many_restarts):
            if horizon is None and self.server_time is not None:
                # Dated by the first page's answer, which left after the query ran: set back to before it.
                horizon = self.server_time - HORIZON_MARGIN
            records = response.get("records", [])
            settled = [r for r in records if not horizon or clock.parse(r["SystemModstamp"]) < horizon]
            last = settled[-1] if settled else last
            yield self._page(records, soql.watermark_of(settled[-1]) if settled else None)

    def _page(self, records: list[dict[str, Any]], watermark: str | None) -> Page:
        for r in records:  # the answer's own dicts become the raw records: a page is not held twice
            r.pop("attributes", None)
        out = [SourceRecord(r["Id"], None, f"{self.config.url}/lightning/r/{self.config.object}/{r['Id']}/view",
                            r.get("SystemModstamp"), r)
               for r in records if not r.get("IsDeleted")]
        return Page(records=out, watermark=watermark, deleted=[r["Id"] for r in records if r.get("IsDeleted")])

    def reconcile(self, known: Callable[[], set[str]], *, due: bool, since: str | None = None) -> list[str] | None:
        """Hard-deleted records, every ``reconcile_every_hours``: Get Deleted within its window, else a full id reconcile.

        Deletions are asked for from ``since`` (when the last reconcile's pull began; the
        pull's watermark when there was none), less the overlap: a quiet org whose newest
        record is weeks old still costs one Get Deleted call, not a full reconcile. Soft
        deletes need none of this: they arrive with every pull (queryAll, IsDeleted).
        """
        if self._since is None:
            return []  # a first pull read every record live: nothing known is gone yet
        if not due:
            return None
        start = clock.parse(since or self._since.split("|", 1)[0]) - dt.timedelta(seconds=self.config.overlap_seconds)
        now = clock.now()
        if now - start < DELETED_WINDOW - dt.timedelta(minutes=5):
            try:
                result = self._call(lambda sf: getattr(sf, self.config.object).deleted(start, now))
                return sorted({d["id"] for d in result.get("deletedRecords", [])} & known())
            except FatalError as error:
                if not error.message.startswith("INVALID_REPLICATION_DATE"):
                    raise
                # The org's delete log no longer reaches back (purged, or older than 15 days).
        missing = known()  # crossed off page by page: one set of ids held, not two
        after: list[str] = []  # an expired locator restarts the listing after the last id read

        def ids() -> Iterator[dict[str, Any]]:
            return self._query(soql.select(self.config, ["Id", "IsDeleted"], after, order="Id ASC"))

        for response in restarting(ids, LocatorExpired, restarts=RESTARTS, gave_up=too_many_restarts):
            records = response.get("records", [])
            missing.difference_update(r["Id"] for r in records if not r.get("IsDeleted"))
            after = [soql.after_id(records[-1]["Id"])] if records else after
        return sorted(missing)

    # -- push -------------------------------------------------------------------

    def push(self, writes: list[Write], journal: Journal | None = None) -> list[WriteResult]:
        """Compare (one query per 400 records), then 25 conditional PATCHes per Composite call (allOrNone false)."""
        return push_until_stopped(writes, journal, lambda recording: compare_then_send(
            writes, system="Salesforce", targets=self.targets, read=self._current, read_batch=READ_BATCH, send=self._send,
            send_batch=WRITE_BATCH, gone="record {} no longer exists", journal=recording))

    def _current(self, ids: list[str], fields: list[str]) -> dict[str, dict[str, Any]]:
        """The records as they are now (one query), deleted ones left out; LastModifiedDate conditions the write."""
        pages = self._query(soql.by_ids(self.config, [*fields, "LastModifiedDate"], ids))
        return {r["Id"]: r for page in pages for r in page.get("records", []) if not r.get("IsDeleted")}

    def _send(self, batch: list[Pending]) -> list[WriteResult]:
        """One Composite call: a PATCH per record, each only if the record is unmodified since the compare read."""
        path = f"/services/data/v{self.config.api_version}/sobjects/{self.config.object}"
        subrequests = [{"method": "PATCH", "url": f"{path}/{p.record}", "referenceId": f"write{number}",
                        "body": {self.targets[w.field]: w.value for w in p.writes},
                        "httpHeaders": {"If-Unmodified-Since": unmodified_since(p.shown["LastModifiedDate"])}}
                       for number, p in enumerate(batch)]
        body = {"allOrNone": False, "compositeRequest": subrequests}
        try:
            answer = self._call(lambda sf: sf.restful("composite", method="POST", json=body))
        except PermissionDenied as error:
            problem = (f"Salesforce: updating {self.config.object} records needs Edit access to {self.config.object} and "
                       f"its written fields for the integration user ({error.message})")
            return [WriteResult(w, "failed", problem) for p in batch for w in p.writes]
        except SourceConfigError:
            raise
        except ConnectorError as error:
            writes = [w for p in batch for w in p.writes]
            return self.calls.held_back(writes, error) or [WriteResult(w, "failed", error.message) for w in writes]
        answers = answer.get("compositeResponse") if isinstance(answer, dict) else None
        if not isinstance(answers, list) or len(answers) != len(batch):
            return [WriteResult(w, "failed", "Salesforce did not answer one result per record") for p in batch for w in p.writes]
        return [result for pending, sub in zip(batch, answers, strict=True) for result in self._outcome(pending, sub)]

    def _outcome(self, pending: Pending, sub: dict[str, Any]) -> list[WriteResult]:
        status = sub.get("httpStatusCode") or 0
        if 200 <= status < 300:
            return [WriteResult(w, "ok") for w in pending.writes]
        if status == 412:
            message = (f"{pending.record}: changed in Salesforce after relsync read it "
                       f"(LastModifiedDate was {pending.shown['LastModifiedDate']}); not overwritten")
            return [WriteResult(w, "conflict", message) for w in pending.writes]
        body = sub.get("body")
        errors = body if isinstance(body, list) else []
        message = "; ".join(f"{e.get('errorCode')}: {e.get('message')}" for e in errors if isinstance(e, dict)) or f"HTTP {status}"
        if status == 403:
            message = (f"Salesforce: updating {self.config.object} records needs Edit access to {self.config.object} and "
                       f"its written fields for the integration user ({message})")
        return [WriteResult(w, "failed", f"{pending.record}: {message}") for w in pending.writes]

    def estimate(self, writes: list[Write]) -> Estimate:
        """The calls ``push(writes)`` would make, and their share of the org's daily API limit."""
        records = len({w.native_id for w in writes})
        calls = {"compare queries": calls_for(records, READ_BATCH), "composite updates": calls_for(records, WRITE_BATCH)}
        used, limit = self.usage or (0, 0)
        left = (f"{sum(calls.values())} of the {limit - used} API requests left today ({used}/{limit} used, "
                f"stops at {self.config.quota_share:.0%})") if limit else "daily API limit not seen yet"
        return {"calls": sum(calls.values()), "by_kind": calls, "limit": left}

    # -- history ----------------------------------------------------------------

    @property
    def history_kind(self) -> str:
        """The object's field history: CaseHistory, or <Object>__History for a custom object."""
        return history_object(self.config.object)[0]

    def history(self, targets: Iterable[HistoryTarget], since: str | None, budget: HistoryBudget) -> Iterator[HistoryPage]:
        """Field history rows recorded after ``since``, one query (and its pages)."""
        headers = {"Sforce-Query-Options": f"batchSize={self.config.page_size}"}

        def query(locator: str | None, text: str) -> dict[str, Any]:
            return self._call(lambda sf: sf.query_more(locator, identifier_is_url=True, headers=headers) if locator
                              else sf.query(text, headers=headers))

        return read_field_history(query, self.config, since, budget)

    def history_estimate(self, targets: int) -> int:
        """One query when any record changed since the last import, before any further pages."""
        return 1 if targets and tracked_fields(self.config) else 0

    # -- check ------------------------------------------------------------------

    def check(self, statuses: list[str]) -> SourceCheck:
        """Credentials, mapped fields and picklist values against describe, and what describe says the user may do."""
        described = self._call(lambda sf: getattr(sf, self.config.object).describe())
        fields = {f["name"]: f for f in described.get("fields", [])}
        relationships = {f["relationshipName"]: f for f in described.get("fields", []) if f.get("relationshipName")}
        found = SourceCheck([f"field {path!r} does not exist on {self.config.object}"
                             for path in self.fields if path.split(".", 1)[0] not in fields | relationships])
        status = fields.get(self.status_field)
        if status is not None and status.get("picklistValues"):
            values = {v["value"] for v in status["picklistValues"] if v.get("active", True)}
            found.problems += [f"status {s!r} is not an active {self.status_field} picklist value" for s in statuses if s not in values]
        release = self.config.write.release
        if release is not None and release.field not in fields:
            found.problems.append(f"release field {release.field!r} does not exist on {self.config.object}")
        found.field_types = {name: str(f.get("type")) for name, f in fields.items()} | dict.fromkeys(relationships, "relationship")
        found.choices = {name: [v["value"] for v in f.get("picklistValues") or [] if v.get("active", True)]
                         for name, f in fields.items() if f.get("restrictedPicklist")}
        found.permissions = self._permissions(described, fields)
        return found

    def _permissions(self, described: dict[str, Any], fields: dict[str, Any]) -> list[Permission]:
        """Describe answers for the running user: can it query the object, update it, and update each written field."""
        name = self.config.object
        permissions = [Permission(f"{name} queryable", "reading the requests", bool(described.get("queryable")))]
        if self.targets:
            permissions.append(Permission(f"{name} updateable", "writing the release and status", bool(described.get("updateable"))))
        for engine_field, target in sorted(self.targets.items()):
            if target in fields:
                permissions.append(Permission(f"{name}.{target} updateable", f"writing the {engine_field}",
                                              bool(fields[target].get("updateable"))))
        return permissions
