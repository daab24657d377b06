"""Jira Cloud over the ``jira`` client library.

Pull: ``/rest/api/3/search/jql`` paged by ``nextPageToken``, ordered by ``updated``,
from the stored watermark minus an overlap window, asking only for mapped fields.
Push: see connectors.jira_write (compare, then write issue by issue or, for a value going
to more than ``bulk_threshold`` issues, by bulk jobs of 1,000; then the changelog check).
The site's server info and field list are kept between runs (connectors.jira_meta).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlparse

import requests
from jira import JIRA

from config.schema import JiraSource
from connectors.base import (
    Estimate,
    Journal,
    Kept,
    Page,
    Permission,
    ReadSecret,
    SourceCache,
    SourceCheck,
    SourceRecord,
    Write,
    WriteResult,
)
from connectors.calls import ApiCalls
from connectors.errors import (
    ConnectorError,
    FatalError,
    SourceConfigError,
    Stopped,
    classify_status,
    jira_refusal,
)
from connectors.history import HistoryBudget, HistoryPage, HistoryTarget
from connectors.http import timeouts, trust
from connectors.jira_changelog import calls_needed, changelog_fields, read_changelogs
from connectors.jira_meta import SiteMetadata, names_a_field
from connectors.jira_versions import ProjectVersions
from connectors.jira_write import JiraWriter
from connectors.paging import iter_pages
from connectors.retry import RetryPolicy
from mapping import clock
from mapping.shapes import jira_type

SYSTEM = "jira"
log = logging.getLogger(__name__)
GATEWAY = "https://api.atlassian.com"
TENANT_INFO = "/_edge/tenant_info"
ID_PAGE = 5000  # search/jql pages up to 5000 issues when only ids are asked for
PERMISSIONS = (  # key, what relsync needs it for, required, what its absence costs
    ("BROWSE_PROJECTS", "reading the issues of {project}", True, ""),
    ("EDIT_ISSUES", "writing the release to fixVersions", True, ""),
    ("RESOLVE_ISSUES", "setting fixVersions, which Jira ties to resolving", True, ""),
    ("TRANSITION_ISSUES", "moving issues to the configured statuses", True, ""),
    ("ADMINISTER_PROJECTS", "creating a version for each release", False,
     "relsync cannot create versions in {project}: each release must already exist there as a version, "
     "or the writes of its release fail"),
)
JQL_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def connect(name: str, config: JiraSource, paths: list[str], read_secret: ReadSecret,
            policy: RetryPolicy | None = None, kept: Kept | None = None) -> JiraConnector:
    """A connector for one configured Jira source; ``paths`` are the mapped source paths.

    A personal API token goes as Basic email:token to the site. A token with scopes
    (``auth.token_kind`` scoped or service_account) only works through the gateway,
    ``{gateway}/ex/jira/{cloudId}``: as Basic with an email, as Bearer without. Browse
    links always use the site URL.
    """
    email = read_secret(config.auth.email_env, "email_env") if config.auth.email_env else None
    token = read_secret(config.auth.token_env, "token_env")
    fields = [p.split(".")[1] for p in paths if p.startswith("fields.") and p.count(".") >= 1]
    return JiraConnector(name, config, fields=fields, email=email, token=token, policy=policy,
                         cache=kept.cache if kept is not None else None)


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


class JiraConnector:
    """One Jira Cloud project as a relsync source."""

    system = SYSTEM

    def __init__(self, name: str, config: JiraSource, *, fields: list[str], email: str | None, token: str,
                 policy: RetryPolicy | None = None, cache: SourceCache | None = None) -> None:
        self.name = name
        self.config = config
        self.fields = sorted(set(fields) | {"updated", "fixVersions", "status", "issuetype"})
        self._email = email
        self._token = token
        self.calls = ApiCalls(SYSTEM, config.url, kind=call_kind, refusal=lambda error: jira_refusal(error, name), policy=policy)
        self._client: JIRA | None = None
        self.meta = SiteMetadata(cache, config.metadata_cache_hours)
        self.versions = ProjectVersions(self.calls, lambda: self.client, config.project)
        self.writer = JiraWriter(name, config, self.calls, lambda: self.client, self.versions, self._post)

    @property
    def reconcile_every_hours(self) -> float:
        """Jira reports no deletions: this often the selection's issue ids are listed."""
        return self.config.reconcile_every_hours

    @property
    def client(self) -> JIRA:
        """The jira client, connected on first use (serverInfo is its first call, unless kept from an earlier run)."""
        if self._client is None:
            options: dict[str, Any] = {"verify": self.config.ca_bundle or True, "rest_api_version": "3"}
            auth: dict[str, Any] = {"basic_auth": (self._email, self._token)} if self._email else {"token_auth": self._token}
            server = self.api_url()
            client = JIRA(server=server, options=options, max_retries=0, timeout=timeouts(self.config.timeout_seconds),
                          get_server_info=False, **auth)
            self.calls.count(trust(client._session, self.config.ca_bundle))
            # Asked here rather than by the constructor so the call is retried and counted.
            try:
                info = self.meta.server_info(lambda: self.calls(client.server_info))
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
            response = session.get(url, timeout=timeouts(self.config.timeout_seconds))
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

    def stopped(self) -> Stopped | None:
        """Why this run sends nothing more to the source (None while it may)."""
        return self.calls.stopped()

    def call_counts(self) -> dict[str, int]:
        """API calls made so far, by method and resource."""
        return self.calls.counts()

    # -- pull -------------------------------------------------------------------

    def _search(self, jql: str, page_size: int, fields: list[str]) -> Iterator[dict[str, Any]]:
        """Pages of one ``search/jql`` query, each one retried call, followed by nextPageToken."""

        def fetch(token: str | None) -> dict[str, Any]:
            return self.calls(lambda: self.client.enhanced_search_issues(jql, nextPageToken=token, maxResults=page_size,
                                                                         fields=fields, json_result=True))

        return iter_pages(SYSTEM, fetch, "nextPageToken", items_key="issues")

    def _load_fields(self) -> None:
        """Give the library its field ids (``JIRA._fields_cache``) from the cache, or from one ``field`` call."""
        client = self.client
        client._fields_cache_value = self.meta.field_ids(lambda: self.calls(client.fields))

    def _fresh_search(self, jql: str, page_size: int, fields: list[str]) -> Iterator[dict[str, Any]]:
        """``_search``; its first page refused for a field while the metadata came from the cache asks for it again, once."""
        self._load_fields()
        pages = self._search(jql, page_size, list(fields))
        try:
            first = next(pages, None)
        except ConnectorError as error:
            if not names_a_field(error) or not self.meta.stale():
                raise
            log.info("%s: search refused (%s); asking Jira for its server info and fields again", self.name, error.message)
            self._client = None
            self._load_fields()
            pages = self._search(jql, page_size, list(fields))
            first = next(pages, None)
        if first is not None:
            yield first
            yield from pages

    def pull(self, since: str | None) -> Iterator[Page]:
        """Yield pages of issues updated at or after ``since`` minus the overlap window."""
        since_ms = None if since is None else epoch_ms(since) - self.config.overlap_seconds * 1000
        jql = build_search_jql(self.config.project, self.config.jql, since_ms)
        for response in self._fresh_search(jql, self.config.page_size, list(self.fields)):
            records = [self._record(issue) for issue in response.get("issues", [])]
            versions = [r.version for r in records if r.version]
            watermark = clock.stamp(max(clock.parse(v) for v in versions)) if versions else None
            yield Page(records=records, watermark=watermark)

    def _record(self, issue: dict[str, Any]) -> SourceRecord:
        key = issue["key"]
        return SourceRecord(native_id=str(issue["id"]), native_key=key, url=f"{self.config.url.rstrip('/')}/browse/{key}",
                            version=(issue.get("fields") or {}).get("updated"), raw=issue)

    def reconcile(self, known: Callable[[], set[str]], *, due: bool, since: str | None = None) -> list[str] | None:
        """Known issues Jira no longer returns (deleted, moved, or out of the selection).

        Jira has no deletion feed, so this lists the selection's issue ids, 5000 a
        call, when due. Nothing known before the first reconcile can be missing yet.
        """
        if since is None:
            return []
        if not due:
            return None
        jql = build_search_jql(self.config.project, self.config.jql, None)
        missing = known()  # crossed off page by page: one set of ids held, not two
        for page in self._search(jql, ID_PAGE, []):
            missing.difference_update(str(i["id"]) for i in page.get("issues", []))
        return sorted(missing)

    # -- push -------------------------------------------------------------------

    def push(self, writes: list[Write], journal: Journal | None = None) -> list[WriteResult]:
        """Compare, write (bulk jobs for large groups of one value, else issue by issue), then check the changelog."""
        return self.writer.push(writes, journal)

    def estimate(self, writes: list[Write]) -> Estimate:
        """The calls ``push(writes)`` would make, when nothing changed in between."""
        return self.writer.estimate(writes)

    def _post(self, resource: str, body: dict[str, Any]) -> Any:
        url = self.client._get_url(resource)
        return self.calls(lambda: self.client._session.post(url, data=json.dumps(body))).json()

    # -- history ----------------------------------------------------------------

    history_kind = "Jira changelog"

    def history(self, targets: Iterable[HistoryTarget], since: str | None, budget: HistoryBudget) -> Iterator[HistoryPage]:
        """The changelogs of ``targets`` (issues updated since the last import), 1,000 issues and 10 fields a call."""
        return read_changelogs(self._post, self.config, targets, budget)

    def history_estimate(self, targets: int) -> int:
        """One call per 1,000 issues and 10 mapped fields, before any further pages."""
        return calls_needed(targets, len(changelog_fields(self.config)))

    # -- check ------------------------------------------------------------------

    def check(self, statuses: list[str]) -> SourceCheck:
        """Credentials, mapped fields, status names and the account's permissions in the project."""
        self.calls(lambda: self.client.myself())
        catalogue = {f["id"]: jira_type(f.get("schema")) for f in self.calls(lambda: self.client.fields())}
        found = SourceCheck([f"field {field!r} does not exist in Jira (or is not visible to this account)"
                             for field in self.fields if field not in catalogue], field_types=catalogue)
        names = {s.name for s in self.calls(lambda: self.client.statuses())}
        found.problems += [f"status {status!r} does not exist in Jira" for status in statuses if status not in names]
        try:
            self.calls(lambda: self.client.project(self.config.project))
        except ConnectorError as error:
            found.problems.append(f"project {self.config.project!r}: {error.message}")
            return found
        found.permissions = self._permissions()
        return found

    def _permissions(self) -> list[Permission]:
        """What ``mypermissions`` says the account may do in the project, for each thing relsync does there."""
        needed = {"BROWSE_PROJECTS"}
        if self.config.write.release is not None:
            needed |= {"EDIT_ISSUES", "RESOLVE_ISSUES", "ADMINISTER_PROJECTS"}
        if self.config.write.status:
            needed.add("TRANSITION_ISSUES")
        wanted = [permission for permission in PERMISSIONS if permission[0] in needed]
        keys = ",".join(key for key, *_ in wanted)
        answer = self.calls(lambda: self.client.my_permissions(projectKey=self.config.project, permissions=keys))
        held: dict[str, Any] = answer.get("permissions") or {}
        project = self.config.project
        permissions = []
        for key, needed_for, required, consequence in wanted:
            entry = held.get(key) or {}
            granted = None if "havePermission" not in entry else entry["havePermission"] is True
            permissions.append(Permission(f"{entry.get('name', key)} ({key})", needed_for.format(project=project), granted,
                                          required, consequence.format(project=project)))
        return permissions
