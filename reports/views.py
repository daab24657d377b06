"""Read-only views of the store for the CLI: status, audit history, chain check, online check."""
from __future__ import annotations

import json
from typing import Any

from config.schema import Config
from sync import quarantine, schedule
from sync.audit import Anchor, verify_chain
from sync.schedule import release_clashes
from sync.store import open_database


def status(config: Config) -> dict[str, Any]:
    """Counts, the release plan, open write-backs, quarantined records and the last runs."""
    db = open_database(config.store, create=False)
    try:
        held = "select request from quarantine"
        by_status = {
            row["status"]: row["n"]
            for row in db.query(
                f"select status, count(*) as n from change_requests where deleted_at is null and key not in ({held}) "
                "group by status"
            )
        }
        counted = {
            (row["source"], row["state"]): row["n"]
            for row in db.query(
                f"select source, case when key in ({held}) then 'quarantined' when deleted_at is not null then 'deleted' "
                "else 'live' end as state, count(*) as n from change_requests group by 1, 2 "
                f"union all select source, 'quarantined', count(*) from quarantine where request not in "
                "(select key from change_requests) group by source"
            )
        }
        by_source = {
            source: {state: sum(n for (s, k), n in counted.items() if s == source and k == state)
                     for state in ("live", "deleted", "quarantined")}
            for source in sorted({source for source, _ in counted})
        }
        outbox = {
            row["state"]: row["n"]
            for row in db.query("select state, count(*) as n from outbox group by state")
        }
        runs = [
            {**row, "counts": json.loads(row["counts"] or "{}"), "api_calls": json.loads(row["api_calls"] or "{}")}
            for row in db.query("select * from runs order by id desc limit 5")
        ]
        # With a job per source, each source's own last sync (a run of every source counts for each).
        by_source_runs = {name: next(iter(db.query(
            "select id, started_at, status, exit_code from runs where kind = 'sync' and (sources is null or exists "
            f"(select 1 from {db.json_rows('runs.sources', 's')} where s.value = ?)) order by id desc limit 1", [name])),
            None)
            for name in config.sources}
        releases = schedule.release_plan(db)
        for release in releases:
            release["clashes"] = release_clashes(db, release["id"])
        return {
            "store": config.store,
            "requests": {"by_source": by_source, "by_status": by_status},
            "releases": releases,
            "outbox": outbox,
            "quarantine": quarantine.held_records(db),
            "runs": runs,
            "last_sync_by_source": by_source_runs,
        }
    finally:
        db.close()


def status_text(data: dict[str, Any]) -> str:
    """Human-readable form of ``status``."""
    lines = [f"store {data['store']}"]
    lines.append(
        "requests: "
        + ("; ".join(f"{source} {c['live']} live, {c['deleted']} deleted, {c['quarantined']} quarantined"
                     for source, c in data["requests"]["by_source"].items()) or "none")
    )
    lines.append(
        "  by status: " + ", ".join(f"{s} {n}" for s, n in sorted(data["requests"]["by_status"].items()))
    )
    lines.append("releases:")
    for release in data["releases"]:
        lines += [plan_line(release), *phase_lines(release)]
    if not data["releases"]:
        lines.append("  none planned")
    lines.append("outbox: " + (", ".join(f"{s} {n}" for s, n in data["outbox"].items()) or "empty"))
    lines += quarantine_lines(data["quarantine"])
    lines.append("last sync per source: " + ("; ".join(
        f"{name} #{r['id']} {r['status']} {r['started_at']}" if r else f"{name} never"
        for name, r in data["last_sync_by_source"].items()) or "no sources"))
    lines.append("last runs:")
    lines += [
        f"  #{r['id']} {r['kind']:<4} {r['started_at']} {r['status']} (exit {r['exit_code']})"
        + (f" [{', '.join(json.loads(r['sources']))}]" if r.get("sources") else "")
        + (f": {r['message'].splitlines()[0]}" if r["status"] not in ("ok", "running") and r["message"] else "")
        for r in data["runs"]
    ] or ["  none"]
    return "\n".join(lines)


def quarantine_lines(held: list[dict[str, Any]], shown: int = 20) -> list[str]:
    """The quarantined records, longest held first: what is wrong, where, and since when."""
    if not held:
        return ["quarantine: empty"]
    lines = [f"quarantined records ({len(held)}), held back until fixed in their source or in the mapping:"]
    lines += [f"  {quarantine.describe(row)} (since {row['first_seen_at'][:16].replace('T', ' ')})" for row in held[:shown]]
    if len(held) > shown:
        lines.append(f"  and {len(held) - shown} more (--json lists all)")
    return lines


CLASHES_EXPLAINED = (
    "CLASHES: two or more requests in one release change the same object (a table, a component); "
    "`relsync release show RELEASE` names them, so their changes can be built and tested together."
)


