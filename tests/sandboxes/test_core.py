"""The shared sandbox core (counter, limiter, faults, hooks, clock), the server, and the seed.

Time: every window a sandbox keeps runs on the app's time source. These tests build the
app with a ``ManualTime`` and advance it, so they stand exactly on a window's edge
instead of sleeping past it. What they pin down:
- A request admitted at ``t`` fills the rate-limit window until ``t + per_seconds``; at
  that instant it has left (the window is half-open), so the request is admitted again.
- A computed Retry-After is the wait until the oldest request leaves, rounded up to whole
  seconds and never below 1; refused requests do not fill the window.
- A penalty opened at ``t`` refuses everything before ``t + penalty_seconds``, even when
  the window has room, and nothing from then on.
- ``ManualTime`` counts whole nanoseconds, so decimal steps add up exactly.
"""
from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask
import pytest
import requests

from sandboxes.clock import MANUAL_START, SYSTEM_TIME, Clock, ManualTime, TimeSource
from sandboxes.core import controls, make_app, sandbox_route
from sandboxes.seed import (
    ANCHOR,
    DEPARTMENTS,
    PRIORITIES,
    REQUEST_TYPES,
    STATUSES,
    iter_seed_requests,
    seed_requests,
)
from sandboxes.server import RunningSandbox, Sandboxes, serve, start_sandboxes
from tests.sandboxes.conftest import calls, knob

OK = {"X-Key": "ok"}


def toy_app(penalty_seconds: float = 0.0, time_source: TimeSource = SYSTEM_TIME) -> flask.Flask:
    """A minimal sandbox on the core: one record store, a crashing route, a custom knob."""
    items: dict[str, str] = {"a": "first"}

    def unauthorized() -> flask.Response:
        return flask.Response("who are you", status=401)

    def throttled(seconds: float) -> flask.Response:
        response = flask.jsonify({"error": "slow down"})
        response.status_code = 429
        response.headers["Retry-After"] = str(int(seconds))
        return response

    app = make_app("toy", auth=lambda r: r.headers.get("X-Key") == "ok", unauthorized=unauthorized,
                   throttled=throttled, fault_body=lambda status: {"fault": status}, penalty_seconds=penalty_seconds,
                   time_source=time_source)

    @app.get("/items/<item_id>")
    def get_item(item_id: str) -> flask.Response:
        return flask.jsonify({"id": item_id, "value": items.get(item_id)})

    @app.put("/items/<item_id>")
    def put_item(item_id: str) -> flask.Response:
        items[item_id] = flask.request.get_json()["value"]
        return flask.Response(status=204)

    @app.get("/boom")
    def boom() -> flask.Response:
        raise RuntimeError("handler crashed")

    @sandbox_route(app, "/toy/poke", methods=["POST"])
    def poke() -> flask.Response:
        controls(app).schedule("next-read", lambda: items.update(a="poked"))
        return flask.Response(status=202)

    return app


@pytest.fixture
def toy() -> Iterator[RunningSandbox]:
    with serve(toy_app()) as running:
        yield running


def test_clock_is_strictly_increasing_by_a_millisecond_and_respects_its_floor() -> None:
    floor = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    clock = Clock(floor=floor)
    stamps = [clock.now() for _ in range(500)]
    assert stamps[0] > floor and stamps[0] - floor <= dt.timedelta(milliseconds=1)
    assert all(b - a >= dt.timedelta(milliseconds=1) for a, b in itertools.pairwise(stamps))
    assert all(s.microsecond % 1000 == 0 and s.tzinfo == dt.UTC for s in stamps)


