"""Creating, updating and deleting records, one at a time or as sObject Collections.

Validation follows what Salesforce answers, in its order: unknown fields (INVALID_FIELD,
"No such column 'X' on sobject of type Case"), read-only fields
(INVALID_FIELD_FOR_INSERT_UPDATE, "Unable to create/update fields: X. Please check the
security settings ..."), then per-field values (STRING_TOO_LONG, INVALID_EMAIL_ADDRESS,
INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST "Department: bad value for restricted picklist
field: X", bad references), required fields, and last the org's validation rule: a
rejected change request cannot carry a release (FIELD_CUSTOM_VALIDATION_EXCEPTION).
Collections hold at most 200 records; with allOrNone every record is rolled back when
one fails, the others reporting ALL_OR_NONE_OPERATION_ROLLED_BACK.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandboxes.salesforce.data import Row, SalesforceState
from sandboxes.salesforce.schema import Field, SObject
from sandboxes.salesforce.values import canonical_id, parse_date

MAX_COLLECTION = 200
ROLLED_BACK = "Record rolled back because not all records were valid and the request was using AllOrNone header"
VALIDATION_MESSAGE = "A rejected change request can't be scheduled into a release."
_TEXT = ("string", "textarea", "email", "picklist")


@dataclass(frozen=True)
class RecordError:
    """One error about one record."""

    code: str
    message: str
    fields: tuple[str, ...] = ()

    def rest(self) -> dict[str, Any]:
        """As the sObject Rows resources report it."""
        return {"message": self.message, "errorCode": self.code, "fields": list(self.fields)}

    def result(self) -> dict[str, Any]:
        """As an entry of a SaveResult's ``errors``."""
        return {"statusCode": self.code, "message": self.message, "fields": list(self.fields)}


class WriteRefused(Exception):
    """A record that cannot be saved, with every error Salesforce would list."""

    def __init__(self, errors: list[RecordError]) -> None:
        self.errors = errors
        super().__init__("; ".join(e.message for e in errors))


def _value(state: SalesforceState, obj: SObject, f: Field, value: Any) -> tuple[Any, RecordError | None]:
    if value is None:
        return None, None
    if f.type in _TEXT:
        if not isinstance(value, str):
            kind = type(value).__name__
            return None, RecordError("JSON_PARSER_ERROR", f"Cannot deserialize instance of string from {kind} value "
                                                          f"{value!r} or request may be missing a required field", ())
        if value == "":
            return None, None  # Salesforce stores an empty text value as null
        if f.length and len(value) > f.length:
            return None, RecordError("STRING_TOO_LONG", f"{f.label}: data value too large: {value} "
                                                        f"(max length={f.length})", (f.name,))
        if f.type == "email" and ("@" not in value or value.startswith("@") or value.endswith("@")):
            return None, RecordError("INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {value}", (f.name,))
        if f.type == "picklist" and f.restricted and value not in f.picklist:
            return None, RecordError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                     f"{f.label}: bad value for restricted picklist field: {value}", (f.name,))
        return value, None
    if f.type == "date":
        day = parse_date(value) if isinstance(value, str) else None
        if day is None:
            return None, RecordError("JSON_PARSER_ERROR", f"Cannot deserialize instance of date from VALUE_STRING value "
                                                          f"{value} or request may be missing a required field", ())
        return day, None
    if f.type == "reference":
        ident = canonical_id(value)
        prefixes = {"OwnerId": ("005", "00G"), "RecordTypeId": ("012",)}.get(f.name, ())
        if ident is None or not ident.startswith(prefixes):
            return None, RecordError("FIELD_INTEGRITY_EXCEPTION", f"{f.label}: id value of incorrect type: {value}",
                                     (f.name,))
        entity = "RecordType" if f.name == "RecordTypeId" else "Name"
        target = state.lookup(entity, ident)
        if target is None or (f.name == "RecordTypeId" and obj.name != "Case"):
            return None, RecordError("INVALID_CROSS_REFERENCE_KEY",
                                     f"{f.label}: this ID value isn't valid for the user: {value}", (f.name,))
        return ident, None
    return value, None


def validate(state: SalesforceState, obj: SObject, body: Any, *, current: Row | None) -> Row:
    """The changes ``body`` asks for, checked; raises :class:`WriteRefused`. ``current`` None means create."""
    if not isinstance(body, dict):
        raise WriteRefused([RecordError("JSON_PARSER_ERROR", f"Cannot deserialize instance of {obj.name} from "
                                                             f"{type(body).__name__} value", ())])
    creating = current is None
    given: dict[Field, Any] = {}
    for key, value in body.items():
        if key == "attributes":
            continue
        f = obj.field(key)
        if f is None:
            raise WriteRefused([RecordError("INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}")])
        given[f] = value
    locked = [f.name for f in given if not (f.createable if creating else f.updateable)]
    if locked:
        message = (f"Unable to create/update fields: {', '.join(locked)}. Please check the security settings of this "
                   "field and verify that it is read/write for your profile or permission set.")
        raise WriteRefused([RecordError("INVALID_FIELD_FOR_INSERT_UPDATE", message, tuple(locked))])
    changes: Row = {}
    errors: list[RecordError] = []
    for f, raw in given.items():
        value, error = _value(state, obj, f, raw)
        if error:
            errors.append(error)
        else:
            changes[f.name] = value
    if errors:
        raise WriteRefused(errors)
    merged = {**(current or {}), **changes}
    missing = [f.name for f in obj.fields if not f.nillable and f.createable and f.default is None
               and f.type != "reference" and merged.get(f.name) is None]
    if missing:
        raise WriteRefused([RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                                        tuple(missing))])
    status = merged.get("Status__c" if obj.name == "Change_Request__c" else "Status")
    if status is None and creating:
        status = obj.field("Status__c" if obj.name == "Change_Request__c" else "Status").default  # type: ignore[union-attr]
    if status == "Rejected" and merged.get("Release__c"):
        raise WriteRefused([RecordError("FIELD_CUSTOM_VALIDATION_EXCEPTION", VALIDATION_MESSAGE, ("Release__c",))])
    return changes


