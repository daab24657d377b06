"""One runner per source, one planner per store: a second is refused at once and told who holds the lock."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from sync.lock import LockedError, plan_lock, source_lock, take_sources, whole_store

HOLD = textwrap.dedent(
    """
    import sys
    from sync.lock import source_lock
    with source_lock(sys.argv[1], "jira"):
        print("held", flush=True)
        sys.stdin.readline()
    """
)
TRY = textwrap.dedent(
    """
    import sys
    from sync.lock import LockedError, source_lock
    try:
        with source_lock(sys.argv[1], "jira"):
            print("acquired")
    except LockedError as error:
        print(error)
        sys.exit(3)
    """
)


def python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], text=True, stdout=subprocess.PIPE, **kwargs)


def test_holder_is_written_to_the_lock_file(tmp_path):
    store = tmp_path / "relsync.db"
    with source_lock(store, "jira") as lock:
        assert lock.path == tmp_path / "relsync.db.source.jira.lock"
        holder = json.loads(lock.path.read_text())
        assert holder["pid"] == os.getpid()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", holder["since"])
        assert oct(os.stat(lock.path).st_mode & 0o777) == oct(0o600)
    assert lock.path.exists() and lock.path.read_text() == ""


def test_second_lock_in_the_same_process_is_refused_then_free_after_release(tmp_path):
    store = tmp_path / "relsync.db"
    with source_lock(store, "jira"):
        with pytest.raises(LockedError) as refused:
            source_lock(store, "jira").acquire()
        assert refused.value.pid == os.getpid()
        assert f"the source 'jira' is locked by pid {os.getpid()} since " in str(refused.value)
        with source_lock(store, "airtable"), plan_lock(store):  # other sources and the plan are free
            pass
    with source_lock(store, "jira"):
        pass


def test_a_lock_cannot_be_taken_twice_by_the_same_object(tmp_path):
    lock = plan_lock(tmp_path / "relsync.db")
    with lock:
        with pytest.raises(RuntimeError):
            lock.acquire()
    lock.release()  # releasing twice is harmless


@pytest.mark.slow
def test_another_process_is_refused_while_we_hold_the_lock(tmp_path):
    store = tmp_path / "relsync.db"
    with source_lock(store, "jira"):
        second = python(TRY, str(store))
        out, _ = second.communicate(timeout=60)
    assert second.returncode == 3
    assert f"the source 'jira' is locked by pid {os.getpid()} since " in out
    after = python(TRY, str(store))
    assert after.communicate(timeout=60)[0].strip() == "acquired"


@pytest.mark.slow
def test_lock_held_by_another_process_is_freed_when_it_dies(tmp_path):
    store = tmp_path / "relsync.db"
    holder = python(HOLD, str(store), stdin=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match=f"locked by pid {holder.pid} since "):
            source_lock(store, "jira").acquire()
        holder.kill()  # no clean exit: the kernel drops the flock
        holder.wait(timeout=60)
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.stdin.close()
        holder.stdout.close()
    with source_lock(store, "jira") as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()


def test_a_runner_takes_the_free_sources_and_is_told_who_holds_the_others(tmp_path):
    store = tmp_path / "relsync.db"
    with source_lock(store, "airtable"):
        taken, refused = take_sources(store, ["jira", "airtable", "salesforce"])
        try:
            assert sorted(taken) == ["jira", "salesforce"]
            assert list(refused) == ["airtable"] and refused["airtable"].pid == os.getpid()
        finally:
            for lock in taken.values():
                lock.release()
        # A whole-store command (relsync plan, a dry run) needs every source and the plan.
        with pytest.raises(LockedError, match="the source 'airtable' is locked"):
            with whole_store(store, ["jira", "airtable"]):
                pass
    with whole_store(store, ["jira", "airtable"]):
        with pytest.raises(LockedError, match="the plan is locked"):
            plan_lock(store).acquire()
    with plan_lock(store), source_lock(store, "jira"):  # everything was released
        pass
