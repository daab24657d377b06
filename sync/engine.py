"""One sync run: lock, pull every source, plan, push, record the run.

``run(config)`` is what cron calls (through the CLI). Its phases are public too
(``pull_sources``, ``plan``, ``push_writebacks``) so a caller can drive them one at
a time against the same store.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from config.loader import ConfigError
from config.schema import Config
from connectors.base import Page
from connectors.errors import CircuitOpen, ConnectorError, DeadlineReached
from connectors.retry import NO_DEADLINE, Deadline, RetryPolicy
from mapping import clock
from sync import history, ingest, outbox, quarantine, schedule
from sync.db import Database
from sync.exits import EXIT_CONFIG, EXIT_INTERRUPTED, EXIT_LOCKED, EXIT_NOT_FOUND, EXIT_OK, EXIT_PARTIAL  # noqa: F401 - re-exported
from sync.lock import LockedError, plan_lock, take_sources
from sync.report import RunReport
from sync.sources import (  # noqa: F401 - re-exported: the engine's callers build and check sources through it
    CONFIG_ERRORS,
    CONNECTORS,
    Source,
    build_sources,
    check_online,
    describe,
    save_caches,
)
from sync.store import finish_run, get_watermark, open_database, start_run, store_problem

RUNNER_BUSY_TIMEOUT_MS = 60_000
"""How long a run waits for another runner's write transaction on the store (a page, a plan) before failing."""
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    """Where a run is, for a live display: ``phase`` (start, pull, plan, push), the source, its records and API calls.

    ``records`` counts what the phase has done for the source so far (pulled, or
    written back); for ``plan`` the requests planned in. ``source`` is empty for the
    whole run's events (start, plan).
    """

    phase: str
    source: str = ""
    records: int = 0
    calls: int = 0
    run_id: int | None = None


ProgressCallback = Callable[[Progress], None]


def _calls(source: Source) -> int:
    return sum(source.connector.call_counts().values())


@dataclass
class PullResult:
    """Per source: what its pull stored, and the error that stopped it, if any."""

    counts: dict[str, ingest.PullCounts]
    failures: dict[str, BaseException]


def pull_sources(
    db: Database, sources: dict[str, Source], *, run_id: int, progress: ProgressCallback | None = None,
    deadline: Deadline = NO_DEADLINE,
) -> PullResult:
    """Pull every source concurrently; pages are stored one transaction each, in this thread.

    A source that fails stops alone: what it stored so far stays, its watermark
    where its last stored page left it, and the other sources go on. Once the
    ``deadline`` passes, no source asks for another page and no deletions are
    reconciled: the run's failures then hold ``DeadlineReached`` for the sources cut short.
    """
    started = clock.now()
    # A source fetches its next page while its last one is stored, not before that one is
    # taken: a pull holds two pages of a source at most, whatever its size.
    pages: queue.Queue[tuple[str, Page | BaseException | None]] = queue.Queue(maxsize=1)
    taken = {name: threading.Semaphore(0) for name in sources}
    watermarks = {name: get_watermark(db, name, ingest.STREAM) for name in sources}
    stopped: set[str] = set()

    def produce(name: str) -> None:
        try:
            for page in sources[name].connector.pull(watermarks[name]):
                if name in stopped:
                    return
                pages.put((name, page))
                taken[name].acquire()
                if deadline.passed():  # before the next page is asked for
                    pages.put((name, deadline.reached(sources[name].connector.system)))
                    return
            pages.put((name, None))
        except BaseException as error:  # handed to the consumer
            pages.put((name, error))

    threads = [threading.Thread(target=produce, args=(name,), daemon=True) for name in sources]
    for thread in threads:
        thread.start()
    result = PullResult({name: ingest.PullCounts() for name in sources}, {})
    running = set(sources)
    while running:
        name, item = pages.get()
        taken[name].release()
        if item is None or isinstance(item, BaseException):
            running.discard(name)
            if isinstance(item, BaseException) and name not in result.failures:
                result.failures[name] = item
            continue
        if name in result.failures:
            continue
        try:
            page_counts = ingest.store_page(
                db, source=name, mapping=sources[name].mapping, page=item, run_id=run_id, now=clock.stamp()
            )
            result.counts[name].add(page_counts)
            log.debug("%s: page of %d records stored (%d pulled so far)", name, len(item.records),
                      result.counts[name].pulled)
        except BaseException as error:
            result.failures[name] = error
            stopped.add(name)
            running.discard(name)
        if progress:
            progress(Progress("pull", name, result.counts[name].pulled, _calls(sources[name]), run_id))
    # A producer may wait to hand over a page nobody takes now (its source failed here):
    # it is told to stop and the queue emptied until it has.
    stopped.update(sources)
    for thread in threads:
        until = time.monotonic() + 5
        while thread.is_alive() and time.monotonic() < until:
            with contextlib.suppress(queue.Empty):
                while True:
                    taken[pages.get_nowait()[0]].release()
            thread.join(timeout=0.05)
    for name, source in sources.items():
        if name not in result.failures and not deadline.passed():
            try:
                result.counts[name].deleted += reconcile_deletions(db, name, source, run_id=run_id, started=started)
            except ConnectorError as error:
                result.failures[name] = error
    return result


