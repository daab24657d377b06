"""Benchmark the Jira sync against its sandbox (bench/system_sync.py with --system jira).

    python bench/jira_sync.py --records 10000
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from system_sync import main

if __name__ == "__main__":
    main(system="jira")
