"""Benchmark the command's start-up: time to first output of ``relsync --help`` and ``relsync status``.

    python bench/startup.py --runs 20

Each command runs ``--runs`` times, each in a fresh process, interleaved so a burst of
other work on the machine hits all three alike: ``python -c pass`` (the interpreter's
own start-up, the floor), ``relsync --help`` and ``relsync status --config FILE``. The
clock starts before the process is spawned and stops at the first byte on its stdout
(``python -c pass`` prints nothing: its figure is the time to exit). The status store
is real and not timed: a Jira sandbox seeded with ``--records`` requests, one sync
into a fresh store, then the sandbox stops (status only reads the store). ``relsync``
is the console script installed beside this Python.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.loader import load_config
from relsync.demo import write_config
from sandboxes import edits
from sandboxes.server import start_sandboxes
from sync import engine


def make_store(folder: Path, records: int) -> Path:
    """A config and a store one sync filled from a Jira sandbox; the config's path."""
    with start_sandboxes(records=records) as sandboxes:
        description = sandboxes.describe()
        edits.jira_grant(description, "ADMINISTER_PROJECTS")  # relsync creates the Jira versions it plans into
        path = write_config(description, folder / "relsync.yaml")
        report = engine.run(load_config(path), env=dict(description["jira"]["env"]))
    if report.exit_code != engine.EXIT_OK:
        raise SystemExit(f"the sync that makes the store failed: {report.summary().splitlines()[0]}")
    return path


def first_output(command: list[str]) -> float:
    """Seconds from spawning ``command`` to its first byte on stdout (or its exit, if it prints nothing)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    process.stdout.read(1)
    took = time.perf_counter() - started
    process.stdout.read()
    if process.wait() != 0:
        raise SystemExit(f"{' '.join(command)} exited with {process.returncode}")
    return took


def figures(times: list[float]) -> dict[str, float]:
    return {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3), "max_s": round(max(times), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="Fresh processes per command.")
    parser.add_argument("--records", type=int, default=200, help="Requests in the status command's store.")
    args = parser.parse_args()

    relsync = str(Path(sys.executable).parent / "relsync")
    with tempfile.TemporaryDirectory(prefix="relsync-startup-bench-") as folder:
        config = make_store(Path(folder), args.records)
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "relsync --help": [relsync, "--help"],
            "relsync status": [relsync, "status", "--config", str(config)],
        }
        load = [round(n, 2) for n in os.getloadavg()]
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, command in commands.items():
                times[name].append(first_output(command))
    result: dict[str, Any] = {"runs": args.runs, "records": args.records, "python": sys.version.split()[0],
                              "load_average_at_start": load, "load_average_at_end": [round(n, 2) for n in os.getloadavg()]}
    result |= {name: figures(found) for name, found in times.items()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