def reconcile_deletions(
    db: Database, name: str, source: Source, *, run_id: int, started: dt.datetime | None = None
) -> int:
    """Ask the connector which known records are gone; mark them deleted.

    The connector hears when the last reconcile's pull started (``since``): every
    deletion before then is known. This reconcile is recorded at ``started``, when
    this run's pull began, so a deletion made while it paged is asked for next time.
    """
    every = source.connector.reconcile_every_hours
    last = get_watermark(db, name, ingest.RECONCILED)
    now = started or clock.now()
    due = every is not None and (
        last is None or (now - clock.parse(last)).total_seconds() >= every * 3600
    )
    def known() -> set[str]:
        return {row["native_id"] for row in db.query(
            "select native_id from change_requests where source = ? and deleted_at is null", [name])}

    gone = source.connector.reconcile(known, due=due, since=last)
    if gone is None:
        return 0
    return ingest.store_deletions(db, source=name, system=source.mapping.system, native_ids=gone,
                                  run_id=run_id, now=clock.stamp(now))


def plan(db: Database, config: Config, *, run_id: int, now: dt.datetime) -> schedule.PlanCounts:
    """Materialize releases and plan requests into them (each request into its train's)."""
    return schedule.plan_into_store(db, config.trains, now=now, run_id=run_id)


def train_zones(config: Config) -> dict[str, dt.tzinfo]:
    """Each train's timezone, in which its releases' deploy dates are written."""
    return {train.name: train.zone for train in config.trains}


def push_writebacks(
    db: Database, sources: dict[str, Source], *, run_id: int, at: dt.datetime | None = None,
    failures: dict[str, BaseException] | None = None, progress: ProgressCallback | None = None,
    zones: Mapping[str, dt.tzinfo] | None = None,
) -> dict[str, outbox.PushCounts]:
    """Queue the plan's differences and send them, source by source.

    ``at`` is the moment the release calendar is read at (default: now). A source
    whose push fails as a whole (its credentials were refused midway) goes into
    ``failures`` and the others are still written; without ``failures`` it raises.
    """
    now = clock.stamp()
    wanted = outbox.wanted_writes(db, {name: s.mapping for name, s in sources.items()}, now=clock.stamp(at), zones=zones)
    outbox.queue(db, wanted, run_id=run_id, now=now)
    pushed: dict[str, outbox.PushCounts] = {}
    for name, s in sources.items():
        if progress:
            progress(Progress("push", name, 0, _calls(s), run_id))
        try:
            pushed[name] = outbox.send(db, name, s.connector.push, s.mapping, run_id=run_id, now=now)
        except ConnectorError as error:
            log.debug("%s: push stopped: %s", name, error)
            if failures is None:
                raise
            failures[name] = error
        else:
            counts = pushed[name]
            log.info("%s: pushed, %d written, %d conflicts, %d failed, %d pending", name, counts.written,
                     counts.conflicts, counts.failed, counts.pending)
        if progress:
            progress(Progress("push", name, pushed[name].written if name in pushed else 0, _calls(s), run_id))
    return pushed


def _left_for_next_run(db: Database, deadline: Deadline, pulled: PullResult,
                       pushed: dict[str, outbox.PushCounts], sources: dict[str, Source]) -> list[str]:
    """What the run's deadline or a source's breaker left undone, one line each."""
    lines: list[str] = []
    if deadline.passed():
        cut = [name for name, error in pulled.failures.items() if isinstance(error, DeadlineReached)]
        waiting = {row["source"]: row["n"] for row in db.query(
            "select source, count(*) as n from outbox where state = 'pending' group by source order by source")}
        left = [f"pulls of {', '.join(cut)} (each continues from its last stored page)"] if cut else []
        if waiting:
            left.append(f"{sum(waiting.values())} write-backs ({', '.join(f'{n} {k}' for k, n in waiting.items())})")
        why = (f"interrupted ({deadline.interrupted_by}) at a safe point" if deadline.interrupted_by
               else f"run deadline of {deadline.seconds:g} s (max_run_seconds) reached")
        lines.append(f"{why}; left for the next run: {'; '.join(left) or 'nothing'}")
    for name, counts in pushed.items():
        if isinstance(stop := sources[name].connector.stopped(), CircuitOpen):
            lines.append(f"{name}: {stop.message} ({counts.pending} write-backs)")
    return lines


