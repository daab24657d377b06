"""Source and plan locks on a PostgreSQL store: advisory locks that die with their holder's session."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from sync.lock import AdvisoryLock, LockedError, plan_lock, source_lock


def test_a_second_holder_is_refused_at_once_and_told_who_holds_it(pg_url):
    first, second = source_lock(pg_url, "jira"), source_lock(pg_url, "jira")
    assert isinstance(first, AdvisoryLock)
    first.acquire()
    try:
        with pytest.raises(LockedError) as refused:
            second.acquire()
        assert f"relsync pid {os.getpid()} on " in str(refused.value) and "source 'jira'" in str(refused.value)
        other = source_lock(pg_url, "airtable")  # another source goes on beside it
        with other, plan_lock(pg_url):
            assert other.held
    finally:
        first.release()
    with second:
        assert second.held


def test_a_killed_holder_leaves_the_lock_free(pg_url):
    code = ("import sys, time; from sync.lock import source_lock; lock = source_lock(sys.argv[1], 'jira'); "
            "lock.acquire(); print('held', flush=True); time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", code, pg_url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError):
            source_lock(pg_url, "jira").acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    lock = source_lock(pg_url, "jira")
    for _ in range(100):  # the server ends the session once it sees the connection closed
        try:
            lock.acquire()
            break
        except LockedError:
            time.sleep(0.1)
    assert lock.held
    lock.release()
