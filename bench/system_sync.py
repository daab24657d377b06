"""Benchmark one system's sync against its sandbox: API calls per run vs the minimum, speed, memory.

    python bench/system_sync.py --system airtable --records 10000

The system's sandbox runs in its own process (seeded as `relsync sandbox` seeds it),
so the time and peak memory reported are relsync's alone. Four syncs on a fresh store holding only the
chosen source: the initial pull (with the plan's write-back), the run that reads
relsync's own writes back, a no-op run, and a run after 5 approved requests were
raised to the top priority through the system's own client. API calls are read
from the sandbox's own counter, per endpoint.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.loader import load_config
from sync import engine

BEHAVIOURS = ("real", "kind")
"""The sandboxes' profiles (sandboxes.behaviour), named here: importing the package would load every fake."""
REAL, KIND = BEHAVIOURS
PAGE = {"jira": 100, "airtable": 100, "salesforce": 2000}
WRITE_BATCH = {"jira": 1, "airtable": 10, "salesforce": 200}


def raise_five(system: str, description: dict, folder: Path) -> None:
    """Raise 5 approved, not-yet-top-priority requests to the top priority, as a triager would."""
    from sandboxes import edits

    if system == "jira":
        client = edits.jira_client(description)
        found = client.enhanced_search_issues(
            'project = OPS AND status = Approved AND priority != Highest ORDER BY key ASC', maxResults=5
        )
        for issue in found:
            edits.jira_set_priority(client, issue.key, "Highest")
    elif system == "airtable":
        table = edits.airtable_table(description)
        found = table.all(formula="AND({Status}='Approved',{Priority}!='Critical')", max_records=5)
        table.batch_update([{"id": r["id"], "fields": {"Priority": "Critical"}} for r in found])
    else:
        sf = edits.salesforce_client(description, str(folder / "salesforce-sandbox-ca.pem"))
        found = sf.query("SELECT Id FROM Case WHERE Status = 'Approved' AND Priority != 'Critical' LIMIT 5")
        for record in found["records"]:
            sf.Case.update(record["Id"], {"Priority": "Critical"})


class Counter:
    """One sandbox's per-endpoint call counter."""

    def __init__(self, url: str, verify: str | bool) -> None:
        self.url, self.verify = url, verify

    def take(self) -> dict[str, int]:
        counted = requests.get(f"{self.url}/_sandbox/calls", timeout=10, verify=self.verify).json()["calls"]
        requests.post(f"{self.url}/_sandbox/calls/reset", timeout=10, verify=self.verify)
        return counted


def run_all(system: str, description: dict, config_path: Path, folder: Path) -> list[dict]:
    config = load_config(config_path)
    env = {k: v for box in description.values() if isinstance(box, dict) for k, v in box.get("env", {}).items()}
    verify: str | bool = str(folder / "salesforce-sandbox-ca.pem") if system == "salesforce" else True
    counter = Counter(description[system]["url"], verify)
    counter.take()
    steps: list[tuple[str, Callable[[], None] | None]] = [
        ("initial", None),
        ("own writes back", None),
        ("no-op", None),
        ("5 raised", lambda: raise_five(system, description, folder)),
    ]
    results = []
    for label, prepare in steps:
        if prepare:
            prepare()
            counter.take()
        started = time.perf_counter()
        report = engine.run(config, env=env)
        elapsed = time.perf_counter() - started
        counted = counter.take()
        pulled = report.pulled[system]["pulled"]
        written = report.pushed.get(system, {}).get("written", 0)
        results.append(
            {
                "run": label,
                "exit": report.exit_code,
                "pulled": pulled,
                "written_fields": written,
                "calls_total": sum(counted.values()),
                "minimum_pull_calls": max(1, math.ceil(pulled / PAGE[system])),
                "seconds": round(elapsed, 2),
                "records_per_s": round(pulled / elapsed) if elapsed else None,
                "by_endpoint": counted,
            }
        )
    return results


def serve(argv: list[str]) -> None:
    """Serve one system's sandbox until SIGTERM; its description is the first stdout line (``--serve``)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("system", choices=sorted(PAGE))
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--behaviour", choices=BEHAVIOURS, required=True)
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)
    # Imported here, in the sandbox's process: the measured one loads none of the fakes' code.
    from relsync.demo import write_config
    from sandboxes import edits
    from sandboxes.server import start_sandboxes

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with start_sandboxes(records=args.records, seed=args.seed, systems=(args.system,), behaviour=args.behaviour) as boxes:
        description = boxes.describe()
        if args.system == "jira":  # the account may create versions, as a Jira admin set it up
            edits.jira_grant(description, "ADMINISTER_PROJECTS")
        write_config(description, args.config)
        print(json.dumps(description), flush=True)
        stop.wait()


@contextlib.contextmanager
def running_sandbox(system: str, records: int, seed: int, folder: Path, behaviour: str = REAL) -> Iterator[tuple[dict, Path]]:
    """That system's sandbox alone, seeded as ``relsync sandbox`` seeds it, in its own process: (description, config).

    ``behaviour`` is the sandboxes' profile by name (sandboxes.behaviour): "real", the
    services at their least kind, or "kind". The config holds that source alone.
    """
    config_path = folder / "relsync.yaml"
    sandbox = subprocess.Popen(
        [sys.executable, __file__, "--serve", system, "--records", str(records), "--seed", str(seed),
         "--behaviour", behaviour, "--config", str(config_path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert sandbox.stdout is not None
        description = json.loads(sandbox.stdout.readline())
        yield description, config_path
    finally:
        sandbox.send_signal(signal.SIGTERM)
        sandbox.wait(timeout=120)


def main(argv: list[str] | None = None, system: str | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    if system is None:
        parser.add_argument("--system", choices=sorted(PAGE), required=True)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    system = system or args.system
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        with running_sandbox(system, args.records, args.seed, folder) as (description, config_path):
            results = run_all(system, description, config_path, folder)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"system": system, "records": args.records, "peak_rss_mb": round(peak_mb), "runs": results}, indent=2))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2:])
    else:
        main()
