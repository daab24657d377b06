"""The sandbox org's schema: Case, the Change_Request__c custom object, User, RecordType,
and the polymorphic ``Name`` entity that ``Owner`` (a User or a queue) resolves to.

Field metadata follows DescribeSObjectResult / Field in the REST and SOAP references:
picklistValues entries are ``{active, defaultValue, label, validFor, value}``, long text
areas are neither filterable nor sortable, auto-numbers and system fields are read-only,
and ``compoundFieldName`` names the compound field a component belongs to (User's
FirstName and LastName make up Name), null for every other field.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandboxes.seed import DEPARTMENTS, OBJECTS, REQUEST_TYPES

STATUSES = ("New", "Triage", "Approved", "Scheduled", "In Progress", "Testing", "Deployed", "Closed", "Rejected")
CASE_STATUSES = ("New", "Working", "Escalated", "Closed", *(s for s in STATUSES if s not in ("New", "Closed")))
"""Case.Status: Salesforce's standard values (New, Working, Escalated, Closed) beside the change process's own."""
PRIORITIES = ("Critical", "High", "Medium", "Low")
"""Case.Priority's standard High, Medium and Low, and a Critical the org added."""
ORIGINS = ("Web", "Email", "Phone", "Chat")
RELEASE_STATUSES = ("Planned", "Open", "Frozen", "Deploying", "Released", "Cancelled")
TEXT_TYPES = frozenset({"id", "string", "textarea", "picklist", "reference", "email"})
_SOAP_TYPES = {"id": "tns:ID", "reference": "tns:ID", "datetime": "xsd:dateTime", "date": "xsd:date", "boolean": "xsd:boolean"}


@dataclass(frozen=True)
class Field:
    """One field of an sObject, with the describe attributes the sandbox enforces."""

    name: str
    label: str
    type: str  # id | string | textarea | picklist | reference | datetime | date | boolean | email
    length: int = 0
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    default: Any = None
    reference_to: tuple[str, ...] = ()
    relationship: str | None = None
    target: str | None = None  # the entity a relationship path walks into (``Name`` for Owner)
    custom: bool = False
    auto_number: bool = False
    name_field: bool = False
    compound: str | None = None  # the compound field this one is a component of

    @property
    def filterable(self) -> bool:
        """Long text areas, and a history's anyType OldValue and NewValue, cannot be filtered in SOQL."""
        return self.type not in ("textarea", "anyType")

    @property
    def sortable(self) -> bool:
        """Long text areas cannot be sorted in SOQL."""
        return self.type != "textarea"


@dataclass(frozen=True)
class SObject:
    """An sObject type: its name, key prefix and fields (looked up case-insensitively)."""

    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: tuple[Field, ...]
    custom: bool = False
    writable: bool = True
    _by_name: dict[str, Field] = field(default_factory=dict, repr=False, compare=False)
    _by_relationship: dict[str, Field] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for f in self.fields:
            self._by_name[f.name.lower()] = f
            if f.relationship:
                self._by_relationship[f.relationship.lower()] = f

    def field(self, name: str) -> Field | None:
        """The field called ``name`` (any letter case), or None."""
        return self._by_name.get(name.lower())

    def relationship(self, name: str) -> Field | None:
        """The reference field whose relationship is called ``name`` (``Owner``), or None."""
        return self._by_relationship.get(name.lower())


def _system_fields(*, owner: bool) -> tuple[Field, ...]:
    fields = [Field("Id", "Case ID", "id", 18, createable=False, updateable=False, nillable=False)]
    if owner:
        fields.append(Field("OwnerId", "Owner ID", "reference", 18, nillable=False, reference_to=("Group", "User"),
                            relationship="Owner", target="Name"))
    fields.append(Field("IsDeleted", "Deleted", "boolean", createable=False, updateable=False, nillable=False, default=False))
    return tuple(fields)