def test_clock_is_distinct_across_threads() -> None:
    clock, stamps, lock = Clock(), [], threading.Lock()

    def tick() -> None:
        mine = [clock.now() for _ in range(200)]
        with lock:
            stamps.extend(mine)

    workers = [threading.Thread(target=tick) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(set(stamps)) == 800


def test_counter_keys_are_route_rules_and_count_every_answer(toy: RunningSandbox) -> None:
    requests.get(f"{toy.url}/items/a", headers=OK)
    requests.get(f"{toy.url}/items/b", headers=OK)
    requests.put(f"{toy.url}/items/a", headers=OK, json={"value": "x"})
    requests.get(f"{toy.url}/items/a")  # 401, still counted
    requests.get(f"{toy.url}/nowhere", headers=OK)  # no rule: raw path
    requests.get(f"{toy.url}/boom", headers=OK)  # 500
    knob(toy, "/config", {"latency_ms": 0})  # knobs are never counted
    snapshot = calls(toy)
    assert snapshot == {
        "total": 6,
        "calls": {"GET /boom": 1, "GET /items/{item_id}": 3, "GET /nowhere": 1, "PUT /items/{item_id}": 1},
        "statuses": {"200": 2, "204": 1, "401": 1, "404": 1, "500": 1},
    }
    assert knob(toy, "/calls/reset").status_code == 204
    assert calls(toy) == {"total": 0, "calls": {}, "statuses": {}}


def test_counter_is_exact_under_concurrent_requests(toy: RunningSandbox) -> None:
    def hammer() -> None:
        with requests.Session() as session:
            for _ in range(25):
                session.get(f"{toy.url}/items/a", headers=OK)

    workers = [threading.Thread(target=hammer) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert calls(toy)["calls"] == {"GET /items/{item_id}": 200}


def test_rate_limit_refuses_only_requests_over_the_limit(toy: RunningSandbox) -> None:
    knob(toy, "/config", {"rate_limit": {"requests": 2, "per_seconds": 60, "retry_after": 3}})
    codes = [requests.get(f"{toy.url}/items/a", headers=OK) for _ in range(4)]
    assert [r.status_code for r in codes] == [200, 200, 429, 429]
    assert codes[2].headers["Retry-After"] == "3" and codes[2].json() == {"error": "slow down"}
    assert calls(toy)["statuses"] == {"200": 2, "429": 2}
    assert knob(toy, "/config", {"rate_limit": None}).json()["rate_limit"] is None
    assert requests.get(f"{toy.url}/items/a", headers=OK).status_code == 200


def test_rate_limit_window_reopens_exactly_when_its_oldest_request_leaves() -> None:
    clock = ManualTime()
    with serve(toy_app(time_source=clock)) as running:
        knob(running, "/config", {"rate_limit": {"requests": 2, "per_seconds": 10}})

        def get() -> requests.Response:
            return requests.get(f"{running.url}/items/a", headers=OK)

        assert get().status_code == 200  # t=0
        clock.advance(4)
        assert get().status_code == 200  # t=4: the window holds 0 and 4
        full = get()
        assert full.status_code == 429 and full.headers["Retry-After"] == "6"  # until the request at 0 leaves
        clock.advance(5.999)
        almost = get()  # t=9.999: a millisecond early is still refused
        assert almost.status_code == 429 and almost.headers["Retry-After"] == "1"  # 0.001 s, rounded up to a whole second
        clock.advance(0.001)
        assert get().status_code == 200  # t=10: the request at 0 has left; refusals never filled the window
        again = get()
        assert again.status_code == 429 and again.headers["Retry-After"] == "4"  # now 4 is the oldest
        clock.advance(4)
        assert get().status_code == 200  # t=14
        assert calls(running)["statuses"] == {"200": 4, "429": 3}


def test_penalty_window_refuses_everything_until_it_ends() -> None:
    clock = ManualTime()
    with serve(toy_app(penalty_seconds=30, time_source=clock)) as running:
        knob(running, "/config", {"rate_limit": {"requests": 2, "per_seconds": 1}})

        def get() -> requests.Response:
            return requests.get(f"{running.url}/items/a", headers=OK)

        first = [get() for _ in range(3)]  # t=0: the third opens a 30 s penalty
        assert [r.status_code for r in first] == [200, 200, 429] and first[2].headers["Retry-After"] == "30"
        clock.advance(1)
        room = get()  # t=1: the window has room again, but the penalty still runs
        assert room.status_code == 429 and room.headers["Retry-After"] == "29"
        clock.advance(28.999)
        last = get()  # t=29.999: the penalty's last millisecond
        assert last.status_code == 429 and last.headers["Retry-After"] == "1"
        clock.advance(0.001)
        assert get().status_code == 200  # t=30: over, and refusals inside it did not extend it
        assert get().status_code == 200
        third = get()  # over the limit again: a fresh 30 s penalty
        assert third.status_code == 429 and third.headers["Retry-After"] == "30"
        assert calls(running)["statuses"] == {"200": 4, "429": 4}


def test_a_fixed_retry_after_is_sent_whatever_the_wait() -> None:
    clock = ManualTime()
    with serve(toy_app(time_source=clock)) as running:
        knob(running, "/config", {"rate_limit": {"requests": 1, "per_seconds": 60, "retry_after": 3}})
        assert requests.get(f"{running.url}/items/a", headers=OK).status_code == 200
        clock.advance(59.5)
        refused = requests.get(f"{running.url}/items/a", headers=OK)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "3"  # not the 0.5 s left
        clock.advance(0.5)
        assert requests.get(f"{running.url}/items/a", headers=OK).status_code == 200


def test_reconfiguring_the_limit_forgets_past_requests_and_penalties() -> None:
    clock = ManualTime()
    with serve(toy_app(penalty_seconds=30, time_source=clock)) as running:
        knob(running, "/config", {"rate_limit": {"requests": 1, "per_seconds": 60}})
        codes = [requests.get(f"{running.url}/items/a", headers=OK).status_code for _ in range(2)]
        knob(running, "/config", {"rate_limit": {"requests": 1, "per_seconds": 60}})  # same limit, fresh state
        codes.append(requests.get(f"{running.url}/items/a", headers=OK).status_code)
    assert codes == [200, 429, 200]


def test_manual_time_moves_only_when_advanced_and_adds_steps_exactly() -> None:
    clock = ManualTime()
    assert (clock.monotonic(), clock.utc()) == (0.0, MANUAL_START)
    for _ in range(10):
        clock.advance(0.1)
    assert clock.monotonic() == 1.0  # ten floats of 0.1 would add up to 0.9999999999999999
    assert clock.utc() == MANUAL_START + dt.timedelta(seconds=1)
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="aware"):
        ManualTime(dt.datetime(2026, 1, 1))  # naive on purpose


def test_clock_stamps_read_the_time_source_and_tick_while_it_stands_still() -> None:
    source = ManualTime(dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC))
    clock = Clock(floor=MANUAL_START, source=source)
    assert clock.peek() == dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
    stamps = [clock.now() for _ in range(3)]
    assert stamps == [dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC) + dt.timedelta(milliseconds=n) for n in range(3)]
    source.advance(60)
    assert clock.now() == dt.datetime(2026, 12, 1, 9, 31, tzinfo=dt.UTC)
    behind = Clock(floor=dt.datetime(2027, 1, 1, tzinfo=dt.UTC), source=source)  # seeded data after the source's time
    assert behind.now() == dt.datetime(2027, 1, 1, 0, 0, 0, 1000, tzinfo=dt.UTC)


