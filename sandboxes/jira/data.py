"""The Jira sandbox's data: workflow, fields, users, versions, issues and their changelog.

It models a company-managed project with one issue type ("Change Request"), two
single-select custom fields (Department, Request Type), one single-line text field
(Requested on, empty on seeded issues) and a release workflow, seeded from :mod:`seed`. JSON rendering lives in :mod:`jira_render`.
"""
from __future__ import annotations

import copy
import datetime as dt
import hashlib
import threading
import zoneinfo
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sandboxes.behaviour import REAL, is_real
from sandboxes.clock import SYSTEM_TIME, Clock, TimeSource
from sandboxes.jira.index import SearchIndex
from sandboxes.jira.richtext import rich_description
from sandboxes.seed import OBJECTS, ZONES, SeedRequest, iter_seed_requests

PROJECT_ID = 10000
FIRST_ISSUE_ID = 10001
DEPARTMENT = "customfield_10070"
REQUEST_TYPE = "customfield_10071"
REQUESTED_ON = "customfield_10072"
"""A single-line text field: people type dates into it in any shape they like."""
DEPENDS_ON = "customfield_10073"
"""A single-line text field naming requests this one needs first, in any system (``airtable:rec…``)."""
RELEASE_PHASE = "customfield_10081"
"""A single-line text field relsync may keep equal to the phase of the request's release."""
PLANNED_DEPLOY = "customfield_10080"
"""A date picker relsync may keep equal to the planned deploy date (``YYYY-MM-DD`` in issue JSON)."""
TEXT_FIELDS = {REQUESTED_ON: ("Requested on", "requested_on"), DEPENDS_ON: ("Depends on", "depends_on"),
               RELEASE_PHASE: ("Release phase", "release_phase")}
TEXT_LIMIT = 255
SERVER_VERSION = [1001, 0, 0]
FIRST_COMPONENT_ID = 10300
ACCOUNT_ZONES = ("Asia/Kolkata", "America/New_York", "Europe/Berlin", "Australia/Sydney")
"""The integration account's profile zone, by seed: one with a half-hour offset, two with DST."""
INDEX_LAG_SECONDS = 5.0
"""How far search trails writes by default: Jira shows most writes "within seconds"."""


@dataclass(frozen=True)
class Status:
    """A workflow status; ``key`` is the normalized relsync status."""

    key: str
    id: str
    name: str
    category: str


STATUSES = (
    Status("new", "1", "Open", "new"),
    Status("triaged", "10001", "Triage", "new"),
    Status("approved", "10002", "Approved", "new"),
    Status("scheduled", "10003", "Scheduled", "new"),
    Status("in_progress", "3", "In Progress", "indeterminate"),
    Status("testing", "10004", "In Testing", "indeterminate"),
    Status("deployed", "10005", "Deployed", "done"),
    Status("closed", "6", "Closed", "done"),
    Status("rejected", "10006", "Rejected", "done"),
)
STATUS_BY_KEY = {s.key: s for s in STATUSES}
CATEGORIES = {"new": (2, "To Do", "blue-gray"), "indeterminate": (4, "In Progress", "yellow"), "done": (3, "Done", "green")}


@dataclass(frozen=True)
class LinkType:
    """An issue link type as Jira Cloud ships it (see sandboxes.jira.links)."""

    id: str
    name: str
    inward: str
    outward: str


LINK_TYPES = (
    LinkType("10000", "Blocks", "is blocked by", "blocks"),
    LinkType("10001", "Cloners", "is cloned by", "clones"),
    LinkType("10002", "Duplicate", "is duplicated by", "duplicates"),
    LinkType("10003", "Relates", "relates to", "relates to"),
)


@dataclass(frozen=True)
class Link:
    """``inward`` <type.outward> ``outward``: with Blocks, ``inward`` blocks ``outward``."""

    id: int
    type: LinkType
    inward: int
    outward: int


@dataclass(frozen=True)
class Transition:
    """A workflow transition with a stable id, available from ``sources``."""

    id: str
    name: str
    sources: tuple[str, ...]
    target: str


TRANSITIONS = (
    Transition("11", "Triage", ("new",), "triaged"),
    Transition("21", "Approve", ("triaged",), "approved"),
    Transition("31", "Schedule", ("approved",), "scheduled"),
    Transition("41", "Start work", ("scheduled",), "in_progress"),
    Transition("51", "Send to testing", ("in_progress",), "testing"),
    Transition("61", "Deploy", ("testing",), "deployed"),
    Transition("71", "Close", ("deployed",), "closed"),
    Transition("81", "Reject", ("new", "triaged", "approved"), "rejected"),
    Transition("91", "Unschedule", ("scheduled",), "approved"),
    Transition("101", "Back to development", ("testing",), "in_progress"),
    Transition("111", "Reopen", ("rejected",), "new"),
)

