"""This process's memory as Linux reports it in /proc/self/status, for the benchmarks."""
from __future__ import annotations

from pathlib import Path

MB = 1024.0
"""kB in a MB: /proc/self/status counts in kB."""


def status_mb(field: str) -> float:
    """A memory line of /proc/self/status (``VmRSS``: resident now, ``VmHWM``: its peak since the last reset), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / MB
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_mb() -> float:
    """Resident now."""
    return status_mb("VmRSS")


def rss_peak_mb() -> float:
    """The peak resident set since the last reset (``reset_rss_peak``)."""
    return status_mb("VmHWM")


def reset_rss_peak() -> None:
    """Set the peak RSS back to the current RSS (Linux: writing 5 to clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")
