"""A run stays inside its limits: a source that keeps failing is left alone, the deadline ends the run
cleanly, a write that may have landed is read back instead of repeated, and Retry-After is
honoured everywhere, the Salesforce login included.

Retries wait on a recording ``sleep`` (nothing is slept). The deadline runs on a timer
made of the sandbox's own call counter, "every API call takes 40 seconds", so where a run
stops is exact whatever the threads do.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from config.loader import load_config
from connectors.retry import RetryPolicy
from sync import engine
from sync.store import open_store
from tests.conftest import World
from tests.sync import test_salesforce_sync as salesforce_sync
from tests.sync.test_airtable_sync import AirtableWorld, only_eligible, use_release_target
from tests.sync.test_airtable_sync import make_world as make_airtable_world

PUT = "PUT /rest/api/3/issue/{key}"
WORKFLOW = "POST /rest/api/3/issue/{key}/transitions"
SEARCH = "GET /rest/api/3/search/jql"


class Waits:
    """A retry policy whose waits are recorded, not slept."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.policy = RetryPolicy(initial_wait=0.01, sleep=self.seconds.append)


def rows(world: Any, sql: str, params: Any = ()) -> list[dict[str, Any]]:
    db = open_store(world.config.store)
    try:
        return list(db.query(sql, params))
    finally:
        db.close()


def states(world: Any) -> dict[str, int]:
    return {r["state"]: r["n"] for r in rows(world, "select state, count(*) as n from outbox group by state")}


def with_source(world: World, **changes: Any) -> None:
    data = yaml.safe_load(world.config_path.read_text())
    data["sources"]["jira"].update(changes)
    world.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    world.config = load_config(world.config_path)


def with_deadline(world: World, seconds: float, **source: Any) -> None:
    data = yaml.safe_load(world.config_path.read_text())
    data["max_run_seconds"] = seconds
    data["sources"]["jira"].update(source)
    world.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    world.config = load_config(world.config_path)


def call_timer(url: str, seconds_per_call: float) -> Callable[[], float]:
    """A run's clock on which each API call the sandbox answered took ``seconds_per_call``."""
    return lambda: seconds_per_call * requests.get(f"{url}/_sandbox/calls", timeout=10).json()["total"]


# -- the breaker ---------------------------------------------------------------------------


def test_a_source_that_keeps_failing_is_left_alone_after_five_server_errors_in_a_row(small_world):
    world, waits = small_world, Waits()
    world.issue_by_issue()  # these limits are about single writes; bulk jobs are in test_jira_bulk.py
    world.fault(method="PUT", path="/rest/api/3/issue/*", status=503, times=1000)
    world.reset_calls()

    report = engine.run(world.config, env=world.env, policy=waits.policy)

    assert report.exit_code == 1 and report.status == "partial"
    calls = world.calls()
    assert calls[PUT] == 5 and WORKFLOW not in calls  # the first edit's five attempts, then nothing more
    assert len(waits.seconds) == 4
    waiting = rows(world, "select state, last_error from outbox")
    assert {r["state"] for r in waiting} == {"pending"} and report.pushed["jira"]["pending"] == len(waiting)
    assert waiting[0]["last_error"].startswith("not written: 5 server errors in a row (last: Service Unavailable)")
    assert (f"jira: 5 server errors in a row (last: Service Unavailable); nothing more is sent this run, and what is left "
            f"waits for the next run ({len(waiting)} write-backs)") in report.messages
    assert f"{len(waiting)} left for the next run" in report.summary()

    requests.delete(f"{world.jira_url}/_sandbox/faults", timeout=10).raise_for_status()
    again = engine.run(world.config, env=world.env, policy=waits.policy)

    assert again.exit_code == 0, again.messages
    assert states(world) == {"done": len(waiting)}


