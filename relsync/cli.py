"""The ``relsync`` command: parses arguments, calls the library, turns errors into exit codes.

The release manager's commands live in ``relsync.release_commands``; what every command
shares (options, the exit-code table, output) in ``relsync.common``. A command's module is
imported when the command is named, and the command imports the library it calls when it
runs, so ``--help`` and ``status`` load no vendor client, web framework or template engine.
"""
from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from relsync import logs
from relsync.common import CONFIG_OPTION, JSON_OPTION, emit, library_errors
from sync.exits import EXIT_CONFIG, EXIT_PARTIAL

SHOWN_PROBLEMS = 20
"""Problem lines a sync prints to stderr; the rest go to the log file (and -v), so cron mail stays readable."""

SUBCOMMANDS = {
    "audit": "relsync.audit_commands:audit",
    "browse": "relsync.audit_commands:browse",
    "release": "relsync.release_commands:release",
    "assign": "relsync.release_commands:assign",
    "unassign": "relsync.release_commands:unassign",
    "plan": "relsync.release_commands:plan_command",
    "calendar": "relsync.release_commands:calendar",
    "requests": "relsync.report_commands:requests_command",
    "report": "relsync.report_commands:report_command",
    "dashboard": "relsync.report_commands:dashboard_command",
    "store": "relsync.store_commands:store",
}
"""The commands kept in other modules, by name: ``module:attribute``."""


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when the command is named (click's "lazy loading" pattern)."""

    def __init__(self, *args: Any, lazy_subcommands: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = lazy_subcommands or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy_subcommands])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy_subcommands:
            return super().get_command(ctx, cmd_name)
        module, attribute = self.lazy_subcommands[cmd_name].split(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy_subcommands[cmd_name]} is not a click command")
        return command


@click.group(cls=LazyGroup, lazy_subcommands=SUBCOMMANDS)
@click.version_option(package_name="relsync")
@click.option("-v", "--verbose", is_flag=True, help="Also log every page, batch and retry (with its wait) to stderr.")
@click.option("-q", "--quiet", is_flag=True, help="Print errors only: no summary line, no warnings, no progress display.")
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also log to this file (rotating; timestamps in UTC and the run id on every line).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one JSON object a line, for log shippers (stderr and --log-file).")
@click.pass_context
def main(ctx: click.Context, verbose: bool, quiet: bool, log_file: Path | None, log_format: str) -> None:
    """relsync: change requests from Jira, Airtable and Salesforce, planned into releases."""
    if verbose and quiet:
        raise click.UsageError("give -v/--verbose or -q/--quiet, not both")
    logs.setup(verbose=verbose, quiet=quiet, log_file=log_file, log_format=log_format)
    ctx.call_on_close(logs.teardown)
    ctx.obj = {"quiet": quiet}


@main.command()
@CONFIG_OPTION
@click.option("--source", "only", multiple=True, metavar="NAME",
              help="Sync only this source (repeatable): pull it, plan if no other runner is planning, push it. "
                   "Runners of different sources may run at once; two of one source never do.")
@JSON_OPTION
@library_errors
def sync(config_path: Path, only: tuple[str, ...], as_json: bool) -> None:
    """Pull, plan and write back once (what cron runs)."""
    from config.loader import load_config
    from sync import engine

    config = load_config(config_path)
    quiet = (click.get_current_context().find_root().obj or {}).get("quiet", False)
    if sys.stderr.isatty() and not as_json and not quiet:
        with logs.LiveProgress() as live:
            report = engine.run(config, progress=live, handle_signals=True, only=only)
    else:
        report = engine.run(config, progress=logs.track_run, handle_signals=True, only=only)
    summary, *problems = report.summary().splitlines()
    if as_json or not quiet:
        emit(report.as_dict(), as_json, summary)
    level = logging.ERROR if report.status in ("failed", "config_error", "locked") else logging.WARNING
    shown = [] if as_json else problems  # --json carries them in "messages"
    for index, line in enumerate(shown):  # past the first few, to the log file and -v only
        logging.getLogger(logs.REPORT).log(level if index < SHOWN_PROBLEMS else logging.INFO, line)
    if len(shown) > SHOWN_PROBLEMS:
        logging.getLogger(logs.REPORT).log(
            level, f"  and {len(shown) - SHOWN_PROBLEMS} more (all of them: -v, --log-file, or this run's message "
                   "in `relsync status --json`)")
    sys.exit(report.exit_code)


