"""What one run did: the report the engine returns, stores in ``runs`` and the CLI prints."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RunReport:
    """The outcome of one run, as stored in ``runs`` and printed by the CLI."""

    run_id: int | None
    status: str
    exit_code: int
    pulled: dict[str, dict[str, int]] = field(default_factory=dict)
    planned: dict[str, int] = field(default_factory=dict)
    pushed: dict[str, dict[str, int]] = field(default_factory=dict)
    history: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per source, what its history import did (sync.history.HistoryCounts)."""
    api_calls: dict[str, dict[str, int]] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    quarantined: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    def summary(self) -> str:
        """One line for logs and cron mail."""
        if self.run_id is None:  # the run never started (locked, or the store unusable)
            return f"{self.status}: " + "; ".join(self.messages)
        pulled = ", ".join(
            f"{name} {c['pulled']} ({c['created']} new, {c['changed']} changed"
            + (f", {c['deleted']} deleted)" if c.get("deleted") else ")") for name, c in self.pulled.items()
        )
        pushed = sum(c.get("written", 0) for c in self.pushed.values())
        conflicts = sum(c.get("conflicts", 0) for c in self.pushed.values())
        failed = sum(c.get("failed", 0) for c in self.pushed.values())
        pending = sum(c.get("pending", 0) for c in self.pushed.values())
        moved = f" ({self.planned['moved']} moved from another release)" if self.planned.get("moved") else ""
        calls = ", ".join(f"{name} {sum(c.values())}" for name, c in self.api_calls.items())
        imported = sum(c.get("imported", 0) for c in self.history.values())
        line = (
            f"run {self.run_id} {self.status}: pulled {pulled or 'nothing'}"
            f"{f', {self.quarantined} quarantined' if self.quarantined else ''}; "
            f"planned {self.planned.get('assigned', 0)} in{moved}, {self.planned.get('unassigned', 0)} out; "
            f"wrote {pushed}, {conflicts} conflicts, {failed} failed{f', {pending} left for the next run' if pending else ''}; "
            f"{f'imported {imported} history entries; ' if imported else ''}API calls {calls or 'none'}"
        )
        return line + "".join(f"\n  {message}" for message in self.messages)
