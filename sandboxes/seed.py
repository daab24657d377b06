"""Deterministic, realistic ops change requests, in no vendor's vocabulary.

Each sandbox maps these onto its own records (Jira issues, Airtable rows, Salesforce
Cases). Generation is a pure function of the seed: ``random.Random(seed)`` only, no
wall clock, and record *n* never depends on how many records were asked for, so a
smaller seeding is a prefix of a larger one.
"""
from __future__ import annotations

import bisect
import datetime as dt
import itertools
import random
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

ANCHOR = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
"""Seeded timestamps fall in the 180 days before this instant."""
SPAN_MS = 180 * 24 * 3600 * 1000

DEPARTMENTS = ("Sales Ops", "Marketing Ops", "Support Ops", "Finance Ops", "RevOps", "IT", "HR Ops", "Partner Ops")
REQUEST_TYPES = (
    "Field change",
    "Layout change",
    "Workflow/Automation",
    "Report/Dashboard",
    "Access/Permissions",
    "Integration",
    "Data fix",
)
PRIORITIES = ("critical", "high", "medium", "low")
_PRIORITY_WEIGHTS = (8, 27, 45, 20)
STATUSES = ("new", "triaged", "approved", "in_progress", "testing", "deployed", "closed", "rejected")
# About a third approved: that is the pool the planner works on.
_STATUS_WEIGHTS = (12, 12, 34, 10, 7, 10, 9, 6)
_STATUS_CUMULATIVE = tuple(itertools.accumulate(_STATUS_WEIGHTS))
_PRIORITY_CUMULATIVE = tuple(itertools.accumulate(_PRIORITY_WEIGHTS))
_TIE_EVERY = 11  # roughly one record in eleven reuses its predecessor's `updated`, to the ms


@dataclass(frozen=True, slots=True)
class Person:
    """Someone who asks for or does the work."""

    name: str
    email: str


@dataclass(frozen=True, slots=True)
class SeedRequest:
    """One change request, before any system's vocabulary is applied."""

    seq: int
    title: str
    description: str
    department: str
    request_type: str
    priority: str
    status: str
    requester: Person
    owner: Person | None
    tags: tuple[str, ...]
    created: dt.datetime
    updated: dt.datetime
    affected_object: str = ""
    """The business object the change touches (one of ``OBJECTS``), for the clash check."""
    quirks: Quirks = field(default_factory=lambda: Quirks())
    """How this record is as messy as records in real accounts are (see :class:`Quirks`)."""


@dataclass(frozen=True, slots=True)
class Quirks:
    """The untidiness a request shows in its system, drawn from its own stream of the seed.

    Each sandbox reads the quirks that exist in its vendor: Airtable leaves empty fields
    out (no Title, no Status), Salesforce has null Subjects and the standard Case
    statuses, Jira has null descriptions and custom fields, rich text, several fix
    versions and components. The draws come from a second generator, a fixed number per
    record, so adding quirks left every other seeded value as it was.
    """

    no_title: bool = False
    no_status: bool = False
    no_description: bool = False
    no_custom_fields: bool = False
    standard_status: bool = False
    """Salesforce: the standard Case value (Working, Escalated) instead of the record type's own."""
    rich_text: int = 0
    """Jira: 0 plain paragraphs; otherwise which rich-text sample the description carries."""
    extra_type: str | None = None
    """A second request type (an Airtable multi-select holding two)."""
    extra_object: str | None = None
    """A second affected object (a second Jira component)."""
    extra_release: bool = False
    """Jira: a shipped request also carries the release before its own."""
    attachments: int = 0
    zone: str = "UTC"
    """The requester's time zone (Jira user profiles)."""


