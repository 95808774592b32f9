"""What the ledger says about a run's rollbacks: rolled back, or left needing attention.

A rollback that could not finish leaves the run `needs_attention` and names the changes
still held; `handrail rollback RUN` again retries exactly those. The last rollback outcome
in the audit is the one that counts (a later successful retry clears the attention).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from handrail.gate.models import RunState, RunStatus


@dataclass
class RollbackOutcome:
    state: RunState
    left: list[str] = field(default_factory=list)  # change ids the rollback could not undo


def rollback_outcome(rows: list[dict[str, Any]]) -> RollbackOutcome | None:
    """The last rollback's outcome from a run's audit rows, or None if it was never rolled back."""
    last = None
    for row in rows:
        data = row.get("data") or {}
        if row["event"] == "run.rolled_back" or (row["event"] == "run.needs_attention" and "failed" in data):
            last = row
    if last is None:
        return None
    if last["event"] == "run.rolled_back":
        return RollbackOutcome(RunState.ROLLED_BACK)
    return RollbackOutcome(RunState.NEEDS_ATTENTION, list(last["data"].get("failed") or []))


def apply_rollback_outcome(status: RunStatus, rows: list[dict[str, Any]]) -> RunStatus:
    """Show the rollback's outcome in the run's status (`handrail show`, listings)."""
    outcome = rollback_outcome(rows)
    if outcome is None:
        return status
    status.state = outcome.state
    if outcome.left:
        status.error = ("rollback could not finish; still held: " + ", ".join(outcome.left)
                        + " (run `handrail rollback " + status.run_id + "` again to retry them)")
    return status
