"""What the ledger says about a run's expiries: which of its changes expired, and whether all did.

A run completes as soon as its changes are made; its expiry workflow (or the reconciler,
for an expiry no live run kept) reverts them later and writes ``change.reverted`` with
reason ``expiry`` into the run's own audit. The run's status still says ``applied``, so
`handrail show` folds the audit in per step, as it does rollbacks, and `handrail runs` lists
a completed run whose every timed change expired as ``expired``. Both read it here, from
the run's audit rows, so they cannot disagree.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from handrail.gate.models import RunState, RunStatus, StepState


def _reverts(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Change id -> the data of its revert (a change is reverted once; the last word counts)."""
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        data = row.get("data") or {}
        if row["event"] == "change.reverted" and data.get("change_id"):
            found[str(data["change_id"])] = {**data, "_at": row.get("at")}
    return found


LATE_AFTER = timedelta(minutes=1)


def _late(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes}m"
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes < 48 * 60 else f"{minutes // 1440}d{minutes % 1440 // 60}h"


def _undone_when(revert: dict[str, Any], due: datetime | None) -> str:
    """When the expiry undid the change, and how late, if it could not run when it was due
    (no worker then, or the tool refused): `show` says when, not only when it was due."""
    try:
        at = datetime.fromisoformat(str(revert.get("_at")))
    except ValueError:
        return ""
    text = f"undone {at:%Y-%m-%d %H:%M:%S}Z"
    if due is not None and at - due > LATE_AFTER:
        text += f", {_late((at - due).total_seconds())} after it was due"
    return text


def failed_expiries(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Change id -> its `expiry.failed` data, for changes whose expiry failed and that are still
    held (no revert since: the reconciler's or a rollback's revert clears it)."""
    failed: dict[str, dict[str, Any]] = {}
    for row in rows:
        data = row.get("data") or {}
        if row["event"] == "expiry.failed" and data.get("change_id"):
            failed[str(data["change_id"])] = data
    reverts = _reverts(rows)
    return {change_id: data for change_id, data in failed.items() if change_id not in reverts}


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
    reverts, failed = _reverts(rows), failed_expiries(rows)
    pending, left = 0, []
    for step in expiring:
        revert = reverts.get(step.change_id or "")
        failure = failed.get(step.change_id or "")
        if failure is not None and step.state == StepState.APPLIED:
            left.append(step.change_id)
            step.note = (f"{failure.get('error') or 'expiry failed'}; the tool still holds it: the reconciler "
                         f"retries it every 5 minutes, `handrail rollback {status.run_id}` undoes it now")
        elif revert is None:
            pending += step.state == StepState.APPLIED
        elif revert.get("reason") == "expiry" and step.state == StepState.APPLIED:
            when = _undone_when(revert, step.expires_at)
            step.state = StepState.EXPIRED
            step.note = "; ".join(part for part in (str(revert.get("detail", "")), when) if part)
    status.summary["expiries_pending"] = pending
    if left:
        status.summary["expiries_failed"] = left
        why = f"expiry failed for ledger change(s) {', '.join(left)}; the tool still holds them"
        status.error = f"{status.error}; {why}" if status.error else why
        if status.state == RunState.COMPLETED:
            status.state = RunState.NEEDS_ATTENTION
    if pending == 0 and all_expired(rows):
        status.summary["all_expired"] = True
    return status
