"""The clash check: two requests in one release that change the same thing."""
from __future__ import annotations

from typing import Any

import sqlite_utils


def release_clashes(db: sqlite_utils.Database, release_id: str) -> list[dict[str, Any]]:
    """Objects (tables, components) changed by more than one request of the release."""
    rows = db.query(
        "select r.affected, group_concat(r.key, ' ') as keys, count(*) as n "
        "from assignments a join change_requests r on r.key = a.request "
        "where a.release = ? and r.affected is not null and r.affected != '' "
        "group by lower(r.affected) having count(*) > 1 order by r.affected",
        [release_id],
    )
    return [{"object": row["affected"], "requests": sorted(row["keys"].split(" "))} for row in rows]


def all_clashes(db: sqlite_utils.Database) -> dict[str, list[dict[str, Any]]]:
    """Clashes of every live release, by release name (releases without any left out)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for release in db.query("select id, name from releases where state not in ('released', 'cancelled') order by deploy_at"):
        clashes = release_clashes(db, release["id"])
        if clashes:
            found[release["name"]] = clashes
    return found
