"""The initial pull's memory as it goes: RSS, its high-water mark and SQLite's own heap, every 50 pages.

    python bench/pull_memory.py --system salesforce --records 1000000

One ``sync.engine.run`` on a fresh store against the system's sandbox in its own process
(the "kind" profile, as bench/scale.py), stopped at the engine's first plan event: the
pull, its deletion reconcile and the history import, nothing after. The run's deadline
is an hour, so a 1M pull on a busy machine is not cut at the config's 600 s. Marks go
to stdout as they are taken; the last is the pull's end.
"""
from __future__ import annotations

import argparse
import ctypes
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory import rss_mb, rss_peak_mb
from scale import keep_trains
from system_sync import KIND, PAGE, running_sandbox

from config.loader import load_config
from sync import engine


class PullEnded(Exception):
    """The engine reached its first plan event: the pull is over."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", choices=sorted(PAGE), required=True)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--every", type=int, default=50, help="Pages between marks.")
    args = parser.parse_args()
    sqlite = ctypes.CDLL("libsqlite3.so.0")  # the library Python's sqlite3 module is linked against on Debian
    sqlite.sqlite3_memory_used.restype = ctypes.c_int64
    pages = 0

    def mark(label: str) -> None:
        print(f"{label}: RSS {rss_mb():.1f} MB, high-water {rss_peak_mb():.1f} MB, "
              f"SQLite heap {sqlite.sqlite3_memory_used() / 1e6:.1f} MB", flush=True)

    def progress(event: engine.Progress) -> None:
        nonlocal pages
        if event.phase == "pull":
            pages += 1
            if pages % args.every == 0:
                mark(f"page {pages} ({event.records} records)")
        elif event.phase == "plan":
            mark("end of pull (history import included)")
            raise PullEnded

    with tempfile.TemporaryDirectory(prefix="relsync-pull-memory-") as name:
        folder = Path(name)
        with running_sandbox(args.system, args.records, args.seed, folder, KIND) as (description, config_path):
            keep_trains(config_path, ["business-systems"])
            config: Any = load_config(config_path).model_copy(update={"max_run_seconds": 3600.0})
            mark("start")
            try:
                engine.run(config, env=dict(description[args.system]["env"]), progress=progress)
            except PullEnded:
                pass


if __name__ == "__main__":
    main()