@main.command()
@CONFIG_OPTION
@click.option("--online", is_flag=True, help="Also check credentials, fields and statuses against the live systems.")
@JSON_OPTION
@library_errors
def check(config_path: Path, online: bool, as_json: bool) -> None:
    """Validate the configuration file (and, with --online, the live systems and the permissions relsync needs there)."""
    from config.loader import load_config
    from sync import engine
    from sync.store import store_problem

    config = load_config(config_path)
    store = store_problem(config.store)
    checks = engine.check_online(config) if online else {}
    problems = {source: found.all_problems() for source, found in checks.items()}
    warnings = {source: found.warnings() for source, found in checks.items()}
    for source, unset in unset_secrets(config).items():
        warnings[source] = unset + warnings.get(source, [])
    lines = [f"{config_path}: configuration is valid ({len(config.sources)} sources, {len(config.trains)} trains)"]
    if store is not None:
        lines = [f"{config_path}: store: {store}"]
    if not online:
        lines += [f"{source}: warning: {warning}" for source, found in warnings.items() for warning in found]
    for source, found in checks.items():
        lines += [f"{source}: {p.line()}" for p in found.permissions if p.granted is not False]
        lines += [f"{source}: warning: {warning}" for warning in warnings[source]]
        lines += [f"{source}: {problem}" for problem in problems[source]] or [f"{source}: online check passed"]
    permissions = {source: [dataclasses.asdict(p) for p in found.permissions] for source, found in checks.items()}
    data = {"valid": store is None, "online": online, "problems": problems | ({"store": [store]} if store else {}),
            "warnings": warnings, "permissions": permissions}
    emit(data, as_json, "\n".join(lines))
    if store is not None or any(problems[source] for source, found in checks.items() if found.reached):
        sys.exit(EXIT_CONFIG)
    if any(not found.reached for found in checks.values()):
        sys.exit(EXIT_PARTIAL)  # as sync: a source that cannot be reached fails alone


def unset_secrets(config: Any) -> dict[str, list[str]]:
    """Per source, the auth environment variables that are not set here (sync would stop that source)."""
    unset: dict[str, list[str]] = {}
    for name, spec in config.sources.items():
        for key, env_name in spec.auth.model_dump().items():
            if key.endswith("_env") and isinstance(env_name, str) and not os.environ.get(env_name, "").strip():
                unset.setdefault(name, []).append(
                    f"sources.{name}.auth.{key}: environment variable {env_name} is not set here; sync would stop {name}")
    return unset


@main.command()
@CONFIG_OPTION
@JSON_OPTION
@library_errors
def status(config_path: Path, as_json: bool) -> None:
    """Show the store: requests, releases, open write-backs, quarantined records and recent runs."""
    from config.loader import load_config
    from reports import views

    config = load_config(config_path)
    data = views.status(config)
    emit(data, as_json, views.status_text(data))


@main.command()
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), default="relsync-demo", show_default=True)
@click.option("--records", default=200, show_default=True, help="Requests seeded in each sandbox.")
@JSON_OPTION
@library_errors
def demo(folder: Path, records: int, as_json: bool) -> None:
    """Run the whole job against the bundled sandboxes, with no credentials needed."""
    from relsync.demo import run_demo

    sys.exit(run_demo(folder, records=records, as_json=as_json, echo=click.echo))


@main.command()
@click.option("--records", default=200, show_default=True, help="Requests seeded per system.")
@click.option("--seed", default=7, show_default=True, help="Seed for the generated data.")
@click.option("--write-config", type=click.Path(dir_okay=False, path_type=Path), help="Write a relsync config for the served sandboxes.")
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the credentials as `export NAME=value` lines (mode 0600) to this file, for `. FILE`.")
def sandbox(records: int, seed: int, write_config: Path | None, env_file: Path | None) -> None:
    """Serve the sandboxes on 127.0.0.1 until interrupted; prints one JSON line first."""
    from relsync.demo import serve_sandboxes

    serve_sandboxes(records=records, seed=seed, config_file=write_config, env_file=env_file, echo=click.echo,
                    tell=lambda line: click.echo(line, err=True))

