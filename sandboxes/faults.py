"""Fault injection: rules that answer matching vendor requests with an error, a delay, or both.

A rule's delay is real waiting (the client must see a slow answer, or time out), so it
sleeps on the wall clock whatever time source the app was built with. ``delay_seconds``
waits before the request is handled; ``hold_seconds`` handles it (a write is applied)
and then holds the answer back, the moment a client killed mid-write leaves behind.
``held`` counts the requests held so far, so a test knows when one has been applied.
"""
from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import flask


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
    hold_seconds: float = 0.0

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
        self.held = 0
        """Requests whose answer a ``hold_seconds`` rule has held back so far."""

    def add(self, rule: FaultRule) -> None:
        """Append a rule."""
        with self._lock:
            self._rules.append(rule)

    def hold_started(self) -> None:
        """Count one more request held back."""
        with self._lock:
            self.held += 1

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


def fault_rule(body: Any) -> FaultRule | str:
    """The rule a ``POST /_sandbox/faults`` body describes, or why it describes none."""
    if not isinstance(body, dict) or "path" not in body:
        return "a fault needs at least a 'path' (fnmatch pattern)"
    if body.get("status") is None and not body.get("delay_seconds") and not body.get("hold_seconds"):
        return "a fault needs a 'status', a 'delay_seconds' or a 'hold_seconds'"
    if body.get("hold_seconds") and body.get("status") is not None:
        return "'hold_seconds' holds the real answer back, so it takes no 'status'"
    return FaultRule(
        method=body.get("method"),
        path=str(body["path"]),
        status=None if body.get("status") is None else int(body["status"]),
        times=int(body.get("times", 1)),
        body=body.get("body"),
        headers={str(k): str(v) for k, v in (body.get("headers") or {}).items()},
        delay_seconds=float(body.get("delay_seconds") or 0),
        hold_seconds=float(body.get("hold_seconds") or 0),
    )


def fault_response(rule: FaultRule, fault_body: Callable[[int], Any] | None) -> flask.Response:
    """The answer for a rule with a status: its body, else the vendor's error body for the status."""
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


__all__ = ["FaultRule", "Faults", "fault_response", "fault_rule"]