def plan_line(release: dict[str, Any]) -> str:
    """One release: name and id, dates, state, fill (requests/capacity) and clashes."""
    head = f"  {release['name']:<18} {release['id']:<30} deploy {release['deploy_at'][:16].replace('T', ' ')}  "
    if release["state"] == "cancelled":
        return head + "CANCELLED" + (f" {release['cancelled']}" if release.get("cancelled") else "")
    return (
        head + f"freeze {release['freeze_at'][:10]}  {release['state']:<9} "
        f"{release['requests']}/{release['capacity']} requests"
        + (f" ({', '.join(f'{s} {n}' for s, n in release['by_source'].items())})" if release.get("by_source") else "")
        + (f"  CLASHES: {'; '.join(c['object'] + ' x' + str(len(c['requests'])) for c in release['clashes'])}"
           if release.get("clashes") else "")
        + held_text(release)
    )


def release_text(detail: dict[str, Any]) -> str:
    """One release in full: dates, phases and requests."""
    lines = [
        f"{detail['name']} ({detail['train']}): deploy {detail['deploy_at']}, freeze {detail['freeze_at']}, "
        f"{detail['state']}, {len(detail['requests'])}/{detail['capacity']} requests" + held_text(detail)
    ]
    lines += phase_lines(detail)
    if detail.get("clashes"):
        lines.append("  " + CLASHES_EXPLAINED)
    for clash in detail.get("clashes", []):
        lines.append(f"  CLASH: {clash['object']} is changed by {', '.join(clash['requests'])}")
    for request in detail["requests"]:
        pin = " [pinned]" if request["pinned"] else ""
        needs = f" (needs {request['depends_on']})" if request.get("depends_on") else ""
        lines.append(
            f"  {request['key']:<28} {request['priority'] or '-':<8} {request['department'] or '-':<14} "
            f"{_short(request['title'], 60)}{pin}{needs}"
        )
    return "\n".join(lines)


def phase_lines(release: dict[str, Any]) -> list[str]:
    """The SDLC phases of one release: dates and owners."""
    return [
        f"      {p['phase']:<13} {p['starts'][:10]} .. {p['ends'][:10]}  {p['owner']}" + _signoff(p)
        for p in release["phases"]
    ]


def _signoff(phase: dict[str, Any]) -> str:
    if phase.get("signed_by"):
        note = f" ({phase['signoff_note']})" if phase.get("signoff_note") else ""
        return f"  signed off by {phase['signed_by']} {phase['signed_at'][:16].replace('T', ' ')}{note}"
    return "  sign-off required, not given" if phase.get("signoff_required") else ""


def held_text(release: dict[str, Any]) -> str:
    """Why a release is held, or nothing."""
    if not release.get("held"):
        return ""
    return (f"  HELD since {release['held_since'][:16].replace('T', ' ')}: past its deploy time, waiting for the "
            f"sign-off of {', '.join(release['missing_signoffs'])}")


def dry_run_text(data: dict[str, Any]) -> str:
    """Human-readable ``relsync plan``."""
    lines = ["Release plan after this sync (dry run: nothing is written):"]
    lines += [plan_line(r) for r in data["releases"]] or ["  no releases"]
    lines.append(f"\nMoves ({len(data['moves'])}):")
    for move in data["moves"]:
        reason = move["reason"] if isinstance(move["reason"], str) else json.dumps(move["reason"])
        lines.append(f"  {move['request']:<28} {move['from'] or '-'} -> {move['to'] or '-'}  ({_short(reason, 70)})")
    for system, writes in data["writes"].items():
        cost = data["costs"].get(system, {})
        lines.append(f"\n{system}: {len(writes)} writes, {cost.get('calls', '?')} API calls ({cost.get('limit', '')})")
        for kind, n in (cost.get("by_kind") or {}).items():
            if n:
                lines.append(f"    {kind}: {n}")
        for w in writes[:20]:
            lines.append(f"  {w['request']:<28} {w['field']:<8} {_short(w['old'], 30)} -> {_short(w['new'], 30)}")
        if len(writes) > 20:
            lines.append(f"  ... and {len(writes) - 20} more (--json lists all)")
    for name, cost in (data.get("history") or {}).items():
        calls = f"{cost['calls']} API call{'' if cost['calls'] == 1 else 's'}"
        lines.append(f"\n{name} history import: {calls} for {cost['records']} records updated since "
                     f"the last import ({cost['limit']})")
    if data.get("clashes") or any(r.get("clashes") for r in data["releases"]):
        lines.append("\n" + CLASHES_EXPLAINED)
    for release, clashes in (data.get("clashes") or {}).items():
        for clash in clashes:
            lines.append(f"CLASH in {release}: {clash['object']} is changed by {', '.join(clash['requests'])}")
    lines += [f"\n{m}" for m in data["messages"]]
    return "\n".join(lines)


def _short(value: Any, width: int = 90) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def verify(config: Config, anchor: Anchor | None = None) -> dict[str, Any]:
    """The audit chain check as a dict; ``head`` is the last good row as ``N:HASH``, to keep elsewhere."""
    db = open_database(config.store, create=False)
    try:
        report = verify_chain(db, anchor)
        return {"ok": report.ok, "checked": report.checked, "first_bad_id": report.first_bad_id, "reason": report.reason,
                "head": str(report.anchor), "anchor": None if anchor is None else str(anchor)}
    finally:
        db.close()
