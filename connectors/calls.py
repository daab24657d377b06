"""One source's API calls: each retried under the one policy, its failures classified, and counted.

A connector composes an ``ApiCalls`` and routes every request through it. The vendor
module supplies what only it knows: how to name a response's kind for the counter, and
how to read its client library's refusals (``refusal``). Transport failures are the same
for every client library, all of which sit on requests: a TLS failure is a configuration
error, a dropped connection or a timeout is worth another try.

The run's limits live here too: once the run's deadline passes or the source's breaker
opens (too many server errors in a row), every further call ends in a ``Stopped`` error
without being sent, and the writes it held back stay pending for the next run.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar
from urllib.parse import urlparse

import requests

from connectors.base import Journal, Write, WriteResult
from connectors.errors import ConnectorError, RetriableError, SourceConfigError, Stopped, Unreachable, unreachable_cause
from connectors.retry import Breaker, RetryPolicy, call_with_retry
from connectors.throttle import Throttle

T = TypeVar("T")

Refusal = Callable[[Exception], Exception | None]
"""The vendor's reading of an exception its client library raised: our error for it, or None."""

Applied = Callable[[], T | None]
"""A read that tells whether a write that may have landed did: its result if so, else None."""


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
        self.breaker = Breaker(system, self.policy.breaker_after)
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

    def stopped(self) -> Stopped | None:
        """Why nothing more may be sent to this source in this run (None: it may)."""
        if self.policy.deadline.passed():
            return self.policy.deadline.reached(self.system)
        if self.breaker.open:
            return self.breaker.refusal()
        return None

    def __call__(self, fn: Callable[[], T], *, applied: Applied[T] | None = None) -> T:
        """Run ``fn`` (one request) under the retry policy; its failures leave as our error kinds.

        ``applied`` marks a request that is not safe to repeat (a create, a transition):
        after a timeout or server error it may have landed all the same, so before it
        is repeated or reported failed, ``applied()`` reads whether it did, and its
        answer stands for the request's.
        """
        tries = 0

        def attempt() -> T:
            nonlocal tries
            if (stop := self.stopped()) is not None:
                raise stop
            if tries and applied is not None and (found := self._run(applied)) is not None:
                return found
            tries += 1
            try:
                return self._run(fn)
            except RetriableError as error:
                if self.breaker.open and tries < self.policy.attempts:  # it just opened: no wait, no further attempt
                    raise self.breaker.refusal() from error
                raise

        try:
            return call_with_retry(attempt, self.policy)
        except RetriableError:
            if applied is not None and self.stopped() is None and (found := self._run(applied)) is not None:
                return found
            raise

    def _run(self, fn: Callable[[], T]) -> T:
        """One request in a throttle slot; the outcome goes to the breaker, a failure leaves classified."""
        try:
            with self._slot():
                result = fn()
        except Exception as error:
            classified = self.classify(error)
            self.breaker.record(classified)
            if classified is error:
                raise
            raise classified from None
        self.breaker.record(None)
        return result

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
            cause = unreachable_cause(error)
            if cause is not None:
                host = urlparse(self.url).netloc or self.url
                return Unreachable(self.system, f"cannot connect to {host}: {cause}")
            return RetriableError(self.system, f"{type(error).__name__} talking to {self.url}")
        return error

    def held_back(self, writes: Iterable[Write], error: ConnectorError) -> list[WriteResult] | None:
        """Pending results for ``writes`` when ``error`` came from (or stopped) the source; None otherwise.

        A write whose request ended in the error that opened the breaker was not
        confirmed either: it waits with the rest, and the next run compares first.
        """
        stop = error if isinstance(error, Stopped) else self.stopped()
        if stop is None:
            return None
        return [WriteResult(w, "pending", f"not written: {stop.message}") for w in writes]


class _Recording:
    """A journal that remembers every outcome it hears and passes everything on to ``journal``."""

    def __init__(self, journal: Journal | None) -> None:
        self.journal = journal
        self.results: list[WriteResult] = []

    def sending(self, writes: list[Write]) -> None:
        """Tell the journal these writes are about to leave."""
        if self.journal is not None:
            self.journal.sending(writes)

    def settled(self, results: list[WriteResult]) -> None:
        """Keep these outcomes, and tell the journal."""
        self.results += results
        if self.journal is not None:
            self.journal.settled(results)


def push_until_stopped(writes: list[Write], journal: Journal | None,
                       push: Callable[[Journal], list[WriteResult]]) -> list[WriteResult]:
    """Run ``push`` (compare, then send, telling its journal), keeping every outcome if the source stops midway.

    A compare read refused because the run's deadline passed or the source's breaker
    opened ends ``push`` early: the outcomes already known stand and every other write
    stays pending, with the reason.
    """
    recording = _Recording(journal)
    try:
        return push(recording)
    except Stopped as stop:
        known = {id(result.write) for result in recording.results}
        unsent = [WriteResult(w, "pending", f"not written: {stop.message}") for w in writes if id(w) not in known]
        recording.settled(unsent)
        return recording.results