PRIORITIES = (("1", "Highest"), ("2", "High"), ("3", "Medium"), ("4", "Low"), ("5", "Lowest"))
PRIORITY_RANK = {name: len(PRIORITIES) - i for i, (_, name) in enumerate(PRIORITIES)}
SEED_PRIORITY = {"critical": "Highest", "high": "High", "medium": "Medium", "low": "Low"}

OPTIONS = {
    DEPARTMENT: (
        "Department",
        ("Sales Ops", "Marketing Ops", "Support Ops", "Finance Ops", "RevOps", "IT", "HR Ops", "Partner Ops"),
        10100,
    ),
    REQUEST_TYPE: (
        "Request Type",
        ("Field change", "Layout change", "Workflow/Automation", "Report/Dashboard", "Access/Permissions", "Integration", "Data fix"),
        10200,
    ),
}


@dataclass(frozen=True)
class Component:
    """A project component: one per business object a change request can affect."""

    id: int
    name: str
    description: str


COMPONENTS = tuple(
    Component(FIRST_COMPONENT_ID + index, name, f"Changes to the {name} object") for index, name in enumerate(OBJECTS)
)
COMPONENT_BY_ID = {c.id: c for c in COMPONENTS}
COMPONENT_BY_NAME = {c.name: c for c in COMPONENTS}


def option_id(field_id: str, value: str) -> str | None:
    """The option id of ``value`` in a select field, or None."""
    _, values, first = OPTIONS[field_id]
    return str(first + values.index(value)) if value in values else None


def option_value(field_id: str, ident: str) -> str | None:
    """The option value with id ``ident`` in a select field, or None."""
    _, values, first = OPTIONS[field_id]
    index = int(ident) - first if str(ident).isdigit() else -1
    return values[index] if 0 <= index < len(values) else None


def _system(fid: str, name: str, schema: dict[str, Any], clauses: list[str], *, orderable: bool = True) -> dict[str, Any]:
    return {
        "id": fid, "key": fid, "name": name, "custom": False, "orderable": orderable,
        "navigable": True, "searchable": True, "clauseNames": clauses, "schema": schema,
    }