def _audit_fields() -> tuple[Field, ...]:
    def user(name: str, label: str, rel: str) -> Field:
        return Field(name, label, "reference", 18, createable=False, updateable=False, nillable=False,
                     reference_to=("User",), relationship=rel, target="User")

    def stamp(name: str, label: str) -> Field:
        return Field(name, label, "datetime", createable=False, updateable=False, nillable=False)

    return (stamp("CreatedDate", "Created Date"), user("CreatedById", "Created By ID", "CreatedBy"),
            stamp("LastModifiedDate", "Last Modified Date"), user("LastModifiedById", "Last Modified By ID", "LastModifiedBy"),
            stamp("SystemModstamp", "System Modstamp"))


def _picklist(name: str, label: str, values: tuple[str, ...], *, restricted: bool, default: str | None = None,
              custom: bool = False) -> Field:
    return Field(name, label, "picklist", 255, picklist=values, restricted=restricted, default=default, custom=custom)


RELEASE_PHASES = ("Scheduled", "Planning", "Requirements", "Design", "Development", "Testing", "Deployment",
                  "Maintenance", "Held", "Deployed")
"""The Release Phase picklist: an admin's labels for the phases relsync writes (mapped in write.phase.map)."""


def _change_fields() -> tuple[Field, ...]:
    return (
        _picklist("Department__c", "Department", DEPARTMENTS, restricted=True, custom=True),
        _picklist("Request_Type__c", "Request Type", REQUEST_TYPES, restricted=False, custom=True),
        _picklist("Affected_Object__c", "Affected Object", OBJECTS, restricted=False, custom=True),
        Field("Release__c", "Release", "string", 80, custom=True),
        _picklist("Release_Status__c", "Release Status", RELEASE_STATUSES, restricted=True, custom=True),
        Field("Target_Date__c", "Target Date", "date", custom=True),
        Field("Depends_On__c", "Depends On", "string", 255, custom=True),
        # What relsync keeps equal to the plan, when configured to: the deploy date and the phase.
        Field("Planned_Deploy_Date__c", "Planned Deploy Date", "date", custom=True),
        _picklist("Release_Phase__c", "Release Phase", RELEASE_PHASES, restricted=True, custom=True),
    )


def _case() -> SObject:
    base = _system_fields(owner=True)
    fields = (
        base[0], base[2],
        Field("CaseNumber", "Case Number", "string", 30, createable=False, updateable=False, nillable=False,
              auto_number=True, name_field=True),
        Field("RecordTypeId", "Record Type ID", "reference", 18, reference_to=("RecordType",), relationship="RecordType",
              target="RecordType"),
        Field("SuppliedName", "Name", "string", 80),
        Field("SuppliedEmail", "Email Address", "email", 80),
        _picklist("Status", "Status", CASE_STATUSES, restricted=False, default="New"),
        _picklist("Origin", "Case Origin", ORIGINS, restricted=False),
        Field("Subject", "Subject", "string", 255),
        _picklist("Priority", "Priority", PRIORITIES, restricted=False, default="Medium"),
        Field("Description", "Description", "textarea", 32000),
        base[1],
        *_audit_fields(),
        *_change_fields(),
    )
    return SObject("Case", "Case", "Cases", "500", fields)


def _change_request() -> SObject:
    base = _system_fields(owner=True)
    fields = (
        Field("Id", "Record ID", "id", 18, createable=False, updateable=False, nillable=False), base[1], base[2],
        Field("Name", "Change Request Number", "string", 80, createable=False, updateable=False, nillable=False,
              auto_number=True, name_field=True),
        *_audit_fields(),
        Field("Title__c", "Title", "string", 255, nillable=False, custom=True),
        Field("Description__c", "Description", "textarea", 32000, custom=True),
        _picklist("Status__c", "Status", STATUSES, restricted=True, default="New", custom=True),
        _picklist("Priority__c", "Priority", PRIORITIES, restricted=True, default="Medium", custom=True),
        *_change_fields(),
        Field("Requester_Name__c", "Requester Name", "string", 80, custom=True),
        Field("Requester_Email__c", "Requester Email", "email", 80, custom=True),
    )
    return SObject("Change_Request__c", "Change Request", "Change Requests", "a0C", fields, custom=True)


