"""A client-side request throttle with penalty windows (Airtable: 5 requests/s per base)."""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Throttle:
    """At most ``rate`` requests per second as the server counts them, and penalty windows.

    Spacing sends 1/rate apart is not enough (one slow request and the server sees six
    in a second: a 30-second penalty). A request starts only once the one ``burst``
    places before it *finished* a window ago, so the server, which saw that one before
    answering, never counts more than ``burst`` per window. Requests run one at a time.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.burst = max(1, int(rate))
        self.window = self.burst / rate
        self._clock, self._sleep = clock, sleep
        self._finished: deque[float] = deque(maxlen=self.burst)
        self._not_before = 0.0
        self._lock = threading.Lock()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Wait for a free slot, then run one request (the ``with`` body) in it."""
        with self._lock:
            start = self._not_before
            if len(self._finished) == self.burst:
                start = max(start, self._finished[0] + self.window)
            now = self._clock()
            if start > now:
                self._sleep(start - now)
            try:
                yield
            finally:
                self._finished.append(self._clock())

    def hold(self, seconds: float) -> None:
        """Send nothing for ``seconds`` from now (a penalty window); callable inside a slot."""
        self._not_before = max(self._not_before, self._clock() + seconds)


_SHARED: dict[tuple[str, ...], Throttle] = {}
_SHARED_LOCK = threading.Lock()


def shared(key: tuple[str, ...], rate: float) -> Throttle:
    """The one throttle of this process for ``key`` (e.g. an Airtable base), made at ``rate`` on first use.

    The server counts requests per base, not per connector: two runs in one process (a
    scheduler, a test) one right after the other must share the window, or the second
    starts as if the base had been quiet and earns a penalty.
    """
    with _SHARED_LOCK:
        found = _SHARED.get((*key, str(rate)))
        if found is None:
            found = _SHARED[(*key, str(rate))] = Throttle(rate)
        return found
