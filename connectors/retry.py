"""The one retry policy, and the limits a run puts on it. This is the only module that imports tenacity.

Client libraries' own retries are switched off, so attempts never multiply:
429 waits as long as Retry-After says, 5xx and timeouts back off exponentially
with jitter, and everything else is raised at once. No wait runs past the run's
``Deadline``: a retry that would is not made, and the call ends in ``DeadlineReached``.
A ``Breaker`` counts a source's server errors in a row; once it opens, nothing more
is sent to that source in this run.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from connectors.errors import CircuitOpen, DeadlineReached, RetriableError, is_server_error

T = TypeVar("T")
log = logging.getLogger(__name__)


class Deadline:
    """When a run must end, on a monotonic clock; ``seconds=None`` never ends.

    A retry that would have to wait past it ends the run there and then (``cut``):
    the run cannot finish that call in time, so it stops as cleanly as at the deadline.
    """

    def __init__(self, seconds: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = None if seconds is None else clock() + seconds
        self._cut = False
        self.interrupted_by: str | None = None
        """The signal that asked the run to stop (SIGINT, SIGTERM), if one did."""

    def interrupt(self, reason: str) -> None:
        """Stop the run at its next safe point, as at the deadline (a signal handler calls this)."""
        self.interrupted_by = reason
        self._cut = True

    def left(self) -> float:
        """Seconds until the deadline (infinite without one; never below zero)."""
        if self._cut:
            return 0.0
        return math.inf if self._end is None else max(0.0, self._end - self._clock())

    def passed(self) -> bool:
        """Whether the deadline has been reached (or the run was cut short before it)."""
        return self._cut or (self._end is not None and self._clock() >= self._end)

    def cut(self) -> None:
        """End the run now: a wait it needs would end past the deadline (or it was interrupted)."""
        if self._end is not None or self.interrupted_by:
            self._cut = True

    def reached(self, system: str) -> DeadlineReached:
        """The error that ends ``system``'s part of the run."""
        if self.interrupted_by:
            return DeadlineReached(system, f"the run was interrupted ({self.interrupted_by}); what is left waits for the next run")
        return DeadlineReached(system, f"the run deadline was reached (max_run_seconds: {self.seconds:g}); "
                               "what is left waits for the next run")


NO_DEADLINE = Deadline(None)


class Breaker:
    """Opens after ``limit`` server errors in a row from one source; any real answer closes the count again.

    A 429 neither counts nor resets: a rate limit says nothing about the server's health.
    """

    def __init__(self, system: str, limit: int) -> None:
        self.system = system
        self.limit = limit
        self._streak = 0
        self._last = ""
        self._lock = threading.Lock()

    def record(self, error: BaseException | None) -> None:
        """Count one attempt's outcome (None: it succeeded)."""
        with self._lock:
            if error is None or not isinstance(error, RetriableError):
                self._streak = 0
            elif is_server_error(error):
                self._streak += 1
                self._last = getattr(error, "message", str(error))

    @property
    def open(self) -> bool:
        """Whether the source has failed ``limit`` times in a row."""
        return self._streak >= self.limit

    def refusal(self) -> CircuitOpen:
        """The error every further call to the source ends in."""
        return CircuitOpen(self.system, f"{self._streak} server errors in a row (last: {self._last}); nothing more is "
                           "sent this run, and what is left waits for the next run")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a retriable failure, and when to give up on a source.

    ``breaker_after`` server errors in a row stop the source for the run;
    ``deadline`` bounds every wait.
    """

    attempts: int = 5
    initial_wait: float = 0.5
    max_wait: float = 30.0
    max_retry_after: float = 120.0
    breaker_after: int = 5
    sleep: Callable[[float], None] = time.sleep
    deadline: Deadline = NO_DEADLINE


def _wait(policy: RetryPolicy) -> Callable[[tenacity.RetryCallState], float]:
    backoff = tenacity.wait_exponential_jitter(multiplier=policy.initial_wait, max=policy.max_wait, jitter=policy.initial_wait)

    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetriableError) and error.retry_after is not None:
            return min(error.retry_after, policy.max_retry_after)
        return backoff(state)

    return wait


class _PastDeadline(tenacity.stop.stop_base):
    """Stops before a wait that would end at or after the deadline (tenacity computes the wait first)."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self.cut_short = False

    def __call__(self, state: tenacity.RetryCallState) -> bool:
        self.cut_short = state.upcoming_sleep >= self.deadline.left()
        return self.cut_short


def _log_retry(state: tenacity.RetryCallState) -> None:
    """One line per retry: the system, what failed, the attempt and the wait before the next."""
    error = state.outcome.exception() if state.outcome else None
    system = getattr(error, "system", "?")
    reason = getattr(error, "message", None) or str(error)
    log.info("%s: retry %d after %s; waiting %.1f s", system, state.attempt_number, reason, state.upcoming_sleep)


def call_with_retry(fn: Callable[[], T], policy: RetryPolicy) -> T:
    """Call ``fn``, retrying RetriableError under ``policy``; re-raise the last error.

    A retry whose wait would end past the deadline is not made: the call raises
    ``DeadlineReached`` (the last error is its cause).
    """
    past_deadline = _PastDeadline(policy.deadline)
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(RetriableError),
        wait=_wait(policy),
        stop=tenacity.stop_any(tenacity.stop_after_attempt(policy.attempts), past_deadline),
        sleep=policy.sleep,
        before_sleep=_log_retry,
        reraise=True,
    )
    try:
        return retrying(fn)
    except RetriableError as error:
        if past_deadline.cut_short:
            policy.deadline.cut()
            raise policy.deadline.reached(error.system) from error
        raise
