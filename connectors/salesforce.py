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
Push: one query per 400 records compares before writing, then sObject Collections
PATCHes of 200 records with allOrNone false and per-record results.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import functools
import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import requests
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.exceptions import SalesforceError

from config.schema import SalesforceSource
from connectors.base import Page, SourceRecord, Write, WriteResult, compare
from connectors.errors import (
    ConnectorError,
    FatalError,
    RetriableError,
    SourceConfigError,
    classify_status,
)
from connectors.http import trust
from connectors.retry import RetryPolicy, call_with_retry
from mapping import clock

T = TypeVar("T")
SYSTEM = "salesforce"
WRITE_BATCH = 200
READ_BATCH = 400  # ids per compare query: URI and headers may take 16,384 bytes (28 per encoded id)
DELETED_WINDOW = dt.timedelta(days=15)
BASE_FIELDS = ("Id", "SystemModstamp", "IsDeleted")
LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")


class QuotaReached(ConnectorError):
    """The configured share of the org's daily API quota is used: stop, resume next run."""


class LocatorExpired(Exception):
    """Salesforce dropped the query cursor; the query must start again."""


def connect(
    name: str, config: SalesforceSource, paths: list[str], read_secret: Callable[[str, str], str]
) -> SalesforceConnector:
    """A connector for one configured Salesforce source; ``paths`` are the mapped source paths."""
    auth = config.auth
    return SalesforceConnector(
        name, config, paths=paths,
        client_id=read_secret(auth.client_id_env, "client_id_env"),
        client_secret=read_secret(auth.client_secret_env, "client_secret_env"),
        refresh_token=read_secret(auth.refresh_token_env, "refresh_token_env") if auth.refresh_token_env else None,
    )


def watermark_of(record: dict[str, Any]) -> str:
    """``<SystemModstamp as ISO Z>|<Id>``: sorts as text the way the pull orders records."""
    return f"{clock.stamp(clock.parse(record['SystemModstamp']))}|{record['Id']}"


def soql_datetime(moment: dt.datetime) -> str:
    """A SOQL dateTime literal (unquoted, UTC)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def error_message(error: SalesforceError) -> tuple[str, str]:
    """(errorCode, message) from a Salesforce error body."""
    content = error.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        return str(first.get("errorCode", "")), str(first.get("message", ""))
    if isinstance(content, dict):
        return str(content.get("error", "")), str(content.get("error_description") or content.get("message") or content)
    return "", str(content)[:500]


def classified(code: str, message: str, status: int | None) -> Exception:
    """Our error kind for a refusal with Salesforce's errorCode and message."""
    if code == "INVALID_QUERY_LOCATOR":
        return LocatorExpired(message)
    text = f"{code}: {message}" if code else message
    if "ConcurrentPerOrg" in message:  # 403 REQUEST_LIMIT_EXCEEDED too, but transient: too many long requests
        return RetriableError(SYSTEM, text, status=status)
    if code == "REQUEST_LIMIT_EXCEEDED":  # the daily allocation is spent
        return QuotaReached(SYSTEM, text, status=status)
    return classify_status(SYSTEM, status, text)


