"""What Datasette shows when it browses the store: table and column descriptions, facets, sort orders.

``relsync browse`` writes this as Datasette's metadata JSON and serves the store read-only.
Every table and column named here exists in the store's schema (a test checks it).
"""
from __future__ import annotations

from typing import Any

TABLES: dict[str, dict[str, Any]] = {
    "change_requests": {
        "description": "Every change request relsync pulled, normalized: one row per request in its source system.",
        "facets": ["department", "type", "source", "status", "release", "priority"],
        "sort_desc": "updated_at",
        "label_column": "title",
        "columns": {
            "key": "source:native id, the request's name in every relsync command (jira:OPS-12)",
            "source": "the configured source it came from", "system": "jira, airtable or salesforce",
            "native_id": "the record's id in its system", "native_key": "the issue key (Jira)",
            "url": "the record in its own tool", "title": "what is asked for", "description": "the request in full",
            "type": "the kind of change", "department": "who asked", "requester": "the person who asked",
            "owner": "the person working on it", "priority": "critical, high, medium or low",
            "status": "normalized: new, triaged, approved, scheduled, in_progress, testing, deployed, closed, rejected",
            "source_status": "the status as its system names it", "release": "the release it is planned into",
            "created_at": "created in its system (UTC)", "updated_at": "last changed in its system (UTC)",
            "source_version": "the system's modstamp when last pulled", "deleted_at": "when relsync found it deleted",
            "affected": "what it changes (an object, table or component): two in one release clash",
            "content_hash": "hash of the mapped content, to recognise re-reads", "raw": "the record as pulled (JSON)",
            "first_seen_at": "first pulled by relsync", "last_pulled_at": "last pulled by relsync",
        },
    },
    "releases": {
        "description": "Release trains' releases, materialized from their cadence.",
        "facets": ["train", "state"],
        "sort": "deploy_at",
        "label_column": "name",
        "columns": {"id": "train and cadence date", "name": "as shown to people", "train": "the train it belongs to",
                    "deploy_at": "when it deploys (UTC)", "freeze_at": "after this, no newcomers",
                    "capacity": "requests it takes", "state": "planned, open, frozen, deploying, released or cancelled"},
    },
    "release_phases": {
        "description": "The SDLC phases of each release, with their owners.",
        "facets": ["phase", "owner"],
        "columns": {"release": "the release id", "phase": "planning ... deployment", "starts": "start (UTC)",
                    "ends": "end (UTC)", "owner": "who is responsible"},
    },
    "assignments": {
        "description": "Which release each planned request is in, and why.",
        "facets": ["release", "pinned", "assigned_by"],
        "columns": {"request": "the request key", "release": "the release id", "pinned": "1: pinned by a person, never moved",
                    "reason": "why it is there", "assigned_by": "relsync's planner or a person",
                    "assigned_at": "when (UTC)"},
    },
    "outbox": {
        "description": "Write-backs to the source systems: what relsync sends, and what became of it.",
        "facets": ["state", "source", "field"],
        "sort_desc": "updated_at",
        "columns": {"request": "the request key", "source": "the configured source", "system": "its system",
                    "field": "release or status", "value": "the value to write (JSON)",
                    "base": "what the source showed when it was planned (JSON)", "state":
                    "pending, sending, done, conflict, failed or superseded", "last_error": "the system's answer",
                    "attempts": "sends so far", "sent_at": "when it last left (UTC)"},
    },
    "audit": {
        "description": "The append-only, hash-chained audit: what relsync saw, decided and wrote, and what each "
                       "source's own history recorded (origin 'history').",
        "facets": ["origin", "system", "field", "actor"],
        "sort_desc": "id",
        "columns": {"id": "position in the chain", "at": "when it happened (UTC)", "run": "the sync run that recorded it",
                    "actor": "who: a person's name, relsync, or the source it was seen in",
                    "origin": "pulled, planned, pushed, manual or history",
                    "request": "the request key", "system": "where", "field": "which field ('*': created)",
                    "old": "before (JSON)", "new": "after (JSON)", "prev_hash": "the previous row's hash",
                    "hash": "sha256 of prev_hash and this row's content"},
    },
    "imported_history": {
        "description": "Source history entries already imported (or matched to relsync's own writes), so none is "
                       "imported twice.",
        "facets": ["source", "field", "matched"],
        "columns": {"source": "the configured source", "entry": "the system's id of the history entry",
                    "field": "relsync's field", "request": "the request key", "at": "when the change was made (UTC)",
                    "audit_id": "its audit row (relsync's push when matched)",
                    "matched": "outbox:<id>: relsync's own write, that outbox row"},
    },
    "quarantine": {
        "description": "Records the mapping cannot translate, held back until fixed.",
        "facets": ["source", "field"],
        "columns": {"request": "the request key", "field": "the mapped field at fault", "error": "what is wrong",
                    "first_seen_at": "held since (UTC)"},
    },
    "runs": {
        "description": "One row per sync or plan run: status, counts and API calls per system.",
        "facets": ["kind", "status"],
        "sort_desc": "id",
        "columns": {"kind": "sync or plan", "status": "ok, partial, failed, ...", "exit_code": "the command's exit code",
                    "counts": "what it pulled, planned, pushed and imported (JSON)",
                    "api_calls": "calls per system and endpoint (JSON)", "message": "what is left or went wrong"},
    },
    "sync_state": {
        "description": "Watermarks: where each source's pull, reconcile and history import reached.",
        "facets": ["source", "stream"],
        "columns": {"source": "the configured source", "stream": "requests, reconciled, history, history-records",
                    "watermark": "where it reached"},
    },
}


def metadata(database: str, *, title: str = "relsync store") -> dict[str, Any]:
    """Datasette metadata for the store served as ``database``."""
    return {
        "title": title,
        "description": "Change requests from Jira, Airtable and Salesforce, their releases, write-backs and audit "
                       "(read-only).",
        "databases": {database: {"tables": {name: dict(spec) for name, spec in TABLES.items()}}},
    }
