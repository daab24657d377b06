"""The one retry policy. This is the only module that imports tenacity.

Client libraries' own retries are switched off, so attempts never multiply:
429 waits as long as Retry-After says, 5xx and timeouts back off exponentially
with jitter, and everything else is raised at once.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from connectors.errors import RetriableError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a retriable failure."""

    attempts: int = 5
    initial_wait: float = 0.5
    max_wait: float = 30.0
    max_retry_after: float = 120.0
    sleep: Callable[[float], None] = time.sleep


def _wait(policy: RetryPolicy) -> Callable[[tenacity.RetryCallState], float]:
    backoff = tenacity.wait_exponential_jitter(multiplier=policy.initial_wait, max=policy.max_wait, jitter=policy.initial_wait)

    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetriableError) and error.retry_after is not None:
            return min(error.retry_after, policy.max_retry_after)
        return backoff(state)

    return wait


def call_with_retry(fn: Callable[[], T], policy: RetryPolicy) -> T:
    """Call ``fn``, retrying RetriableError under ``policy``; re-raise the last error."""
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(RetriableError),
        wait=_wait(policy),
        stop=tenacity.stop_after_attempt(policy.attempts),
        sleep=policy.sleep,
        reraise=True,
    )
    return retrying(fn)