class SalesforceConnector:
    """One Salesforce object as a relsync source."""

    system = SYSTEM

    def __init__(
        self,
        name: str,
        config: SalesforceSource,
        *,
        paths: list[str],
        client_id: str,
        client_secret: str,
        refresh_token: str | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.fields = list(dict.fromkeys([*BASE_FIELDS, *paths]))
        self.status_field = config.fields.status.path
        self._credentials = (client_id, client_secret, refresh_token)
        self._policy = policy or RetryPolicy()
        self._calls: Counter[str] = Counter()
        self.usage: tuple[int, int] | None = None
        self.server_time: dt.datetime | None = None  # from the last answer's Date header
        self.session = trust(requests.Session(), config.ca_bundle)
        self.session.hooks["response"].append(self._observe)
        # simple-salesforce passes no timeout: without one a stalled connection hangs the run.
        self.session.request = functools.partial(self.session.request, timeout=config.timeout_seconds)  # type: ignore
        self._sf: Salesforce | None = None
        self._since: str | None = None  # the watermark this run's pull started from

    # -- plumbing ---------------------------------------------------------------

    def _observe(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        path = requests.utils.urlparse(response.request.url or "").path
        parts = [p for p in path.split("/") if p]
        kind = parts[3] if len(parts) > 3 and parts[0] == "services" and parts[1] == "data" else "/".join(parts[:3])
        self._calls[f"{response.request.method} {kind}"] += 1
        found = LIMIT_INFO.search(response.headers.get("Sforce-Limit-Info", ""))
        if found:
            self.usage = (int(found.group(1)), int(found.group(2)))
        with contextlib.suppress(TypeError, ValueError):  # no Date, or not one we can read: keep the last
            stamp = email.utils.parsedate_to_datetime(response.headers.get("Date", ""))
            self.server_time = stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)

    def call_counts(self) -> dict[str, int]:
        """API calls made so far, by method and resource."""
        return dict(self._calls)

    def _guard_quota(self) -> None:
        used, limit = self.usage or (0, 0)
        if limit and used >= self.config.quota_share * limit:
            share = f"{self.config.quota_share:.0%} of the limit, sources.{self.name}.quota_share"
            raise QuotaReached(SYSTEM, f"stopped at {used}/{limit} daily API requests ({share}); "
                               "the next run continues where this one stopped")

    def _call(self, fn: Callable[[Salesforce], T]) -> T:
        """One API call under the retry policy (logging in first if need be), its failures classified."""
        renewed = False

        def attempt() -> T:
            nonlocal renewed
            self._guard_quota()
            try:
                if self._sf is None:
                    self._sf = self._login()
                return fn(self._sf)
            except SalesforceError as error:
                code, message = error_message(error)
                if code == "INVALID_SESSION_ID" and not renewed:
                    renewed, self._sf = True, None
                    raise RetriableError(SYSTEM, "the session expired; logging in again", status=401) from None
                raise classified(code, message, error.status) from None
            except requests.exceptions.SSLError as error:
                raise SourceConfigError(SYSTEM, f"TLS verification failed for {self.config.url}: {error}") from None
            except requests.RequestException as error:
                raise RetriableError(SYSTEM, f"{type(error).__name__} talking to {self.config.url}") from None

        return call_with_retry(attempt, self._policy)

    def _login(self) -> Salesforce:
        """A client on a new session: a token from the org's OAuth endpoint (refusals name the auth keys)."""
        client_id, client_secret, refresh_token = self._credentials
        grant = {"grant_type": "refresh_token", "refresh_token": refresh_token} if refresh_token else {
            "grant_type": "client_credentials"
        }
        response = self.session.post(f"{self.config.url}/services/oauth2/token",
                                     data={"client_id": client_id, "client_secret": client_secret, **grant})
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == 200 and isinstance(body, dict) and body.get("access_token"):
            return Salesforce(instance_url=body["instance_url"], session_id=body["access_token"], session=self.session,
                              version=self.config.api_version)
        if isinstance(body, dict) and body.get("error"):
            refusal = f"{body['error']}: {body.get('error_description')}"
        else:  # a 200 without a token is not echoed: it could hold one
            shown = response.text[:200] if response.status_code != 200 else "no token"
            refusal = f"HTTP {response.status_code}: {shown}"
        if response.status_code in (400, 401, 403):
            hint = f"check sources.{self.name}.auth"
            raise SourceConfigError(SYSTEM, f"login refused by {self.config.url}: {refusal} ({hint})")
        raise classify_status(SYSTEM, response.status_code, f"login at {self.config.url} failed: {refusal}")

    # -- pull -------------------------------------------------------------------

    def _soql(self, fields: list[str], conditions: list[str], order: str = "SystemModstamp ASC, Id ASC") -> str:
        where = [f"({c})" for c in conditions]
        if self.config.record_type:
            where.insert(0, format_soql("RecordType.Name = {}", self.config.record_type))
        if self.config.where:
            where.insert(0, f"({self.config.where})")
        soql = f"SELECT {', '.join(fields)} FROM {self.config.object}"
        if where:
            soql += " WHERE " + " AND ".join(where)
        return f"{soql} ORDER BY {order}"

    def _query(self, soql: str) -> Iterator[dict[str, Any]]:
        """Pages of one queryAll (deleted records included), following nextRecordsUrl."""
        headers = {"Sforce-Query-Options": f"batchSize={self.config.page_size}"}
        page = self._call(lambda sf: sf.query(soql, include_deleted=True, headers=headers))
        seen: set[str] = set()
        while True:
            yield page
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return
            if next_url in seen:
                raise FatalError(SYSTEM, f"Salesforce returned locator {next_url!r} twice; stopping")
            seen.add(next_url)
            page = self._call(lambda sf: sf.query_more(next_url, identifier_is_url=True, headers=headers))

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
            conditions.append(f"SystemModstamp >= {soql_datetime(start)}")
        self._since = since
        horizon = self._call(lambda sf: self.server_time)  # logged in: the token's answer dated it
        last: dict[str, Any] | None = None
        while True:
            resume = [] if last is None else [
                format_soql(
                    "SystemModstamp > {0:literal} OR (SystemModstamp = {0:literal} AND Id > {1})",
                    soql_datetime(clock.parse(last["SystemModstamp"])), last["Id"],
                )
            ]
            try:
                for response in self._query(self._soql(self.fields, conditions + resume)):
                    records = response.get("records", [])
                    settled = [r for r in records if not horizon or clock.parse(r["SystemModstamp"]) < horizon]
                    last = settled[-1] if settled else last
                    yield self._page(records, watermark_of(settled[-1]) if settled else None)
                return
            except LocatorExpired:
                continue  # start again just after the last settled record

    def _page(self, records: list[dict[str, Any]], watermark: str | None) -> Page:
        out = [
            SourceRecord(r["Id"], None, f"{self.config.url}/lightning/r/{self.config.object}/{r['Id']}/view",
                         r.get("SystemModstamp"), {k: v for k, v in r.items() if k != "attributes"})
            for r in records if not r.get("IsDeleted")
        ]
        return Page(records=out, watermark=watermark, deleted=[r["Id"] for r in records if r.get("IsDeleted")])

    def reconcile(self, known: set[str], *, due: bool, since: str | None = None) -> list[str] | None:
        """Hard-deleted records: Get Deleted within its window, else a full id reconcile.

        Deletions are asked for from the later of the pull's watermark and ``since``
        (when the last reconcile's pull began), less the overlap: a quiet org whose
        newest record is weeks old still costs one Get Deleted call, not a full reconcile.
        """
        if self._since is None:
            return []  # a first pull read every record live: nothing known is gone yet
        marks = [clock.parse(self._since.split("|", 1)[0])] + ([clock.parse(since)] if since else [])
        start = max(marks) - dt.timedelta(seconds=self.config.overlap_seconds)
        now = dt.datetime.now(dt.UTC)
        if now - start < DELETED_WINDOW - dt.timedelta(minutes=5):
            try:
                result = self._call(lambda sf: getattr(sf, self.config.object).deleted(start, now))
                return sorted({d["id"] for d in result.get("deletedRecords", [])} & known)
            except FatalError as error:
                if not error.message.startswith("INVALID_REPLICATION_DATE"):
                    raise
                # The org's delete log no longer reaches back (purged, or older than 15 days).
        present: set[str] = set()
        after: list[str] = []  # an expired locator restarts the listing after the last id read
        while True:
            try:
                for response in self._query(self._soql(["Id", "IsDeleted"], after, order="Id ASC")):
                    records = response.get("records", [])
                    present.update(r["Id"] for r in records if not r.get("IsDeleted"))
                    after = [format_soql("Id > {}", records[-1]["Id"])] if records else after
                return sorted(known - present)
            except LocatorExpired:
                continue

    # -- push -------------------------------------------------------------------

    def _target(self, write: Write) -> str | None:
        if write.field == "release" and self.config.write.release is not None:
            return self.config.write.release.field
        if write.field == "status":
            return self.status_field
        return None

    def _current(self, ids: list[str], fields: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), READ_BATCH):
            batch = ids[start : start + READ_BATCH]
            select = f"SELECT Id, IsDeleted, {', '.join(fields)} FROM {self.config.object}"
            soql = format_soql(select + " WHERE Id IN {}", batch)
            for response in self._query(soql):
                found.update({r["Id"]: r for r in response.get("records", []) if not r.get("IsDeleted")})
        return found

    def push(self, writes: list[Write]) -> list[WriteResult]:
        """Compare, then PATCH 200 records per sObject Collections call (allOrNone false)."""
        results: list[WriteResult] = []
        targets = sorted({t for w in writes if (t := self._target(w))})
        current = self._current(sorted({w.native_id for w in writes}), targets) if targets else {}
        pending: dict[str, list[Write]] = {}
        for write in writes:
            target = self._target(write)
            if target is None:
                results.append(WriteResult(write, "failed", f"relsync has no Salesforce field configured for {write.field!r}"))
            elif write.native_id not in current:
                results.append(WriteResult(write, "failed", f"record {write.native_id} no longer exists"))
            elif done := compare(write, current[write.native_id].get(target), "Salesforce", f"{write.native_id} {target}"):
                results.append(done)
            else:
                pending.setdefault(write.native_id, []).append(write)
        ids = list(pending)
        for start in range(0, len(ids), WRITE_BATCH):
            results.extend(self._update({i: pending[i] for i in ids[start : start + WRITE_BATCH]}))
        return results

    def _update(self, chunk: dict[str, list[Write]]) -> list[WriteResult]:
        records = [{"attributes": {"type": self.config.object}, "id": rid, **{self._target(w): w.value for w in ws}}
                   for rid, ws in chunk.items()]
        body = {"allOrNone": False, "records": records}
        try:
            answers = self._call(lambda sf: sf.restful("composite/sobjects", method="PATCH", json=body))
        except SourceConfigError:
            raise
        except ConnectorError as error:
            return [WriteResult(w, "failed", error.message) for ws in chunk.values() for w in ws]
        results: list[WriteResult] = []
        for (rid, ws), answer in zip(chunk.items(), answers):
            if answer.get("success"):
                results += [WriteResult(w, "ok") for w in ws]
            else:
                message = "; ".join(
                    f"{e.get('statusCode')}: {e.get('message')}" for e in answer.get("errors") or []
                ) or "refused without a message"
                results += [WriteResult(w, "failed", f"{rid}: {message}") for w in ws]
        return results

    def estimate(self, writes: list[Write]) -> dict[str, Any]:
        """The calls ``push(writes)`` would make, and their share of the org's daily API limit."""
        records = len({w.native_id for w in writes})
        calls = {"compare queries": -(-records // READ_BATCH), "collection updates": -(-records // WRITE_BATCH)}
        used, limit = self.usage or (0, 0)
        left = (f"{sum(calls.values())} of the {limit - used} API requests left today ({used}/{limit} used, "
                f"stops at {self.config.quota_share:.0%})") if limit else "daily API limit not seen yet"
        return {"calls": sum(calls.values()), "by_kind": calls, "limit": left}

    # -- check ------------------------------------------------------------------

    def check(self, statuses: list[str]) -> list[str]:
        """Credentials, mapped fields and picklist values against describe."""
        described = self._call(lambda sf: getattr(sf, self.config.object).describe())
        fields = {f["name"]: f for f in described.get("fields", [])}
        relationships = {f["relationshipName"]: f for f in described.get("fields", []) if f.get("relationshipName")}
        problems: list[str] = []
        for path in self.fields:
            head = path.split(".", 1)[0]
            if head not in fields and head not in relationships:
                problems.append(f"field {path!r} does not exist on {self.config.object}")
        status = fields.get(self.status_field)
        if status is not None and status.get("picklistValues"):
            values = {v["value"] for v in status["picklistValues"] if v.get("active", True)}
            problems += [f"status {s!r} is not an active {self.status_field} picklist value" for s in statuses if s not in values]
        release = self.config.write.release
        if release is not None and release.field not in fields:
            problems.append(f"release field {release.field!r} does not exist on {self.config.object}")
        elif release is not None and not fields[release.field].get("updateable", True):
            problems.append(f"release field {release.field!r} is not updateable")
        return problems
