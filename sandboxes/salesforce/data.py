"""All mutable state of one Salesforce sandbox org: records, users, sessions, query cursors, quota.

Records are plain dicts keyed by canonical field name. Deleting is soft (IsDeleted, kept
for queryAll and getDeleted) until the recycle bin is purged. Every write takes one
stamp from :meth:`SalesforceState.stamp`, to the second, as Salesforce stores modstamps:
all records saved by one call share it.

Sessions and query cursors expire as Salesforce's do unless the org is kind: an access
token idle longer than ``session_timeout`` (the org's session timeout, two hours by
default) is refused, and a cursor is good for ``cursor_lifetime`` (two days) from the
query that opened it.
"""
from __future__ import annotations

import contextvars
import datetime as dt
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from sandboxes.behaviour import REAL, is_real
from sandboxes.clock import SYSTEM_TIME, Clock, TimeSource
from sandboxes.salesforce.schema import HISTORY_OBJECTS, TRACKED_FIELDS, SObject, build_catalog
from sandboxes.salesforce.seed import (
    INTAKE_USER,
    INTEGRATION_USER,
    case_row,
    change_request_row,
    owner_row,
    record_type_rows,
    seeded_requests,
    support_cases,
    user_row,
)
from sandboxes.salesforce.soql_eval import BoundQuery
from sandboxes.salesforce.values import canonical_id, make_id, to_second
from sandboxes.seed import Person

Row = dict[str, Any]
DELETED_WINDOW = dt.timedelta(days=15)
UPDATED_WINDOW = dt.timedelta(days=30)
SESSION_TIMEOUT_SECONDS = 2 * 3600.0
"""The org's session timeout: Salesforce's default is two hours of inactivity."""
CURSOR_LIFETIME_SECONDS = 2 * 86400.0
"""A query cursor and its results are available for two days after the query."""
LOCATOR_PREFIX = "0r8"
ACTING_USER: contextvars.ContextVar[str | None] = contextvars.ContextVar("salesforce_acting_user", default=None)
"""The user whose session made the request being served (None: the integration user)."""


@dataclass
class Locator:
    """A server-side query cursor: the matched ids in order, rendered page by page.

    ``key`` names the query (its batch sizes derive from it); ``opened`` is when, on the
    org's monotonic time.
    """

    ids: list[str]
    bound: BoundQuery
    batch: int
    endpoint: str  # query | queryAll
    key: str = ""
    opened: float = 0.0
    expired: bool = False


@dataclass
class Quota:
    """The org's daily API request allocation."""

    used: int = 0
    max: int = 15000


@dataclass
class Sessions:
    """Issued access tokens (with when each was last used) and refresh tokens."""

    access: dict[str, float] = field(default_factory=dict)
    refresh: set[str] = field(default_factory=set)
    users: dict[str, str] = field(default_factory=dict)
    """Access token -> the user it was issued to, for sessions of people (``/_sandbox/salesforce/people``)."""