def _stop_on_signals(deadline: Deadline) -> dict[int, Any]:
    """Make SIGINT and SIGTERM interrupt ``deadline`` (a second one stops at once); the handlers replaced."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, Any] = {}

    def interrupt(signum: int, frame: Any) -> None:
        if deadline.interrupted_by:
            raise KeyboardInterrupt  # asked twice: stop now; the write-ahead outbox keeps the truth
        deadline.interrupt(signal.Signals(signum).name)

    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, interrupt)
    return previous


def _close_abandoned_runs(db: Database, held: list[str]) -> None:
    """Runs still 'running' that named a source whose lock we now hold were killed (a live one
    would hold it); say so in their rows. Other runners' live runs of other sources stay."""
    with db.atomic():
        db.execute(
            "update runs set status = 'failed', exit_code = 1, ended_at = coalesce(ended_at, started_at), "
            "message = 'the process ended before the run finished (killed?); its stored pages are kept' "
            "where status = 'running' and (sources is null or exists "
            f"(select 1 from {db.json_rows('runs.sources', 's')} where s.value in ({db.json_values})))",
            [json.dumps(held)],
        )


def chosen_sources(config: Config, names: Sequence[str] | None) -> list[str]:
    """The sources a run works on: ``names`` (each must be configured), or every one."""
    if not names:
        return list(config.sources)
    unknown = [name for name in names if name not in config.sources]
    if unknown:
        raise ConfigError("--source", f"no source {', '.join(map(repr, unknown))} in the config; its sources are "
                                      f"{', '.join(config.sources)}")
    return list(dict.fromkeys(names))


