"""A store lock on PostgreSQL: a session advisory lock, held on a connection of its own.

The server drops a session's advisory locks when the session ends, however its process
ended (a killed runner's connection is closed by its kernel; the server notices), so a
dead runner never leaves a lock behind, on any machine. The holder is named from
``pg_stat_activity``: each lock connection's ``application_name`` says which relsync
process, on which host, holds it since when.
"""
from __future__ import annotations

import os
import socket
import zlib
from collections.abc import Mapping
from types import TracebackType

from mapping import clock
from sync.lock import LockedError
from sync.pg_store import Connection, connect

NAMESPACE = 0x72656C73
"""The first key of every relsync advisory lock ("rels"); the second is the lock's name hashed."""


def lock_key(name: str) -> int:
    """A lock name as the second advisory-lock key (a signed 32-bit integer, the same in every process)."""
    value = zlib.crc32(name.encode())
    return value - 2**32 if value >= 2**31 else value


class AdvisoryLock:
    """An exclusive, non-blocking advisory lock named ``name`` in the store at ``url``."""

    def __init__(self, url: str, name: str, what: str, env: Mapping[str, str] | None = None) -> None:
        self.url = url
        self.env = env
        self.name = name
        self.what = what
        self._connection: Connection | None = None

    @property
    def held(self) -> bool:
        return self._connection is not None

    def acquire(self) -> None:
        """Take the lock or raise ``LockedError`` at once, naming the holder."""
        if self._connection is not None:
            raise RuntimeError(f"the lock {self.name} is already held by this object")
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

    def _holder(self, connection: Connection) -> str | None:
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

    def __enter__(self) -> AdvisoryLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()