def _user() -> SObject:
    fields = (
        Field("Id", "User ID", "id", 18, createable=False, updateable=False, nillable=False),
        Field("Username", "Username", "string", 80, nillable=False),
        Field("FirstName", "First Name", "string", 40, compound="Name"),
        Field("LastName", "Last Name", "string", 80, nillable=False, compound="Name"),
        Field("Name", "Full Name", "string", 121, createable=False, updateable=False, nillable=False, name_field=True),
        Field("Email", "Email", "email", 128, nillable=False),
        Field("Alias", "Alias", "string", 8, nillable=False),
        Field("IsActive", "Active", "boolean", nillable=False, default=True),
    )
    return SObject("User", "User", "Users", "005", fields, writable=False)


def _name() -> SObject:
    fields = (
        Field("Id", "Name ID", "id", 18, createable=False, updateable=False, nillable=False),
        Field("Name", "Name", "string", 255, createable=False, updateable=False, name_field=True),
        Field("Alias", "Alias", "string", 8, createable=False, updateable=False),
        Field("Email", "Email", "email", 128, createable=False, updateable=False),
        Field("Username", "Username", "string", 80, createable=False, updateable=False),
        Field("IsActive", "Active", "boolean", createable=False, updateable=False, nillable=False),
        _picklist("Type", "Type", ("Queue", "User"), restricted=True),
    )
    return SObject("Name", "Name", "Names", "000", fields, writable=False)


def _record_type() -> SObject:
    fields = (
        Field("Id", "Record Type ID", "id", 18, createable=False, updateable=False, nillable=False),
        Field("Name", "Record Type Name", "string", 80, nillable=False, name_field=True),
        Field("DeveloperName", "Record Type Name", "string", 80, nillable=False),
        _picklist("SobjectType", "SObject Type Name", ("Case",), restricted=True),
        Field("IsActive", "Active", "boolean", nillable=False, default=True),
    )
    return SObject("RecordType", "Record Type", "Record Types", "012", fields, writable=False)


HISTORY_OBJECTS = {"Case": ("CaseHistory", "CaseId"), "Change_Request__c": ("Change_Request__History", "ParentId")}
"""Each object's field history object and its field naming the changed record."""
TRACKED_FIELDS = {
    "Case": ("Status", "Priority", "Subject", "Department__c", "Request_Type__c", "Affected_Object__c", "Release__c",
             "Release_Status__c", "Target_Date__c"),
    "Change_Request__c": ("Status__c", "Priority__c", "Title__c", "Department__c", "Request_Type__c",
                          "Affected_Object__c", "Release__c", "Release_Status__c", "Target_Date__c"),
}
"""The fields whose history the org tracks (Setup > Object Manager > Fields & Relationships > Set History Tracking)."""


def _history(parent: str) -> SObject:
    """``CaseHistory`` / ``<Object>__History``: read-only rows, one per tracked field a save changed."""
    name, reference = HISTORY_OBJECTS[parent]
    tracked = ("created", *TRACKED_FIELDS[parent])
    fields = (
        Field("Id", f"{parent} History ID", "id", 18, createable=False, updateable=False, nillable=False),
        Field("IsDeleted", "Deleted", "boolean", createable=False, updateable=False, nillable=False, default=False),
        Field(reference, f"{parent} ID", "reference", 18, createable=False, updateable=False, nillable=False,
              reference_to=(parent,), relationship="Case" if parent == "Case" else "Parent", target=parent),
        Field("CreatedById", "Created By ID", "reference", 18, createable=False, updateable=False, nillable=False,
              reference_to=("User",), relationship="CreatedBy", target="User"),
        Field("CreatedDate", "Created Date", "datetime", createable=False, updateable=False, nillable=False),
        _picklist("Field", "Changed Field", tracked, restricted=True),
        _picklist("DataType", "Data Type", ("Text", "Picklist", "Date", "EntityId"), restricted=True),
        Field("OldValue", "Old Value", "anyType", 255, createable=False, updateable=False),
        Field("NewValue", "New Value", "anyType", 255, createable=False, updateable=False),
    )
    return SObject(name, f"{parent} History", f"{parent} History", "017" if parent == "Case" else "a0D", fields,
                   writable=False, custom=parent.endswith("__c"))