def run(
    config: Config,
    *,
    env: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
    progress: ProgressCallback | None = None,
    policy: RetryPolicy | None = None,
    timer: Callable[[], float] = time.monotonic,
    handle_signals: bool = False,
    only: Sequence[str] | None = None,
) -> RunReport:
    """One unattended sync run. Never raises for API or data problems: see the report.

    ``only`` names the sources to pull and push (default: all). Each source's lock is
    taken first: a source another runner holds is left to it (the run then ends
    ``locked``, exit 3, after doing the others). Planning runs under the plan lock when
    it is free; when another runner holds it, that runner plans and this one pushes the
    plan as it stands.

    With ``handle_signals`` (the command line), SIGINT and SIGTERM stop the run at its
    next safe point, as the deadline does: what it has is stored, the run is recorded
    ``interrupted`` and exits 4. A second signal stops at once.

    The run ends cleanly once ``config.max_run_seconds`` have passed on ``timer``:
    pulls stop between pages, pushes between batches, and what is left is kept for
    the next run. ``policy`` sets the retries' waits and sleep (tests make them short).
    """
    problem = store_problem(config.store)
    if problem is not None:
        return RunReport(None, "config_error", EXIT_CONFIG, messages=[f"store: {problem}"])
    try:
        names = chosen_sources(config, only)
    except ConfigError as error:
        return RunReport(None, "config_error", EXIT_CONFIG, messages=[str(error)])
    locks, refused = take_sources(config.store, names, env)
    if not locks:
        return RunReport(None, "locked", EXIT_LOCKED, messages=[str(error) for error in refused.values()])
    db = open_database(config.store, busy_timeout_ms=RUNNER_BUSY_TIMEOUT_MS, env=env)
    try:
        _close_abandoned_runs(db, sorted(locks))
        run_id = start_run(db, sources=sorted(locks) if refused or only else None)
        report = RunReport(run_id, "running", EXIT_OK)
        config = config.model_copy(update={"sources": {n: s for n, s in config.sources.items() if n in locks}})
        if progress:
            progress(Progress("start", run_id=run_id))
        sources: dict[str, Source] = {}
        deadline = Deadline(config.max_run_seconds, timer)
        restore = _stop_on_signals(deadline) if handle_signals else {}
        try:
            policy = dataclasses.replace(policy or RetryPolicy(), deadline=deadline)
            unbuilt: dict[str, BaseException] = {}
            sources = build_sources(config, env if env is not None else os.environ, policy=policy, broken=unbuilt, db=db)
            pulled = pull_sources(db, sources, run_id=run_id, progress=progress, deadline=deadline)
            save_caches(db, sources)
            for unbuilt_name, unbuilt_error in unbuilt.items():  # a missing secret stops its source alone
                pulled.failures[unbuilt_name] = unbuilt_error
                pulled.counts[unbuilt_name] = ingest.PullCounts()
            report.pulled = {name: asdict(c) for name, c in pulled.counts.items()}
            imported, import_failures = history.import_sources(
                db, sources, skip=set(pulled.failures) | ({*sources} if deadline.passed() else set()), run_id=run_id,
                limits={name: spec.history_max_calls for name, spec in config.sources.items()})
            report.history = {name: {k: v for k, v in asdict(c).items() if k != "notes"} for name, c in imported.items()}
            if progress:
                progress(Progress("plan", run_id=run_id))
            planner = plan_lock(config.store, env)
            try:
                planner.acquire()
            except LockedError as error:
                report.messages.append(f"not planned by this run: {error}; pushing the plan as it stands")
            else:
                try:
                    plan_counts = plan(db, config, run_id=run_id, now=now or clock.now())
                finally:
                    planner.release()
                report.planned = {k: v for k, v in asdict(plan_counts).items() if k != "undated"}
                if undated := plan_counts.undated:
                    report.messages.append(
                        f"plan: {len(undated)} request(s) with a created_at that is not a date-time with a time zone, "
                        f"planned as of an unknown age (last of their priority): {', '.join(undated[:3])}"
                        + (", ..." if len(undated) > 3 else "") + "; map created_at with convert: datetime")
            if progress:
                progress(Progress("plan", records=report.planned.get("assigned", 0), run_id=run_id))
            # A source whose pull failed is not written to: its view may be stale, and a
            # quota stop must not spend more calls.
            healthy = {name: s for name, s in sources.items() if name not in pulled.failures}
            pushed = push_writebacks(db, healthy, run_id=run_id, at=now, failures=pulled.failures, progress=progress,
                                     zones=train_zones(config))
            report.pushed = {name: {k: v for k, v in asdict(c).items() if k != "messages"} for name, c in pushed.items()}
            report.messages += [f"{name}: {describe(error)}" for name, error in pulled.failures.items()
                                if not isinstance(error, DeadlineReached)]
            report.messages += [f"{name}: left to the runner that holds it: {error}" for name, error in refused.items()]
            report.messages += [f"{name}: history import: {describe(error)}" for name, error in import_failures.items()
                                if not isinstance(error, DeadlineReached)]
            report.messages += [note for c in imported.values() for note in c.notes]
            held = quarantine.held_records(db, sources)
            report.quarantined = len(held)
            report.messages += quarantine.messages(held)
            report.messages += [m for c in pushed.values() for m in c.messages]
            report.messages += _left_for_next_run(db, deadline, pulled, pushed, sources)
            cut_short = [e for e in pulled.failures.values() if not isinstance(e, DeadlineReached)]
            if deadline.interrupted_by:
                report.status, report.exit_code = "interrupted", EXIT_INTERRUPTED
            elif any(isinstance(e, CONFIG_ERRORS) for e in cut_short):
                report.status, report.exit_code = "config_error", EXIT_CONFIG
            elif cut_short:
                report.status, report.exit_code = "failed", EXIT_PARTIAL
            elif pulled.failures or import_failures or held or any(c.conflicts or c.failed or c.pending for c in pushed.values()):
                report.status, report.exit_code = "partial", EXIT_PARTIAL
            elif refused:
                report.status, report.exit_code = "locked", EXIT_LOCKED
            else:
                report.status, report.exit_code = "ok", EXIT_OK
        except CONFIG_ERRORS as error:
            report.status, report.exit_code = "config_error", EXIT_CONFIG
            report.messages.append(str(error))
        except ConnectorError as error:
            report.status, report.exit_code = "failed", EXIT_PARTIAL
            report.messages.append(str(error))
        finally:
            save_caches(db, sources)
            report.api_calls = {name: s.connector.call_counts() for name, s in sources.items()}
            finish_run(
                db,
                run_id,
                status=report.status if report.status != "running" else "failed",
                exit_code=report.exit_code,
                counts={"pulled": report.pulled, "planned": report.planned, "pushed": report.pushed,
                        "history": report.history},
                api_calls=report.api_calls,
                message="\n".join(report.messages) or None,
            )
            for signum, previous in restore.items():
                signal.signal(signum, previous)
    finally:
        db.close()
        for lock in locks.values():
            lock.release()
    return report
