"""What the ledger says about a run's expiries: which of its changes expired, and whether all did.

A run completes as soon as its changes are made; its expiry workflow (or the reconciler,
for an expiry no live run kept) reverts them later and writes ``change.reverted`` with
reason ``expiry`` into the run's own audit. The run's status still says ``applied``, so
`handrail show` folds the audit in per step, as it does rollbacks, and `handrail runs` lists
a completed run whose every timed change expired as ``expired``. Both read it here, from
the run's audit rows, so they cannot disagree.
"""

from __future__ import annotations

from typing import Any

from handrail.gate.models import RunStatus, StepState


def _reverts(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Change id -> the data of its revert (a change is reverted once; the last word counts)."""
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        data = row.get("data") or {}
        if row["event"] == "change.reverted" and data.get("change_id"):
            found[str(data["change_id"])] = data
    return found


def all_expired(rows: list[dict[str, Any]]) -> bool:
    """Whether the run made changes with a TTL and every one of them has expired."""
    timed = {(r.get("data") or {}).get("change_id") for r in rows
             if r["event"] == "change.applied" and (r.get("data") or {}).get("expires_at")}
    reverts = _reverts(rows)
    return bool(timed) and all(reverts.get(c, {}).get("reason") == "expiry" for c in timed)


def apply_expiries(status: RunStatus, rows: list[dict[str, Any]]) -> RunStatus:
    """Show each expired change as ``expired`` (with what the tool held after), and count
    the expiries still to come in ``summary["expiries_pending"]``."""
    expiring = [s for s in status.steps if s.expires_at and s.change_id]
    if not expiring:
        return status
    reverts = _reverts(rows)
    pending = 0
    for step in expiring:
        revert = reverts.get(step.change_id or "")
        if revert is None:
            pending += step.state == StepState.APPLIED
        elif revert.get("reason") == "expiry" and step.state == StepState.APPLIED:
            step.state, step.note = StepState.EXPIRED, str(revert.get("detail", ""))
    status.summary["expiries_pending"] = pending
    if pending == 0 and all_expired(rows):
        status.summary["all_expired"] = True
    return status