_FIRST = (
    "Amelia", "José", "Zoë", "Łukasz", "Siobhán", "Wei", "Priya", "Søren", "Aoife", "Björn", "Chloé",
    "Mateo", "Fatima", "Kenji", "Olamide", "Ingrid", "Rahul", "Camille", "Darnell", "Yuki", "Nadia",
    "Tomás", "Hannah", "Emeka", "Lucía", "Noah", "Ana", "Mikael", "Grace", "Omar", "Beatriz", "Liam",
)
_LAST = (
    "O'Brien", "García", "Müller", "Nakamura", "Okafor", "Kowalski", "D'Angelo", "Ng", "Larsen",
    "Fernandes", "Chen", "Patel", "Dubois", "Johnson", "Haddad", "Svensson", "Rossi", "Kim",
    "Nguyen", "Walsh", "Schmidt", "Adeyemi", "Costa", "Novak", "Tanaka", "MacLeod", "Ortiz",
)
_DOMAINS = ("example.com", "corp.example", "ops.example.org")
OBJECTS = ("Opportunity", "Account", "Lead", "Case", "Contact", "Quote", "Contract", "Invoice", "Campaign", "Order")
_OBJECTS = OBJECTS
_FIELDS = (
    "Renewal Risk", "Churn Reason", "Partner Tier", "Billing Region", "Next Step", "Expected Go-Live",
    "Competitor", "Discount Approver", "Customer's PO Number", "NPS Score", "Legal Entity", "Escalation Owner",
    "Contract End Date", "Primary Use Case", "Onboarding Stage", "Cost Center",
)
_REGIONS = ("EMEA", "APAC", "LATAM", "North America", "DACH", "ANZ", "Nordics", "UK&I")
_CITIES = ("Zürich", "São Paulo", "東京", "Kraków", "Montréal", "München", "Reykjavík", "İstanbul", "Bogotá", "Dublin")
_TEAMS = ("inside sales", "SDRs", "customer success", "tier-2 support", "billing", "partner managers", "field marketing")
_SYSTEMS = ("NetSuite", "Marketo", "Zendesk", "Snowflake", "Workday", "Slack", "HubSpot", "Gainsight")
_METRICS = ("pipeline", "win rate", "case backlog", "renewal forecast", "MQL conversion", "ARR", "first response time")
_DIMENSIONS = ("region", "segment", "product line", "owner", "quarter", "channel")
_EMOJI = ("🚀", "⚠️", "✅", "🔥", "📊")
_QUALIFIERS = (
    "for {region}", "({city})", "before Q{quarter} close", "for {team}", "- phase {phase}",
    "in {city}", "(follow-up)", "for the {region} {team}",
)
ZONES = ("Asia/Kolkata", "America/New_York", "Europe/Berlin", "Australia/Sydney", "America/Los_Angeles", "UTC",
         "Asia/Tokyo", "America/Sao_Paulo")
"""Time zones people's profiles are set to (Kolkata's +05:30 and DST zones included)."""
RICH_SAMPLES = 4
_TAGS = ("q4-push", "compliance", "quick-win", "exec-ask", "tech-debt", "audit", "gdpr", "launch")

_TITLES: dict[str, tuple[str, ...]] = {
    "Field change": (
        "Add '{field}' field to {object} layout",
        "Make '{field}' required on {object}",
        "Change picklist values for '{field}' on {object}",
        "Rename '{field}' to '{field2}' on {object}",
        "Default '{field}' to blank for new {object} records in {region}",
    ),
    "Layout change": (
        "Reorder sections on the {object} page for {team}",
        "Hide '{field}' from the {team} {object} layout",
        "New compact layout for {object} ({region})",
        "Move '{field}' above the fold on {object}",
    ),
    "Workflow/Automation": (
        "Change lead routing for {region}",
        "Auto-assign {object} records to {team} in {region}",
        "Approval flow for {object} discounts over {pct}%",
        "Escalate {object} after {days} days without response",
        "Notify {team} when '{field}' changes",
    ),
    "Report/Dashboard": (
        "New dashboard: {metric} by {dimension}",
        "Weekly report: {metric} for {region}",
        "Fix totals on the '{metric}' report",
        "Add {city} office to the {metric} dashboard",
    ),
    "Access/Permissions": (
        "Grant {team} read access to {object}",
        "Remove edit on '{field}' for {team}",
        "New permission set for {region} {team}",
        "Offboard contractor access to {object} in {city}",
    ),
    "Integration": (
        "Sync {object} to {system}",
        "Push {object} status changes to {system}",
        "Fix {system} sync errors for {object}",
        "Map '{field}' between {object} and {system}",
    ),
    "Data fix": (
        "Backfill '{field}' on {count} {object} records",
        "Merge duplicate {object} records in {region}",
        "Correct currency on {city} {object} records",
        "Re-parent {count} orphaned {object} records",
    ),
}

