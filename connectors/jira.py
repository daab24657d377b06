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

import functools
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import requests
from jira import JIRA

from config.schema import JiraSource
from connectors.base import Estimate, Journal, Page, ReadSecret, SourceRecord, Write, WriteResult
from connectors.calls import ApiCalls
from connectors.errors import ConnectorError, FatalError, SourceConfigError, classify_status, jira_refusal
from connectors.http import trust
from connectors.paging import iter_pages
from connectors.retry import RetryPolicy
from connectors.writeback import Pending, Shown, calls_for, compare_then_send
from mapping import clock

SYSTEM = "jira"
GATEWAY = "https://api.atlassian.com"
TENANT_INFO = "/_edge/tenant_info"
CHECK_BATCH = 100
ID_PAGE = 5000  # search/jql pages up to 5000 issues when only ids are asked for
RELEASE = "release"
STATUS = "status"
TARGETS = {RELEASE: RELEASE, STATUS: STATUS}  # the current values are read under the engine's names (see shown_of)
CHECK_FIELDS = ["fixVersions", "status", "issuetype", "updated"]
JQL_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def connect(name: str, config: JiraSource, paths: list[str], read_secret: ReadSecret) -> JiraConnector:
    """A connector for one configured Jira source; ``paths`` are the mapped source paths.

    A personal API token goes as Basic email:token to the site. A token with scopes
    (``auth.token_kind`` scoped or service_account) only works through the gateway,
    ``{gateway}/ex/jira/{cloudId}``: as Basic with an email, as Bearer without. Browse
    links always use the site URL.
    """
    email = read_secret(config.auth.email_env, "email_env") if config.auth.email_env else None
    token = read_secret(config.auth.token_env, "token_env")
    fields = [p.split(".")[1] for p in paths if p.startswith("fields.") and p.count(".") >= 1]
    return JiraConnector(name, config, fields=fields, email=email, token=token)


def jql_string(value: str) -> str:
    """Quote ``value`` as a JQL string literal, escaping what JQL treats specially."""
    return f'"{value.translate(JQL_ESCAPES)}"'


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


def call_kind(response: requests.Response) -> str:
    """The method and REST resource of a call, ids folded: ``PUT issue/{id}``."""
    path = urlparse(response.request.url or "").path.split("/rest/api/3/", 1)[-1]
    resource = "/".join("{id}" if any(c.isdigit() for c in part) else part for part in path.split("/"))
    return f"{response.request.method} {resource}"


def shown_of(issue: dict[str, Any]) -> dict[str, Any]:
    """What an issue shows, under the engine's field names: the release is its first fix version."""
    fields = issue.get("fields") or {}
    return {
        RELEASE: next((v.get("name") for v in fields.get("fixVersions") or []), None),
        STATUS: (fields.get("status") or {}).get("name"),
        "issuetype": (fields.get("issuetype") or {}).get("name"),
    }


