"""The part every sandbox shares: auth gate, call counter, rate limiter, faults, latency, clock.

A sandbox is a Flask app built by :func:`make_app`. Its vendor routes live under the
vendor's paths; the test knobs live under ``/_sandbox/`` and are never authenticated,
counted, throttled or faulted, so a test can always read and steer the fake.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import math
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import flask

SANDBOX_PREFIX = "/_sandbox"
_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^:<>]+)>")  # Flask's <converter:name> or <name>
CONTROLS_KEY = "relsync_sandbox_core"


class Clock:
    """UTC time that moves forward by at least one millisecond on every call.

    Every write stamps a distinct, later modstamp, which is what lets a test assert
    "updated strictly advanced" without sleeping. ``floor`` keeps new stamps after
    seeded data even when the machine's clock is behind the seed anchor.
    """

    def __init__(self, floor: dt.datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._last = _to_millisecond(floor.astimezone(dt.UTC)) if floor else None

    def now(self) -> dt.datetime:
        """The next timestamp: wall-clock time, or one millisecond after the previous one."""
        with self._lock:
            wall = _to_millisecond(dt.datetime.now(dt.UTC))
            if self._last is not None and wall <= self._last:
                wall = self._last + dt.timedelta(milliseconds=1)
            self._last = wall
            return wall

    def peek(self) -> dt.datetime:
        """The current time without consuming a tick (for relative JQL dates)."""
        with self._lock:
            wall = dt.datetime.now(dt.UTC)
            return max(wall, self._last) if self._last else wall


def _to_millisecond(moment: dt.datetime) -> dt.datetime:
    # Vendors stamp to the millisecond; sub-millisecond digits would never round-trip.
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class CallCounter:
    """Requests that reached the app, by ``"METHOD route"`` and by status code."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._statuses: Counter[str] = Counter()

    def count(self, key: str) -> None:
        """Count one request under ``key``."""
        with self._lock:
            self._calls[key] += 1

    def status(self, code: int) -> None:
        """Count one answered status code."""
        with self._lock:
            self._statuses[str(code)] += 1

    def snapshot(self) -> dict[str, Any]:
        """The counts as the ``/_sandbox/calls`` endpoint reports them."""
        with self._lock:
            return {
                "total": sum(self._calls.values()),
                "calls": dict(sorted(self._calls.items())),
                "statuses": dict(sorted(self._statuses.items())),
            }

    def reset(self) -> None:
        """Zero every count."""
        with self._lock:
            self._calls.clear()
            self._statuses.clear()


@dataclass(frozen=True)
class RateLimit:
    """At most ``requests`` per ``per_seconds``; over it, 429 with ``Retry-After``.

    ``penalty_seconds`` > 0 means the first 429 opens a window in which every request
    is refused (Airtable's 30 s); 0 refuses only the requests over the limit (Jira).
    ``retry_after`` None means "seconds until the window has room again".
    """

    requests: int
    per_seconds: float
    retry_after: float | None = None
    penalty_seconds: float = 0.0


class RateLimiter:
    """A sliding-window limiter with an optional penalty window."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.limit: RateLimit | None = None
        self._seen: deque[float] = deque()
        self._penalty_until = 0.0

    def configure(self, limit: RateLimit | None) -> None:
        """Replace the limit (None switches limiting off) and forget past requests."""
        with self._lock:
            self.limit = limit
            self._seen.clear()
            self._penalty_until = 0.0

    def admit(self) -> float | None:
        """None if the request may proceed, else the seconds the caller should wait."""
        with self._lock:
            limit = self.limit
            if limit is None:
                return None
            now = time.monotonic()
            if now < self._penalty_until:
                return self._advice(limit, self._penalty_until - now)
            while self._seen and self._seen[0] <= now - limit.per_seconds:
                self._seen.popleft()
            if len(self._seen) < limit.requests:
                self._seen.append(now)
                return None
            wait = self._seen[0] + limit.per_seconds - now
            if limit.penalty_seconds > 0:
                self._penalty_until = now + limit.penalty_seconds
                wait = limit.penalty_seconds
            return self._advice(limit, wait)

    @staticmethod
    def _advice(limit: RateLimit, wait: float) -> float:
        return limit.retry_after if limit.retry_after is not None else max(wait, 0.0)


@dataclass
class FaultRule:
    """Answer matching requests with ``status`` (or just delay them) ``times`` times."""

    method: str | None
    path: str
    status: int | None = None
    times: int = 1
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        """Whether this rule applies to ``method path`` (fnmatch on the path)."""
        if self.method not in (None, "*") and self.method.upper() != method:
            return False
        return fnmatch.fnmatchcase(path, self.path)


class Faults:
    """An ordered list of one-shot-ish fault rules; the first match fires."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> None:
        """Append a rule."""
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        """Drop every rule."""
        with self._lock:
            self._rules.clear()

    def listing(self) -> list[dict[str, Any]]:
        """The rules still armed, as JSON."""
        with self._lock:
            return [asdict(rule) for rule in self._rules]

    def take(self, method: str, path: str) -> FaultRule | None:
        """The first rule matching the request, consuming one of its ``times``."""
        with self._lock:
            for index, rule in enumerate(self._rules):
                if rule.times > 0 and rule.matches(method, path):
                    rule.times -= 1
                    if rule.times <= 0:
                        del self._rules[index]
                    return rule
            return None


