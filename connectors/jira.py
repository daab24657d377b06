"""Jira Cloud over the ``jira`` client library.

Pull: ``/rest/api/3/search/jql`` paged by ``nextPageToken``, ordered by ``updated``,
from the stored watermark minus an overlap window, asking only for mapped fields.
Push: the release goes to ``fixVersions`` (versions found or created once per run),
one PUT per issue without the library's re-GET; the status moves by the workflow
transition whose target status has the configured name. Before writing, one search
per 100 issues reads what Jira shows now, so a field someone changed since the pull
is reported as a conflict instead of being overwritten.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlparse

import requests
from jira import JIRA, JIRAError

from config.schema import JiraSource
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
from mapping import clock

T = TypeVar("T")
SYSTEM = "jira"
CHECK_BATCH = 100
ID_PAGE = 5000  # search/jql pages up to 5000 issues when only ids are asked for
RELEASE = "release"
STATUS = "status"


def connect(
    name: str, config: JiraSource, paths: list[str], read_secret: Callable[[str, str], str]
) -> JiraConnector:
    """A connector for one configured Jira source; ``paths`` are the mapped source paths."""
    email = read_secret(config.auth.email_env, "email_env") if config.auth.email_env else None
    token = read_secret(config.auth.token_env, "token_env")
    fields = [p.split(".")[1] for p in paths if p.startswith("fields.") and p.count(".") >= 1]
    return JiraConnector(name, config, fields=fields, email=email, token=token)


def jql_string(value: str) -> str:
    """Quote ``value`` as a JQL string literal, escaping what JQL treats specially."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def epoch_ms(timestamp: str) -> int:
    """Epoch milliseconds of an ISO-8601 timestamp (Jira reads bare numbers as UTC instants)."""
    return int(clock.parse(timestamp).timestamp() * 1000)


def build_search_jql(project: str, selection: str | None, since_ms: int | None) -> str:
    """The pull query: project, the configured selection, and the cursor."""
    clauses = [f"project = {jql_string(project)}"]
    if selection:
        clauses.append(f"({selection})")
    if since_ms is not None:
        clauses.append(f"updated >= {int(since_ms)}")
    return " AND ".join(clauses) + " ORDER BY updated ASC, key ASC"


def error_message(error: JIRAError) -> str:
    """The API's own words from a JIRAError, without request headers (they hold credentials)."""
    response = error.response
    if response is not None:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            parts = list(body.get("errorMessages") or [])
            parts += [f"{field}: {text}" for field, text in (body.get("errors") or {}).items()]
            if body.get("message"):
                parts.append(str(body["message"]))
            if parts:
                return "; ".join(parts)
        if response.text:
            return response.text.strip()[:500]
    return error.text or f"HTTP {error.status_code}"