def build_catalog() -> dict[str, SObject]:
    """Every sObject the sandbox knows, by lower-case name."""
    objects = (_case(), _change_request(), _user(), _record_type(), _name(), _history("Case"),
               _history("Change_Request__c"))
    return {o.name.lower(): o for o in objects}


GLOBAL_TYPES = ("Case", "CaseHistory", "Change_Request__c", "Change_Request__History", "RecordType", "User")
"""The types describeGlobal lists (``Name`` is not a real sObject and is not listed)."""


def global_entry(obj: SObject, base: str) -> dict[str, Any]:
    """The describeGlobal entry of ``obj``; ``base`` is ``/services/data/vXX.X``."""
    urls = {"sobject": f"{base}/sobjects/{obj.name}", "describe": f"{base}/sobjects/{obj.name}/describe",
            "rowTemplate": f"{base}/sobjects/{obj.name}/{{ID}}"}
    return {
        "activateable": False, "createable": obj.writable, "custom": obj.custom, "customSetting": False,
        "deepCloneable": False, "deletable": obj.writable, "deprecatedAndHidden": False, "feedEnabled": obj.writable,
        "hasSubtypes": False, "isInterface": False, "isSubtype": False, "keyPrefix": obj.key_prefix,
        "label": obj.label, "labelPlural": obj.label_plural, "layoutable": True, "mergeable": obj.name == "Case",
        "mruEnabled": True, "name": obj.name, "queryable": True, "replicateable": True, "retrieveable": True,
        "searchable": True, "triggerable": True, "undeletable": obj.writable, "updateable": obj.writable, "urls": urls,
    }


def describe_field(f: Field) -> dict[str, Any]:
    """A field as DescribeSObjectResult lists it (keys in Salesforce's alphabetical order)."""
    text = f.type in TEXT_TYPES
    picklist_values = [
        {"active": True, "defaultValue": value == f.default, "label": value, "validFor": None, "value": value}
        for value in f.picklist
    ]
    return {
        "aggregatable": f.type != "textarea", "autoNumber": f.auto_number, "byteLength": f.length * 3 if text else 0,
        "calculated": False, "caseSensitive": False, "compoundFieldName": f.compound, "createable": f.createable,
        "custom": f.custom,
        "defaultValue": f.default if f.type == "boolean" else None, "defaultedOnCreate": f.default is not None or not f.createable,
        "dependentPicklist": False, "externalId": False, "filterable": f.filterable, "groupable": f.sortable,
        "idLookup": f.type == "id" or f.name_field, "label": f.label, "length": f.length if text else 0,
        "name": f.name, "nameField": f.name_field, "nillable": f.nillable, "picklistValues": picklist_values,
        "polymorphicForeignKey": len(f.reference_to) > 1, "referenceTo": list(f.reference_to),
        "relationshipName": f.relationship, "restrictedPicklist": f.restricted,
        "soapType": _SOAP_TYPES.get(f.type, "xsd:string"), "sortable": f.sortable,
        "type": "datetime" if f.type == "datetime" else f.type, "unique": f.type == "id", "updateable": f.updateable,
    }


def describe_object(obj: SObject, base: str, record_types: list[dict[str, Any]]) -> dict[str, Any]:
    """The full describe of ``obj`` (sObject Describe resource)."""
    body = global_entry(obj, base)
    body["fields"] = [describe_field(f) for f in obj.fields]
    body["recordTypeInfos"] = record_types
    body["childRelationships"] = []
    body["compactLayoutable"] = True
    body["namedLayoutInfos"] = []
    body["networkScopeFieldName"] = None
    body["supportedScopes"] = [{"label": "All cases" if obj.name == "Case" else "All records", "name": "everything"}]
    body["urls"] = {**body["urls"], "layouts": f"{base}/sobjects/{obj.name}/describe/layouts"}
    return dict(sorted(body.items()))
