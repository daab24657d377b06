"""The sandboxes' rate limiter: a sliding window, and the penalty window some vendors add.

Time comes from the app's :class:`~sandboxes.clock.TimeSource`, so a test with a
:class:`~sandboxes.clock.ManualTime` can stand exactly at a window's edge.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from sandboxes.clock import SYSTEM_TIME, TimeSource


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
    """A sliding-window limiter with an optional penalty window.

    A request admitted at ``t`` counts against the window until ``t + per_seconds``
    (exclusive): at that instant it has left. A penalty opened at ``t`` refuses every
    request before ``t + penalty_seconds`` and none from then on. Refused requests do
    not count against the window. Times are compared in whole nanoseconds, so steps of
    0.2 s on a ``ManualTime`` meet the window's edge exactly (floats would drift off it).
    """

    def __init__(self, source: TimeSource = SYSTEM_TIME) -> None:
        self._lock = threading.Lock()
        self._source = source
        self.limit: RateLimit | None = None
        self._seen: deque[int] = deque()
        self._penalty_until = 0

    def configure(self, limit: RateLimit | None) -> None:
        """Replace the limit (None switches limiting off) and forget past requests."""
        with self._lock:
            self.limit = limit
            self._seen.clear()
            self._penalty_until = 0

    def admit(self) -> float | None:
        """None if the request may proceed, else the seconds the caller should wait."""
        with self._lock:
            limit = self.limit
            if limit is None:
                return None
            now = _nanoseconds(self._source.monotonic())
            if now < self._penalty_until:
                return self._advice(limit, self._penalty_until - now)
            window = _nanoseconds(limit.per_seconds)
            while self._seen and self._seen[0] <= now - window:
                self._seen.popleft()
            if len(self._seen) < limit.requests:
                self._seen.append(now)
                return None
            wait = self._seen[0] + window - now
            if limit.penalty_seconds > 0:
                wait = _nanoseconds(limit.penalty_seconds)
                self._penalty_until = now + wait
            return self._advice(limit, wait)

    @staticmethod
    def _advice(limit: RateLimit, wait_ns: int) -> float:
        return limit.retry_after if limit.retry_after is not None else max(wait_ns, 0) / 1_000_000_000


def _nanoseconds(seconds: float) -> int:
    return round(seconds * 1_000_000_000)


__all__ = ["RateLimit", "RateLimiter"]