class JiraConnector:
    """One Jira Cloud project as a relsync source."""

    system = SYSTEM

    def __init__(
        self,
        name: str,
        config: JiraSource,
        *,
        fields: list[str],
        email: str | None,
        token: str,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.fields = sorted(set(fields) | {"updated", "fixVersions", "status", "issuetype"})
        self._email = email
        self._token = token
        self._policy = policy or RetryPolicy()
        self._calls: Counter[str] = Counter()
        self._client: JIRA | None = None
        self._versions: dict[str, str] | None = None
        self._project_id: str | None = None
        self._transitions: dict[tuple[str, str], list[dict[str, Any]]] = {}

    # -- plumbing ---------------------------------------------------------------

    def _count(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        path = urlparse(response.request.url or "").path.split("/rest/api/3/", 1)[-1]
        resource = "/".join("{id}" if any(c.isdigit() for c in part) else part for part in path.split("/"))
        self._calls[f"{response.request.method} {resource}"] += 1

    @property
    def client(self) -> JIRA:
        """The jira client, connected on first use (serverInfo is its first call)."""
        if self._client is None:
            options: dict[str, Any] = {"verify": self.config.ca_bundle or True, "rest_api_version": "3"}
            auth: dict[str, Any] = (
                {"basic_auth": (self._email, self._token)}
                if self._email
                else {"token_auth": self._token}
            )

            client = JIRA(
                server=self.config.url,
                options=options,
                max_retries=0,
                timeout=self.config.timeout_seconds,
                get_server_info=False,
                **auth,
            )
            trust(client._session, self.config.ca_bundle)
            client._session.hooks["response"].append(self._count)
            # Asked here rather than by the constructor so the call is retried and counted.
            info = self._call(client.server_info)
            if info.get("deploymentType") != "Cloud":
                raise SourceConfigError(SYSTEM, f"{self.config.url} is not a Jira Cloud site")
            client.deploymentType = info["deploymentType"]
            client._version = tuple(info.get("versionNumbers") or (0, 0, 0))
            self._client = client
        return self._client

    def _call(self, fn: Callable[[], T]) -> T:
        """Run one API call under the retry policy, classifying its failures."""

        def attempt() -> T:
            try:
                return fn()
            except JIRAError as error:
                retry_after = error.response.headers.get("Retry-After") if error.response is not None else None
                raise classify_status(SYSTEM, error.status_code, error_message(error), retry_after=retry_after) from None
            except requests.exceptions.SSLError as error:
                raise SourceConfigError(SYSTEM, f"TLS verification failed for {self.config.url}: {error}") from None
            except requests.RequestException as error:
                raise RetriableError(SYSTEM, f"{type(error).__name__} talking to {self.config.url}") from None

        return call_with_retry(attempt, self._policy)

    def call_counts(self) -> dict[str, int]:
        """API calls made so far, by method and resource."""
        return dict(self._calls)

    # -- pull -------------------------------------------------------------------

    def _search(self, jql: str, page_size: int, fields: list[str]) -> Iterator[dict[str, Any]]:
        """Pages of one ``search/jql`` query, each one retried call, followed by nextPageToken."""

        def fetch(token: str | None) -> dict[str, Any]:
            return self._call(
                lambda: self.client.enhanced_search_issues(
                    jql, nextPageToken=token, maxResults=page_size, fields=fields, json_result=True
                )
            )

        return iter_pages(SYSTEM, fetch, "nextPageToken")

    def pull(self, since: str | None) -> Iterator[Page]:
        """Yield pages of issues updated at or after ``since`` minus the overlap window."""
        since_ms = None
        if since is not None:
            since_ms = epoch_ms(since) - self.config.overlap_seconds * 1000
        jql = build_search_jql(self.config.project, self.config.jql, since_ms)
        for response in self._search(jql, self.config.page_size, list(self.fields)):
            records = [self._record(issue) for issue in response.get("issues", [])]
            versions = [r.version for r in records if r.version]
            watermark = clock.stamp(max(clock.parse(v) for v in versions)) if versions else None
            yield Page(records=records, watermark=watermark)

    def _record(self, issue: dict[str, Any]) -> SourceRecord:
        key = issue["key"]
        return SourceRecord(
            native_id=str(issue["id"]),
            native_key=key,
            url=f"{self.config.url.rstrip('/')}/browse/{key}",
            version=(issue.get("fields") or {}).get("updated"),
            raw=issue,
        )

    def reconcile(self, known: set[str], *, due: bool, since: str | None = None) -> list[str] | None:
        """Known issues Jira no longer returns (deleted, moved, or out of the selection).

        Jira has no deletion feed, so this lists the selection's issue ids, 5000 a
        call, when due. Nothing known before the first reconcile can be missing yet.
        """
        if since is None:
            return []
        if not due:
            return None
        jql = build_search_jql(self.config.project, self.config.jql, None)
        present = {str(i["id"]) for page in self._search(jql, ID_PAGE, []) for i in page.get("issues", [])}
        return sorted(known - present)

    # -- push -------------------------------------------------------------------

    def push(self, writes: list[Write]) -> list[WriteResult]:
        """Apply writes; conflicts and API refusals become results, not exceptions."""
        results: list[WriteResult] = []
        by_issue: dict[str, list[Write]] = {}
        for write in writes:
            by_issue.setdefault(write.native_key or write.native_id, []).append(write)
        keys = list(by_issue)
        for start in range(0, len(keys), CHECK_BATCH):
            batch = keys[start : start + CHECK_BATCH]
            current = self._current(batch)
            for key in batch:
                results.extend(self._push_issue(key, by_issue[key], current.get(key)))
        return results

    def _current(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """What Jira shows now for ``keys``: one search call per 100 issues."""
        fields = ["fixVersions", "status", "issuetype", "updated"]
        jql = f"key in ({', '.join(jql_string(k) for k in keys)})"
        try:
            response = self._call(
                lambda: self.client.enhanced_search_issues(
                    jql, maxResults=len(keys), fields=fields, json_result=True
                )
            )
        except FatalError:
            # Jira refuses the whole query when one key no longer exists (deleted or
            # moved); read the batch issue by issue so the others are still written.
            return self._current_one_by_one(keys, fields)
        return {issue["key"]: issue for issue in response.get("issues", [])}

    def _current_one_by_one(self, keys: list[str], fields: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for key in keys:
            try:
                issue = self._call(lambda: self.client.issue(key, fields=",".join(fields)))
            except FatalError:
                continue
            found[key] = issue.raw
        return found

    def _push_issue(
        self, key: str, writes: list[Write], issue: dict[str, Any] | None
    ) -> list[WriteResult]:
        if issue is None:
            return [WriteResult(w, "failed", f"issue {key} no longer exists or is not visible") for w in writes]
        fields = issue.get("fields") or {}
        shown = {
            RELEASE: next((v.get("name") for v in fields.get("fixVersions") or []), None),
            STATUS: (fields.get("status") or {}).get("name"),
        }
        results = []
        for write in sorted(writes, key=lambda w: w.field):
            done = compare(write, shown.get(write.field), "Jira", f"{key} {write.field}")
            results.append(done if done is not None else self._apply(key, write, fields))
        return results

    def _apply(self, key: str, write: Write, fields: dict[str, Any]) -> WriteResult:
        try:
            if write.field == RELEASE:
                self._set_release(key, write.value)
            elif write.field == STATUS:
                problem = self._transition(key, write.value, fields)
                if problem:
                    return WriteResult(write, "failed", problem)
            else:
                return WriteResult(write, "failed", f"relsync does not write {write.field!r} to Jira")
        except SourceConfigError:
            raise
        except ConnectorError as error:
            return WriteResult(write, "failed", error.message)
        return WriteResult(write, "ok")

    def _set_release(self, key: str, release: str | None) -> None:
        versions = []
        if release is not None:
            versions = [{"id": self._version_id(release)}]
        body = json.dumps({"fields": {"fixVersions": versions}})
        url = self.client._get_url(f"issue/{key}")
        # One PUT and no re-GET: Issue.update() would read the whole issue back.
        self._call(lambda: self.client._session.put(url, data=body))

    def _version_id(self, name: str) -> str:
        if self._versions is None:
            listed = self._call(lambda: self.client.project_versions(self.config.project))
            self._versions = {v.name: v.id for v in listed}
        if name not in self._versions:
            if self._project_id is None:
                self._project_id = self._call(lambda: self.client.project(self.config.project)).id
            body = json.dumps({"name": name, "projectId": int(self._project_id)})
            url = self.client._get_url("version")
            # The library's create_version() sleeps a second after every create.
            response = self._call(lambda: self.client._session.post(url, data=body))
            self._versions[name] = str(response.json()["id"])
        return self._versions[name]

    def _transition(self, key: str, target: str, fields: dict[str, Any]) -> str | None:
        status = (fields.get("status") or {}).get("name") or ""
        issue_type = (fields.get("issuetype") or {}).get("name") or ""
        cache_key = (issue_type, status)
        if cache_key not in self._transitions:
            self._transitions[cache_key] = self._call(lambda: self.client.transitions(key))
        for transition in self._transitions[cache_key]:
            if (transition.get("to") or {}).get("name") == target:
                self._call(lambda: self.client.transition_issue(key, str(transition["id"])))
                return None
        names = sorted({(t.get("to") or {}).get("name", "?") for t in self._transitions[cache_key]})
        return (
            f"{key}: the workflow has no transition from {status!r} to {target!r} "
            f"(available: {', '.join(names) or 'none'}); not forced"
        )

    def estimate(self, writes: list[Write]) -> dict[str, Any]:
        """The calls ``push(writes)`` would make, when nothing changed in between.

        Reads the project's versions (one call) to know which releases need one.
        """
        issues = {w.native_key or w.native_id for w in writes}
        releases = {w.value for w in writes if w.field == RELEASE and w.value}
        statuses = [w for w in writes if w.field == STATUS]
        missing = 0
        if releases:
            if self._versions is None:
                listed = self._call(lambda: self.client.project_versions(self.config.project))
                self._versions = {v.name: v.id for v in listed}
            missing = len(releases - set(self._versions))
        calls = {
            "check searches": -(-len(issues) // CHECK_BATCH) if issues else 0,
            "version list": 1 if releases else 0,
            "project read": 1 if missing else 0,
            "version creates": missing,
            "issue edits (PUT)": sum(1 for w in writes if w.field == RELEASE),
            "transition lookups": len({w.base for w in statuses}),
            "transitions (POST)": len(statuses),
        }
        return {"calls": sum(calls.values()), "by_kind": calls,
                "limit": "Jira Cloud rate limits by cost per hour; these are ordinary REST calls"}

    # -- check ------------------------------------------------------------------

    def check(self, statuses: list[str]) -> list[str]:
        """Credentials, mapped fields and status names against the live site."""
        problems: list[str] = []
        self._call(lambda: self.client.myself())
        known = {f["id"] for f in self._call(lambda: self.client.fields())}
        for field in self.fields:
            if field not in known:
                problems.append(f"field {field!r} does not exist in Jira (or is not visible to this account)")
        names = {s.name for s in self._call(lambda: self.client.statuses())}
        for status in statuses:
            if status not in names:
                problems.append(f"status {status!r} does not exist in Jira")
        try:
            self._call(lambda: self.client.project(self.config.project))
        except ConnectorError as error:
            problems.append(f"project {self.config.project!r}: {error.message}")
        return problems