def _target(state: SalesforceState, record: Any, *, creating: bool) -> tuple[SObject, Any]:
    if not isinstance(record, dict) or not isinstance(record.get("attributes"), dict) \
            or not isinstance(record["attributes"].get("type"), str):
        raise WriteRefused([RecordError("INVALID_TYPE", "Must send a concrete entity type.")])
    name = record["attributes"]["type"]
    obj = state.sobject(name)
    if obj is None:
        raise WriteRefused([RecordError("INVALID_TYPE", f"sObject type '{name}' is not supported.")])
    if not obj.writable:
        verb = "insert" if creating else "update"
        raise WriteRefused([RecordError("INVALID_TYPE_FOR_OPERATION", f"entity type {obj.name} does not support {verb}")])
    return obj, record


def _record_id(record: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    body = {k: v for k, v in record.items() if k.lower() != "id"}
    ident = next((v for k, v in record.items() if k.lower() == "id"), None)
    return ident, body


def existing(state: SalesforceState, obj: SObject, ident: Any) -> Row:
    """The live record ``ident`` of ``obj`` for an update or delete, or the error Salesforce gives."""
    canonical = canonical_id(ident) if isinstance(ident, str) else None
    if canonical is None or not canonical.startswith(obj.key_prefix):
        raise WriteRefused([RecordError("MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: {ident}", ("Id",))])
    row = state.tables[obj.name].get(canonical)
    if row is None or row.get("IsDeleted"):
        raise WriteRefused([RecordError("ENTITY_IS_DELETED", "entity is deleted")])
    return row


def save_collection(state: SalesforceState, records: list[Any], *, all_or_none: bool, creating: bool) -> list[dict[str, Any]]:
    """Create or update up to 200 records; SaveResults in request order. Caller holds the lock."""
    planned: list[tuple[SObject, Row | None, Row] | None] = []
    failures: dict[int, list[RecordError]] = {}
    for index, record in enumerate(records):
        try:
            obj, record = _target(state, record, creating=creating)
            ident, body = _record_id(record)
            if creating:
                if ident is not None:
                    raise WriteRefused([RecordError("INVALID_FIELD", "cannot specify Id in an insert call", ("Id",))])
                row = None
            else:
                if ident is None:
                    raise WriteRefused([RecordError("MISSING_ARGUMENT", "Id not specified in an update call")])
                row = existing(state, obj, ident)
            planned.append((obj, row, validate(state, obj, body, current=row)))
        except WriteRefused as refused:
            planned.append(None)
            failures[index] = refused.errors
    if failures and all_or_none:
        rolled = [RecordError("ALL_OR_NONE_OPERATION_ROLLED_BACK", ROLLED_BACK)]
        return [_failed(failures.get(i, rolled)) for i in range(len(records))]
    stamp = state.stamp() if len(failures) < len(records) else None
    results = []
    for index, plan in enumerate(planned):
        if plan is None:
            results.append(_failed(failures[index]))
            continue
        obj, row, changes = plan
        assert stamp is not None
        if row is None:
            row = state.insert(obj, changes, stamp)
        else:
            state.update(row, changes, stamp)
        results.append({"id": row["Id"], "success": True, "errors": []})
    return results


def delete_collection(state: SalesforceState, ids: list[str], *, all_or_none: bool) -> list[dict[str, Any]]:
    """Delete records by id (any writable type); DeleteResults in request order. Caller holds the lock."""
    planned: list[Row | None] = []
    failures: dict[int, list[RecordError]] = {}
    for index, ident in enumerate(ids):
        canonical = canonical_id(ident)
        obj = next((o for o in state.catalog.values() if o.writable and canonical and canonical.startswith(o.key_prefix)),
                   None)
        try:
            if obj is None:
                raise WriteRefused([RecordError("MALFORMED_ID", f"malformed id {ident}")])
            planned.append(existing(state, obj, ident))
        except WriteRefused as refused:
            planned.append(None)
            failures[index] = refused.errors
    if failures and all_or_none:
        rolled = [RecordError("ALL_OR_NONE_OPERATION_ROLLED_BACK", ROLLED_BACK)]
        return [{**({"id": canonical_id(ids[i])} if i not in failures else {}), **_failed(failures.get(i, rolled))}
                for i in range(len(ids))]
    stamp = state.stamp()
    results = []
    for index, row in enumerate(planned):
        if row is None:
            results.append(_failed(failures[index]))
        else:
            state.delete(row, stamp)
            results.append({"id": row["Id"], "success": True, "errors": []})
    return results


def _failed(errors: list[RecordError]) -> dict[str, Any]:
    return {"success": False, "errors": [e.result() for e in errors]}