@dataclass
class SandboxControls:
    """Everything a test can steer on one sandbox app, shared across request threads."""

    name: str
    calls: CallCounter = field(default_factory=CallCounter)
    limiter: RateLimiter = field(default_factory=RateLimiter)
    faults: Faults = field(default_factory=Faults)
    latency_ms: float = 0.0
    penalty_seconds: float = 0.0
    _scheduled: dict[str, list[Callable[[], None]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def schedule(self, trigger: str, action: Callable[[], None]) -> None:
        """Run ``action`` once, the next time the app calls :meth:`run_scheduled` for ``trigger``."""
        with self._lock:
            self._scheduled.setdefault(trigger, []).append(action)

    def run_scheduled(self, trigger: str) -> int:
        """Run and forget the actions waiting on ``trigger``; return how many ran."""
        with self._lock:
            actions = self._scheduled.pop(trigger, [])
        for action in actions:
            action()
        return len(actions)

    def pending(self) -> dict[str, int]:
        """How many actions wait on each trigger."""
        with self._lock:
            return {trigger: len(actions) for trigger, actions in self._scheduled.items() if actions}

    def config(self) -> dict[str, Any]:
        """The current knob settings, as ``GET /_sandbox/config`` reports them."""
        limit = self.limiter.limit
        return {
            "rate_limit": asdict(limit) if limit else None,
            "latency_ms": self.latency_ms,
        }


def controls(app: flask.Flask) -> SandboxControls:
    """The controls of a sandbox app built by :func:`make_app`."""
    return app.extensions[CONTROLS_KEY]


def route_key(request: flask.Request) -> str:
    """``"METHOD route"`` with Flask's ``<x>`` written ``{x}``; the raw path if no rule matched."""
    rule = request.url_rule
    if rule is None:
        return f"{request.method} {request.path}"
    route = _ARGUMENT.sub(lambda m: "{" + m.group(1) + "}", rule.rule)
    return f"{request.method} {route}"


def sandbox_route(app: flask.Flask, rule: str, **options: Any) -> Callable[[Callable], Callable]:
    """Register a test knob at ``/_sandbox<rule>``: unauthenticated, uncounted, never faulted."""

    def register(view: Callable) -> Callable:
        """Add ``view`` under the knob prefix."""
        endpoint = options.pop("endpoint", f"sandbox_{view.__name__}")
        app.add_url_rule(SANDBOX_PREFIX + rule, endpoint=endpoint, view_func=view, **options)
        return view

    return register


def make_app(
    name: str,
    *,
    auth: Callable[[flask.Request], bool],
    unauthorized: Callable[[], flask.Response],
    throttled: Callable[[float], flask.Response] | None = None,
    fault_body: Callable[[int], Any] | None = None,
    penalty_seconds: float = 0.0,
) -> flask.Flask:
    """A Flask app with the shared sandbox machinery in front of the vendor routes.

    Args:
        name: the system's name (``"jira"``), used as the Flask import name and in errors.
        auth: says whether a request carries valid credentials.
        unauthorized: the vendor's 401 response.
        throttled: the vendor's 429 response given the Retry-After seconds.
        fault_body: the vendor's error body for an injected status without a body.
        penalty_seconds: the default penalty window for the rate limiter (see RateLimit).
    """
    app = flask.Flask(f"relsync_sandbox_{name}")
    app.json.sort_keys = False  # vendors' key order is part of what clients see
    app.json.ensure_ascii = False
    state = SandboxControls(name=name, penalty_seconds=penalty_seconds)
    app.extensions[CONTROLS_KEY] = state

    @app.before_request
    def gate() -> flask.Response | None:
        """Count, delay, authenticate, throttle and fault every vendor request, in that order."""
        request = flask.request
        if request.path == SANDBOX_PREFIX or request.path.startswith(SANDBOX_PREFIX + "/"):
            return None
        flask.g.relsync_counted = True
        state.calls.count(route_key(request))
        if state.latency_ms:
            time.sleep(state.latency_ms / 1000)
        if not auth(request):
            return unauthorized()
        wait = state.limiter.admit()
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            if throttled is not None:
                return throttled(seconds)
            response = flask.jsonify({"error": "rate limited"})
            response.status_code = 429
            response.headers["Retry-After"] = str(seconds)
            return response
        rule = state.faults.take(request.method, request.path)
        if rule is not None:
            if rule.delay_seconds:
                time.sleep(rule.delay_seconds)
            if rule.status is not None:
                return _fault_response(rule, fault_body)
        return None

    @app.after_request
    def count_status(response: flask.Response) -> flask.Response:
        """Count the status of every counted request, errors included."""
        if flask.g.get("relsync_counted"):
            state.calls.status(response.status_code)
        return response

    _register_knobs(app, state)
    return app


def _fault_response(rule: FaultRule, fault_body: Callable[[int], Any] | None) -> flask.Response:
    body = rule.body
    if body is None and fault_body is not None:
        body = fault_body(rule.status or 500)
    if isinstance(body, (dict, list)):
        response = flask.jsonify(body)
    else:
        response = flask.Response("" if body is None else str(body), mimetype="text/plain")
    response.status_code = rule.status or 500
    for header, value in rule.headers.items():
        response.headers[header] = str(value)
    return response


def _bad_knob(message: str) -> flask.Response:
    response = flask.jsonify({"error": message})
    response.status_code = 400
    return response


def _register_knobs(app: flask.Flask, state: SandboxControls) -> None:
    @sandbox_route(app, "/calls", methods=["GET"])
    def calls() -> flask.Response:
        """GET /_sandbox/calls: requests by route and by status."""
        return flask.jsonify(state.calls.snapshot())

    @sandbox_route(app, "/calls/reset", methods=["POST"])
    def calls_reset() -> flask.Response:
        """POST /_sandbox/calls/reset: zero the counter."""
        state.calls.reset()
        return flask.Response(status=204)

    @sandbox_route(app, "/config", methods=["GET", "POST"])
    def config() -> flask.Response:
        """GET or POST /_sandbox/config: rate limit (null: off) and latency."""
        if flask.request.method == "POST":
            body = flask.request.get_json(silent=True)
            if not isinstance(body, dict):
                return _bad_knob("expected a JSON object")
            if "rate_limit" in body:
                raw = body["rate_limit"]
                if raw is None:
                    state.limiter.configure(None)
                else:
                    try:
                        limit = RateLimit(
                            requests=int(raw["requests"]),
                            per_seconds=float(raw.get("per_seconds", 1)),
                            retry_after=None if raw.get("retry_after") is None else float(raw["retry_after"]),
                            penalty_seconds=float(raw.get("penalty_seconds", state.penalty_seconds)),
                        )
                    except (KeyError, TypeError, ValueError) as error:
                        return _bad_knob(f"bad rate_limit: {error}")
                    state.limiter.configure(limit)
            if "latency_ms" in body:
                state.latency_ms = float(body["latency_ms"] or 0)
        return flask.jsonify(state.config())

    @sandbox_route(app, "/faults", methods=["GET", "POST", "DELETE"])
    def faults() -> flask.Response:
        """GET, POST (append a rule) or DELETE (clear) /_sandbox/faults."""
        if flask.request.method == "DELETE":
            state.faults.clear()
            return flask.Response(status=204)
        if flask.request.method == "POST":
            body = flask.request.get_json(silent=True)
            if not isinstance(body, dict) or "path" not in body:
                return _bad_knob("a fault needs at least a 'path' (fnmatch pattern)")
            if body.get("status") is None and not body.get("delay_seconds"):
                return _bad_knob("a fault needs a 'status', a 'delay_seconds', or both")
            state.faults.add(
                FaultRule(
                    method=body.get("method"),
                    path=str(body["path"]),
                    status=None if body.get("status") is None else int(body["status"]),
                    times=int(body.get("times", 1)),
                    body=body.get("body"),
                    headers={str(k): str(v) for k, v in (body.get("headers") or {}).items()},
                    delay_seconds=float(body.get("delay_seconds") or 0),
                )
            )
        return flask.jsonify({"faults": state.faults.listing()})