def test_the_breaker_limit_is_set_per_source(small_world):
    world, waits = small_world, Waits()
    world.issue_by_issue()  # these limits are about single writes; bulk jobs are in test_jira_bulk.py
    with_source(world, stop_after_server_errors=2)
    world.fault(method="PUT", path="/rest/api/3/issue/*", status=500, times=1000)
    world.reset_calls()

    report = engine.run(world.config, env=world.env, policy=waits.policy)

    assert report.exit_code == 1
    assert world.calls()[PUT] == 2 and len(waits.seconds) == 1
    assert set(states(world)) == {"pending"}


# -- the deadline --------------------------------------------------------------------------


def test_the_deadline_stops_a_pull_between_pages_and_the_next_run_continues(world):
    with_source(world, page_size=50)
    with_deadline(world, 170)
    world.reset_calls()

    report = engine.run(world.config, env=world.env, timer=call_timer(world.jira_url, 40))

    # serverInfo at 0 s, the field list at 40 s, pages at 80, 120 and 160 s; at 200 s no fourth page is asked for.
    assert report.exit_code == 1 and report.status == "partial"
    assert world.calls() == {"GET /rest/api/3/serverInfo": 1, "GET /rest/api/3/field": 1, SEARCH: 3}
    assert report.pulled["jira"]["pulled"] == 150
    assert rows(world, "select count(*) as n from change_requests")[0]["n"] == 150
    assert report.messages == ["run deadline of 170 s (max_run_seconds) reached; left for the next run: pulls of jira "
                               "(each continues from its last stored page)"]
    assert rows(world, "select status, message from runs")[0]["message"] == report.messages[0]

    with_deadline(world, 600)
    again = engine.run(world.config, env=world.env)

    assert again.exit_code == 0, again.messages
    assert rows(world, "select count(*) as n from change_requests")[0]["n"] == 250


def test_the_deadline_stops_a_push_between_writes_and_keeps_the_rest_pending(small_world):
    world = small_world
    world.issue_by_issue()  # these limits are about single writes; bulk jobs are in test_jira_bulk.py
    with_deadline(world, 400, history_max_calls=0)  # the push's calls alone, at 40 s each
    world.reset_calls()

    report = engine.run(world.config, env=world.env, timer=call_timer(world.jira_url, 40))

    # Ten calls fit before 400 s: serverInfo, the field list, the pull, the compare read, the
    # version list, the project, a version create, then the first issue's edit (its release, planned
    # date and phase in one PUT), transition lookup and move.
    calls = world.calls()
    assert sum(calls.values()) == 10 and calls[PUT] == 1 and calls[WORKFLOW] == 1
    assert report.exit_code == 1 and report.status == "partial"
    written = rows(world, "select request, field from outbox where state = 'done' order by request, field")
    assert [r["field"] for r in written] == ["phase", "planned_date", "release", "status"]
    waiting = rows(world, "select last_error from outbox where state = 'pending'")
    assert waiting and all(r["last_error"].startswith("not written: the run deadline was reached (max_run_seconds: 400)")
                           for r in waiting)
    assert report.messages == [f"run deadline of 400 s (max_run_seconds) reached; left for the next run: "
                               f"{len(waiting)} write-backs ({len(waiting)} jira)"]

    again = engine.run(world.config, env=world.env)
    assert again.exit_code == 0, again.messages
    assert set(states(world)) == {"done"}


def test_a_retry_never_waits_past_the_deadline(small_world):
    world, waits = small_world, Waits()
    with_deadline(world, 100)
    world.fault(method="GET", path="/rest/api/3/search/jql", status=429, headers={"Retry-After": "120"})
    world.reset_calls()

    report = engine.run(world.config, env=world.env, policy=waits.policy)

    assert waits.seconds == [] and world.calls() == {"GET /rest/api/3/serverInfo": 1, "GET /rest/api/3/field": 1, SEARCH: 1}
    assert report.exit_code == 1 and report.status == "partial"
    assert report.messages[0].startswith("run deadline of 100 s (max_run_seconds) reached")


# -- writes that may have landed ------------------------------------------------------------


