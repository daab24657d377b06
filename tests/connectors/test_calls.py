"""ApiCalls: every request retried under the one policy, its failures classified, each response counted.

Requests go over real HTTP to a small server on 127.0.0.1 that answers from a script of
statuses; the retry policy's sleep is recorded instead of slept.
"""
from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from connectors.calls import ApiCalls
from connectors.errors import FatalError, RetriableError, SourceConfigError, Unreachable, classify_status
from connectors.retry import RetryPolicy
from connectors.throttle import Throttle


class Script:
    """Statuses to answer with, in order; then 200."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.paths: list[str] = []


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            script.paths.append(self.path)
            status = script.statuses.pop(0) if script.statuses else 200
            body = b'{"ok": true}' if status == 200 else b'{"message": "no"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if status == 429:
                self.send_header("Retry-After", "7")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    finally:
        httpd.shutdown()
        httpd.server_close()


def http_refusal(error: Exception) -> Exception | None:
    """A vendor's reading of its library's refusal: here requests' HTTPError, by status."""
    if isinstance(error, requests.HTTPError) and error.response is not None:
        response = error.response
        return classify_status("tracker", response.status_code, response.json()["message"], retry_after=response.headers.get("Retry-After"))
    return None


def by_path(response: requests.Response) -> str:
    return f"{response.request.method} {requests.utils.urlparse(response.request.url or '').path}"


def api_calls(url: str, waits: list[float], throttle: Throttle | None = None) -> tuple[ApiCalls, requests.Session]:
    calls = ApiCalls("tracker", url, kind=by_path, refusal=http_refusal,
                     policy=RetryPolicy(attempts=3, initial_wait=0.01, sleep=waits.append), throttle=throttle)
    return calls, calls.count(requests.Session())


def get(session: requests.Session, url: str) -> dict[str, object]:
    response = session.get(url, timeout=5)
    response.raise_for_status()
    return response.json()


def test_every_response_is_counted_by_kind_retries_included(server):
    url, script = server
    script.statuses = [503, 502]
    waits: list[float] = []
    calls, session = api_calls(url, waits)

    assert calls(lambda: get(session, f"{url}/issues")) == {"ok": True}
    calls(lambda: get(session, f"{url}/versions"))

    assert calls.counts() == {"GET /issues": 3, "GET /versions": 1}
    assert len(waits) == 2  # two backoffs before the third attempt


def test_a_429_waits_as_long_as_retry_after_says(server):
    url, script = server
    script.statuses = [429]
    waits: list[float] = []
    calls, session = api_calls(url, waits)

    calls(lambda: get(session, f"{url}/search"))

    assert waits == [7.0]


def test_a_refusal_the_vendor_reads_as_fatal_is_raised_at_once_with_the_apis_message(server):
    url, script = server
    script.statuses = [400]
    waits: list[float] = []
    calls, session = api_calls(url, waits)

    with pytest.raises(FatalError) as raised:
        calls(lambda: get(session, f"{url}/search"))

    assert raised.value.message == "no" and raised.value.status == 400
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert calls.counts() == {"GET /search": 1} and waits == []


def test_retries_stop_after_the_policys_attempts_and_the_last_error_is_raised(server):
    url, script = server
    script.statuses = [503, 503, 503, 503]
    waits: list[float] = []
    calls, session = api_calls(url, waits)

    with pytest.raises(RetriableError) as raised:
        calls(lambda: get(session, f"{url}/search"))

    assert raised.value.status == 503
    assert calls.counts() == {"GET /search": 3} and script.statuses == [503]


def test_a_refused_connection_is_not_retried_and_names_the_host_and_cause():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    waits: list[float] = []
    calls, session = api_calls(url, waits)

    with pytest.raises(Unreachable) as raised:
        calls(lambda: get(session, f"{url}/search"))

    assert raised.value.message == f"cannot connect to 127.0.0.1:{port}: connection refused"
    assert waits == [] and calls.counts() == {}


def test_a_dropped_connection_is_retriable_and_names_the_source_url():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"

    def hang_up() -> None:  # accept each connection, then close it without a word
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            connection.close()

    threading.Thread(target=hang_up, daemon=True).start()
    waits: list[float] = []
    calls, session = api_calls(url, waits)
    try:
        with pytest.raises(RetriableError) as raised:
            calls(lambda: get(session, f"{url}/search"))
    finally:
        listener.close()

    assert raised.value.message == f"ConnectionError talking to {url}"
    assert len(waits) == 2 and calls.counts() == {}


def test_a_tls_failure_is_a_config_error_not_retried():
    calls = ApiCalls("tracker", "https://tracker.example", kind=by_path, refusal=http_refusal)

    classified = calls.classify(requests.exceptions.SSLError("certificate verify failed"))

    assert isinstance(classified, SourceConfigError)
    assert classified.message == "TLS verification failed for https://tracker.example: certificate verify failed"


def test_errors_nobody_classifies_pass_through_unchanged_and_unretried():
    waits: list[float] = []
    calls = ApiCalls("tracker", "http://tracker", kind=by_path, refusal=http_refusal,
                     policy=RetryPolicy(attempts=3, sleep=waits.append))
    attempts: list[int] = []

    def broken() -> None:
        attempts.append(1)
        raise KeyError("issues")

    with pytest.raises(KeyError):
        calls(broken)

    assert attempts == [1] and waits == []


def test_the_vendors_reading_comes_before_the_transport_rules():
    refused = FatalError("tracker", "the vendor's reading")
    calls = ApiCalls("tracker", "http://tracker", kind=by_path, refusal=lambda error: refused)

    assert calls.classify(requests.ConnectionError("reset")) is refused


def test_a_throttle_spaces_the_calls(server):
    url, _ = server
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    throttle = Throttle(2, clock=lambda: now[0], sleep=sleep)  # 2 a second
    calls, session = api_calls(url, [], throttle=throttle)

    for _ in range(3):
        calls(lambda: get(session, f"{url}/records"))

    assert slept == [1.0]  # the third call waits until a second after the first finished
    assert calls.counts() == {"GET /records": 3}
