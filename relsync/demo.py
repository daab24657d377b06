"""``relsync demo`` and ``relsync sandbox``: the whole job against the bundled sandboxes."""
from __future__ import annotations

import json
import os
import shlex
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from config.loader import load_config
from reports import audit_query, views
from sandboxes import edits
from sandboxes.server import start_sandboxes
from sync import engine, schedule
from sync.store import open_store

EXAMPLES = Path(__file__).resolve().parent.parent / "config" / "examples"


SYSTEMS = ("jira", "airtable", "salesforce")
WRITTEN_ORDER = ("release", "status", "planned_date", "phase")


def sandbox_config(description: dict[str, Any], store: Path, folder: Path) -> dict[str, Any]:
    """A complete relsync config for the described sandboxes, built from the shipped examples.

    Sources whose sandbox is not running are left out; the Salesforce sandbox's CA
    is written beside the config and named in ``ca_bundle``.
    """
    config = yaml.safe_load((EXAMPLES / "all-three.yaml").read_text())
    config["store"] = str(store)
    sources = config["sources"]
    for name in list(sources):
        if name not in description:
            del sources[name]
    if "jira" in description:
        sources["jira"].update(url=description["jira"]["url"], project=description["jira"]["project"])
    if "airtable" in description:
        box = description["airtable"]
        sources["airtable"].update(url=box["url"], base=box["base"], table=box["table"])
    if "salesforce" in description:
        box = description["salesforce"]
        ca = folder / "salesforce-sandbox-ca.pem"
        ca.write_text(box["ca_pem"])
        sources["salesforce"].update(url=box["url"], object=box["object"], record_type=box["record_type"], ca_bundle=str(ca))
    return config


def write_config(description: dict[str, Any], path: Path) -> Path:
    """Write a config for the sandboxes to ``path``, its store beside it."""
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    config = sandbox_config(description, path.with_suffix(".db"), path.parent)
    path.write_text(
        "# relsync config for the sandboxes started by `relsync sandbox`.\n"
        "# Credentials come from the environment variables printed by that command.\n"
        + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    )
    return path


