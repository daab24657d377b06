"""The config file: the shipped example loads, and every mistake names the key to fix."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from config.loader import ConfigError, load_config, load_config_text, secret
from config.schema import CONVERTERS, Train
from mapping.converters import CONVERTERS as IMPLEMENTED

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples"
JIRA_EXAMPLE = (EXAMPLES / "jira.yaml").read_text()


def load(text: str, tmp_path: Path):
    return load_config_text(text, base_dir=tmp_path, file="relsync.yaml")


def error_for(text: str, tmp_path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(text, tmp_path)
    return caught.value


def edit(old: str, new: str) -> str:
    assert old in JIRA_EXAMPLE, old
    return JIRA_EXAMPLE.replace(old, new, 1)


# -- the shipped example ------------------------------------------------------------------


def test_jira_example_loads_with_the_documented_values():
    config = load_config(EXAMPLES / "jira.yaml")

    jira = config.sources["jira"]
    assert jira.kind == "jira"
    assert jira.url == "https://your-site.atlassian.net"
    assert (jira.auth.email_env, jira.auth.token_env) == ("RELSYNC_JIRA_EMAIL", "RELSYNC_JIRA_TOKEN")
    assert jira.project == "OPS"
    assert jira.jql == 'issuetype = "Change Request"'
    assert jira.fields.title.path == "fields.summary"
    assert jira.fields.description.convert == "adf_to_text"
    assert jira.fields.department.default == "Unassigned"
    assert jira.fields.status.map["In Progress"] == "in_progress"
    assert jira.fields.priority.map["Lowest"] == "low"
    assert jira.fields.release.path == "fields.fixVersions.0.name"
    assert jira.write.release.field == "fixVersions"
    assert jira.write.status == {"scheduled": "Scheduled", "approved": "Approved"}
    # Relative store paths live beside the config file, wherever relsync is started from.
    assert config.store == str(EXAMPLES / "relsync.db")

    (train,) = config.trains
    assert train.cadence.anchor == dt.date(2026, 1, 6)
    assert train.cadence.anchor.weekday() == 1  # the example promises a Tuesday
    assert train.deploy_time == dt.time(18, 0)
    assert (train.freeze_days, train.horizon, train.capacity) == (3, 4, 12)
    assert train.release_name_for(dt.date(2026, 1, 20)) == "BS 2026.01.20"
    assert [phase.phase for phase in train.phases] == [
        "planning", "requirements", "design", "development", "testing", "deployment", "maintenance",
    ]
    assert all(phase.owner and phase.days > 0 for phase in train.phases)


def test_schema_converters_are_exactly_the_implemented_ones():
    assert set(CONVERTERS) == set(IMPLEMENTED)
    assert len(CONVERTERS) == 9


# -- file-level problems --------------------------------------------------------------------


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert caught.value.path == ""
    assert str(caught.value) == f"{tmp_path / 'nope.yaml'}: no such file"


def test_yaml_syntax_error_reports_line_and_column(tmp_path):
    broken = edit("    project: OPS\n", "    project: OPS\n   jql: [unclosed\n")
    error = error_for(broken, tmp_path)
    line = broken.splitlines().index("   jql: [unclosed") + 1
    assert error.path == ""
    assert str(error).startswith("relsync.yaml: line ")
    assert f"line {line}, column 4: not valid YAML" in str(error)
    assert "check the indentation" in str(error)


def test_top_level_must_be_a_mapping(tmp_path):
    error = error_for("- jira\n- airtable\n", tmp_path)
    assert error.path == ""
    assert "top level must be a mapping" in str(error)
    assert "found a list" in str(error)


def test_repeated_key_is_an_error_not_silently_dropped(tmp_path):
    repeated = edit("      title: fields.summary\n", "      title: fields.summary\n      title: fields.key\n")
    error = error_for(repeated, tmp_path)
    assert error.path == "sources.jira.fields.title"
    first_line = repeated.splitlines().index("      title: fields.summary") + 1
    assert f"already set on line {first_line}" in str(error)


def test_yaml_12_scalars_keep_times_and_words(tmp_path):
    # YAML 1.1 reads 18:30 as the number 1110 and `No` as false.
    text = edit('deploy_time: "18:00"', "deploy_time: 18:30").replace("Open: new", "No: new\n          Open: new")
    config = load(text, tmp_path)
    assert config.trains[0].deploy_time == dt.time(18, 30)
    assert config.sources["jira"].fields.status.map["No"] == "new"


# -- validation errors name the key path ------------------------------------------------------


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    error = error_for(edit("    fields:\n", "    feilds:\n"), tmp_path)
    assert error.path == "sources.jira.feilds"
    assert "sources.jira.feilds: unknown key 'feilds'; did you mean 'fields'?" in str(error)
    # The missing `fields` is the same mistake; one message is enough.
    assert "required key missing" not in str(error)


def test_unknown_key_far_from_any_lists_the_valid_keys(tmp_path):
    error = error_for(edit("    freeze_days: 3\n", "    freeze_days: 3\n    colour: blue\n"), tmp_path)
    assert error.path == "trains.0.colour"
    assert "unknown key 'colour'; valid keys here: name, cadence, release_name" in str(error)


def test_status_mapped_to_an_unknown_status_names_the_map(tmp_path):
    error = error_for(edit("In Testing: testing", "In Testing: qa"), tmp_path)
    assert error.path == "sources.jira.fields.status.map"
    assert "'In Testing' maps to 'qa', which is not a relsync status" in str(error)
    assert "in_progress" in str(error)  # the valid choices are listed


def test_priority_default_outside_the_vocabulary(tmp_path):
    error = error_for(edit("          Lowest: low\n", "          Lowest: low\n        default: urgent\n"), tmp_path)
    assert error.path == "sources.jira.fields.priority.default"
    assert "'urgent' is not a relsync priority" in str(error)


def test_every_problem_is_listed_and_the_kind_tag_is_not_in_paths(tmp_path):
    text = edit("every_days: 14", "every_days: fortnightly").replace("capacity: 12", "capacity: 0")
    text = text.replace("url: https://your-site.atlassian.net", "url: your-site")
    error = error_for(text, tmp_path)
    paths = [path for path, _ in error.problems]
    assert paths == ["sources.jira.url", "trains.0.cadence.every_days", "trains.0.capacity"]
    assert "3 problems" in str(error)
    assert "trains.0.capacity: must be at least 1" in str(error)
    assert "trains.0.cadence.every_days: expected a whole number, found 'fortnightly'" in str(error)


def test_missing_required_key(tmp_path):
    error = error_for(edit("    project: OPS\n", ""), tmp_path)
    assert str(error) == "relsync.yaml: sources.jira.project: required key missing"


def test_source_without_a_known_kind(tmp_path):
    error = error_for(edit("kind: jira", "kind: jra"), tmp_path)
    assert error.path == "sources.jira"
    assert "kind 'jra' is not a system relsync knows; use one of jira" in str(error)
    error = error_for(edit("    kind: jira\n", ""), tmp_path)
    assert "required key 'kind' missing" in str(error)


def test_release_name_with_unknown_placeholder(tmp_path):
    error = error_for(edit("BS {deploy:%Y.%m.%d}", "BS {release} {deploy:%Y.%m.%d}"), tmp_path)
    assert error.path == "trains.0.release_name"
    assert "unknown placeholder {release}" in str(error)


def test_release_name_that_repeats_on_the_cadence(tmp_path):
    error = error_for(edit("BS {deploy:%Y.%m.%d}", "BS {deploy:%Y.%m}"), tmp_path)
    assert error.path == "trains.0.release_name"
    assert "same name 'BS 2026.01' to the releases deploying on 2026-01-06 and 2026-01-20" in str(error)


def test_release_name_pattern_default_formats():
    train = Train(name="crm", cadence={"every_days": 7, "anchor": "2026-01-06"})
    assert train.release_name_for(dt.datetime(2026, 2, 3, 18)) == "crm 2026-02-03"


def test_phases_out_of_order(tmp_path):
    text = edit("      - {phase: planning, days: 1, owner: Release Manager}\n", "").replace(
        "      - {phase: maintenance", "      - {phase: planning, days: 1, owner: Release Manager}\n      - {phase: maintenance"
    )
    error = error_for(text, tmp_path)
    assert error.path == "trains.0.phases"
    assert "SDLC order" in str(error)


def test_written_status_must_read_back_as_itself(tmp_path):
    error = error_for(edit("scheduled: Scheduled", "scheduled: Approved"), tmp_path)
    assert error.path == "sources.jira.write.status.scheduled"
    assert "'Approved' reads back as 'approved'" in str(error)
    error = error_for(edit("scheduled: Scheduled", "scheduled: Planned"), tmp_path)
    assert "'Planned' is not in fields.status.map" in str(error)


def test_duplicate_train_names(tmp_path):
    second = "\n  - name: business-systems\n    cadence: {every_days: 7, anchor: 2026-01-06}\n"
    error = error_for(JIRA_EXAMPLE + second, tmp_path)
    assert error.path == "trains.1.name"
    assert "already called 'business-systems'" in str(error)


# -- secrets --------------------------------------------------------------------------------------


def test_token_in_the_file_says_use_token_env(tmp_path):
    pasted = "ATATT3xFfGF0-not-a-real-token"
    error = error_for(edit("token_env: RELSYNC_JIRA_TOKEN", f"token: {pasted}"), tmp_path)
    assert error.path == "sources.jira.auth.token"
    assert "secrets never go in the config file" in str(error)
    assert "token_env" in str(error)
    assert pasted not in str(error)
    # The pydantic error (which carries the input) is not chained into tracebacks.
    assert error.__cause__ is None and error.__suppress_context__


def test_password_in_the_file_says_use_token_env(tmp_path):
    error = error_for(edit("      token_env: RELSYNC_JIRA_TOKEN\n", "      token_env: T\n      password: hunter2\n"), tmp_path)
    assert error.path == "sources.jira.auth.password"
    assert "use token_env" in str(error)
    assert "hunter2" not in str(error)


def test_secret_pasted_into_token_env_is_not_echoed(tmp_path):
    pasted = "ATATT3xFfGF0+abc/def="
    error = error_for(edit("token_env: RELSYNC_JIRA_TOKEN", f'token_env: "{pasted}"'), tmp_path)
    assert error.path == "sources.jira.auth.token_env"
    assert "name of an environment variable" in str(error)
    assert pasted not in str(error)


def test_secret_reads_the_environment(monkeypatch):
    monkeypatch.setenv("RELSYNC_JIRA_TOKEN", "tok-123\n")
    assert secret("RELSYNC_JIRA_TOKEN", "sources.jira.auth.token_env") == "tok-123"


def test_missing_secret_names_the_key_and_variable(monkeypatch):
    monkeypatch.delenv("RELSYNC_JIRA_TOKEN", raising=False)
    with pytest.raises(ConfigError) as caught:
        secret("RELSYNC_JIRA_TOKEN", "sources.jira.auth.token_env")
    assert caught.value.path == "sources.jira.auth.token_env"
    assert str(caught.value) == (
        "sources.jira.auth.token_env: environment variable RELSYNC_JIRA_TOKEN is not set"
    )


def test_empty_secret_is_an_error_without_the_value(monkeypatch):
    monkeypatch.setenv("RELSYNC_JIRA_TOKEN", "   ")
    with pytest.raises(ConfigError) as caught:
        secret("RELSYNC_JIRA_TOKEN", "sources.jira.auth.token_env")
    assert "RELSYNC_JIRA_TOKEN is set but empty" in str(caught.value)


# -- paths beside the config file -------------------------------------------------------------------


def test_relative_paths_resolve_beside_the_config(tmp_path, monkeypatch):
    folder = tmp_path / "etc" / "relsync"
    folder.mkdir(parents=True)
    (folder / "certs").mkdir()
    (folder / "certs" / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    text = edit("store: relsync.db", "store: data/relsync.db").replace(
        "    project: OPS\n", "    project: OPS\n    ca_bundle: certs/ca.pem\n"
    )
    (folder / "relsync.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)  # relsync is started from somewhere else, as cron does

    config = load_config("etc/relsync/relsync.yaml")

    assert config.store == str(folder / "data" / "relsync.db")
    assert config.sources["jira"].ca_bundle == str(folder / "certs" / "ca.pem")


def test_absolute_store_path_is_kept(tmp_path):
    config = load(edit("store: relsync.db", "store: /var/lib/relsync/ops.db"), tmp_path / "elsewhere")
    assert config.store == "/var/lib/relsync/ops.db"


def test_a_postgresql_store_is_kept_as_its_url(tmp_path):
    config = load(edit("store: relsync.db", "store: postgresql://relsync@db.example.com:5433/relsync"), tmp_path)
    assert config.store == "postgresql://relsync@db.example.com:5433/relsync"  # not a file beside the config


def test_a_postgresql_store_url_with_a_password_is_refused(tmp_path):
    error = error_for(edit("store: relsync.db", "store: postgresql://relsync:hunter2@db.example.com/relsync"), tmp_path)
    assert error.path == "store"
    assert "RELSYNC_STORE_PASSWORD" in str(error) and "hunter2" not in str(error)


def test_missing_ca_bundle_names_the_key(tmp_path):
    error = error_for(edit("    project: OPS\n", "    project: OPS\n    ca_bundle: missing.pem\n"), tmp_path)
    assert error.path == "sources.jira.ca_bundle"
    assert f"no file at {tmp_path / 'missing.pem'}" in str(error)


def test_bad_date_names_the_key_and_the_value(tmp_path):
    error = error_for(edit("anchor: 2026-01-06", "anchor: 2026-13-06"), tmp_path)
    assert str(error) == (
        "relsync.yaml: trains.0.cadence.anchor: expected a date like 2026-01-06, found '2026-13-06'"
    )


def test_nested_aliases_are_checked_once(tmp_path):
    # A "billion laughs" document: walking every alias would take forever.
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]" for n in range(1, 9)]
    error = error_for("\n".join(lines) + "\n", tmp_path)
    assert "l0: unknown key 'l0'" in str(error)


def test_secret_from_a_given_environment_ignores_os_environ(monkeypatch):
    monkeypatch.setenv("RELSYNC_JIRA_TOKEN", "from-os")
    env = {"RELSYNC_JIRA_TOKEN": "from-sandbox"}
    assert secret("RELSYNC_JIRA_TOKEN", "sources.jira.auth.token_env", env) == "from-sandbox"
    with pytest.raises(ConfigError, match="RELSYNC_JIRA_EMAIL is not set"):
        secret("RELSYNC_JIRA_EMAIL", "sources.jira.auth.email_env", env)


def test_config_error_from_one_message_keeps_the_key_path():
    error = ConfigError("sources.jira.kind: unsupported source kind 'x'")
    assert (error.path, error.problem) == ("sources.jira.kind", "unsupported source kind 'x'")
    assert str(error) == "sources.jira.kind: unsupported source kind 'x'"
    assert ConfigError("the file is empty").path == ""


# -- release trains: routing, cadence forms, timezone, blackouts, quotas, expedite -------------------

HOTFIX = """
  - name: hotfix
    match: {priorities: [critical]}
    cadence: {every_weeks: 1, weekday: thursday}
