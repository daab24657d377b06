"""One source's API calls: each retried under the one policy, its failures classified, and counted.

A connector composes an ``ApiCalls`` and routes every request through it. The vendor
module supplies what only it knows: how to name a response's kind for the counter, and
how to read its client library's refusals (``refusal``). Transport failures are the same
for every client library, all of which sit on requests: a TLS failure is a configuration
error, a dropped connection or a timeout is worth another try.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

import requests

from connectors.errors import RetriableError, SourceConfigError
from connectors.retry import RetryPolicy, call_with_retry
from connectors.throttle import Throttle

T = TypeVar("T")

Refusal = Callable[[Exception], Exception | None]
"""The vendor's reading of an exception its client library raised: our error for it, or None."""


class ApiCalls:
    """Runs, classifies, retries and counts one source's API calls."""

    def __init__(
        self,
        system: str,
        url: str,
        *,
        kind: Callable[[requests.Response], str],
        refusal: Refusal,
        policy: RetryPolicy | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        """``kind`` names a response for the counter (``GET search/jql``); ``throttle`` spaces the calls."""
        self.system = system
        self.url = url
        self.policy = policy or RetryPolicy()
        self._kind = kind
        self._refusal = refusal
        self._throttle = throttle
        self._counts: Counter[str] = Counter()

    def count(self, session: requests.Session) -> requests.Session:
        """Count every response ``session`` receives from now on, retries included."""
        session.hooks["response"].append(self._counted)
        return session

    def _counted(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._counts[self._kind(response)] += 1

    def counts(self) -> dict[str, int]:
        """Responses received so far, by kind."""
        return dict(self._counts)

    def __call__(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (one request) under the retry policy; its failures leave as our error kinds."""

        def attempt() -> T:
            try:
                with self._slot():
                    return fn()
            except Exception as error:
                classified = self.classify(error)
                if classified is error:
                    raise
                raise classified from None

        return call_with_retry(attempt, self.policy)

    def _slot(self) -> AbstractContextManager[None]:
        return self._throttle.slot() if self._throttle is not None else nullcontext()

    def classify(self, error: Exception) -> Exception:
        """Our error for ``error``: the vendor's reading first, then transport failures; else ``error`` itself."""
        refused = self._refusal(error)
        if refused is not None:
            return refused
        if isinstance(error, requests.exceptions.SSLError):
            return SourceConfigError(self.system, f"TLS verification failed for {self.url}: {error}")
        if isinstance(error, requests.RequestException):
            return RetriableError(self.system, f"{type(error).__name__} talking to {self.url}")
        return error
