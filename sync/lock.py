"""Who may work on a store at once: one lock per source, and one for the plan.

Two runners never pull or push the same source at the same time; runners of different
sources go on side by side. Planning (and every command that changes the plan by hand)
is one serialized step under the plan lock: a runner that finds it taken leaves the
planning to its holder. On a SQLite store each lock is an exclusive flock on a file beside
it (``<store>.source.<name>.lock``, ``<store>.plan.lock``); on a PostgreSQL store, a
session advisory lock (``AdvisoryLock`` below), which the server drops with its session.

The kernel drops a flock when its holder exits, however it exits, so a killed runner
never leaves a stale lock behind: the next runner takes it at once. A lock file itself
is never deleted: unlinking a flock'ed file lets a later process lock a fresh inode
while another still holds the old one. flock is reliable between processes of one
machine; runners on several machines share a PostgreSQL store instead.
"""
from __future__ import annotations

import abc
import contextlib
import fcntl
import json
import os
import socket
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from mapping import clock
from sync.store_location import is_postgres


class LockedError(Exception):
    """Another process holds a lock this one needs."""

    def __init__(self, path: Path | str, pid: int | None, since: str | None, what: str = "store",
                 holder: str | None = None) -> None:
        self.path = path
        self.pid = pid
        self.since = since
        self.what = what
        holder = holder or (f"pid {pid} since {since}" if pid is not None else "another process")
        where = f"lock file {path}" if isinstance(path, Path) else path
        super().__init__(f"the {what} is locked by {holder} ({where})")


class Lock(abc.ABC):
    """A lock of the store (a flock beside a SQLite file, an advisory lock in a PostgreSQL database)."""

    what: str

    @property
    @abc.abstractmethod
    def held(self) -> bool:
        """Whether this object holds the lock now."""

    @abc.abstractmethod
    def acquire(self) -> None:
        """Take the lock or raise ``LockedError`` at once, naming the holder."""

    @abc.abstractmethod
    def release(self) -> None:
        """Release the lock (a no-op if it is not held)."""

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()


class FileLock(Lock):
    """An exclusive, non-blocking flock on ``path``; ``what`` names what it guards in messages."""

    def __init__(self, path: str | Path, what: str) -> None:
        self.path = Path(path)
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise ``LockedError`` at once, naming the holder."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this lock")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, since = _read_holder(fd)
            os.close(fd)
            raise LockedError(self.path, pid, since, self.what) from None
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

def _lock(store: str | Path, name: str, what: str, env: Mapping[str, str] | None) -> Lock:
    if is_postgres(str(store)):
        return AdvisoryLock(str(store), name, what, env)
    return FileLock(f"{store}.{name}.lock", what)


def source_lock(store: str | Path, source: str, env: Mapping[str, str] | None = None) -> Lock:
    """The lock of one source of the store: whoever holds it pulls and pushes that source.

    ``env``: where a PostgreSQL store's password is read (default the process's environment).
    """
    return _lock(store, f"source.{source}", f"source {source!r}", env)


def plan_lock(store: str | Path, env: Mapping[str, str] | None = None) -> Lock:
    """The lock of the store's plan: whoever holds it plans, or changes the plan by hand."""
    return _lock(store, "plan", "plan", env)


def take_sources(store: str | Path, sources: Iterable[str],
                 env: Mapping[str, str] | None = None) -> tuple[dict[str, Lock], dict[str, LockedError]]:
    """Take each source's lock that is free: (the locks taken, why each other source is refused)."""
    taken: dict[str, Lock] = {}
    refused: dict[str, LockedError] = {}
    for name in sorted(sources):
        lock = source_lock(store, name, env)
        try:
            lock.acquire()
        except LockedError as error:
            refused[name] = error
        else:
            taken[name] = lock
    return taken, refused


@contextlib.contextmanager
def whole_store(store: str | Path, sources: Iterable[str], env: Mapping[str, str] | None = None) -> Iterator[None]:
    """Every source's lock and the plan lock, or LockedError naming the first one held elsewhere."""
    taken, refused = take_sources(store, sources, env)
    plan = plan_lock(store, env)
    try:
        if refused:
            raise next(iter(refused.values()))
        plan.acquire()
        yield
    finally:
        plan.release()
        for lock in taken.values():
            lock.release()


# -- a PostgreSQL store: session advisory locks ---------------------------------------------
#
# The server drops a session's advisory locks when the session ends, however its process
# ended (a killed runner's connection is closed by its kernel; the server notices), so a
# dead runner never leaves a lock behind, on any machine. The holder is named from
# pg_stat_activity: each lock connection's application_name says which relsync process,
# on which host, holds it since when.

NAMESPACE = 0x72656C73
"""The first key of every relsync advisory lock ("rels"); the second is the lock's name hashed."""


def lock_key(name: str) -> int:
    """A lock name as the second advisory-lock key (a signed 32-bit integer, the same in every process)."""
    value = zlib.crc32(name.encode())
    return value - 2**32 if value >= 2**31 else value


class AdvisoryLock(Lock):
    """An exclusive, non-blocking advisory lock named ``name`` in the store at ``url``."""

    def __init__(self, url: str, name: str, what: str, env: Mapping[str, str] | None = None) -> None:
        self.url = url
        self.env = env
        self.name = name
        self.what = what
        self._connection: Any = None  # a psycopg connection while held

    @property
    def held(self) -> bool:
        return self._connection is not None

    def acquire(self) -> None:
        """Take the lock or raise ``LockedError`` at once, naming the holder."""
        if self._connection is not None:
            raise RuntimeError(f"the lock {self.name} is already held by this object")
        from sync.pg_store import connect  # psycopg is loaded only for a PostgreSQL store

        connection = connect(self.url, env=self.env)
        try:
            holder = f"relsync pid {os.getpid()} on {socket.gethostname()} since {clock.stamp()}"
            connection.execute("select set_config('application_name', %s, false)", [holder[:63]])
            row = connection.execute("select pg_try_advisory_lock(%s, %s)", [NAMESPACE, lock_key(self.name)]).fetchone()
            if row is None or not row[0]:
                raise LockedError(f"advisory lock {self.name} in {self.url}", None, None, self.what,
                                  holder=self._holder(connection))
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    def _holder(self, connection: Any) -> str | None:
        row = connection.execute(
            "select a.application_name from pg_locks l join pg_stat_activity a on a.pid = l.pid "
            "where l.locktype = 'advisory' and l.granted and l.classid = %s::oid and l.objid = %s::oid",
            [NAMESPACE % 2**32, lock_key(self.name) % 2**32]).fetchone()
        return str(row[0]) if row and row[0] else None

    def release(self) -> None:
        """Release the lock (a no-op if it is not held): closing the session drops it."""
        if self._connection is None:
            return
        connection, self._connection = self._connection, None
        connection.close()

def _read_holder(fd: int) -> tuple[int | None, str | None]:
    # The holder writes its details just after locking; a racing reader may see an
    # empty or half-written file and then names no pid rather than a wrong one.
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode())
        return int(holder["pid"]), str(holder["since"])
    except (ValueError, KeyError, TypeError):
        return None, None