"""


def with_train_before(text: str, train: str = HOTFIX) -> str:
    return text.replace("trains:\n", "trains:" + train, 1)


def test_all_three_example_plans_critical_requests_on_a_weekly_hotfix_train():
    config = load_config(EXAMPLES / "all-three.yaml")

    hotfix, business = config.trains
    assert hotfix.name == "hotfix" and hotfix.match.priorities == ["critical"]
    assert (hotfix.cadence.every_weeks, hotfix.cadence.weekday, hotfix.capacity) == (1, "thursday", 6)
    assert hotfix.expedite.priorities == ["critical"]
    assert business.catch_all and business.capacity == 20
    (year_end,) = business.blackouts
    assert (year_end.start, year_end.end, year_end.action) == (dt.date(2026, 12, 19), dt.date(2026, 12, 28), "move")
    # The other examples keep one catch-all train.
    for single in ("jira.yaml", "airtable.yaml", "salesforce.yaml"):
        (train,) = load_config(EXAMPLES / single).trains
        assert train.catch_all and not train.blackouts and train.expedite is None


def test_a_train_after_a_catch_all_is_an_error_naming_the_match(tmp_path):
    error = error_for(JIRA_EXAMPLE + HOTFIX, tmp_path)
    assert error.path == "trains.0.match"
    assert "takes every request (no match), so 'hotfix' after it would never get any" in str(error)
    assert load(with_train_before(JIRA_EXAMPLE), tmp_path).trains[0].name == "hotfix"


def test_two_trains_may_not_name_their_releases_alike(tmp_path):
    error = error_for(with_train_before(JIRA_EXAMPLE, HOTFIX + '    release_name: "BS {deploy:%Y.%m.%d}"\n'), tmp_path)
    assert error.path == "trains.1.release_name"
    assert "same names as train 'hotfix' (e.g. 'BS 2026.11.24')" in str(error)


def test_match_must_say_something_and_name_known_sources(tmp_path):
    error = error_for(with_train_before(JIRA_EXAMPLE, HOTFIX.replace("{priorities: [critical]}", "{}")), tmp_path)
    assert error.path == "trains.0.match"
    assert "leave match out to take every request" in str(error)
    error = error_for(with_train_before(JIRA_EXAMPLE, HOTFIX.replace("priorities: [critical]", "sources: [jira, sf]")),
                      tmp_path)
    assert error.path == "trains.0.match.sources.1"
    assert "no source is called 'sf'; sources: jira" in str(error)
    error = error_for(with_train_before(JIRA_EXAMPLE, HOTFIX.replace("[critical]", "[urgent]")), tmp_path)
    assert error.path == "trains.0.match.priorities.0"


@pytest.mark.parametrize(
    ("cadence", "path", "problem"),
    [
        ("{every_weeks: 2, weekday: tuesday, anchor: 2026-01-07}", "anchor",
         "2026-01-07 is a wednesday, not a tuesday"),
        ("{every_weeks: 2, weekday: tuesday}", "anchor", "a tuesday that deploys"),
        ("{every_weeks: 1}", "weekday", "required key missing"),
        ("{every_days: 7, every_weeks: 1, weekday: monday, anchor: 2026-01-05}", "every_days", "not both"),
        ("{every_days: 7}", "anchor", "required key missing"),
        ("{anchor: 2026-01-06}", "every_days", "every_days with anchor, or every_weeks with weekday"),
        ("{every_weeks: 1, weekday: tues}", "weekday", "must be one of"),
    ],
)
def test_cadence_mistakes_name_the_key(tmp_path, cadence, path, problem):
    text = edit("    cadence:\n      every_days: 14\n      anchor: 2026-01-06\n", f"    cadence: {cadence}\n")
    error = error_for(text, tmp_path)
    assert error.path == f"trains.0.cadence.{path}"
    assert problem in str(error)


def test_every_n_weeks_on_a_weekday(tmp_path):
    text = edit("    cadence:\n      every_days: 14\n      anchor: 2026-01-06\n",
                "    cadence: {every_weeks: 2, weekday: Tuesday, anchor: 2026-01-06}\n")
    (train,) = load(text, tmp_path).trains
    cadence = train.cadence
    assert (cadence.step_days, cadence.origin, cadence.weekday) == (14, dt.date(2026, 1, 6), "tuesday")


def test_timezone_is_an_iana_name_and_excludes_an_offset_on_the_time(tmp_path):
    (train,) = load(edit('deploy_time: "18:00"', 'deploy_time: "18:00"\n    timezone: Europe/Berlin'), tmp_path).trains
    assert str(train.zone) == "Europe/Berlin"
    error = error_for(edit('deploy_time: "18:00"', 'deploy_time: "18:00"\n    timezone: Europe/Berln'), tmp_path)
    assert error.path == "trains.0.timezone"
    assert "'Europe/Berln' is not an IANA timezone name" in str(error)
    error = error_for(edit('deploy_time: "18:00"', 'deploy_time: "18:00+01:00"\n    timezone: Europe/Berlin'), tmp_path)
    assert error.path == "trains.0.deploy_time"


def test_blackouts_are_checked(tmp_path):
    def blackout(spec: str) -> str:
        return edit("    freeze_days: 3\n", f"    freeze_days: 3\n    blackouts:\n      - {spec}\n")

    (train,) = load(blackout("{name: Year end, start: 2026-12-21, end: 2027-01-04}"), tmp_path).trains
    assert train.blackouts[0].action == "move"  # the default
    error = error_for(blackout("{name: Year end, start: 2027-01-04, end: 2026-12-21, action: skip}"), tmp_path)
    assert error.path == "trains.0.blackouts.0.end"
    assert "2026-12-21 is before start 2027-01-04" in str(error)
    error = error_for(blackout("{name: Year end, start: 2026-12-21, end: 2027-01-04, action: delay}"), tmp_path)
    assert error.path == "trains.0.blackouts.0.action"


def test_capacity_is_a_count_or_a_total_with_department_quotas(tmp_path):
    split = "capacity: {total: 12, by_department: {Sales Ops: 4, Finance Ops: 3}}"
    (train,) = load(edit("capacity: 12", split), tmp_path).trains
    assert (train.total_capacity, train.quotas) == (12, (("Sales Ops", 4), ("Finance Ops", 3)))
    error = error_for(edit("capacity: 12", "capacity: {total: 5, by_department: {Sales Ops: 4, IT: 3}}"), tmp_path)
    assert error.path == "trains.0.capacity.by_department"
    assert "the quotas add up to 7, more than the total of 5" in str(error)
    error = error_for(edit("capacity: 12", "capacity: {total: 5, by_department: {IT: 1, it: 1}}"), tmp_path)
    assert error.path == "trains.0.capacity.by_department.it"
    error = error_for(edit("capacity: 12", "capacity: {total: 0}"), tmp_path)
    assert error.path == "trains.0.capacity.total"
    assert "must be at least 1" in str(error)
    error = error_for(edit("capacity: 12", "capacity: {totl: 5}"), tmp_path)
    assert [path for path, _ in error.problems] == ["trains.0.capacity.total", "trains.0.capacity.totl"]
    assert "unknown key 'totl'" in str(error)


def test_expedite_and_open_releases(tmp_path):
    text = edit("    freeze_days: 3\n",
                "    freeze_days: 3\n    open_releases: 2\n    expedite: {priorities: [critical, high]}\n")
    (train,) = load(text, tmp_path).trains
    assert (train.open_releases, train.expedite.priorities) == (2, ["critical", "high"])
    error = error_for(edit("    freeze_days: 3\n", "    freeze_days: 3\n    expedite: {priorities: []}\n"), tmp_path)
    assert error.path == "trains.0.expedite.priorities"