def test_fault_replaces_the_handler_times_then_disappears(toy: RunningSandbox) -> None:
    knob(toy, "/faults", {"method": "PUT", "path": "/items/*", "status": 503, "times": 2, "headers": {"Retry-After": "1"}})
    assert requests.get(f"{toy.url}/items/a", headers=OK).status_code == 200  # other method untouched
    answers = [requests.put(f"{toy.url}/items/a", headers=OK, json={"value": f"v{i}"}) for i in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 204]
    assert answers[0].json() == {"fault": 503} and answers[0].headers["Retry-After"] == "1"
    assert requests.get(f"{toy.url}/items/a", headers=OK).json()["value"] == "v2"  # faulted writes changed nothing
    assert knob(toy, "/faults", method="GET").json() == {"faults": [], "held": 0}


def test_a_held_answer_comes_after_the_write_was_applied(toy: RunningSandbox) -> None:
    """``hold_seconds``: the request is handled (a write lands), then its answer is held back;
    a client that gives up, or is killed, meanwhile never hears that its write landed."""
    knob(toy, "/faults", {"method": "PUT", "path": "/items/*", "hold_seconds": 1})
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.put(f"{toy.url}/items/a", headers=OK, json={"value": "landed"}, timeout=0.3)
    assert knob(toy, "/faults", method="GET").json() == {"faults": [], "held": 1}
    assert requests.get(f"{toy.url}/items/a", headers=OK).json()["value"] == "landed"
    assert requests.post(f"{toy.url}/_sandbox/faults", json={"path": "/x", "status": 500, "hold_seconds": 1}).status_code == 400


