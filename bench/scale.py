"""Scale bench: one system's sync at 100,000 (or 1,000,000) records, phase by phase, against a raw upsert_all.

    python bench/scale.py --system salesforce --records 1000000

The system's sandbox runs in its own process (bench/system_sync.py's ``running_sandbox``)
in the profile named by ``--behaviour``: "kind" (the default here: full pages, no rate
limit, no index lag, cursors that do not expire; relsync's own Airtable throttle of 5
requests a second still applies) or "real". The output says which.

Three syncs through ``sync.engine.run`` on a fresh store, as cron runs them: the initial
one, the one that reads relsync's own write-backs back, and a no-op one. Each is cut
into its phases at the engine's progress events: pull (pages, history import,
deletion reconcile), plan, push (queue and send the write-backs). Per phase: API calls
(the sandbox's counter), wall time, records a second, and the peak RSS of this process
(relsync alone: the sandbox is elsewhere) within the phase, the kernel's high-water mark
being reset at each phase's start (``/proc/self/clear_refs``).

Local overhead per record: the pages of one more full pull are fetched afterwards and,
page by page, stored through relsync's ingest path (``sync.ingest.store_page``:
normalize through the mapping, diff against the store, audit events on the hash chain,
upsert, watermark) into a fresh store, and their normalized rows (what relsync writes to
``change_requests``) upserted with a plain ``sqlite_utils`` ``upsert_all`` into a fresh
database in the same WAL mode. Only those two calls are timed, so waiting on HTTP,
parsing the vendor's JSON and building records are left out of both. The same figure is
also given from the initial pull itself (time inside ``store_page``, while the fetch
threads run beside it).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlite_utils
import yaml
from memory import MB, reset_rss_peak, rss_peak_mb
from system_sync import BEHAVIOURS, KIND, PAGE, Counter, running_sandbox

from config.loader import load_config
from connectors.base import Page
from mapping import clock
from mapping.fields import MappingError
from sync import engine, ingest
from sync.store import open_store, start_run
from sync.store_location import PASSWORD_ENV
from tests.postgres import PostgresServer, start_server


@dataclass
class Phases:
    """Cuts a run into phases at its progress events and measures each."""

    counter: Counter
    done: list[dict[str, Any]] = field(default_factory=list)
    _name: str = ""
    _started: float = 0.0
    _plan_events: int = 0
    _planned: int = 0
    _pulled: int = 0

    def begin(self, name: str) -> None:
        self.counter.take()
        reset_rss_peak()
        self._name, self._started = name, time.perf_counter()

    def end(self, records: int) -> None:
        seconds = time.perf_counter() - self._started
        peak = rss_peak_mb()
        calls = self.counter.take()
        self.done.append({"phase": self._name, "records": records, "calls": sum(calls.values()),
                          "seconds": round(seconds, 2), "records_per_s": round(records / seconds) if seconds else None,
                          "peak_rss_mb": round(peak, 1), "by_endpoint": calls})
        reset_rss_peak()
        self._started = time.perf_counter()

    def progress(self, event: engine.Progress) -> None:
        if event.phase == "start":
            self.begin("pull")
        elif event.phase == "pull":
            self._pulled = event.records
        elif event.phase == "plan":
            self._plan_events += 1
            if self._plan_events == 1:
                self.end(self._pulled)
                self._name = "plan"
            else:
                self._planned = event.records
                self.end(event.records)
                self._name = "push"


class IngestTimer:
    """Time spent inside ``sync.ingest.store_page`` while installed."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, store_page: Callable[..., ingest.PullCounts]) -> Callable[..., ingest.PullCounts]:
        def timed(*args: Any, **kwargs: Any) -> ingest.PullCounts:
            started = time.perf_counter()
            try:
                return store_page(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
        return timed


def measure_run(label: str, config: Any, env: dict[str, str], counter: Counter, system: str) -> dict[str, Any]:
    """One ``engine.run``, phase by phase."""
    phases = Phases(counter)
    timer = IngestTimer()
    with mock.patch.object(ingest, "store_page", timer.wrap(ingest.store_page)):
        report = engine.run(config, env=env, progress=phases.progress)
    phases.end(report.pushed.get(system, {}).get("written", 0))
    pulled = report.pulled.get(system, {}).get("pulled", 0)
    return {"run": label, "exit": report.exit_code, "status": report.status, "pulled": pulled,
            "minimum_pull_calls": max(1, -(-pulled // PAGE[system])), "planned": report.planned,
            "pushed": report.pushed.get(system, {}), "ingest_s_in_pull": round(timer.seconds, 2),
            "phases": phases.done, "messages": report.messages[:5]}


def _rows(page: Page, mapping: Any, now: str) -> Iterator[dict[str, Any]]:
    """The page's rows as relsync writes them to change_requests (records the mapping refuses left out)."""
    for record in page.records:
        try:
            request = mapping.normalize(record)
        except MappingError:
            continue
        yield request.as_row() | {"last_pulled_at": now, "deleted_at": None, "first_seen_at": now}


def replay(config: Any, env: dict[str, str], folder: Path) -> dict[str, Any]:
    """Local cost per record: relsync's ingest path against a raw upsert_all of the same rows, page by page."""
    ((name, source),) = engine.build_sources(config, env).items()
    store = open_store(folder / "replay.db")
    run_id = start_run(store)
    raw = sqlite_utils.Database(folder / "raw.db")
    raw.enable_wal()
    relsync_s = raw_s = relsync_cpu = raw_cpu = 0.0
    records = pages = 0
    started = time.perf_counter()
    for page in source.connector.pull(None):
        now = clock.stamp()
        begun, cpu = time.perf_counter(), time.process_time()
        ingest.store_page(store, source=name, mapping=source.mapping, page=page, run_id=run_id, now=now)
        relsync_s += time.perf_counter() - begun
        relsync_cpu += time.process_time() - cpu
        rows = list(_rows(page, source.mapping, now))
        begun, cpu = time.perf_counter(), time.process_time()
        raw.table("change_requests").upsert_all(rows, pk="key")
        raw_s += time.perf_counter() - begun
        raw_cpu += time.process_time() - cpu
        records += len(page.records)
        pages += 1
    stored = store.execute("select count(*) from change_requests").fetchone()[0]
    raw_rows = raw.execute("select count(*) from change_requests").fetchone()[0]
    return {"records": records, "pages": pages, "stored_rows": stored, "raw_rows": raw_rows,
            "wall_s_with_fetch": round(time.perf_counter() - started, 1),
            "relsync_ingest_s": round(relsync_s, 2), "raw_upsert_all_s": round(raw_s, 2),
            "relsync_us_per_record": round(relsync_s / records * 1e6, 1) if records else None,
            "raw_us_per_record": round(raw_s / records * 1e6, 1) if records else None,
            "ratio": round(relsync_s / raw_s, 2) if raw_s else None,
            # CPU time alone (this process): what the code costs, without waits on a disk shared with others.
            "relsync_cpu_us_per_record": round(relsync_cpu / records * 1e6, 1) if records else None,
            "raw_cpu_us_per_record": round(raw_cpu / records * 1e6, 1) if records else None,
            "cpu_ratio": round(relsync_cpu / raw_cpu, 2) if raw_cpu else None}


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of its own (the tests' helper, with the server's durable defaults), stopped at the end."""
    server = start_server(durable=True)
    try:
        yield server
    finally:
        server.stop()


def use_store(config_path: Path, location: str) -> None:
    """Point the config at the store ``location``."""
    data = yaml.safe_load(config_path.read_text())
    data["store"] = location
    config_path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def keep_trains(config_path: Path, names: list[str]) -> None:
    """Leave only the named trains in the config file."""
    data = yaml.safe_load(config_path.read_text())
    unknown = set(names) - {train["name"] for train in data["trains"]}
    if unknown:
        raise SystemExit(f"no train named {', '.join(sorted(unknown))} in the sandbox config")
    data["trains"] = [train for train in data["trains"] if train["name"] in names]
    config_path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", choices=sorted(PAGE), required=True)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--behaviour", choices=BEHAVIOURS, default=KIND,
                        help="The sandbox's profile by name (default here: kind).")
    parser.add_argument("--no-replay", action="store_true", help="Leave out the local-overhead replay.")
    parser.add_argument("--replay-only", action="store_true",
                        help="Run only the local-overhead replay, without the three syncs before it.")
    parser.add_argument("--trains", nargs="+", metavar="NAME",
                        help="Keep only these trains of the sandbox config (default: all of them).")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite",
                        help="Where relsync keeps its store: a SQLite file (default), or a database of a PostgreSQL "
                             "server started from the installed binaries (as the tests start one); the replay "
                             "against raw upsert_all is SQLite's only.")
    parser.add_argument("--max-run-seconds", type=float, metavar="S",
                        help="The runs' deadline instead of the config's (600 s): a 1M pull on a busy machine passes it.")
    args = parser.parse_args()
    if args.replay_only and (args.no_replay or args.store != "sqlite"):
        parser.error("--replay-only runs the replay, which is SQLite's only and not left out")
    load = [round(n, 2) for n in os.getloadavg()]
    begun = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="relsync-scale-") as name, contextlib.ExitStack() as stack:
        folder = Path(name)
        started = time.perf_counter()
        with running_sandbox(args.system, args.records, args.seed, folder, args.behaviour) as (description, config_path):
            seeded = time.perf_counter() - started
            if args.trains:
                keep_trains(config_path, args.trains)
            env = dict(description[args.system]["env"])
            if args.store == "postgresql":
                server = stack.enter_context(postgres_server())
                use_store(config_path, server.create_database())
                env[PASSWORD_ENV] = server.password
            config = load_config(config_path)
            if args.max_run_seconds:
                config = config.model_copy(update={"max_run_seconds": args.max_run_seconds})
            verify: str | bool = str(folder / "salesforce-sandbox-ca.pem") if args.system == "salesforce" else True
            counter = Counter(description[args.system]["url"], verify)
            runs = [] if args.replay_only else [measure_run(label, config, env, counter, args.system)
                                                for label in ("initial", "own writes back", "no-op")]
            local = None if args.no_replay or args.store != "sqlite" else replay(config, env, folder)
    print(json.dumps({
        "system": args.system, "records": args.records, "seed": args.seed,
        "sandbox_behaviour": args.behaviour, "store": args.store,
        "note": ("sandbox asked for its 'kind' profile by name: full pages, no rate limit or index lag, "
                 "cursors and sessions that do not expire (relsync's own client throttle still applies)"
                 if args.behaviour == KIND else "sandbox in its default 'real' profile"),
        "started": begun.isoformat(timespec="seconds"), "load_average_start": load,
        "load_average_end": [round(n, 2) for n in os.getloadavg()],
        "max_run_seconds": config.max_run_seconds,
        "trains": [train.name for train in config.trains], "sandbox_start_s": round(seeded, 1), "runs": runs, "local_overhead": local,
        "peak_rss_mb_whole_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / MB, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