def write_env_file(description: dict[str, Any], path: Path) -> list[str]:
    """Write every sandbox credential as an ``export NAME=value`` line (mode 0600); return the names."""
    env = {k: v for system in description.values() if isinstance(system, dict) for k, v in system["env"].items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("# Credentials of the sandboxes started by `relsync sandbox`; load with `. FILE`.\n")
        out.writelines(f"export {name}={shlex.quote(str(value))}\n" for name, value in env.items())
    return list(env)


def serve_sandboxes(*, records: int, seed: int, config_file: Path | None, echo: Callable[[str], None],
                    env_file: Path | None = None, tell: Callable[[str], None] = lambda line: None) -> None:
    """Serve until SIGINT/SIGTERM; first print one JSON line describing the sandboxes.

    With ``env_file``, the credentials are also written there, and ``tell`` (stderr) says so
    and how to load them; the file is written before the JSON line is printed.
    """
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with start_sandboxes(records=records, seed=seed, systems=SYSTEMS) as sandboxes:
        description = sandboxes.describe()
        if config_file is not None:
            description["config"] = str(write_config(description, config_file))
        if env_file is not None:
            names = write_env_file(description, env_file)
            tell(f"wrote {len(names)} credentials ({', '.join(names)}) to {env_file}; load them with: . {shlex.quote(str(env_file))}")
        echo(json.dumps(description))
        stop.wait()


def run_demo(folder: Path, *, records: int, as_json: bool, echo: Callable[[str], None]) -> int:
    """Seed, sync, show the plan and the write-backs, change things in Jira, sync again."""
    folder.mkdir(parents=True, exist_ok=True)
    store = (folder / "relsync.db").resolve()
    for stale in (store, store.with_name(store.name + "-wal"), store.with_name(store.name + "-shm")):
        stale.unlink(missing_ok=True)
    say = (lambda text: None) if as_json else echo
    with start_sandboxes(records=records, seed=7, systems=SYSTEMS) as sandboxes:
        description = sandboxes.describe()
        # Setup, as a Jira admin would do it: the integration account may create a
        # version for each release (Administer Projects in the OPS project).
        edits.jira_grant(description, "ADMINISTER_PROJECTS")
        config_path = write_config(description, folder / "relsync.yaml")
        env_path = folder.resolve() / "relsync.env"
        write_env_file(description, env_path)
        env = {k: v for system in description.values() for k, v in system["env"].items()}
        config = load_config(config_path)
        where = ", ".join(f"{system} at {box['url']}" for system, box in description.items())
        say(f"Sandboxes up: {where}, with {records} change requests each.")
        say("Jira: the integration account was granted Administer Projects in OPS, so relsync can create versions.")
        say(f"Config written to {config_path}\n")

        first = engine.run(config, env=env)
        say("== First sync ==")
        say(first.summary())
        db = open_store(config.store)
        say("\n== Pulled into the store ==")
        for line in pulled_lines(db):
            say(line)
        say("\n== Release plan ==")
        plan = schedule.release_plan(db)
        for release in plan:
            release["clashes"] = schedule.release_clashes(db, release["id"])
        for release in plan:
            say(views.plan_line(release))
        if plan:
            say(f"  phases of {plan[0]['name']}:")
            for line in views.phase_lines(plan[0]):
                say(line)
        written = list(
            db.query(
                "select o.request, o.system, o.field, o.value from outbox o where o.state = 'done' "
                "order by o.system, o.request, o.field"
            )
        )
        db.close()
        per_system: dict[str, list[dict[str, Any]]] = {}
        for row in written:
            per_system.setdefault(row["system"], []).append(row)
        say(f"\n== Written back: {len(written)} field updates ==")
        for system, rows in per_system.items():
            say(f"  {system}: {len(rows)} updates, e.g.")
            one = [row for row in rows if row["request"] == rows[0]["request"]]  # one request's fields, as its requester sees them
            for row in sorted(one, key=lambda r: WRITTEN_ORDER.index(r["field"]) if r["field"] in WRITTEN_ORDER else 9):
                say(f"    {row['request']:<28} {row['field']:<12} -> {json.loads(row['value'])}")

        client = edits.jira_client_as(description, "Dana Whitfield", "dana.whitfield@example.com")  # a requester
        project = description["jira"]["project"]
        new_key = edits.jira_new_request(
            client,
            project,
            summary="URGENT: fix broken lead assignment rule for EMEA",
            priority="Highest",
            department="Sales Ops",
            request_type="Workflow/Automation",
            status="Approved",
        )
        raised = _an_approved_request(config.store, exclude=f"jira:{new_key}")
        edits.jira_set_priority(client, raised.split(":", 1)[1], "Highest")
        say(f"\n== In Jira, Dana Whitfield (Sales Ops) creates {new_key} (Highest, Approved) and raises {raised} to Highest ==")
        say("   (waiting until Jira's search shows both: its index lags writes by a few seconds)")
        for key in (new_key, raised.split(":", 1)[1]):
            edits.jira_wait_for_search(client, f'key = "{key}" AND priority = "Highest"')

        second = engine.run(config, env=env)
        say("\n== Second sync ==")
        say(second.summary())
        key = f"jira:{new_key}"
        say("")
        say(audit_query.timeline_text(audit_query.timeline(config, key)))
        verified = views.verify(config)
        say(f"\naudit chain: {'intact' if verified['ok'] else 'BROKEN'} ({verified['checked']} events)")
        say("\n" + explore_hint(config_path, env_path, records))
        if as_json:
            echo(
                json.dumps(
                    {
                        "config": str(config_path),
                        "env_file": str(env_path),
                        "runs": [first.as_dict(), second.as_dict()],
                        "plan": plan,
                        "new_request": key,
                        "audit": verified,
                    },
                    default=str,
                )
            )
    return max(first.exit_code, second.exit_code)


def explore_hint(config_path: Path, env_path: Path, records: int) -> str:
    """How to bring the stopped sandboxes back for the demo's config and store, then look around."""
    config, env = shlex.quote(str(config_path)), shlex.quote(str(env_path))
    commands = ["status", "release list", "plan"]
    return "\n".join([
        "Explore: the sandboxes stopped with the demo; serve them again (fresh seeded data, the demo's store kept)",
        "in another terminal, which rewrites the config's URLs and the credentials file:",
        f"  relsync sandbox --seed 7 --records {records} --write-config {config} --env-file {env}",
        "then here:",
        f"  . {env}",
        *(f"  relsync {command} --config {config}" for command in commands),
    ])


def pulled_lines(db: Any, examples: int = 5) -> list[str]:
    """Counts by source and status, and a few example requests."""
    lines = []
    for row in db.query(
        "select source, count(*) as n, group_concat(status || ' ' || c, ', ') as statuses from "
        "(select source, status, count(*) as c from change_requests group by source, status order by c desc) "
        "group by source"
    ):
        lines.append(f"  {row['source']}: by status {row['statuses']}")
    for row in db.query(
        "select key, priority, status, department, title from change_requests order by key limit ?", [examples]
    ):
        title = row["title"] if len(row["title"]) <= 60 else row["title"][:59] + "…"
        lines.append(f"  {row['key']:<14} {row['priority'] or '-':<8} {row['status']:<11} {row['department'] or '-':<14} {title}")
    return lines


def _an_approved_request(store: str, *, exclude: str) -> str:
    db = open_store(store)
    try:
        row = next(
            iter(
                db.query(
                    "select key from change_requests where source = 'jira' and status in ('approved', 'scheduled') "
                    "and priority != 'critical' and key != ? order by key limit 1",
                    [exclude],
                )
            )
        )
        return row["key"]
    finally:
        db.close()