@pytest.mark.parametrize(("fault", "timeout"), [
    ({"status": 504, "after": True}, 30),  # the issue moved, and a gateway answered 504
    ({"hold_seconds": 1}, 0.3),  # the issue moved, and the answer came after the client's timeout
], ids=["gateway-error", "timeout"])
def test_a_transition_that_landed_behind_an_error_is_read_back_not_repeated(small_world, fault, timeout):
    world, waits = small_world, Waits()
    world.issue_by_issue()  # these limits are about single writes; bulk jobs are in test_jira_bulk.py
    with_source(world, timeout_seconds=timeout)
    world.fault(method="POST", path="/rest/api/3/issue/*/transitions", **fault)
    world.reset_calls()

    report = engine.run(world.config, env=world.env, policy=waits.policy)

    # Repeated, the transition would be refused: "Transition id '31' is not valid for this issue."
    assert report.exit_code == 0, report.messages
    moved = rows(world, "select count(*) as n from outbox where field = 'status' and state = 'done'")[0]["n"]
    calls = world.calls()
    assert calls[WORKFLOW] == moved  # one POST each: the one that failed had moved its issue
    assert calls["GET /rest/api/3/issue/{key}"] == 1 and len(waits.seconds) == 1


def test_a_version_created_behind_a_server_error_is_found_not_created_twice(small_world):
    world, waits = small_world, Waits()
    world.fault(method="POST", path="/rest/api/3/version", status=503, after=True)
    world.reset_calls()

    report = engine.run(world.config, env=world.env, policy=waits.policy)

    assert report.exit_code == 0, report.messages
    calls = world.calls()
    created = {r["name"] for r in rows(world, "select distinct rel.name from assignments a join releases rel on rel.id = a.release")}
    assert calls["POST /rest/api/3/version"] == len(created)
    assert calls["GET /rest/api/3/project/{project}/versions"] == 2  # the list, and the read after the 503
    listed = requests.get(f"{world.jira_url}/rest/api/3/project/OPS/versions", timeout=10,
                          auth=(world.env["RELSYNC_JIRA_EMAIL"], world.env["RELSYNC_JIRA_TOKEN"])).json()
    names = [v["name"] for v in listed]
    assert all(names.count(name) == 1 for name in created)


@pytest.fixture
def airtable(tmp_path: Path) -> Iterator[AirtableWorld]:
    yield from make_airtable_world(tmp_path, records=40)


def test_an_airtable_link_record_created_behind_a_server_error_is_found_not_created_twice(airtable):
    world, waits = airtable, Waits()
    use_release_target(world, "link")
    only_eligible(world, approved=5)
    world.fault(method="POST", path="/v0/*/Releases", status=503, after=True)
    world.reset_calls()

    report = engine.run(world.config, env=world.env, policy=waits.policy)

    assert report.exit_code == 0, report.messages
    planned = {r["name"] for r in rows(world, "select distinct rel.name from assignments a join releases rel on rel.id = a.release")}
    names = [r["fields"].get("Name") for r in world.table("Releases").all()]
    assert all(names.count(name) == 1 for name in planned)
    assert world.calls()["POST /v0/{base_id}/{table}"] == len(planned)


# -- Retry-After at the Salesforce login ------------------------------------------------------

authority = salesforce_sync.authority  # the module's CA, shared with the Salesforce sync tests


@pytest.fixture
def org(authority, tmp_path: Path) -> Iterator[Any]:
    with contextlib.ExitStack() as stack:
        yield stack.enter_context(salesforce_sync.start_org(authority, tmp_path, 50))


def test_the_salesforce_login_waits_as_long_as_retry_after_says(org):
    waits = Waits()
    org.fault(method="POST", path="/services/oauth2/token", status=429, headers={"Retry-After": "6"},
              body={"error": "rate_limited", "error_description": "too many logins"})

    report = org.run(policy=waits.policy)

    assert report.exit_code == 0, report.messages
    assert waits.seconds == [6.0]
    assert org.calls()[salesforce_sync.TOKEN] == 2
