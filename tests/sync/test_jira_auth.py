"""Jira credentials end to end: a personal API token on the site, tokens with scopes through the gateway.

Atlassian (checked 2026): a personal API token works as Basic email:token on the site URL
only; Bearer is for OAuth access tokens (JRACLOUD-72405). Scoped and service-account tokens
are refused on the site and must call ``https://api.atlassian.com/ex/jira/{cloudId}/{api}``
("Manage API tokens for your Atlassian account"; KB "401 Unauthorized error when service
account accesses Jira or Confluence API"), as Basic with the account's email or, for a
service account, as Bearer alone. The cloud id is at ``https://<site>/_edge/tenant_info``
(KB "Retrieve my Atlassian site's cloud ID"). The sandbox serves its own gateway, so the
config's ``gateway`` points there.
"""
from __future__ import annotations

import json
from typing import Any

import yaml
from click.testing import CliRunner

from config.loader import load_config
from relsync.cli import main
from sync import engine
from sync.store import open_store
from tests.conftest import make_world


def use_token(world, **auth: Any) -> None:
    """Rewrite the Jira source's auth (a None value removes the key) and put the gateway at the sandbox."""
    data = yaml.safe_load(world.config_path.read_text())
    source = data["sources"]["jira"]
    source["auth"].update(auth)
    source["auth"] = {k: v for k, v in source["auth"].items() if v is not None}
    source["gateway"] = world.jira_url
    world.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    world.config = load_config(world.config_path)


def set_key(world, key: str, value: Any) -> None:
    data = yaml.safe_load(world.config_path.read_text())
    data["sources"]["jira"][key] = value
    world.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    world.config = load_config(world.config_path)


def stored_urls(world) -> set[str]:
    db = open_store(world.config.store)
    try:
        return {row["url"] for row in db.query("select url from change_requests")}
    finally:
        db.close()


def test_a_service_account_token_goes_as_bearer_through_the_gateway(small_world, tmp_path):
    world = small_world
    use_token(world, email_env=None, token_kind="service_account")
    env = {"RELSYNC_JIRA_TOKEN": world.env["RELSYNC_JIRA_TOKEN"]}
    world.reset_calls()

    report = engine.run(world.config, env=env)

    assert report.exit_code == 0, report.messages
    assert report.pulled["jira"]["pulled"] == 30 and report.pushed["jira"]["written"] > 0
    # Browse links stay on the site, not the gateway.
    assert stored_urls(world) == {f"{world.jira_url}/browse/OPS-{n}" for n in range(1, 31)}
    # The same run as a personal token on the site, plus one call: the cloud id from tenant_info.
    twins = make_world(tmp_path / "twin", records=30)
    try:
        twin = next(twins)
        twin.reset_calls()
        assert engine.run(twin.config, env=twin.env).exit_code == 0
        assert world.calls() == {**twin.calls(), "GET /_edge/tenant_info": 1}
    finally:
        twins.close()
    assert report.api_calls["jira"]["GET /_edge/tenant_info"] == 1


def test_a_configured_cloud_id_skips_the_lookup(small_world):
    world = small_world
    use_token(world, email_env=None, token_kind="service_account")
    set_key(world, "cloud_id", world.description["jira"]["cloud_id"])
    world.reset_calls()

    report = engine.run(world.config, env={"RELSYNC_JIRA_TOKEN": world.env["RELSYNC_JIRA_TOKEN"]})

    assert report.exit_code == 0, report.messages
    assert "GET /_edge/tenant_info" not in world.calls()


def test_a_scoped_token_with_an_email_goes_as_basic_through_the_gateway(small_world):
    world = small_world
    use_token(world, token_kind="scoped")

    report = engine.run(world.config, env=world.env)

    assert report.exit_code == 0, report.messages
    assert report.pulled["jira"]["pulled"] == 30


def test_an_unknown_cloud_id_is_a_config_error_naming_the_key(small_world):
    world = small_world
    use_token(world, email_env=None, token_kind="service_account")
    set_key(world, "cloud_id", "00000000-0000-4000-8000-000000000000")

    report = engine.run(world.config, env={"RELSYNC_JIRA_TOKEN": world.env["RELSYNC_JIRA_TOKEN"]})

    assert (report.exit_code, report.status) == (2, "config_error")
    assert report.messages == [f"jira: the gateway has no Jira site at {world.jira_url}/ex/jira/"
                               "00000000-0000-4000-8000-000000000000 (check sources.jira.cloud_id)"]


def test_check_refuses_a_token_without_email_or_kind_and_passes_online_through_the_gateway(small_world):
    world = small_world
    runner = CliRunner()
    use_token(world, email_env=None, token_kind="service_account")
    env = {"RELSYNC_JIRA_TOKEN": world.env["RELSYNC_JIRA_TOKEN"]}

    online = runner.invoke(main, ["check", "--config", str(world.config_path), "--online", "--json"], env=env)
    assert online.exit_code == 0, online.output
    assert json.loads(online.output)["problems"] == {"jira": []}

    data = yaml.safe_load(world.config_path.read_text())
    del data["sources"]["jira"]["auth"]["token_kind"], data["sources"]["jira"]["gateway"]
    world.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    offline = runner.invoke(main, ["check", "--config", str(world.config_path)], env=env)
    assert offline.exit_code == 2
    assert "sources.jira.auth.email_env: a personal API token only works with the account's email" in offline.output


def test_a_site_without_tenant_info_asks_for_the_cloud_id(small_world):
    world = small_world
    use_token(world, email_env=None, token_kind="service_account")
    world.fault(method="GET", path="/_edge/tenant_info", status=404, times=1)

    report = engine.run(world.config, env={"RELSYNC_JIRA_TOKEN": world.env["RELSYNC_JIRA_TOKEN"]})

    assert (report.exit_code, report.status) == (2, "config_error")
    assert report.messages == [f"jira: found no cloud id at {world.jira_url}/_edge/tenant_info; set sources.jira.cloud_id "
                               "(Atlassian Administration shows it)"]
    assert world.calls() == {"GET /_edge/tenant_info": 1}
