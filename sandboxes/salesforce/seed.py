"""Seeded org data: the system-neutral requests of :mod:`seed` written as Salesforce records.

Change requests become Cases of record type "Change Request" (or Change_Request__c
records), owned by their seeded owner or, when nobody owns them yet, by the "Ops Intake"
queue. As in real orgs, some Cases have no Subject or Description, and about half of
those in progress carry the standard Case statuses ("Working", or "Escalated" when
critical) instead of the record type's own "In Progress". A few Cases of record type "Support" sit beside them, as in a real org. Everything
is a pure function of the seed; timestamps are truncated to the second as Salesforce
stores them.
"""
from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

from sandboxes.salesforce.schema import ORIGINS
from sandboxes.salesforce.values import make_id, to_second
from sandboxes.seed import (
    ANCHOR,
    SPAN_MS,
    Person,
    SeedRequest,
    iter_seed_requests,
)

Row = dict[str, Any]
STATUS_BY_SEED = {"new": "New", "triaged": "Triage", "approved": "Approved", "in_progress": "In Progress",
                  "testing": "Testing", "deployed": "Deployed", "closed": "Closed", "rejected": "Rejected"}
INTEGRATION_USER = Person("Relsync Integration", "relsync@example.com")
INTAKE_USER = Person("Intake Automation", "intake.automation@example.com")
QUEUE_NAME = "Ops Intake"
_SUPPORT_SUBJECTS = (
    "Password reset for {name}", "Cannot log in to the customer portal", "Invoice PDF is missing line items",
    "Export to CSV times out", "Two-factor prompt loops on mobile", "Duplicate welcome emails sent to {name}",
    "Report subscription stopped arriving", "Unable to upload attachment over 10 MB",
)


def user_row(number: int, person: Person) -> Row:
    """A User record for ``person``."""
    alias = (person.email.split("@")[0].replace(".", "")[:8]) or "user"
    first, _, last = person.name.rpartition(" ")
    return {"Id": make_id("005", number), "Username": f"{person.email.split('@')[0]}@relsync-sandbox.example",
            "FirstName": first or None, "LastName": last, "Name": person.name, "Email": person.email, "Alias": alias,
            "IsActive": True}


def owner_row(user: Row | None = None, *, queue_id: str | None = None) -> Row:
    """The polymorphic ``Name`` row of a user or of the intake queue."""
    if user is not None:
        return {"Id": user["Id"], "Name": user["Name"], "Alias": user["Alias"], "Email": user["Email"],
                "Username": user["Username"], "IsActive": True, "Type": "User"}
    return {"Id": queue_id, "Name": QUEUE_NAME, "Alias": None, "Email": "ops-intake@example.com", "Username": None,
            "IsActive": True, "Type": "Queue"}


def record_type_rows() -> list[Row]:
    """The two Case record types: Change Request (default) and Support."""
    return [
        {"Id": make_id("012", 1), "Name": "Change Request", "DeveloperName": "Change_Request", "SobjectType": "Case",
         "IsActive": True},
        {"Id": make_id("012", 2), "Name": "Support", "DeveloperName": "Support", "SobjectType": "Case", "IsActive": True},
    ]


def _release_fields(request: SeedRequest) -> dict[str, Any]:
    released = request.status in ("deployed", "closed")
    target = None
    if request.status in ("in_progress", "testing"):
        target = (request.updated + dt.timedelta(days=14)).date()
    return {"Release__c": f"{request.updated:%Y.%m}" if released else None,
            "Release_Status__c": "Released" if released else None, "Target_Date__c": target}


def case_status(request: SeedRequest) -> str:
    """The Case Status a seeded request shows: a standard value where its quirks say so."""
    if request.status == "in_progress" and request.quirks.standard_status:
        return "Escalated" if request.priority == "critical" else "Working"
    return STATUS_BY_SEED[request.status]


def case_row(request: SeedRequest, *, number: int, record_type: str, owner: str, creator: str) -> Row:
    """A change-request Case for a seeded request."""
    updated = to_second(request.updated)
    quirks = request.quirks
    return {
        "Id": make_id("500", number), "IsDeleted": False, "CaseNumber": f"{1000 + number:08d}",
        "RecordTypeId": record_type, "SuppliedName": request.requester.name, "SuppliedEmail": request.requester.email,
        "Status": case_status(request), "Origin": ORIGINS[request.seq % len(ORIGINS)],
        "Subject": None if quirks.no_title else request.title, "Priority": request.priority.capitalize(),
        "Description": None if quirks.no_description else request.description, "OwnerId": owner,
        "CreatedDate": to_second(request.created), "CreatedById": creator, "LastModifiedDate": updated,
        "LastModifiedById": creator, "SystemModstamp": updated,
        "Department__c": None if quirks.no_custom_fields else request.department,
        "Request_Type__c": request.request_type, "Affected_Object__c": request.affected_object or None,
        **_release_fields(request),
    }


def change_request_row(request: SeedRequest, *, number: int, owner: str, creator: str) -> Row:
    """A Change_Request__c record for a seeded request."""
    updated = to_second(request.updated)
    return {
        "Id": make_id("a0C", number), "OwnerId": owner, "IsDeleted": False, "Name": f"CR-{number:06d}",
        "CreatedDate": to_second(request.created), "CreatedById": creator, "LastModifiedDate": updated,
        "LastModifiedById": creator, "SystemModstamp": updated, "Title__c": request.title,
        "Description__c": None if request.quirks.no_description else request.description, "Status__c": STATUS_BY_SEED[request.status],
        "Priority__c": request.priority.capitalize(), "Department__c": request.department,
        "Request_Type__c": request.request_type, "Affected_Object__c": request.affected_object or None,
        **_release_fields(request),
        "Requester_Name__c": request.requester.name, "Requester_Email__c": request.requester.email,
    }


def support_cases(seed: int, count: int, *, first_number: int, record_type: str, owner: str, creator: str) -> Iterator[Row]:
    """``count`` non-change Cases of record type Support."""
    rng = random.Random(f"relsync-salesforce-support:{seed}")
    for offset in range(count):
        number = first_number + offset
        who = Person(f"Customer {number}", f"customer{number}@example.net")
        created = ANCHOR - dt.timedelta(milliseconds=int(rng.random() * SPAN_MS))
        updated = min(ANCHOR, created + dt.timedelta(hours=rng.random() * 72))
        subject = rng.choice(_SUPPORT_SUBJECTS).format(name=who.name)
        yield {
            "Id": make_id("500", number), "IsDeleted": False, "CaseNumber": f"{1000 + number:08d}",
            "RecordTypeId": record_type, "SuppliedName": who.name, "SuppliedEmail": who.email,
            "Status": rng.choice(("New", "In Progress", "Closed")), "Origin": rng.choice(ORIGINS), "Subject": subject,
            "Priority": rng.choice(("High", "Medium", "Low")), "Description": f"{subject}. Reported via the help centre.",
            "OwnerId": owner, "CreatedDate": to_second(created), "CreatedById": creator,
            "LastModifiedDate": to_second(updated), "LastModifiedById": creator, "SystemModstamp": to_second(updated),
            "Department__c": None, "Request_Type__c": None, "Affected_Object__c": None, "Release__c": None, "Release_Status__c": None,
            "Target_Date__c": None,
        }


def seeded_requests(seed: int, records: int) -> Iterator[SeedRequest]:
    """The seeded change requests (see :func:`sandboxes.seed.iter_seed_requests`)."""
    return iter_seed_requests(seed, records)
