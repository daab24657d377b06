"""The auth keys: variable names that look like names, secrets refused unseen, Jira's token kinds."""
from __future__ import annotations

import pytest

from tests.config.test_config import JIRA_EXAMPLE, edit, error_for, load

SECRET_SHAPES = {
    "Salesforce consumer secret (64 hex)": "E8F1C2A9B3D4E5F60718293A4B5C6D7E8F9012345678ABCDEF0123456789ABCD",
    "lower-case hex": "9f86d081884c7d659a2feaa0c55ad015",
    "Salesforce consumer key": "3MVG9dZJodJWITSviqdj3EnW.LrZ81MbuGBqgIxxxdD6u7Mru2NOEs8bHFoFyNw_nbKPvlC2eY.ZyZxyYNxyz",
    "Atlassian API token": "ATATT3xFfGF0T4nq0xKqRu8v7sPzL-vM2yQd9k=7C1A2B3C",
    "Airtable personal access token": "patQ3cN8x7Yq2Zk1Ab.0123abcd4567ef890123abcd4567ef89",
    "base64": "q8Zk3R+7dW/ma0LpVb9T2nY4xC1eH6sJ=",
    "GitHub token": "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
}


@pytest.mark.parametrize("pasted", SECRET_SHAPES.values(), ids=SECRET_SHAPES.keys())
def test_a_secret_where_a_variable_name_belongs_is_refused_without_echo(pasted, tmp_path):
    error = error_for(edit("token_env: RELSYNC_JIRA_TOKEN", f'token_env: "{pasted}"'), tmp_path)
    assert error.path == "sources.jira.auth.token_env"
    assert "looks like a secret" in str(error) and "like RELSYNC_JIRA_TOKEN" in str(error)
    assert pasted not in str(error) and pasted[:12] not in str(error)


@pytest.mark.parametrize("name", ["RELSYNC_JIRA_TOKEN", "RELSYNC_SF_CLIENT_SECRET", "AWS_SECRET_ACCESS_KEY",
                                  "X509_PASSWORD_2026", "OAUTH2_CLIENT_ID", "_PRIVATE", "A" * 64])
def test_ordinary_variable_names_are_accepted(name, tmp_path):
    config = load(edit("token_env: RELSYNC_JIRA_TOKEN", f"token_env: {name}"), tmp_path)
    assert config.sources["jira"].auth.token_env == name


@pytest.mark.parametrize(("name", "why"), [
    ("relsync_jira_token", "has lower-case letters"),
    ("1RELSYNC_TOKEN", "starts with a digit"),
    ("RELSYNC-JIRA-TOKEN", "has characters other than A-Z, 0-9 and _"),
    ("R" * 65, "is 65 characters long (at most 64)"),
])
def test_a_bad_variable_name_names_the_key_and_what_is_wrong_without_echo(name, why, tmp_path):
    error = error_for(edit("email_env: RELSYNC_JIRA_EMAIL", f"email_env: {name}"), tmp_path)
    assert error.path == "sources.jira.auth.email_env"
    assert str(error).endswith(f"(like RELSYNC_JIRA_EMAIL); this one {why}")
    assert name not in str(error)


def test_a_secret_pasted_as_a_key_is_not_echoed(tmp_path):
    pasted = SECRET_SHAPES["Salesforce consumer secret (64 hex)"]
    error = error_for(edit("      email_env: RELSYNC_JIRA_EMAIL\n", f"      email_env: RELSYNC_JIRA_EMAIL\n      {pasted}: x\n"), tmp_path)
    assert error.path == "sources.jira.auth"
    assert "looks like a secret" in str(error) and pasted not in str(error)


# -- Jira token kinds ------------------------------------------------------------------------------


def jira_auth(auth: str, extra: str = "") -> str:
    text = edit("      email_env: RELSYNC_JIRA_EMAIL\n      token_env: RELSYNC_JIRA_TOKEN\n", auth)
    return text.replace("    project: OPS\n", "    project: OPS\n" + extra, 1)


def test_a_jira_token_without_email_or_kind_is_refused(tmp_path):
    error = error_for(jira_auth("      token_env: RELSYNC_JIRA_TOKEN\n"), tmp_path)
    assert error.path == "sources.jira.auth.email_env"
    assert "personal API token only works with the account's email" in str(error)
    assert "token_kind: service_account" in str(error)
    # Saying it is a personal token does not make an email unnecessary.
    error = error_for(jira_auth("      token_env: RELSYNC_JIRA_TOKEN\n      token_kind: api_token\n"), tmp_path)
    assert error.path == "sources.jira.auth.email_env"


def test_jira_token_kinds_and_the_gateway(tmp_path):
    plain = load(JIRA_EXAMPLE, tmp_path).sources["jira"]
    assert (plain.auth.kind, plain.auth.through_gateway, plain.gateway, plain.cloud_id) == ("api_token", False, None, None)

    service = load(jira_auth("      token_env: RELSYNC_JIRA_TOKEN\n      token_kind: service_account\n",
                             "    cloud_id: 1a11d016-8984-4c3e-b9ab-142dd06acb1b\n    gateway: http://127.0.0.1:8080/\n"),
                   tmp_path).sources["jira"]
    assert (service.auth.kind, service.auth.through_gateway) == ("service_account", True)
    assert (service.cloud_id, service.gateway) == ("1a11d016-8984-4c3e-b9ab-142dd06acb1b", "http://127.0.0.1:8080")

    scoped = load(jira_auth("      email_env: RELSYNC_JIRA_EMAIL\n      token_env: RELSYNC_JIRA_TOKEN\n      token_kind: scoped\n"),
                  tmp_path).sources["jira"]
    assert (scoped.auth.kind, scoped.auth.email_env, scoped.cloud_id) == ("scoped", "RELSYNC_JIRA_EMAIL", None)


@pytest.mark.parametrize(("extra", "path", "problem"), [
    ("    cloud_id: 1a11d016-8984-4c3e-b9ab-142dd06acb1b\n", "sources.jira.cloud_id", "only applies to tokens with scopes"),
    ("    gateway: https://api.atlassian.com\n", "sources.jira.gateway", "only applies to tokens with scopes"),
])
def test_gateway_keys_with_a_personal_token_are_refused(extra, path, problem, tmp_path):
    error = error_for(jira_auth("      email_env: RELSYNC_JIRA_EMAIL\n      token_env: RELSYNC_JIRA_TOKEN\n", extra), tmp_path)
    assert (error.path, problem in str(error)) == (path, True)


def test_bad_cloud_id_and_gateway_are_named(tmp_path):
    auth = "      token_env: RELSYNC_JIRA_TOKEN\n      token_kind: scoped\n"
    error = error_for(jira_auth(auth, "    cloud_id: my-site\n"), tmp_path)
    assert error.path == "sources.jira.cloud_id" and "_edge/tenant_info" in str(error)
    error = error_for(jira_auth(auth, "    gateway: api.atlassian.com\n"), tmp_path)
    assert error.path == "sources.jira.gateway" and "like https://api.atlassian.com" in str(error)
    error = error_for(jira_auth("      token_env: RELSYNC_JIRA_TOKEN\n      token_kind: bearer\n"), tmp_path)
    assert error.path == "sources.jira.auth.token_kind"
