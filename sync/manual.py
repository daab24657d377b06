"""What a release manager does by hand: pin a request to a release, unpin it, cancel a
release, record a phase's sign-off.

Every action is one transaction with its audit event (origin ``manual``, the acting
user as actor). Pins are honoured by the planner and never moved by it; a cancelled
release is no longer live, so the next run moves its requests out, with who cancelled it
and why as the reason.
"""
from __future__ import annotations

import getpass
import json
from typing import Any

from mapping import clock
from sync.audit import AuditEvent, append_events
from sync.db import Database, insert, upsert
from sync.schedule import add_signoffs, missing_signoffs, release_clashes


class ManualError(LookupError):
    """A manual action names something that does not exist or cannot be done."""


def acting_user() -> str:
    """Who is acting: the login name of the process."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _now() -> str:
    return clock.stamp()


def find_release(db: Database, ref: str) -> dict[str, Any]:
    """A release by id or name; the error lists what exists."""
    rows = list(db.query("select * from releases where id = ? or name = ?", [ref, ref]))
    if rows:
        return rows[0]
    known = [r["name"] for r in db.query("select name from releases order by deploy_at")]
    raise ManualError(f"no release {ref!r}; releases: {', '.join(known) or 'none yet (run relsync sync first)'}")


def find_request(db: Database, key: str) -> dict[str, Any]:
    """A stored request by key (``jira:OPS-12``)."""
    rows = list(db.query("select key, system, status, deleted_at from change_requests where key = ?", [key]))
    if not rows:
        raise ManualError(f"no request {key!r} in the store (keys look like jira:OPS-12, airtable:rec…, salesforce:500…)")
    return rows[0]


def current_release(db: Database, key: str) -> str | None:
    """The name of the release ``key`` is assigned to, if any."""
    rows = list(
        db.query(
            "select rel.name from assignments a join releases rel on rel.id = a.release where a.request = ?", [key]
        )
    )
    return rows[0]["name"] if rows else None


def assign(db: Database, key: str, release_ref: str, *, reason: str, user: str | None = None) -> dict[str, Any]:
    """Pin ``key`` to a release; the planner will not move it."""
    if not reason.strip():
        raise ManualError("say why: --reason is required for a manual assignment")
    request = find_request(db, key)
    release = find_release(db, release_ref)
    if release["state"] in ("released", "cancelled"):
        raise ManualError(f"release {release['name']} is {release['state']}; pick an upcoming release")
    if request["deleted_at"]:
        raise ManualError(f"{key} was deleted in its source on {request['deleted_at']}")
    user = user or acting_user()
    now = _now()
    with db.atomic():
        before = current_release(db, key)
        upsert(db, "assignments", [{"request": key, "release": release["id"], "pinned": 1, "reason": f"pinned: {reason}",
                                    "assigned_by": user, "assigned_at": now}], key="request")
        append_events(db, [AuditEvent(
            at=now, run=None, actor=user, origin="manual", request=key, system=request["system"],
            field="release", old=before, new={"release": release["name"], "reason": f"pinned by {user}: {reason}"},
        )])
    return {"request": key, "release": release["name"], "previous": before, "by": user}


def unassign(db: Database, key: str, *, reason: str = "", user: str | None = None) -> dict[str, Any]:
    """Remove ``key``'s assignment (pinned or planned); the planner may plan it again."""
    request = find_request(db, key)
    user = user or acting_user()
    now = _now()
    with db.atomic():
        before = current_release(db, key)
        if before is None:
            raise ManualError(f"{key} is not assigned to a release")
        db.execute("delete from assignments where request = ?", [key])
        why = f"unassigned by {user}" + (f": {reason}" if reason else "")
        append_events(db, [AuditEvent(
            at=now, run=None, actor=user, origin="manual", request=key, system=request["system"],
            field="release", old=before, new={"release": None, "reason": why},
        )])
    return {"request": key, "previous": before, "by": user}


def cancel_release(db: Database, release_ref: str, *, reason: str = "", user: str | None = None) -> dict[str, Any]:
    """Cancel a release; the next plan moves its requests out (re-planned, or left with this reason).

    The requests stay in the cancelled release until then, so the run that moves them
    counts and audits each move, and the next write-back tells each requester.
    """
    release = find_release(db, release_ref)
    if release["state"] in ("released", "cancelled"):
        raise ManualError(f"release {release['name']} is already {release['state']}")
    user = user or acting_user()
    now = _now()
    with db.atomic():
        members = [
            row["request"]
            for row in db.query("select request from assignments where release = ? order by request", [release["id"]])
        ]
        db.execute(
            "update releases set state = 'cancelled', cancelled_by = ?, cancel_reason = ?, revision = revision + 1 "
            "where id = ?",
            [user, reason or None, release["id"]],
        )
        append_events(db, [AuditEvent(
            at=now, run=None, actor=user, origin="manual", request=None, system=None, field="release.state",
            old=release["state"], new={"release": release["name"], "state": "cancelled", "reason": reason or None,
                                       "requests": len(members)},
        )])
    return {"release": release["name"], "requests": members, "by": user}


def sign_off(db: Database, release_ref: str, phase: str, *, by: str, note: str = "",
             user: str | None = None) -> dict[str, Any]:
    """Record that ``by`` signed off ``phase`` of a release; audited with the acting user.

    Any phase of the release may be signed off; those its train requires hold the release
    at its deploy time until they are. A sign-off is recorded once.
    """
    if not by.strip():
        raise ManualError("say who signs off: --by NAME")
    release = find_release(db, release_ref)
    if release["state"] == "cancelled":
        raise ManualError(f"release {release['name']} is cancelled; nothing to sign off")
    phases = [row["phase"] for row in db.query(
        "select phase from release_phases where release = ? order by starts", [release["id"]])]
    if phase not in phases:
        raise ManualError(f"release {release['name']} has no phase {phase!r}; its phases: {', '.join(phases) or 'none'}")
    done = list(db.query("select signed_by, signed_at from phase_signoffs where release = ? and phase = ?",
                         [release["id"], phase]))
    if done:
        raise ManualError(f"{phase} of {release['name']} was signed off by {done[0]['signed_by']} at {done[0]['signed_at']}")
    user = user or acting_user()
    now = _now()
    with db.atomic():
        insert(db, "phase_signoffs", {"release": release["id"], "phase": phase, "signed_by": by,
                                           "note": note or None, "signed_at": now, "recorded_by": user})
        append_events(db, [AuditEvent(
            at=now, run=None, actor=user, origin="manual", request=None, system=None, field=f"signoff.{phase}",
            old=None, new={"release": release["name"], "phase": phase, "by": by, "note": note or None},
        )])
    return {"release": release["name"], "phase": phase, "by": by, "recorded_by": user,
            "missing": missing_signoffs(db, release["id"])}


def release_detail(db: Database, release_ref: str) -> dict[str, Any]:
    """One release with its phases and requests."""
    release = find_release(db, release_ref)
    add_signoffs(db, release)
    release["requires_signoff"] = json.loads(release.get("requires_signoff") or "[]")
    release["requests"] = list(
        db.query(
            "select r.key, r.system, r.priority, r.status, r.department, r.title, r.url, r.depends_on, a.pinned, a.reason, "
            "a.assigned_by from assignments a join change_requests r on r.key = a.request where a.release = ? "
            "order by r.department, r.key",
            [release["id"]],
        )
    )
    release["clashes"] = release_clashes(db, release["id"])
    return release
