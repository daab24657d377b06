"""The deployment examples under deploy/ parse, and every relsync command in them is one the CLI takes."""
from __future__ import annotations

import configparser
import re
import shlex
import warnings
from pathlib import Path

import pytest
import yaml

from relsync.cli import main
from sync.store_location import PASSWORD_ENV, check_postgres_url

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
SOURCES = list(yaml.safe_load((ROOT / "config" / "examples" / "all-three.yaml").read_text())["sources"])


def parsed(args: list[str]) -> dict[str, object]:
    """Parse a relsync command line as the CLI would, without running it: its subcommand's parameters."""
    context = main.make_context("relsync", list(args))
    with warnings.catch_warnings():  # click 8.2 deprecates protected_args; click 9 puts them in args
        warnings.simplefilter("ignore", DeprecationWarning)
        remaining = [*context.protected_args, *context.args]
    name, command, rest = main.resolve_command(context, remaining)
    assert command is not None and name is not None, args
    return {"command": name, **command.make_context(name, list(rest), parent=context).params}


def after_relsync(command: str) -> list[str]:
    tokens = shlex.split(command)
    start = next(i for i, token in enumerate(tokens) if token == "relsync" or token.endswith("/relsync"))
    return tokens[start + 1:]


def test_each_source_has_a_cron_line_naming_a_real_command():
    lines = [line for line in (DEPLOY / "cron" / "relsync.crontab").read_text().splitlines()
             if line.strip() and not line.startswith("#") and not re.match(r"^[A-Z_]+=", line)]
    synced = []
    for line in lines:
        minute, hour, day, month, weekday, command = line.split(None, 5)
        assert all(re.fullmatch(r"[\d*/,-]+", field) for field in (minute, hour, day, month, weekday)), line
        params = parsed(after_relsync(command))
        assert params["command"] == "sync", line
        synced += params["only"]
    assert synced == SOURCES


def test_each_source_has_a_kubernetes_cronjob_that_never_overlaps_and_reads_a_secret():
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "relsync.yaml").read_text()))
    jobs = [d for d in documents if d["kind"] == "CronJob"]
    synced = []
    for job in jobs:
        assert job["apiVersion"] == "batch/v1" and job["spec"]["concurrencyPolicy"] == "Forbid"
        pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert {"secretRef": {"name": "relsync-credentials"}} in container["envFrom"]
        # The store is a PostgreSQL database (its password in the Secret): no volume shared between pods.
        assert not any("persistentVolumeClaim" in volume for volume in pod["volumes"]) and "nodeSelector" not in pod
        params = parsed(container["args"])
        assert params["command"] == "sync" and str(params["config_path"]) == "/etc/relsync/relsync.yaml"
        synced += params["only"]
    assert synced == SOURCES


@pytest.mark.parametrize("source", SOURCES)
def test_the_systemd_template_syncs_the_source_its_instance_names(source):
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(DEPLOY / "systemd" / "relsync@.service")
    timer = configparser.ConfigParser(strict=False, interpolation=None)
    timer.read(DEPLOY / "systemd" / "relsync@.timer")
    assert unit["Service"]["Type"] == "oneshot" and unit["Service"]["EnvironmentFile"] == "/etc/relsync/env"
    assert timer["Install"]["WantedBy"] == "timers.target" and timer["Timer"]["OnCalendar"]
    params = parsed(after_relsync(unit["Service"]["ExecStart"].replace("%i", source)))
    assert params["command"] == "sync" and params["only"] == (source,)


def test_the_kubernetes_example_says_how_the_store_is_named_and_its_password_kept():
    text = (DEPLOY / "kubernetes" / "relsync.yaml").read_text()
    (url,) = re.findall(r"store: (postgresql://\S+)", text)
    check_postgres_url(url)  # the form the config accepts: no password in it
    assert "RELSYNC_STORE_PASSWORD" in text and "RELSYNC_STORE_PASSWORD" in (DEPLOY / "env.example").read_text()


def test_the_env_example_names_every_secret_the_example_config_reads():
    names = {line.split("=", 1)[0] for line in (DEPLOY / "env.example").read_text().splitlines()
             if line and not line.startswith("#")}
    config = (ROOT / "config" / "examples" / "all-three.yaml").read_text()
    # ... and the PostgreSQL store's password, read from the environment by that name.
    assert names == set(re.findall(r"_env: (RELSYNC_[A-Z_]+)", config)) | {PASSWORD_ENV}


def test_a_mistyped_option_in_an_example_would_be_caught():
    import click

    with pytest.raises(click.NoSuchOption):
        parsed(["-q", "sync", "--sorce", "jira"])
    with pytest.raises(click.UsageError):
        parsed(["snyc", "--source", "jira"])
