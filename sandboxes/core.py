"""The part every sandbox shares: the request gate, call counter, knobs and scheduled actions.

A sandbox is a Flask app built by :func:`make_app`. Its vendor routes live under the
vendor's paths; the test knobs live under ``/_sandbox/`` and are never authenticated,
counted, throttled or faulted, so a test can always read and steer the fake. The rate
limiter (:mod:`sandboxes.rate_limit`) runs on the app's :class:`~sandboxes.clock.TimeSource`,
given to :func:`make_app`; fault rules live in :mod:`sandboxes.faults`.
"""
from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import flask
from flask.json.provider import DefaultJSONProvider

from sandboxes.behaviour import REAL, Behaviour, check_behaviour
from sandboxes.clock import SYSTEM_TIME, TimeSource
from sandboxes.faults import Faults, fault_response, fault_rule
from sandboxes.rate_limit import RateLimit, RateLimiter

SANDBOX_PREFIX = "/_sandbox"
_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^:<>]+)>")  # Flask's <converter:name> or <name>
CONTROLS_KEY = "relsync_sandbox_core"


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


@dataclass
class SandboxControls:
    """Everything a test can steer on one sandbox app, shared across request threads.

    ``time_source`` is the app's; the limiter's windows and penalties run on it.
    ``behaviour`` is the profile the app was built with (:mod:`sandboxes.behaviour`);
    ``vendor_config``, set by the vendor app, adds its own settings to ``config()``.
    """

    name: str
    time_source: TimeSource = SYSTEM_TIME
    behaviour: Behaviour = REAL
    calls: CallCounter = field(default_factory=CallCounter)
    limiter: RateLimiter = field(init=False)
    faults: Faults = field(default_factory=Faults)
    latency_ms: float = 0.0
    penalty_seconds: float = 0.0
    vendor_config: Callable[[], dict[str, Any]] | None = None
    _scheduled: dict[str, list[Callable[[], None]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.time_source)

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
        settings: dict[str, Any] = {
            "behaviour": self.behaviour,
            "rate_limit": asdict(limit) if limit else None,
            "latency_ms": self.latency_ms,
        }
        if self.vendor_config is not None:
            settings[self.name] = self.vendor_config()
        return settings


class VendorJSONProvider(DefaultJSONProvider):
    """Flask's JSON, keeping keys in the order the vendor sends them and characters unescaped."""

    sort_keys = False  # vendors' key order is part of what clients see
    ensure_ascii = False


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
    time_source: TimeSource = SYSTEM_TIME,
    behaviour: str = REAL,
    rate_limit: RateLimit | None = None,
) -> flask.Flask:
    """A Flask app with the shared sandbox machinery in front of the vendor routes.

    Args:
        name: the system's name (``"jira"``), used as the Flask import name and in errors.
        auth: says whether a request carries valid credentials.
        unauthorized: the vendor's 401 response.
        throttled: the vendor's 429 response given the Retry-After seconds.
        fault_body: the vendor's error body for an injected status without a body.
        penalty_seconds: the default penalty window for the rate limiter (see RateLimit).
        time_source: where the limiter reads time; the machine's clock unless a test
            passes a :class:`~sandboxes.clock.ManualTime`.
        behaviour: ``"real"`` or ``"kind"`` (:mod:`sandboxes.behaviour`), as reported by
            ``GET /_sandbox/config``; the vendor app applies it.
        rate_limit: the limit in force from the start (None: no limit until a test sets one).
    """
    app = flask.Flask(f"relsync_sandbox_{name}")
    app.json = VendorJSONProvider(app)
    state = SandboxControls(name=name, time_source=time_source, behaviour=check_behaviour(behaviour),
                            penalty_seconds=penalty_seconds)
    state.limiter.configure(rate_limit)
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
            time.sleep(state.latency_ms / 1000)  # real waiting: the client sees a slow answer
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
        if rule is not None and rule.after:
            flask.g.relsync_fault_after = rule  # answered in count_status, once the request was handled
        elif rule is not None:
            if rule.delay_seconds:
                time.sleep(rule.delay_seconds)
            if rule.status is not None:
                return fault_response(rule, fault_body)
            flask.g.relsync_hold = rule.hold_seconds
        return None

    @app.after_request
    def count_status(response: flask.Response) -> flask.Response:
        """Count the status of every counted request, errors included; a fault ``after`` replaces the answer,
        a ``hold_seconds`` one holds it back."""
        late = flask.g.pop("relsync_fault_after", None)
        if late is not None:
            if late.delay_seconds:
                time.sleep(late.delay_seconds)
            if late.status is not None:
                response = fault_response(late, fault_body)
        if flask.g.get("relsync_counted"):
            state.calls.status(response.status_code)
        if flask.g.get("relsync_hold"):
            state.faults.hold_started()
            time.sleep(flask.g.relsync_hold)  # real waiting: the request is applied, its answer not yet sent
        return response

    _register_knobs(app, state)
    return app


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
        """GET or POST /_sandbox/config: rate limit (null: off) and latency; GET also shows the profile and vendor settings."""
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
            rule = fault_rule(flask.request.get_json(silent=True))
            if isinstance(rule, str):
                return _bad_knob(rule)
            state.faults.add(rule)
        return flask.jsonify({"faults": state.faults.listing(), "held": state.faults.held})