class SalesforceState:
    """One org, guarded by ``lock`` (an RLock)."""

    def __init__(self, *, records: int, seed: int, client_id: str, client_secret: str, object_name: str,
                 daily_limit: int, username: str, password: str | None, time_source: TimeSource = SYSTEM_TIME,
                 behaviour: str = REAL) -> None:
        self.lock = threading.RLock()
        real = is_real(behaviour)
        self.seed = seed
        self.session_timeout: float | None = SESSION_TIMEOUT_SECONDS if real else None
        self.cursor_lifetime: float | None = CURSOR_LIFETIME_SECONDS if real else None
        self.exact_batches = not real
        self.catalog = build_catalog()
        known = self.catalog.get(object_name.lower())
        if known is None or known.name not in ("Case", "Change_Request__c"):
            raise ValueError(f"object_name must be Case or Change_Request__c, not {object_name!r}")
        self.object_name = known.name
        self.client_id, self.client_secret = client_id, client_secret
        self.username, self.password = username, password
        self.org_id = make_id("00D", 7000 + seed)
        self.quota = Quota(max=daily_limit)
        self.sessions = Sessions()
        self.locators: dict[str, Locator] = {}
        self.next_locator = 1
        self.tables: dict[str, dict[str, Row]] = {"Case": {}, "Change_Request__c": {}, "User": {}, "RecordType": {},
                                                  "CaseHistory": {}, "Change_Request__History": {}}
        self.next_history = 1
        self.owners: dict[str, Row] = {}
        self.deleted_at: dict[str, dt.datetime] = {}
        self.purged_at: dt.datetime | None = None
        self.offset = dt.timedelta(0)  # how far the org's clock was advanced by the knob
        self.next_number = {"Case": 1, "Change_Request__c": 1}
        self._user_by_email: dict[str, str] = {}
        self._seed(records, seed, time_source)

    def _add_user(self, person: Any) -> str:
        known = self._user_by_email.get(person.email)
        if known:
            return known
        row = user_row(len(self.tables["User"]) + 1, person)
        self.tables["User"][row["Id"]] = row
        self.owners[row["Id"]] = owner_row(row)
        self._user_by_email[person.email] = row["Id"]
        return row["Id"]

    def _seed(self, records: int, seed: int, time_source: TimeSource) -> None:
        self.integration_user = self._add_user(INTEGRATION_USER)
        intake = self._add_user(INTAKE_USER)
        self.queue_id = make_id("00G", 1)
        self.owners[self.queue_id] = owner_row(queue_id=self.queue_id)
        for row in record_type_rows():
            self.tables["RecordType"][row["Id"]] = row
        self.change_type, support_type = list(self.tables["RecordType"])
        latest = None
        for request in seeded_requests(seed, records):
            owner = self._add_user(request.owner) if request.owner else self.queue_id
            number = request.seq
            if self.object_name == "Case":
                row = case_row(request, number=number, record_type=self.change_type, owner=owner, creator=intake)
            else:
                row = change_request_row(request, number=number, owner=owner, creator=intake)
            self.tables[self.object_name][row["Id"]] = row
            latest = max(latest, row["SystemModstamp"]) if latest else row["SystemModstamp"]
        self.next_number[self.object_name] = records + 1
        first = self.next_number["Case"]
        extra = max(3, records // 25)
        for row in support_cases(seed, extra, first_number=first, record_type=support_type, owner=self.queue_id,
                                 creator=intake):
            self.tables["Case"][row["Id"]] = row
            latest = max(latest, row["SystemModstamp"]) if latest else row["SystemModstamp"]
        self.next_number["Case"] = first + extra
        self.clock = Clock(floor=latest, source=time_source)

    # --- reading -------------------------------------------------------------------------

    def sobject(self, name: str) -> SObject | None:
        """The sObject type called ``name`` (any case); the ``Name`` pseudo-entity is not one."""
        obj = self.catalog.get(name.lower())
        return None if obj is None or obj.name == "Name" else obj

    def lookup(self, entity: str, ident: str) -> Row | None:
        """The row ``ident`` of ``entity`` (``Name`` resolves users and queues)."""
        if entity == "Name":
            return self.owners.get(ident)
        table = self.tables.get(entity)
        return table.get(ident) if table is not None else None

    def rows(self, obj: SObject, *, include_deleted: bool) -> list[Row]:
        """The records of ``obj`` in Id order; deleted ones only when asked for (queryAll)."""
        table = self.tables[obj.name]
        return [row for row in table.values() if include_deleted or not row.get("IsDeleted")]

    def find(self, obj: SObject, ident: str) -> Row | None:
        """The record with this id (15 or 18 characters), deleted or not."""
        canonical = canonical_id(ident)
        return self.tables[obj.name].get(canonical) if canonical else None

    def now(self) -> dt.datetime:
        """The org's current time, without consuming a tick."""
        return to_second(self.clock.peek() + self.offset)

    def stamp(self) -> dt.datetime:
        """The timestamp for one save (one API call), to the second."""
        return to_second(self.clock.now() + self.offset)

    # --- writing -------------------------------------------------------------------------

    def insert(self, obj: SObject, values: Row, stamp: dt.datetime) -> Row:
        """Create a record of ``obj`` from validated ``values``."""
        number = self.next_number[obj.name]
        self.next_number[obj.name] = number + 1
        row: Row = {f.name: None for f in obj.fields}
        row.update({"Id": make_id(obj.key_prefix, number), "IsDeleted": False, "CreatedDate": stamp,
                    "CreatedById": self.integration_user, "OwnerId": self.integration_user})
        if obj.name == "Case":
            row["CaseNumber"] = f"{1000 + number:08d}"
            row["RecordTypeId"] = self.change_type
        else:
            row["Name"] = f"CR-{number:06d}"
        for f in obj.fields:
            if f.default is not None and f.createable and f.type != "boolean":
                row[f.name] = f.default
        row.update(values)
        self._touch(row, stamp)
        row["CreatedById"] = row["LastModifiedById"]
        self.tables[obj.name][row["Id"]] = row
        self._record_history(obj, row, [("created", None, None)], stamp)
        return row

    def update(self, row: Row, values: Row, stamp: dt.datetime) -> None:
        """Apply validated ``values`` to ``row``; each tracked field it changes gets a field history row."""
        obj_name = next((name for name, table in self.tables.items() if table.get(row["Id"]) is row), self.object_name)
        tracked = TRACKED_FIELDS.get(obj_name, ())
        changed = [(name, row.get(name), value) for name, value in values.items()
                   if name in tracked and row.get(name) != value]
        row.update(values)
        self._touch(row, stamp)
        obj = self.sobject(obj_name)
        if obj is not None and changed:
            self._record_history(obj, row, changed, stamp)

    def _record_history(self, obj: SObject, row: Row, changes: list[tuple[str, Any, Any]], stamp: dt.datetime) -> None:
        """Field history rows for one save, as the org writes them: stamped with the save, by the user who saved."""
        if obj.name not in HISTORY_OBJECTS:
            return
        history, reference = HISTORY_OBJECTS[obj.name]
        prefix = "017" if obj.name == "Case" else "a0D"
        for name, old, new in changes:
            ident = make_id(prefix, self.next_history)
            self.next_history += 1
            kind = "Date" if isinstance(new, dt.date) or isinstance(old, dt.date) else "Text"
            self.tables[history][ident] = {
                "Id": ident, "IsDeleted": False, reference: row["Id"], "CreatedById": row["LastModifiedById"],
                "CreatedDate": stamp, "Field": name, "DataType": kind,
                "OldValue": old.isoformat() if isinstance(old, dt.date) else old,
                "NewValue": new.isoformat() if isinstance(new, dt.date) else new,
            }

    def delete(self, row: Row, stamp: dt.datetime) -> None:
        """Move ``row`` to the recycle bin (IsDeleted; SystemModstamp is the deletion time)."""
        row["IsDeleted"] = True
        row["SystemModstamp"] = stamp
        self.deleted_at[row["Id"]] = stamp

    def _touch(self, row: Row, stamp: dt.datetime) -> None:
        row["LastModifiedDate"] = stamp
        row["SystemModstamp"] = stamp
        row["LastModifiedById"] = ACTING_USER.get() or self.integration_user

    def purge_deleted(self) -> int:
        """Empty the recycle bin: deleted rows vanish and the delete log restarts now."""
        purged = 0
        for table in (self.tables["Case"], self.tables["Change_Request__c"]):
            for ident in [i for i, row in table.items() if row.get("IsDeleted")]:
                del table[ident]
                self.deleted_at.pop(ident, None)
                purged += 1
        self.purged_at = self.stamp()
        return purged

    def earliest_deleted_available(self) -> dt.datetime:
        """The start of the delete log: 15 days back, or the last purge if later (to the minute)."""
        earliest = self.now() - DELETED_WINDOW
        if self.purged_at and self.purged_at > earliest:
            earliest = self.purged_at
        return earliest.replace(second=0)

    # --- sessions and cursors --------------------------------------------------------------

    def issue_token(self, user: str | None = None) -> str:
        """A new access token ("session id") for the integration user, or for ``user``."""
        token = f"{self.org_id[:15]}!{secrets.token_urlsafe(40)}"
        self.sessions.access[token] = self.clock.source.monotonic()
        if user is not None:
            self.sessions.users[token] = user
        return token

    def add_person(self, name: str, email: str) -> str:
        """A user for a person (found by email, or created); their id."""
        return self._add_user(Person(name, email))

    def session_alive(self, token: str) -> bool:
        """Whether ``token`` is a live session; using it keeps it alive, idling past the timeout ends it."""
        now = self.clock.source.monotonic()
        last = self.sessions.access.get(token)
        if last is None:
            return False
        if self.session_timeout is not None and now - last > self.session_timeout:
            del self.sessions.access[token]
            return False
        self.sessions.access[token] = now
        return True

    def issue_refresh_token(self) -> str:
        """A new refresh token, as the web-server flow would hand out."""
        token = f"5Aep{secrets.token_urlsafe(60)}"
        self.sessions.refresh.add(token)
        return token

    def open_locator(self, locator: Locator) -> str:
        """Keep ``locator`` open from now; return its 18-character locator id."""
        ident = make_id(LOCATOR_PREFIX, self.next_locator)
        self.next_locator += 1
        locator.opened = self.clock.source.monotonic()
        self.locators[ident] = locator
        return ident

    def open_locator_of(self, ident: str) -> Locator | None:
        """The cursor ``ident`` if it is still open: not expired by a knob nor past its lifetime."""
        locator = self.locators.get(ident)
        if locator is None or locator.expired:
            return None
        if self.cursor_lifetime is not None and self.clock.source.monotonic() - locator.opened > self.cursor_lifetime:
            locator.expired = True
            return None
        return locator
