"""One sync run per store: an exclusive flock on ``<store path>.lock``.

The kernel drops a flock when its holder exits, however it exits, so a crashed run
never leaves a stale lock behind. The lock file itself is never deleted: unlinking
a flock'ed file lets a later process lock a fresh inode while another still holds
the old one.
"""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from types import TracebackType

from mapping import clock


class LockedError(Exception):
    """Another run holds the store's lock."""

    def __init__(self, path: Path, pid: int | None, since: str | None) -> None:
        self.path = path
        self.pid = pid
        self.since = since
        holder = f"pid {pid} since {since}" if pid is not None else "another process"
        super().__init__(f"the store is locked by {holder} (lock file {path})")


class RunLock:
    """Exclusive, non-blocking lock for one run on the store at ``store_path``."""

    def __init__(self, store_path: str | Path) -> None:
        self.path = Path(f"{store_path}.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``LockedError`` at once, naming the holder."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, since = _read_holder(fd)
            os.close(fd)
            raise LockedError(self.path, pid, since) from None
        except BaseException:
            os.close(fd)
            raise
        since = clock.stamp()
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps({"pid": os.getpid(), "since": since}) + "\n").encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Release the lock (a no-op if it is not held)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        # Empty the file before unlocking so nobody reads a finished run as the holder.
        os.ftruncate(fd, 0)
        os.close(fd)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def _read_holder(fd: int) -> tuple[int | None, str | None]:
    # The holder writes its details just after locking; a racing reader may see an
    # empty or half-written file and then names no pid rather than a wrong one.
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode())
        return int(holder["pid"]), str(holder["since"])
    except (ValueError, KeyError, TypeError):
        return None, None
