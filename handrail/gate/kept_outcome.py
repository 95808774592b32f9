"""What the ledger says about changes kept for another run, and changes taken over from one.

A revert (rollback, expiry, compensation) that finds another run still relying on the
change's state keeps the tool as it is and chains `change.reverted` with `kept` (`released`
or `handed_over`) and `held_by` (`handrail.gate.holders`); a hand-over also chains the
holder's record again, as `change.applied` with `inherited_from`, in the holder's run.
`handrail show` and `handrail runs` read both here, from a run's audit rows, so a kept
change reads "kept: run R still relies on it", never "reverted", and the run that took a
change over says that undoing it now restores the before-state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from handrail.gate.models import RunStatus, StepState


def kept_reverts(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Change id -> the data of its revert, for the run's changes that were kept."""
    return {str(data["change_id"]): data for row in rows
            if row["event"] == "change.reverted" and (data := row.get("data") or {}).get("kept")
            and data.get("change_id")}


def inherited(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Change id -> its record as re-chained when it took another change over (the last one counts)."""
    return {str(data["change_id"]): data for row in rows
            if row["event"] == "change.applied" and (data := row.get("data") or {}).get("inherited_from")
            and data.get("change_id")}


def kept_line(data: dict[str, Any]) -> str:
    """`kept: run R still relies on it`, for one kept revert's data."""
    held = data.get("held_by") or {}
    return f"kept: run {held.get('run_id', '?')} still relies on it"


def inherited_note(data: dict[str, Any]) -> str:
    return (f"took over change {data.get('inherited_from')} when it was undone (this run still relied on it): "
            f"undoing this step now restores {data.get('before')}")


def _at(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None


def apply_inherited(status: RunStatus, rows: list[dict[str, Any]]) -> RunStatus:
    """Show a step found `unchanged` that has since taken another run's change over as applied,
    with its time-to-live (fold before `apply_expiries`, which then counts it)."""
    taken = inherited(rows)
    for step in status.steps:
        data = taken.get(step.change_id or "")
        if data is None or step.state not in (StepState.UNCHANGED, StepState.APPLIED):
            continue
        step.state, step.unchanged, step.note = StepState.APPLIED, False, inherited_note(data)
        step.expires_at = _at(data.get("expires_at")) or step.expires_at
    return status


def apply_kept(status: RunStatus, rows: list[dict[str, Any]]) -> RunStatus:
    """Show each change a revert kept as `kept`, saying which run still relies on it and who
    undid it for this run (fold after the rollback's and expiries' outcomes: it corrects them)."""
    kept = kept_reverts(rows)
    for step in status.steps:
        data = kept.get(step.change_id or "")
        if data is None:
            continue
        step.state, step.expires_at = StepState.KEPT, None
        step.note = f"{data.get('detail', kept_line(data))} (undone for this run by {data.get('reason')}, " \
                    f"{data.get('by')})"
    return status


def runs_note(rows: list[dict[str, Any]]) -> str:
    """One line for `handrail runs` about a run's kept changes ("" when none was kept)."""
    holders = sorted({str((d.get("held_by") or {}).get("run_id", "?")) for d in kept_reverts(rows).values()})
    if not holders:
        return ""
    if len(holders) == 1:
        return f"kept: run {holders[0]} still relies on it"
    return f"kept: runs {', '.join(holders)} still rely on it"