def field_catalog() -> list[dict[str, Any]]:
    """``GET /rest/api/3/field``: the system fields, the two custom select fields and the text field."""
    fields = [
        _system("issuekey", "Key", {}, ["id", "issue", "issuekey", "key"], orderable=False),
        _system("summary", "Summary", {"type": "string", "system": "summary"}, ["summary"]),
        _system("description", "Description", {"type": "string", "system": "description"}, ["description"]),
        _system("status", "Status", {"type": "status", "system": "status"}, ["status"], orderable=False),
        _system("priority", "Priority", {"type": "priority", "system": "priority"}, ["priority"]),
        _system("issuetype", "Issue Type", {"type": "issuetype", "system": "issuetype"}, ["issuetype", "type"]),
        _system("reporter", "Reporter", {"type": "user", "system": "reporter"}, ["reporter"]),
        _system("assignee", "Assignee", {"type": "user", "system": "assignee"}, ["assignee"]),
        _system("created", "Created", {"type": "datetime", "system": "created"}, ["created", "createdDate"], orderable=False),
        _system("updated", "Updated", {"type": "datetime", "system": "updated"}, ["updated", "updatedDate"], orderable=False),
        _system("fixVersions", "Fix versions", {"type": "array", "items": "version", "system": "fixVersions"}, ["fixVersion"]),
        _system("project", "Project", {"type": "project", "system": "project"}, ["project"]),
        _system("labels", "Labels", {"type": "array", "items": "string", "system": "labels"}, ["labels"]),
        _system("components", "Components", {"type": "array", "items": "component", "system": "components"}, ["component"]),
        _system("issuelinks", "Linked Issues", {"type": "array", "items": "issuelinks", "system": "issuelinks"},
                ["issueLink"]),
    ]
    for fid, (name, _, _) in OPTIONS.items():
        number = fid.rsplit("_", 1)[1]
        fields.append({
            "id": fid, "key": fid, "name": name, "untranslatedName": name, "custom": True, "orderable": True,
            "navigable": True, "searchable": True, "clauseNames": [f"cf[{number}]", name],
            "schema": {"type": "option", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:select", "customId": int(number)},
        })
    for fid, (name, _) in TEXT_FIELDS.items():
        custom_id = int(fid.rsplit("_", 1)[1])
        fields.append({
            "id": fid, "key": fid, "name": name, "untranslatedName": name, "custom": True,
            "orderable": True, "navigable": True, "searchable": True, "clauseNames": [f"cf[{custom_id}]", name],
            "schema": {"type": "string", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:textfield",
                       "customId": custom_id},
        })
    fields.append({
        "id": PLANNED_DEPLOY, "key": PLANNED_DEPLOY, "name": "Planned deploy date", "untranslatedName": "Planned deploy date",
        "custom": True, "orderable": True, "navigable": True, "searchable": True,
        "clauseNames": ["cf[10080]", "Planned deploy date"],
        "schema": {"type": "date", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:datepicker", "customId": 10080},
    })
    return fields


ISSUE_FIELDS = tuple(f["id"] for f in field_catalog() if f["id"] != "issuekey")
FIELD_NAMES = {f["id"]: f["name"] for f in field_catalog()}


@dataclass(frozen=True)
class User:
    """An Atlassian account."""

    account_id: str
    name: str
    email: str
    zone: str = "UTC"
    """The profile's time zone (``timeZone`` in user JSON)."""


@dataclass
class Version:
    """A project version (a release, for relsync)."""

    id: int
    name: str
    description: str = ""
    released: bool = False
    archived: bool = False
    release_date: dt.date | None = None
    start_date: dt.date | None = None


@dataclass(slots=True)
class Issue:
    """One issue's mutable state; ``history`` holds changelog entries written since seeding."""

    id: int
    key: str
    summary: str
    description: str | None
    description_adf: dict[str, Any] | None
    status: str
    priority: str
    department: str | None
    request_type: str | None
    reporter: str | None
    assignee: str | None
    labels: list[str]
    fix_versions: list[int]
    created: dt.datetime
    updated: dt.datetime
    seed: SeedRequest | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    components: list[int] = field(default_factory=list)
    requested_on: str | None = None
    depends_on: str | None = None
    release_phase: str | None = None
    planned_deploy: str | None = None
    """``YYYY-MM-DD``."""

    def snapshot(self) -> Issue:
        """A copy that later writes to this issue leave alone."""
        taken = copy.copy(self)
        taken.labels, taken.fix_versions = list(self.labels), list(self.fix_versions)
        taken.components, taken.history = list(self.components), list(self.history)
        return taken


def account_id(email: str) -> str:
    """A stable, Atlassian-looking account id (24 hex digits) for an email address."""
    return hashlib.sha1(email.lower().encode()).hexdigest()[:24]


def _seed_path(target: str) -> list[Transition]:
    """The transitions from Open to ``target`` a seeded issue went through (breadth-first)."""
    queue: deque[tuple[str, list[Transition]]] = deque([("new", [])])
    seen = {"new"}
    while queue:
        status, path = queue.popleft()
        if status == target:
            return path
        for transition in TRANSITIONS:
            if status in transition.sources and transition.target not in seen:
                seen.add(transition.target)
                queue.append((transition.target, path + [transition]))
    return []


SEED_PATHS = {s.key: _seed_path(s.key) for s in STATUSES}


class JiraState:
    """All mutable state of one Jira sandbox, guarded by ``lock`` (an RLock).

    ``behaviour`` "real" gives short search pages and a search index ``INDEX_LAG_SECONDS``
    behind the store; "kind" gives full pages and no lag.
    """

    def __init__(self, *, records: int, seed: int, email: str, token: str, project: str, timezone: str | None = None,
                 time_source: TimeSource = SYSTEM_TIME, behaviour: str = REAL) -> None:
        self.lock = threading.RLock()
        self.email, self.token = email, token
        self.project_key, self.project_name = project, "Ops Change Requests"
        # Jira renders timestamps in the requesting account's profile zone; the integration
        # account's is drawn from the seed (never UTC), so offsets like +0530 and -0400 show.
        self.timezone = timezone or ACCOUNT_ZONES[seed % len(ACCOUNT_ZONES)]
        real = is_real(behaviour)
        self.short_pages = real
        self.index: SearchIndex[Issue] = SearchIndex(time_source, INDEX_LAG_SECONDS if real else 0.0, Issue.snapshot)
        self.secret = hashlib.sha256(f"{seed}:{token}".encode()).digest()
        self.token_generation = 0
        self.data_version = 0
        self.search_cache: dict[str, tuple[int, list[int]]] = {}
        self.users: dict[str, User] = {}
        self.me = self.add_user("Relsync Integration", email, self.timezone)
        self.editor = self.add_user("Sandbox Editor", "sandbox.editor@example.com")
        self.people_tokens: dict[str, str] = {}
        self.locked: set[int] = set()  # issues whose status makes them read-only (jira.issue.editable = false)
        """API tokens of people (by lower-case email) who edit issues as themselves (``/_sandbox/jira/people``)."""
        self.versions: dict[int, Version] = {}
        for offset, (name, released, day) in enumerate(
            (("2026.08", True, dt.date(2026, 8, 18)), ("2026.09", True, dt.date(2026, 9, 15)),
             ("2026.10", True, dt.date(2026, 10, 13)), ("2026.11", False, dt.date(2026, 11, 17)))
        ):
            self.versions[10000 + offset] = Version(10000 + offset, name, f"Monthly ops release {name}", released, False, day)
        self.next_version_id = 10000 + len(self.versions)
        self.issues: dict[int, Issue] = {}
        self.by_key: dict[str, int] = {}
        self.issue_links: list[Link] = []
        latest = None
        for request in iter_seed_requests(seed, records):
            issue = self._seeded_issue(request)
            self.issues[issue.id] = issue
            self.by_key[issue.key] = issue.id
            latest = max(latest, issue.updated) if latest else issue.updated
        self.next_number = records + 1
        self.next_history_id = (FIRST_ISSUE_ID + records + 1) * 100
        self.clock = Clock(floor=latest, source=time_source)

    def add_user(self, name: str, email: str, zone: str = "UTC") -> User:
        """Register (or return) the account for ``email``."""
        ident = account_id(email)
        if ident not in self.users:
            self.users[ident] = User(ident, name, email, zone)
        return self.users[ident]

    def person_of(self, email: str, token: str) -> User | None:
        """The account whose email and API token these are: the integration account or a person's."""
        if email.lower() == self.email.lower() and token == self.token:
            return self.me
        if self.people_tokens.get(email.lower()) == token:
            return self.users.get(account_id(email))
        return None

    def _seeded_issue(self, request: SeedRequest) -> Issue:
        quirks = request.quirks
        reporter = self.add_user(request.requester.name, request.requester.email, quirks.zone)
        assignee = self.add_user(request.owner.name, request.owner.email, ZONES[len(request.owner.name) % len(ZONES)]) \
            if request.owner else None
        fix_versions: list[int] = []
        if request.status in ("deployed", "closed"):
            released = [v for v in self.versions.values() if v.released and v.release_date]
            due = [v for v in released if v.release_date is not None and v.release_date >= request.updated.date()]
            shipped = due[0] if due else released[-1]
            # Some shipped requests also name the release before (a fix that went out in two).
            earlier = [v.id for v in released if v.id < shipped.id][-1:] if quirks.extra_release else []
            fix_versions = [*earlier, shipped.id]
        components = [COMPONENT_BY_NAME[name].id for name in (request.affected_object, quirks.extra_object)
                      if name in COMPONENT_BY_NAME]
        return Issue(
            id=FIRST_ISSUE_ID + request.seq - 1,
            key=f"{self.project_key}-{request.seq}",
            summary=request.title,
            description=None if quirks.no_description else request.description,
            description_adf=rich_description(request, assignee.account_id if assignee else None, assignee.name if assignee else None)
            if quirks.rich_text and not quirks.no_description else None,
            status=request.status,
            priority=SEED_PRIORITY[request.priority],
            department=None if quirks.no_custom_fields else request.department,
            request_type=None if quirks.no_custom_fields else request.request_type,
            reporter=reporter.account_id,
            assignee=assignee.account_id if assignee else None,
            labels=list(request.tags),
            fix_versions=fix_versions,
            created=request.created,
            updated=request.updated,
            seed=request,
            components=components,
        )

    def find_issue(self, id_or_key: str) -> Issue | None:
        """The live issue with this id or key (keys are case-insensitive, as in Jira)."""
        if id_or_key.isdigit():
            return self.issues.get(int(id_or_key))
        ident = self.by_key.get(id_or_key.upper())
        return self.issues.get(ident) if ident is not None else None

    def histories(self, issue: Issue) -> list[dict[str, Any]]:
        """The issue's changelog, oldest first: seeded transitions, then recorded writes."""
        entries = []
        request = issue.seed
        if request is not None:
            path = SEED_PATHS[request.status]
            author = account_id((request.owner or request.requester).email)
            span = request.updated - request.created
            for step, transition in enumerate(path, start=1):
                source = STATUS_BY_KEY[_source_of(path, step)]
                target = STATUS_BY_KEY[transition.target]
                at = request.created + span * step / len(path)
                at = at.replace(microsecond=at.microsecond // 1000 * 1000) if step < len(path) else request.updated
                entries.append({
                    "id": issue.id * 100 + step, "author": author, "created": at,
                    "items": [status_item(source, target)],
                })
        return entries + issue.history

    def touch(self) -> None:
        """Note that data changed: cached search orderings are stale."""
        self.data_version += 1

    def zone(self) -> zoneinfo.ZoneInfo:
        """The account's profile time zone."""
        return zoneinfo.ZoneInfo(self.timezone)


def _source_of(path: list[Transition], step: int) -> str:
    return "new" if step == 1 else path[step - 2].target


def status_item(source: Status, target: Status) -> dict[str, Any]:
    """A changelog item for a status change."""
    return {"field": "status", "fieldtype": "jira", "fieldId": "status", "from": source.id,
            "fromString": source.name, "to": target.id, "toString": target.name}
