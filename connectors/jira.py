"""Jira Cloud over the ``jira`` client library.

Pull: ``/rest/api/3/search/jql`` paged by ``nextPageToken``, ordered by ``updated``,
from the stored watermark minus an overlap window, asking only for mapped fields.
Push: the release goes to ``fixVersions`` (versions found or created once per run),
one PUT per issue without the library's re-GET; the status moves by the workflow
transition whose target status has the configured name. Before writing, one
``issue/bulkfetch`` per 100 issues reads what Jira shows now (the issue store, not the
lagging search index), so a field someone changed since the pull is reported as a
conflict instead of being overwritten. Jira has no conditional writes: after each 100
issues are written, one ``changelog/bulkfetch`` shows whether an edit landed between
the read and the write (see connectors.jira_history); such an edit is put back.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import requests
from jira import JIRA

from config.schema import JiraSource
from connectors.base import Estimate, Journal, Page, Permission, ReadSecret, SourceCheck, SourceRecord, Write, WriteResult
from connectors.calls import ApiCalls, push_until_stopped
from connectors.errors import (
    ConnectorError,
    FatalError,
    PermissionDenied,
    SourceConfigError,
    Stopped,
    classify_status,
    jira_refusal,
)
from connectors.history import HistoryBudget, HistoryPage, HistoryTarget
from connectors.http import timeouts, trust
from connectors.jira_changelog import calls_needed, changelog_fields, read_changelogs
from connectors.jira_history import FIELD_IDS, Overwritten, entry_of, overwritten, since
from connectors.jira_versions import ProjectVersions, VersionRefused
from connectors.paging import iter_pages
from connectors.retry import RetryPolicy
from connectors.writeback import Pending, Shown, calls_for, compare_then_send
from mapping import clock
from mapping.shapes import jira_type

SYSTEM = "jira"
GATEWAY = "https://api.atlassian.com"
TENANT_INFO = "/_edge/tenant_info"
CHECK_BATCH = 100
ID_PAGE = 5000  # search/jql pages up to 5000 issues when only ids are asked for
RELEASE = "release"
STATUS = "status"
TARGETS = {RELEASE: RELEASE, STATUS: STATUS}  # the current values are read under the engine's names (see shown_of)
CHECK_FIELDS = ["fixVersions", "status", "issuetype", "updated"]
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
            policy: RetryPolicy | None = None) -> JiraConnector:
    """A connector for one configured Jira source; ``paths`` are the mapped source paths.

    A personal API token goes as Basic email:token to the site. A token with scopes
    (``auth.token_kind`` scoped or service_account) only works through the gateway,
    ``{gateway}/ex/jira/{cloudId}``: as Basic with an email, as Bearer without. Browse
    links always use the site URL.
    """
    email = read_secret(config.auth.email_env, "email_env") if config.auth.email_env else None
    token = read_secret(config.auth.token_env, "token_env")
    fields = [p.split(".")[1] for p in paths if p.startswith("fields.") and p.count(".") >= 1]
    return JiraConnector(name, config, fields=fields, email=email, token=token, policy=policy)


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


def record_of(write: Write) -> str:
    """The issue a write goes to: its key (its id for an issue pulled without one)."""
    return write.native_key or write.native_id


def shown_of(issue: dict[str, Any]) -> dict[str, Any]:
    """What an issue shows, under the engine's field names: the release is its first fix version."""
    fields = issue.get("fields") or {}
    return {
        RELEASE: next((v.get("name") for v in fields.get("fixVersions") or []), None),
        STATUS: (fields.get("status") or {}).get("name"),
        "issuetype": (fields.get("issuetype") or {}).get("name"),
        "id": str(issue.get("id")),
        "updated": fields.get("updated"),
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
        self.calls = ApiCalls(SYSTEM, config.url, kind=call_kind, refusal=lambda error: jira_refusal(error, name), policy=policy)
        self._client: JIRA | None = None
        self.versions = ProjectVersions(self.calls, lambda: self.client, config.project)
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
            client = JIRA(server=server, options=options, max_retries=0, timeout=timeouts(self.config.timeout_seconds),
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
        """Compare (one bulkfetch per 100 issues), edit issue by issue, then read the changelog for overwrites."""
        return push_until_stopped(writes, journal, lambda recording: compare_then_send(
            writes, system="Jira", targets=TARGETS, read=self._current, read_batch=CHECK_BATCH,
            send=self._send, send_batch=1, gone="issue {} no longer exists or is not visible",
            record=record_of, journal=recording, verify=self._verify, version_of=lambda shown: shown.get("updated"),
        ))

    def _post(self, resource: str, body: dict[str, Any]) -> Any:
        url = self.client._get_url(resource)
        return self.calls(lambda: self.client._session.post(url, data=json.dumps(body))).json()

    def _current(self, keys: list[str], fields: list[str]) -> dict[str, dict[str, Any]]:
        """What Jira's issue store shows now for ``keys`` (one bulkfetch; missing issues are left out)."""
        found = self._post("issue/bulkfetch", {"issueIdsOrKeys": keys, "fields": CHECK_FIELDS})
        return {issue["key"]: shown_of(issue) for issue in found.get("issues", [])}

    def _histories(self, keys: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The release and status changelog of ``keys``, by issue id (``changelog/bulkfetch``, paged)."""

        def fetch(token: str | None) -> dict[str, Any]:
            body: dict[str, Any] = {"issueIdsOrKeys": keys, "fieldIds": sorted(FIELD_IDS.values()), "maxResults": 1000}
            return self._post("changelog/bulkfetch", body | ({"nextPageToken": token} if token else {}))

        histories: dict[str, list[dict[str, Any]]] = {}
        for page in iter_pages(SYSTEM, fetch, "nextPageToken"):
            for log in page.get("issueChangeLogs", []):
                histories.setdefault(str(log["issueId"]), []).extend(log.get("changeHistories") or [])
        return histories

    def _verify(self, batch: list[Pending], results: list[WriteResult]) -> list[WriteResult]:
        """Results again, with writes that replaced someone's edit made since the compare read put back as conflicts."""
        shown = {pending.record: pending.shown for pending in batch}
        written = sorted({record_of(r.write) for r in results if r.outcome == "ok"})
        if not written:
            return results
        histories = self._histories(written)
        checked: list[WriteResult] = []
        for result in results:
            seen = shown.get(record_of(result.write))
            if result.outcome != "ok" or seen is None:
                checked.append(result)
                continue
            entries = since(histories.get(str(seen.get("id")), []), seen.get("updated"))
            found = overwritten(result.write.field, result.write.value, result.write.base, entries)
            if found is not None:
                checked.append(self._put_back(record_of(result.write), result.write, found, seen))
                continue
            # The issue's ``updated`` once this write landed: a lagging search showing it older is old news.
            ours = entry_of(result.write.field, result.write.value, entries)
            checked.append(dataclasses.replace(result, version=ours["created"]) if ours else result)
        return checked

    def _put_back(self, key: str, write: Write, found: Overwritten, seen: Shown) -> WriteResult:
        """Undo relsync's write of ``write`` that replaced ``found``: the person's value stands."""
        problem: str | None = None
        try:
            if write.field == RELEASE:
                body = json.dumps({"fields": {"fixVersions": [{"id": ident} for ident in found.restore]}})
                url = self.client._get_url(f"issue/{key}")
                self.calls(lambda: self.client._session.put(url, data=body))
            elif found.value:
                problem = self._transition(key, found.value, {STATUS: write.value, "issuetype": seen.get("issuetype")})
        except ConnectorError as error:
            problem = error.message
        outcome = f"putting their value back failed: {problem}" if problem else "their value was put back"
        message = (f"{key} {write.field}: changed in Jira to {found.value!r} between relsync's read and its write "
                   f"of {write.value!r}; {outcome}")
        return WriteResult(write, "conflict", message, current=found.value)

    def _send(self, batch: list[Pending]) -> list[WriteResult]:
        return [self._apply(issue.record, write, issue.shown) for issue in batch for write in sorted(issue.writes, key=lambda w: w.field)]

    def _apply(self, key: str, write: Write, shown: Shown) -> WriteResult:
        """One write to one issue; every refusal but a credentials error becomes its result."""
        try:
            if write.field == RELEASE:
                self._set_release(key, write.value)
            elif problem := self._transition(key, write.value, shown):
                return WriteResult(write, "failed", problem)
        except PermissionDenied as error:
            return WriteResult(write, "failed", self._permission_problem(key, write, error))
        except VersionRefused as refused:
            return WriteResult(write, "failed", refused.message)
        except SourceConfigError:
            raise
        except ConnectorError as error:
            return (self.calls.held_back([write], error) or [WriteResult(write, "failed", error.message)])[0]
        return WriteResult(write, "ok")

    def _permission_problem(self, key: str, write: Write, error: ConnectorError) -> str:
        doing, permission = (f"editing {key}", "Edit Issues") if write.field == RELEASE else (
            f"moving {key} to {write.value!r}", "Transition Issues")
        return f"Jira: {doing} needs the {permission} permission for project {self.config.project} ({error.message})"

    def _set_release(self, key: str, release: str | None) -> None:
        versions = []
        if release is not None:
            versions = [{"id": self.versions.id_of(release)}]
        body = json.dumps({"fields": {"fixVersions": versions}})
        url = self.client._get_url(f"issue/{key}")
        # One PUT and no re-GET: Issue.update() would read the whole issue back.
        self.calls(lambda: self.client._session.put(url, data=body))

    def _transition(self, key: str, target: str, shown: Shown) -> str | None:
        status = shown.get(STATUS) or ""
        cache_key = (shown.get("issuetype") or "", status)
        if cache_key not in self._transitions:
            self._transitions[cache_key] = self.calls(lambda: self.client.transitions(key))
        choices = self._transitions[cache_key]
        chosen = next((t for t in choices if (t.get("to") or {}).get("name") == target), None)
        if chosen is not None:
            return self._move(key, str(chosen["id"]), target)
        if not choices:  # Jira lists no transitions at all to an account without Transition Issues
            return (f"Jira: moving {key} to {target!r} needs the Transition Issues permission for project "
                    f"{self.config.project} (Jira lists no transitions from {status!r} for this account)")
        names = sorted({(t.get("to") or {}).get("name", "?") for t in choices})
        return (
            f"{key}: the workflow has no transition from {status!r} to {target!r} "
            f"(available: {', '.join(names) or 'none'}); not forced"
        )

    def _move(self, key: str, transition: str, target: str) -> str | None:
        """POST the transition; one that may have landed is checked by reading the issue's status, never repeated blindly."""

        def arrived() -> bool | None:
            issue = self.client.issue(key, fields="status")
            return True if issue.fields.status.name == target else None

        try:
            self.calls(lambda: self.client.transition_issue(key, transition) or True, applied=arrived)
        except FatalError as error:
            # Jira refuses a transition the issue has already taken ("not valid for the
            # current state"): if it now shows the target, the move is done.
            if self.calls(arrived) is None:
                return f"{key}: {error.message}"
        return None

    def estimate(self, writes: list[Write]) -> Estimate:
        """The calls ``push(writes)`` would make, when nothing changed in between.

        Reads the project's versions (one call) to know which releases need one.
        """
        issues = {w.native_key or w.native_id for w in writes}
        releases = {w.value for w in writes if w.field == RELEASE and w.value}
        statuses = [w for w in writes if w.field == STATUS]
        missing = len(releases - set(self.versions.known())) if releases else 0
        calls = {
            "compare reads (bulkfetch)": calls_for(len(issues), CHECK_BATCH),
            "changelog reads": calls_for(len(issues), CHECK_BATCH),
            "version list": 1 if releases else 0,
            "project read": 1 if missing else 0,
            "version creates": missing,
            "issue edits (PUT)": sum(1 for w in writes if w.field == RELEASE),
            "transition lookups": len({w.base for w in statuses}),
            "transitions (POST)": len(statuses),
        }
        return {"calls": sum(calls.values()), "by_kind": calls,
                "limit": "Jira Cloud rate limits by cost per hour; these are ordinary REST calls"}

    # -- history ----------------------------------------------------------------

    history_kind = "Jira changelog"

    def history(self, targets: list[HistoryTarget], since: str | None, budget: HistoryBudget) -> Iterator[HistoryPage]:
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
