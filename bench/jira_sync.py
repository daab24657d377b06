"""Benchmark a Jira sync against the sandbox: API calls per phase vs the minimum, speed, memory.

    python bench/jira_sync.py --records 10000

The sandbox runs in its own process (`relsync sandbox`), so the time and peak
memory reported are relsync's alone. Four syncs on a fresh store: the initial
pull (with the plan's write-back), the run that reads relsync's own writes back,
a no-op run, and a run after 5 approved issues were raised to Highest through the
jira client. API calls are read from the sandbox's own counter, per endpoint.
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.loader import load_config  # noqa: E402
from connectors.sandbox import edits  # noqa: E402
from sync import engine  # noqa: E402


def calls(url: str) -> dict[str, int]:
    """The sandbox's per-endpoint counter, then reset it."""
    counted = requests.get(f"{url}/_sandbox/calls", timeout=10).json()["calls"]
    requests.post(f"{url}/_sandbox/calls/reset", timeout=10)
    return counted


def summarize(counted: dict[str, int]) -> dict[str, int]:
    """Calls grouped the way the performance model counts them."""
    search = sum(n for k, n in counted.items() if k.endswith("/search/jql"))
    setup = sum(n for k, n in counted.items() if k.endswith(("/serverInfo", "/field")))
    writes = sum(n for k, n in counted.items() if k.startswith(("PUT ", "POST ")) and "/search" not in k)
    return {"search": search, "setup": setup, "writes": writes, "total": sum(counted.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    page = 100
    with tempfile.TemporaryDirectory() as folder:
        config_path = Path(folder) / "relsync.yaml"
        sandbox = subprocess.Popen(
            [sys.executable, "-m", "sync", "sandbox", "--records", str(args.records), "--seed", str(args.seed),
             "--write-config", str(config_path)],
            stdout=subprocess.PIPE, text=True,
        )
        try:
            description = json.loads(sandbox.stdout.readline())
            results = run_all(description, load_config(config_path), page)
        finally:
            sandbox.send_signal(signal.SIGTERM)
            sandbox.wait(timeout=30)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"records": args.records, "peak_rss_mb": round(peak_mb), "runs": results}, indent=2))


def run_all(description: dict, config, page: int) -> list[dict]:
    url = description["jira"]["url"]
    env = description["jira"]["env"]
    calls(url)
    results = []
    for label, prepare in (
        ("initial", None),
        ("own writes back", None),
        ("no-op", None),
        ("5 raised", lambda: _raise_five(description)),
    ):
        if prepare:
            prepare()
            calls(url)
        started = time.perf_counter()
        report = engine.run(config, env=env)
        elapsed = time.perf_counter() - started
        counted = calls(url)
        pulled = sum(c["pulled"] for c in report.pulled.values())
        results.append(
            {
                "run": label,
                "exit": report.exit_code,
                "pulled": pulled,
                "written": sum(c["written"] for c in report.pushed.values()),
                "calls": summarize(counted),
                "minimum_search": max(1, math.ceil(pulled / page)),
                "seconds": round(elapsed, 2),
                "records_per_s": round(pulled / elapsed) if elapsed else None,
                "by_endpoint": counted,
            }
        )
    return results


def _raise_five(description: dict) -> None:
    client = edits.jira_client(description)
    project = description["jira"]["project"]
    found = client.enhanced_search_issues(
        f'project = "{project}" AND status = Approved AND priority != Highest ORDER BY key ASC', maxResults=5
    )
    for issue in found:
        edits.jira_set_priority(client, issue.key, "Highest")


if __name__ == "__main__":
    main()