def test_fault_with_body_and_delay_only_fault(toy: RunningSandbox) -> None:
    knob(toy, "/faults", {"path": "/items/a", "status": 500, "body": {"custom": True}})
    assert requests.get(f"{toy.url}/items/a", headers=OK).json() == {"custom": True}
    knob(toy, "/faults", {"path": "/items/a", "delay_seconds": 0.5})
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{toy.url}/items/a", headers=OK, timeout=0.2)
    knob(toy, "/faults", {"path": "/items/*", "delay_seconds": 0.2})
    started = time.monotonic()
    answer = requests.get(f"{toy.url}/items/a", headers=OK)
    assert answer.status_code == 200 and time.monotonic() - started >= 0.2  # delayed, then the real handler
    knob(toy, "/faults", {"path": "/items/*", "status": 502, "times": 5})
    assert knob(toy, "/faults", method="DELETE").status_code == 204
    assert requests.get(f"{toy.url}/items/a", headers=OK).status_code == 200


def test_bad_knob_bodies_are_refused(toy: RunningSandbox) -> None:
    assert requests.post(f"{toy.url}/_sandbox/faults", json={"status": 500}).status_code == 400
    assert requests.post(f"{toy.url}/_sandbox/faults", json={"path": "/x"}).status_code == 400
    assert requests.post(f"{toy.url}/_sandbox/config", json={"rate_limit": {"per_seconds": 1}}).status_code == 400


def test_apps_add_their_own_knobs_and_scheduled_actions(toy: RunningSandbox) -> None:
    assert requests.post(f"{toy.url}/_sandbox/toy/poke").status_code == 202
    app = toy.app
    assert controls(app).pending() == {"next-read": 1}
    assert controls(app).run_scheduled("next-read") == 1
    assert controls(app).run_scheduled("next-read") == 0
    assert requests.get(f"{toy.url}/items/a", headers=OK).json()["value"] == "poked"


def test_serve_uses_a_free_port_and_stop_releases_it() -> None:
    first, second = serve(toy_app()), serve(toy_app())
    try:
        assert first.url != second.url and first.url.startswith("http://127.0.0.1:")
    finally:
        first.stop()
        second.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{first.url}/items/a", headers=OK, timeout=1)


def test_start_sandboxes_describes_jira_and_makes_a_fresh_token_each_start() -> None:
    with start_sandboxes(records=5) as one, start_sandboxes(records=5) as two:
        described = one.describe()
        assert set(described) == {"jira"}
        assert described["jira"]["project"] == "OPS" and described["jira"]["url"] == one.jira.url
        assert described["jira"]["env"]["RELSYNC_JIRA_EMAIL"] == "relsync@example.com"
        assert described["jira"]["env"]["RELSYNC_JIRA_TOKEN"] != two.describe()["jira"]["env"]["RELSYNC_JIRA_TOKEN"]
        with pytest.raises(AttributeError, match="no 'airtable' sandbox"):
            one.airtable  # noqa: B018
    with pytest.raises(ValueError, match="no sandbox for servicenow"):
        start_sandboxes(systems=("jira", "servicenow"))


