"""The run's limits on the one retry policy: the deadline, the breaker, and writes that may have landed.

Requests go over real HTTP to a small server on 127.0.0.1: a ledger that creates an
entry on POST and lists them on GET, answering from a script of statuses (a scripted
POST status can come after the entry was made, as a gateway that gave up waiting would).
Waits are recorded instead of slept, and the deadline runs on a clock the test moves.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from connectors.base import Write, WriteResult
from connectors.calls import ApiCalls, push_until_stopped
from connectors.errors import CircuitOpen, DeadlineReached, FatalError, RetriableError, classify_status
from connectors.retry import Deadline, RetryPolicy


@dataclass
class Ledger:
    """The server's entries, and per ``METHOD path`` the statuses to answer with next (then 200)."""

    entries: list[str] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)
    lands: dict[str, set[int]] = field(default_factory=dict)  # the nth POST (from 1) creates its entry even when it fails
    seen: list[str] = field(default_factory=list)


@pytest.fixture
def ledger() -> Iterator[tuple[str, Ledger]]:
    state = Ledger()

    class Handler(BaseHTTPRequestHandler):
        def answer(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def scripted(self) -> int:
            key = f"{self.command} {self.path}"
            state.seen.append(key)
            queue = state.script.get(key) or []
            return queue.pop(0) if queue else 200

        def do_GET(self) -> None:
            status = self.scripted()
            self.answer(status, {"entries": state.entries} if status == 200 else {"message": "unwell"},
                        {"Retry-After": "7"} if status == 429 else None)

        def do_POST(self) -> None:
            name = self.rfile.read(int(self.headers["Content-Length"])).decode()
            status = self.scripted()
            key = f"{self.command} {self.path}"
            if status == 200 or state.seen.count(key) in state.lands.get(key, set()):
                state.entries.append(name)
            self.answer(status, {"created": name} if status == 200 else {"message": "gateway timeout"})

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    finally:
        httpd.shutdown()
        httpd.server_close()


def refusal(error: Exception) -> Exception | None:
    if isinstance(error, requests.HTTPError) and error.response is not None:
        response = error.response
        return classify_status("ledger", response.status_code, response.json()["message"],
                               retry_after=response.headers.get("Retry-After"))
    return None


class Clock:
    """A monotonic clock that moves only when told to (or when a wait is 'slept')."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def api(url: str, clock: Clock, *, deadline: float | None = None, breaker: int = 5, attempts: int = 5) -> tuple[ApiCalls, requests.Session]:
    policy = RetryPolicy(attempts=attempts, initial_wait=0.01, breaker_after=breaker, sleep=clock.sleep,
                         deadline=Deadline(deadline, clock))
    calls = ApiCalls("ledger", url, kind=lambda r: f"{r.request.method} {requests.utils.urlparse(r.request.url).path}",
                     refusal=refusal, policy=policy)
    return calls, calls.count(requests.Session())


def fetch(session: requests.Session, url: str) -> list[str]:
    response = session.get(f"{url}/entries", timeout=5)
    response.raise_for_status()
    return response.json()["entries"]


def create(session: requests.Session, url: str, name: str) -> str:
    response = session.post(f"{url}/entries", data=name, timeout=5)
    response.raise_for_status()
    return response.json()["created"]


# -- the deadline ---------------------------------------------------------------------------


def test_a_retry_that_would_wait_past_the_deadline_is_not_made(ledger):
    url, state = ledger
    state.script["GET /entries"] = [429]
    clock = Clock()
    calls, session = api(url, clock, deadline=5)

    with pytest.raises(DeadlineReached) as stopped:
        calls(lambda: fetch(session, url))

    assert clock.waits == [] and calls.counts() == {"GET /entries": 1}
    assert "max_run_seconds: 5" in stopped.value.message
    assert isinstance(stopped.value.__cause__, RetriableError) and stopped.value.__cause__.status == 429


def test_a_retry_that_fits_before_the_deadline_waits_as_retry_after_says(ledger):
    url, state = ledger
    state.script["GET /entries"] = [429]
    clock = Clock()
    calls, session = api(url, clock, deadline=10)

    assert calls(lambda: fetch(session, url)) == []
    assert clock.waits == [7.0] and calls.counts() == {"GET /entries": 2}


def test_once_the_deadline_has_passed_nothing_is_sent(ledger):
    url, _ = ledger
    clock = Clock()
    calls, session = api(url, clock, deadline=60)
    clock.now = 60

    with pytest.raises(DeadlineReached):
        calls(lambda: fetch(session, url))

    assert calls.counts() == {} and isinstance(calls.stopped(), DeadlineReached)


# -- the breaker ----------------------------------------------------------------------------


def test_the_breaker_opens_after_its_server_errors_in_a_row_and_stops_the_retries(ledger):
    url, state = ledger
    state.script["GET /entries"] = [503] * 10
    clock = Clock()
    calls, session = api(url, clock, breaker=3)

    with pytest.raises(CircuitOpen) as stopped:
        calls(lambda: fetch(session, url))
    with pytest.raises(CircuitOpen):
        calls(lambda: create(session, url, "never sent"))

    assert calls.counts() == {"GET /entries": 3} and len(clock.waits) == 2  # no wait after the third error
    assert stopped.value.message.startswith("3 server errors in a row (last: unwell)")
    assert state.entries == []


def test_a_rate_limit_does_not_count_towards_the_breaker_and_an_answer_resets_it(ledger):
    url, state = ledger
    state.script["GET /entries"] = [503, 429, 503, 200, 503, 503, 200]
    clock = Clock()
    calls, session = api(url, clock, breaker=3)

    calls(lambda: fetch(session, url))  # 503, 429, 503 (two in a row: still closed), 200
    calls(lambda: fetch(session, url))  # 503, 503, 200

    assert calls.stopped() is None and calls.counts() == {"GET /entries": 7}


# -- requests that may have landed ----------------------------------------------------------


def test_a_create_that_failed_after_landing_is_read_back_not_repeated(ledger):
    url, state = ledger
    state.script["POST /entries"] = [504]
    state.lands["POST /entries"] = {1}
    clock = Clock()
    calls, session = api(url, clock)

    def landed() -> str | None:
        return "release 1" if "release 1" in fetch(session, url) else None

    assert calls(lambda: create(session, url, "release 1"), applied=landed) == "release 1"
    assert state.entries == ["release 1"]
    assert state.seen == ["POST /entries", "GET /entries"]


def test_a_create_that_did_not_land_is_repeated_after_the_read(ledger):
    url, state = ledger
    state.script["POST /entries"] = [503]
    clock = Clock()
    calls, session = api(url, clock)

    def landed() -> str | None:
        return "release 2" if "release 2" in fetch(session, url) else None

    assert calls(lambda: create(session, url, "release 2"), applied=landed) == "release 2"
    assert state.entries == ["release 2"]
    assert state.seen == ["POST /entries", "GET /entries", "POST /entries"]


def test_a_create_whose_every_attempt_failed_is_read_once_more_before_it_is_reported(ledger):
    url, state = ledger
    state.script["POST /entries"] = [503, 503, 503]
    state.lands["POST /entries"] = {3}  # the last attempt landed all the same
    clock = Clock()
    calls, session = api(url, clock, attempts=3)

    def landed() -> str | None:
        return "release 3" if "release 3" in fetch(session, url) else None

    assert calls(lambda: create(session, url, "release 3"), applied=landed) == "release 3"
    assert state.entries == ["release 3"]
    assert state.seen == ["POST /entries", "GET /entries", "POST /entries", "GET /entries", "POST /entries", "GET /entries"]


def test_a_create_that_never_landed_is_reported_with_the_last_error(ledger):
    url, state = ledger
    state.script["POST /entries"] = [503, 503]
    clock = Clock()
    calls, session = api(url, clock, attempts=2)

    with pytest.raises(RetriableError) as failed:
        calls(lambda: create(session, url, "release 4"), applied=lambda: "release 4" if "release 4" in fetch(session, url) else None)

    assert failed.value.status == 503 and state.entries == []
    assert state.seen == ["POST /entries", "GET /entries", "POST /entries", "GET /entries"]


def test_a_refusal_is_not_read_back(ledger):
    url, state = ledger
    state.script["POST /entries"] = [400]
    clock = Clock()
    calls, session = api(url, clock)

    with pytest.raises(FatalError):
        calls(lambda: create(session, url, "bad"), applied=lambda: "never asked")

    assert state.seen == ["POST /entries"]


# -- a push that stops midway ----------------------------------------------------------------


class Journal:
    """A journal that keeps what it hears, in order."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, str, str]] = []

    def sending(self, writes: list[Write]) -> None:
        self.heard += [("sending", w.native_id, "") for w in writes]

    def settled(self, results: list[WriteResult]) -> None:
        self.heard += [("settled", r.write.native_id, r.outcome) for r in results]


def test_a_push_stopped_midway_keeps_every_known_outcome_and_leaves_the_rest_pending():
    writes = [Write(f"rec{n}", None, "release", "R1", None) for n in range(5)]
    journal = Journal()

    def push(recording) -> list[WriteResult]:  # two records compared and sent, then the next compare read is refused
        recording.settled([WriteResult(writes[0], "conflict", "changed since the pull")])
        recording.sending(writes[1:2])
        recording.settled([WriteResult(writes[1], "ok")])
        raise DeadlineReached("ledger", "the run deadline was reached")

    results = push_until_stopped(writes, journal, push)

    assert [(r.write.native_id, r.outcome) for r in results] == [
        ("rec0", "conflict"), ("rec1", "ok"), ("rec2", "pending"), ("rec3", "pending"), ("rec4", "pending")]
    assert results[-1].message == "not written: the run deadline was reached"
    assert journal.heard == [("settled", "rec0", "conflict"), ("sending", "rec1", ""), ("settled", "rec1", "ok"),
                             ("settled", "rec2", "pending"), ("settled", "rec3", "pending"), ("settled", "rec4", "pending")]