class JiraConnector:
    """One Jira Cloud project as a relsync source."""

    system = SYSTEM

    def __init__(self, name: str, config: JiraSource, *, fields: list[str], email: str | None, token: str,
                 policy: RetryPolicy | None = None) -> None:
        self.name = name
        self.config = config
        self.fields = sorted(set(fields) | {"updated", "fixVersions", "status", "issuetype"})
        self._email = email
        self._token = token
        self.calls = ApiCalls(SYSTEM, config.url, kind=call_kind, refusal=jira_refusal, policy=policy)
        self._client: JIRA | None = None
        self._versions: dict[str, str] | None = None
        self._project_id: str | None = None
        self._transitions: dict[tuple[str, str], list[dict[str, Any]]] = {}

    @property
    def reconcile_every_hours(self) -> float:
        """Jira reports no deletions: this often the selection's issue ids are listed."""
        return self.config.reconcile_every_hours

    @property
    def client(self) -> JIRA:
        """The jira client, connected on first use (serverInfo is its first call)."""
        if self._client is None:
            options: dict[str, Any] = {"verify": self.config.ca_bundle or True, "rest_api_version": "3"}
            auth: dict[str, Any] = {"basic_auth": (self._email, self._token)} if self._email else {"token_auth": self._token}
            server = self.api_url()
            client = JIRA(server=server, options=options, max_retries=0, timeout=self.config.timeout_seconds,
                          get_server_info=False, **auth)
            self.calls.count(trust(client._session, self.config.ca_bundle))
            # Asked here rather than by the constructor so the call is retried and counted.
            try:
                info = self.calls(client.server_info)
            except FatalError as error:
                if error.status == 404 and self.config.auth.through_gateway:
                    raise SourceConfigError(SYSTEM, f"the gateway has no Jira site at {server} (check "
                                                    f"sources.{self.name}.cloud_id)", status=404) from None
                raise
            if info.get("deploymentType") != "Cloud":
                raise SourceConfigError(SYSTEM, f"{self.config.url} is not a Jira Cloud site")
            client.deploymentType = info["deploymentType"]
            client._version = tuple(info.get("versionNumbers") or (0, 0, 0))
            self._client = client
        return self._client

    def api_url(self) -> str:
        """Where the REST API is called: the site, or the gateway's ``/ex/jira/{cloudId}`` for tokens with scopes."""
        if not self.config.auth.through_gateway:
            return self.config.url
        return f"{self.config.gateway or GATEWAY}/ex/jira/{self.config.cloud_id or self._tenant_cloud_id()}"

    def _tenant_cloud_id(self) -> str:
        """The site's cloud id, from its public ``/_edge/tenant_info`` (one call)."""
        url = self.config.url + TENANT_INFO
        session = self.calls.count(trust(requests.Session(), self.config.ca_bundle))

        def fetch() -> requests.Response:
            response = session.get(url, timeout=self.config.timeout_seconds)
            if not response.ok:
                raise classify_status(SYSTEM, response.status_code, f"{url} answered HTTP {response.status_code}",
                                      retry_after=response.headers.get("Retry-After"))
            return response

        unknown = f"found no cloud id at {url}; set sources.{self.name}.cloud_id (Atlassian Administration shows it)"
        try:
            body = self.calls(fetch).json()
        except (FatalError, ValueError):
            raise SourceConfigError(SYSTEM, unknown) from None
        if not isinstance(body, dict) or not isinstance(body.get("cloudId"), str) or not body["cloudId"]:
            raise SourceConfigError(SYSTEM, unknown)
        return body["cloudId"]

    def call_counts(self) -> dict[str, int]:
        """API calls made so far, by method and resource."""
        return self.calls.counts()

    # -- pull -------------------------------------------------------------------

    def _search(self, jql: str, page_size: int, fields: list[str]) -> Iterator[dict[str, Any]]:
        """Pages of one ``search/jql`` query, each one retried call, followed by nextPageToken."""

        def fetch(token: str | None) -> dict[str, Any]:
            return self.calls(lambda: self.client.enhanced_search_issues(jql, nextPageToken=token, maxResults=page_size,
                                                                         fields=fields, json_result=True))

        return iter_pages(SYSTEM, fetch, "nextPageToken")

    def pull(self, since: str | None) -> Iterator[Page]:
        """Yield pages of issues updated at or after ``since`` minus the overlap window."""
        since_ms = None if since is None else epoch_ms(since) - self.config.overlap_seconds * 1000
        jql = build_search_jql(self.config.project, self.config.jql, since_ms)
        for response in self._search(jql, self.config.page_size, list(self.fields)):
            records = [self._record(issue) for issue in response.get("issues", [])]
            versions = [r.version for r in records if r.version]
            watermark = clock.stamp(max(clock.parse(v) for v in versions)) if versions else None
            yield Page(records=records, watermark=watermark)

    def _record(self, issue: dict[str, Any]) -> SourceRecord:
        key = issue["key"]
        return SourceRecord(native_id=str(issue["id"]), native_key=key, url=f"{self.config.url.rstrip('/')}/browse/{key}",
                            version=(issue.get("fields") or {}).get("updated"), raw=issue)

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

    def push(self, writes: list[Write], journal: Journal | None = None) -> list[WriteResult]:
        """Compare (one search per 100 issues), then edit issue by issue; conflicts and refusals become results."""
        return compare_then_send(
            writes, system="Jira", targets=TARGETS, read=self._current, read_batch=CHECK_BATCH,
            send=self._send, send_batch=1, gone="issue {} no longer exists or is not visible",
            record=lambda w: w.native_key or w.native_id, journal=journal,
        )

    def _current(self, keys: list[str], fields: list[str]) -> dict[str, dict[str, Any]]:
        """What Jira shows now for ``keys``: one search call (``fields`` are the engine's, all read)."""
        jql = f"key in ({', '.join(jql_string(k) for k in keys)})"
        try:
            response = self.calls(lambda: self.client.enhanced_search_issues(jql, maxResults=len(keys), fields=CHECK_FIELDS,
                                                                             json_result=True))
        except FatalError:
            # Jira refuses the whole query when one key no longer exists (deleted or
            # moved); read the batch issue by issue so the others are still written.
            return self._current_one_by_one(keys)
        return {issue["key"]: shown_of(issue) for issue in response.get("issues", [])}

    def _current_one_by_one(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for key in keys:
            try:
                issue = self.calls(functools.partial(self.client.issue, key, fields=",".join(CHECK_FIELDS)))
            except FatalError:
                continue
            found[key] = shown_of(issue.raw)
        return found

    def _send(self, batch: list[Pending]) -> list[WriteResult]:
        return [self._apply(issue.record, write, issue.shown) for issue in batch for write in sorted(issue.writes, key=lambda w: w.field)]

    def _apply(self, key: str, write: Write, shown: Shown) -> WriteResult:
        try:
            if write.field == RELEASE:
                self._set_release(key, write.value)
            elif problem := self._transition(key, write.value, shown):
                return WriteResult(write, "failed", problem)
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
        self.calls(lambda: self.client._session.put(url, data=body))

    def _known_versions(self) -> dict[str, str]:
        """The project's versions, name -> id (listed once per run)."""
        if self._versions is None:
            listed = self.calls(lambda: self.client.project_versions(self.config.project))
            self._versions = {v.name: v.id for v in listed}
        return self._versions

    def _version_id(self, name: str) -> str:
        versions = self._known_versions()
        if name not in versions:
            if self._project_id is None:
                self._project_id = self.calls(lambda: self.client.project(self.config.project)).id
            body = json.dumps({"name": name, "projectId": int(self._project_id)})
            url = self.client._get_url("version")
            # The library's create_version() sleeps a second after every create.
            response = self.calls(lambda: self.client._session.post(url, data=body))
            versions[name] = str(response.json()["id"])
        return versions[name]

    def _transition(self, key: str, target: str, shown: Shown) -> str | None:
        status = shown.get(STATUS) or ""
        cache_key = (shown.get("issuetype") or "", status)
        if cache_key not in self._transitions:
            self._transitions[cache_key] = self.calls(lambda: self.client.transitions(key))
        choices = self._transitions[cache_key]
        chosen = next((t for t in choices if (t.get("to") or {}).get("name") == target), None)
        if chosen is not None:
            self.calls(lambda: self.client.transition_issue(key, str(chosen["id"])))
            return None
        names = sorted({(t.get("to") or {}).get("name", "?") for t in choices})
        return (
            f"{key}: the workflow has no transition from {status!r} to {target!r} "
            f"(available: {', '.join(names) or 'none'}); not forced"
        )

    def estimate(self, writes: list[Write]) -> Estimate:
        """The calls ``push(writes)`` would make, when nothing changed in between.

        Reads the project's versions (one call) to know which releases need one.
        """
        issues = {w.native_key or w.native_id for w in writes}
        releases = {w.value for w in writes if w.field == RELEASE and w.value}
        statuses = [w for w in writes if w.field == STATUS]
        missing = len(releases - set(self._known_versions())) if releases else 0
        calls = {
            "check searches": calls_for(len(issues), CHECK_BATCH),
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
        self.calls(lambda: self.client.myself())
        known = {f["id"] for f in self.calls(lambda: self.client.fields())}
        problems = [f"field {field!r} does not exist in Jira (or is not visible to this account)"
                    for field in self.fields if field not in known]
        names = {s.name for s in self.calls(lambda: self.client.statuses())}
        problems += [f"status {status!r} does not exist in Jira" for status in statuses if status not in names]
        try:
            self.calls(lambda: self.client.project(self.config.project))
        except ConnectorError as error:
            problems.append(f"project {self.config.project!r}: {error.message}")
        return problems