_WHY = (
    "The {team} team keeps asking for this in the weekly ops sync.",
    "Leadership wants this before the quarter closes; it's blocking the {metric} review.",
    "We're doing this by hand today in a spreadsheet, which doesn't scale.",
    "Audit flagged that \"{field}\" isn't tracked consistently across {region}.",
    "Our {city} office can't see the data they need, so deals stall.",
    "Customers in {region} complained that we don't follow up fast enough.",
)
_CRITERIA = (
    "'{field}' is visible to {team}",
    "Existing {object} records are unaffected",
    "Change is documented in the ops runbook",
    "A report shows {metric} by {dimension}",
    "{system} receives the update within 5 minutes",
    "Sandbox tested by the requester before go-live",
    "No duplicate notifications are sent",
)
_LONG_NOTE = (
    "Context from the intake call: the current process involves three hand-offs between {team}, "
    "the {region} managers and finance. Each hand-off loses a day, and nobody owns the \"{field}\" "
    "value once the {object} moves past qualification. We've tried a Slack reminder but it's noisy. "
)


def _person(rng: random.Random) -> Person:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    local = f"{_ascii(first)}.{_ascii(last)}".lower()
    return Person(name=f"{first} {last}", email=f"{local}@{rng.choice(_DOMAINS)}")


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.replace("ł", "l").replace("Ł", "L").replace("ø", "o").replace("Ø", "O"))
    return "".join(ch for ch in folded if ch.isascii() and ch.isalnum())


def _people(rng: random.Random, count: int) -> list[Person]:
    people: dict[str, Person] = {}
    while len(people) < count:
        person = _person(rng)
        people.setdefault(person.email, person)
    return list(people.values())


_Option = TypeVar("_Option")


def _pick(rng: random.Random, options: Sequence[_Option]) -> _Option:
    # rng.choice() is several times slower; this keeps a million records within a minute.
    return options[int(rng.random() * len(options))]


def _weighted(rng: random.Random, options: tuple[str, ...], cumulative: tuple[int, ...]) -> str:
    return options[bisect.bisect_right(cumulative, rng.random() * cumulative[-1])]


def _slots(rng: random.Random) -> dict[str, object]:
    field_a = _pick(rng, _FIELDS)
    field_b = _pick(rng, _FIELDS)
    if field_b == field_a:
        field_b = _FIELDS[(_FIELDS.index(field_a) + 1) % len(_FIELDS)]
    return {
        "field": field_a,
        "field2": field_b,
        "object": _pick(rng, _OBJECTS),
        "region": _pick(rng, _REGIONS),
        "city": _pick(rng, _CITIES),
        "team": _pick(rng, _TEAMS),
        "system": _pick(rng, _SYSTEMS),
        "metric": _pick(rng, _METRICS),
        "dimension": _pick(rng, _DIMENSIONS),
        "pct": _pick(rng, (10, 15, 20, 25, 30, 40)),
        "days": _pick(rng, (2, 3, 5, 7, 14)),
        "count": _pick(rng, (120, 480, 1_250, 3_400, 12_000)),
        "quarter": 1 + int(rng.random() * 4),
        "phase": 2 + int(rng.random() * 3),
    }


def _description(rng: random.Random, slots: dict[str, object], requester: Person, department: str) -> str:
    lines = [f"Requested by {requester.name} ({department}).", "", str(_pick(rng, _WHY)).format(**slots)]
    if rng.random() < 0.2:
        lines += ["", (_LONG_NOTE * (3 + int(rng.random() * 10))).format(**slots).strip()]
    lines.append("")
    lines.append("Acceptance criteria:")
    start = int(rng.random() * len(_CRITERIA))
    for offset in range(2 + int(rng.random() * 3)):
        lines.append(f"- {_CRITERIA[(start + offset * 3) % len(_CRITERIA)].format(**slots)}")
    if rng.random() < 0.15:
        lines += ["", f"Note: applies to the {slots['city']} team too {_pick(rng, _EMOJI)}"]
    return "\n".join(lines)