def test_start_sandboxes_takes_the_kind_profile_by_name_for_every_system(tmp_path: Path) -> None:
    systems = ("jira", "airtable", "salesforce")

    def config(started: Sandboxes, system: str) -> dict[str, Any]:
        ca = tmp_path / f"{id(started)}.pem"
        ca.write_text(started.describe()["salesforce"]["ca_pem"])
        return requests.get(f"{getattr(started, system).url}/_sandbox/config", timeout=10, verify=str(ca)).json()

    with start_sandboxes(records=5, systems=systems) as real, start_sandboxes(records=5, systems=systems,
                                                                              behaviour="kind") as kind:
        for system in systems:
            real_config, kind_config = config(real, system), config(kind, system)
            assert (real_config["behaviour"], kind_config["behaviour"]) == ("real", "kind")
            assert set(real_config[system]) == set(kind_config[system]) and real_config[system] != kind_config[system]
        assert real_config["salesforce"]["exact_batches"] is False and kind_config["salesforce"]["exact_batches"] is True
    with pytest.raises(ValueError, match="no sandbox behaviour 'gentle'; choose 'real' or 'kind'"):
        start_sandboxes(records=5, behaviour="gentle")
    with pytest.raises(ValueError, match="no sandbox behaviour"):
        make_app("toy", auth=lambda r: True, unauthorized=flask.Response, behaviour="lenient")


# -- seed ---------------------------------------------------------------------------


def test_seed_is_deterministic_prefix_stable_and_seed_sensitive() -> None:
    assert seed_requests(40, 7) == seed_requests(40, 7)
    assert seed_requests(40, 7) == seed_requests(80, 7)[:40]
    assert [r.title for r in seed_requests(40, 7)] != [r.title for r in seed_requests(40, 8)]
    assert [r.seq for r in seed_requests(5, 1)] == [1, 2, 3, 4, 5]


def test_seed_values_are_normalized_and_realistic() -> None:
    requests_ = seed_requests(3000, 7)
    statuses = Counter(r.status for r in requests_)
    assert set(statuses) <= set(STATUSES) and {r.priority for r in requests_} == set(PRIORITIES)
    assert {r.department for r in requests_} <= set(DEPARTMENTS)
    assert {r.request_type for r in requests_} == set(REQUEST_TYPES)
    assert 0.28 < statuses["approved"] / len(requests_) < 0.40  # roughly a third approved
    assert any(r.owner is None for r in requests_) and any(r.owner for r in requests_)
    assert len({r.title for r in requests_}) > 1500  # composed, not a short list
    assert all("@" in r.requester.email and r.requester.email.isascii() for r in requests_)
    text = " ".join(r.title + r.description for r in requests_)
    for needle in ("Zürich", "São Paulo", "東京", "'", '"', "\n"):
        assert needle in text
    assert any(ord(ch) > 0xFFFF for ch in text)  # emoji
    assert max(len(r.description) for r in requests_) > 2000


def test_seed_timestamps_are_utc_ordered_within_180_days_and_tie_on_purpose() -> None:
    requests_ = seed_requests(2000, 3)
    start = ANCHOR - dt.timedelta(days=180)
    for request in requests_:
        assert request.created.tzinfo == dt.UTC
        assert start <= request.created <= request.updated < ANCHOR
        assert request.updated.microsecond % 1000 == 0
    ties = Counter(r.updated for r in requests_)
    assert sum(1 for n in ties.values() if n > 1) >= 50  # several share `updated` to the millisecond


def test_seed_streams_without_holding_records() -> None:
    stream = iter_seed_requests(11)
    first = [next(stream) for _ in range(3)]
    assert [r.seq for r in first] == [1, 2, 3]
    # The generator is endless and cheap per record; 20k in a few seconds at most.
    started = time.monotonic()
    assert sum(1 for _ in iter_seed_requests(11, 20_000)) == 20_000
    assert time.monotonic() - started < 5
