"""Time in the sandboxes: one injectable source, and the modstamp clock built on it.

Every timer a sandbox keeps (rate-limit windows, 429 penalties, iterator expiry) reads
:meth:`TimeSource.monotonic`, and every timestamp it writes reads :meth:`TimeSource.utc`,
of the one source the app was built with. The default, :data:`SYSTEM_TIME`, is the
machine's clock, so a served sandbox behaves in real time. A test builds the app with a
:class:`ManualTime` instead and calls :meth:`ManualTime.advance` to reach a window's edge
exactly, without sleeping.
"""
from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Protocol


class TimeSource(Protocol):
    """Where a sandbox reads the time."""

    def monotonic(self) -> float:
        """Seconds that never go backwards, for windows and expiry (only differences matter)."""

    def utc(self) -> dt.datetime:
        """The current UTC time, for timestamps and headers that name a moment."""


class SystemTime:
    """The machine's clocks: ``time.monotonic`` and ``datetime.now(UTC)``."""

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def utc(self) -> dt.datetime:
        """``datetime.now(UTC)``."""
        return dt.datetime.now(dt.UTC)


SYSTEM_TIME = SystemTime()
"""The default time source of every sandbox."""

MANUAL_START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
"""Where a :class:`ManualTime` starts unless told: the seed's anchor, so seeded data is in the past."""


class ManualTime:
    """Time that stands still until :meth:`advance` moves it (both readings move together).

    Elapsed time is kept in whole nanoseconds, so steps such as ten of 0.1 s add up to
    exactly 1.0 s and a test can land on a window's edge. Safe to advance from a test
    while the sandbox's request threads read it.
    """

    def __init__(self, start: dt.datetime = MANUAL_START) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualTime needs an aware start time")
        self._lock = threading.Lock()
        self._start = start.astimezone(dt.UTC)
        self._elapsed_ns = 0

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (to the nanosecond; never back)."""
        if seconds < 0:
            raise ValueError(f"time only moves forward, not by {seconds} s")
        with self._lock:
            self._elapsed_ns += round(seconds * 1_000_000_000)

    def monotonic(self) -> float:
        """Seconds advanced so far."""
        with self._lock:
            return self._elapsed_ns / 1_000_000_000

    def utc(self) -> dt.datetime:
        """The start time plus the time advanced so far (to the microsecond, as datetimes keep it)."""
        with self._lock:
            return self._start + dt.timedelta(microseconds=self._elapsed_ns // 1000)


class Clock:
    """UTC modstamps that move forward by at least one millisecond on every call.

    Every write stamps a distinct, later modstamp, which is what lets a test assert
    "updated strictly advanced" without sleeping. ``floor`` keeps new stamps after
    seeded data even when the source's time is behind the seed anchor. ``source`` is
    the app's :class:`TimeSource`; vendor code reads its timers there too.
    """

    def __init__(self, floor: dt.datetime | None = None, source: TimeSource = SYSTEM_TIME) -> None:
        self._lock = threading.Lock()
        self._last = _to_millisecond(floor.astimezone(dt.UTC)) if floor else None
        self.source = source

    def now(self) -> dt.datetime:
        """The next timestamp: the source's time, or one millisecond after the previous one."""
        with self._lock:
            wall = _to_millisecond(self.source.utc())
            if self._last is not None and wall <= self._last:
                wall = self._last + dt.timedelta(milliseconds=1)
            self._last = wall
            return wall

    def peek(self) -> dt.datetime:
        """The current time without consuming a tick (for relative JQL dates)."""
        with self._lock:
            wall = self.source.utc()
            return max(wall, self._last) if self._last else wall


def _to_millisecond(moment: dt.datetime) -> dt.datetime:
    # Vendors stamp to the millisecond; sub-millisecond digits would never round-trip.
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


__all__ = ["MANUAL_START", "SYSTEM_TIME", "Clock", "ManualTime", "SystemTime", "TimeSource"]