def _title(rng: random.Random, request_type: str, slots: dict[str, object]) -> str:
    title = str(_pick(rng, _TITLES[request_type])).format(**slots)
    roll = rng.random()
    if roll < 0.35:
        title = f"{title} {str(_pick(rng, _QUALIFIERS)).format(**slots)}"
    elif roll < 0.39:
        title = f"{title} {_pick(rng, _EMOJI)}"
    return title


def _quirks(rng: random.Random, request_type: str, affected: str) -> Quirks:
    """A fixed number of draws (thirteen) per record, so record *n*'s quirks depend on *n* alone."""
    draws = [rng.random() for _ in range(10)]
    extra_type, extra_object, zone = _pick(rng, REQUEST_TYPES), _pick(rng, _OBJECTS), _pick(rng, ZONES)
    return Quirks(
        no_title=draws[0] < 0.025,
        no_status=draws[1] < 0.025,
        no_description=draws[2] < 0.06,
        no_custom_fields=draws[3] < 0.05,
        standard_status=draws[4] < 0.5,
        rich_text=1 + int(draws[7] * 40) % RICH_SAMPLES if draws[7] < 0.3 else 0,
        extra_type=extra_type if draws[5] < 0.08 and extra_type != request_type else None,
        extra_object=extra_object if draws[6] < 0.15 and extra_object != affected else None,
        extra_release=draws[8] < 0.12,
        attachments=1 + int(draws[9] * 10) if draws[9] < 0.3 else 0,
        zone=zone,
    )


def iter_seed_requests(seed: int, count: int | None = None) -> Iterator[SeedRequest]:
    """Yield seeded requests one by one (``count`` None: forever), in ``seq`` order."""
    rng = random.Random(seed)
    messy = random.Random(f"relsync-quirks:{seed}")
    requesters = _people(rng, 48)
    owners = _people(rng, 12)
    previous: SeedRequest | None = None
    seq = 0
    while count is None or seq < count:
        seq += 1
        request_type = str(_pick(rng, REQUEST_TYPES))
        department = str(_pick(rng, DEPARTMENTS))
        slots = _slots(rng)
        title = _title(rng, request_type, slots)
        requester = _pick(rng, requesters)
        status = _weighted(rng, STATUSES, _STATUS_CUMULATIVE)
        owner = None if status in ("new", "triaged") and rng.random() < 0.7 else _pick(rng, owners)
        if rng.random() < 0.05:
            owner = None
        created_ms = int(rng.random() * (SPAN_MS - 3_600_000))
        updated_ms = created_ms + int((SPAN_MS - created_ms) * rng.random() ** 3)
        created = ANCHOR - dt.timedelta(milliseconds=SPAN_MS - created_ms)
        updated = ANCHOR - dt.timedelta(milliseconds=SPAN_MS - updated_ms)
        if previous is not None and seq % _TIE_EVERY == 0:
            # A deliberate tie: same `updated` to the millisecond as the previous record.
            updated = previous.updated
            created = min(created, updated)
        roll = rng.random()
        if roll < 0.45:
            tags: tuple[str, ...] = ()
        elif roll < 0.85:
            tags = (_pick(rng, _TAGS),)
        else:
            tags = tuple(sorted({_pick(rng, _TAGS), _pick(rng, _TAGS)}))
        request = SeedRequest(
            seq=seq,
            title=title,
            description=_description(rng, slots, requester, department),
            department=department,
            request_type=request_type,
            priority=_weighted(rng, PRIORITIES, _PRIORITY_CUMULATIVE),
            status=status,
            requester=requester,
            owner=owner,
            tags=tags,
            created=created,
            updated=updated,
            affected_object=str(slots["object"]),
            quirks=_quirks(messy, request_type, str(slots["object"])),
        )
        previous = request
        yield request


def seed_requests(count: int, seed: int) -> list[SeedRequest]:
    """The first ``count`` seeded requests for ``seed`` (deterministic for the pair)."""
    return list(iter_seed_requests(seed, count))
