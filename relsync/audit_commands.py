"""``relsync audit``: query and export the audit, one request's timeline, the chain check; ``relsync browse``.

``relsync audit`` (filters, no KEY) lists events for an auditor, as text, JSON, CSV or
JSON Lines; ``relsync audit KEY`` shows one request's merged timeline; ``relsync audit
verify`` checks the hash chain. ``relsync browse`` opens the store read-only in Datasette.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from relsync.common import CONFIG_OPTION, JSON_OPTION, ConfigFailure, Failure, emit, library_errors
from sync.store import ORIGINS

if TYPE_CHECKING:
    from sync.audit import Anchor


class AuditGroup(click.Group):
    """``relsync audit [filters]`` lists events, ``relsync audit KEY`` shows a timeline, ``relsync audit verify`` checks."""

    def route(self, args: list[str]) -> list[str]:
        """The arguments with the subcommand they mean: ``list`` for filters alone, ``show`` for a KEY."""
        if not args or (args[0].startswith("-") and args[0] not in ("--help", "-h")):
            return ["list", *args]
        if args[0] not in self.commands and not args[0].startswith("-"):
            return ["show", *args]
        return args

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self.route(args))


@click.group(cls=AuditGroup)
def audit() -> None:
    """The audit trail: `relsync audit [filters]`, `relsync audit KEY` or `relsync audit verify`."""


def _text(rows: list[dict[str, Any]]) -> str:
    from reports import audit_query

    lines = [f"{len(rows)} audit events (oldest first):"]
    for row in rows:
        lines.append(f"  #{row['id']:<7} {row['at'][:19].replace('T', ' ')}Z  {row['origin']:<8} {row['system'] or '-':<10} "
                     f"{row['actor']:<22} {row['request'] or '-':<28} {row['field'] or '-'}: {audit_query.change_text(row)}")
    return "\n".join(lines)


@audit.command("list", hidden=True)
@click.option("--request", help="Only this request (a key like jira:OPS-12).")
@click.option("--release", help="Only requests in this release (its name or id).")
@click.option("--system", type=click.Choice(["jira", "airtable", "salesforce"]), help="Only events of this system.")
@click.option("--actor", help="Only events by this actor (a person's name, relsync, a source name).")
@click.option("--field", help="Only this field (priority, status, release, ...).")
@click.option("--origin", type=click.Choice(ORIGINS),
              help="pulled (seen in a pull), planned, pushed (written back), manual, history (the source's own history).")
@click.option("--since", help="From this date or date-time (inclusive).")
@click.option("--until", help="Up to this date (that whole day) or date-time (exclusive).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row, for spreadsheets.")
@click.option("--jsonl", "as_jsonl", is_flag=True, help="One JSON object a line, for log and audit tools.")
@CONFIG_OPTION
@JSON_OPTION
@library_errors
def audit_list(request: str | None, release: str | None, system: str | None, actor: str | None, field: str | None,
               origin: str | None, since: str | None, until: str | None, as_csv: bool, as_jsonl: bool,
               config_path: Path, as_json: bool) -> None:
    """Audit events matching every filter given, oldest first."""
    from config.loader import load_config
    from reports import audit_query

    if sum((as_csv, as_jsonl, as_json)) > 1:
        raise click.UsageError("give one of --json, --csv and --jsonl")
    config = load_config(config_path)
    try:
        chosen = audit_query.AuditFilter(request, release, system, actor, field, origin,
                                         audit_query.moment(since), audit_query.moment(until, end=True))
        rows = audit_query.events(config, chosen)
    except audit_query.AuditQueryError as error:
        raise click.BadParameter(str(error)) from None
    if as_csv:
        click.echo(audit_query.as_csv(rows), nl=False)
    elif as_jsonl:
        click.echo(audit_query.as_jsonl(rows), nl=False)
    else:
        emit(rows, as_json, _text(rows))


@audit.command("show")
@click.argument("key")
@CONFIG_OPTION
@JSON_OPTION
@library_errors
def audit_show(key: str, config_path: Path, as_json: bool) -> None:
    """One request's timeline (KEY like jira:OPS-12): what relsync saw, decided and wrote, and the source's own history."""
    from config.loader import load_config
    from reports import audit_query

    config = load_config(config_path)
    data = audit_query.timeline(config, key)
    if not data["events"]:
        raise Failure(f"no audit events for {key!r} (keys look like jira:OPS-12)")
    emit(data, as_json, audit_query.timeline_text(data))


@audit.command("verify")
@CONFIG_OPTION
@click.option("--anchor", "anchor_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A file holding N:HASH (from --write-anchor or an earlier output): fail unless the chain still reaches it.")
@click.option("--expect", metavar="N:HASH", help="Fail unless the chain still reaches row N with this hash.")
@click.option("--write-anchor", type=click.Path(dir_okay=False, path_type=Path),
              help="After a clean check, write the chain head (N:HASH) to this file; keep it where the store's owner cannot write.")
@JSON_OPTION
@library_errors
def audit_verify(config_path: Path, anchor_file: Path | None, expect: str | None, write_anchor: Path | None,
                 as_json: bool) -> None:
    """Check the audit hash chain; exit 1 if any row was altered, removed or inserted, or the anchor is not reached."""
    from config.loader import load_config
    from reports import views

    config = load_config(config_path)
    anchor = read_anchor(anchor_file, expect)
    result = views.verify(config, anchor)
    if result["ok"]:
        lines = [f"audit chain intact: {result['checked']} events", f"head: {result['head']}"]
        if anchor is not None:
            lines.append(f"reaches the anchor {anchor.seq} with the anchored hash")
        if write_anchor is not None:
            write_anchor.write_text(result["head"] + "\n", encoding="utf-8")
            lines.append(f"wrote the head to {write_anchor}")
    else:
        lines = [f"audit chain BROKEN at event {result['first_bad_id']}: {result['reason']}",
                 f"last good head: {result['head']}"]
    emit(result, as_json, "\n".join(lines))
    if not result["ok"]:
        sys.exit(1)


def read_anchor(anchor_file: Path | None, expect: str | None) -> Anchor | None:
    """The anchor given by ``--anchor FILE`` or ``--expect N:HASH`` (not both), or None."""
    from sync.audit import Anchor, AnchorError

    if anchor_file is not None and expect is not None:
        raise click.UsageError("give --anchor FILE or --expect N:HASH, not both")
    try:
        if anchor_file is not None:
            return Anchor.parse(anchor_file.read_text(encoding="utf-8"))
        return None if expect is None else Anchor.parse(expect)
    except (AnchorError, UnicodeDecodeError) as error:
        hint = f"--anchor ({anchor_file})" if anchor_file is not None else "--expect"
        raise click.BadParameter(str(error), param_hint=hint) from None


BROWSE_INSTALL = "pip install 'relsync[browse]'"


@click.command()
@CONFIG_OPTION
@click.option("--host", default="127.0.0.1", show_default=True, help="Where Datasette listens.")
@click.option("--port", default=8001, show_default=True, help="Its port (0: any free one).")
@click.option("--metadata", "metadata_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Only write Datasette's metadata JSON (descriptions, facets) to this file, and serve nothing.")
@library_errors
def browse(config_path: Path, host: str, port: int, metadata_out: Path | None) -> None:
    """Open the store read-only in Datasette, with table and column descriptions and facets (until interrupted)."""
    import importlib.util
    import json
    import subprocess
    import tempfile

    from config.loader import load_config
    from reports.browse import metadata
    from sync.store import StoreMissing
    from sync.store_location import is_postgres

    config = load_config(config_path)
    if is_postgres(config.store):
        raise ConfigFailure("relsync browse opens a SQLite store in Datasette; a PostgreSQL store is read with the "
                            "database's own tools (psql, Metabase, Grafana), or copied into a file first: "
                            "relsync store copy URL copy.db")
    store = Path(config.store)
    described = metadata(store.stem)
    if metadata_out is not None:
        metadata_out.write_text(json.dumps(described, indent=2) + "\n", encoding="utf-8")
        click.echo(f"wrote Datasette metadata for {store} to {metadata_out}")
        return
    if importlib.util.find_spec("datasette") is None:
        raise ConfigFailure(f"relsync browse needs Datasette, an optional extra; install it with: {BROWSE_INSTALL}")
    if not store.is_file():
        raise StoreMissing(f"no store at {store} (the config's `store`): run `relsync sync` to create it")
    with tempfile.TemporaryDirectory(prefix="relsync-browse-") as folder:
        described_file = Path(folder) / "metadata.json"
        described_file.write_text(json.dumps(described), encoding="utf-8")
        # Datasette opens a database file read-only (mode=ro) unless it is told to write.
        command = [sys.executable, "-m", "datasette", "serve", str(store), "--metadata", str(described_file),
                   "--host", host, "--port", str(port)]
        click.echo(f"browsing {store} read-only with Datasette; stop with Ctrl+C", err=True)
        try:
            sys.exit(subprocess.call(command))
        except KeyboardInterrupt:
            sys.exit(0)
