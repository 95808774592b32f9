"""What the ledger says about a run's rollbacks: rolled back, or left needing attention.

A rollback that could not finish leaves the run `needs_attention` and names the changes
still held; `handrail rollback RUN` again retries exactly those. The last rollback outcome
in the audit is the one that counts (a later successful retry clears the attention).

The rollback writes its story into the rolled-back run's own audit (`rollback.started`,
one `change.reverted` per change undone, then the outcome), so `handrail show RUN` folds
it in per step, as it does expiries: a step whose change the rollback undid is
`rolled_back` with what the tool now holds (and no expiry left to wait for), a step still
held says why, and the run says who asked, when, and which run did it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from handrail.gate.models import RollbackNote, RunState, RunStatus, StepState

_OUTCOME_EVENTS = {"run.rolled_back": "rolled_back", "run.needs_attention": "needs_attention",
                   "rollback.partly_rolled_back": "partly_rolled_back", "rollback.denied": "denied"}


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


@dataclass
class _Undone:
    by: str
    at: datetime | None
    detail: str


@dataclass
class _Story:
    note: RollbackNote | None = None
    undone: dict[str, _Undone] = field(default_factory=dict)  # change id -> its revert by a rollback
    failed: list[str] = field(default_factory=list)  # of the last outcome: still held
    denied: list[str] = field(default_factory=list)


def _at(row: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(row["at"])
    except (KeyError, TypeError, ValueError):
        return None


def _story(rows: list[dict[str, Any]]) -> _Story:
    story = _Story()
    for row in rows:
        event, data = row["event"], row.get("data") or {}
        if event == "rollback.started":
            ids = story.note.rollback_ids if story.note else []
            story.note = RollbackNote(requested_by=str(data.get("by", "?")), requested_at=_at(row),
                                      rollback_ids=ids + ([data["rollback"]] if data.get("rollback") else []))
        elif event == "change.reverted" and data.get("reason") == "rollback" and data.get("change_id"):
            story.undone[data["change_id"]] = _Undone(str(data.get("by", "?")), _at(row), str(data.get("detail", "")))
        elif story.note is None:
            continue
        elif event in _OUTCOME_EVENTS and (event != "run.needs_attention" or "failed" in data):
            story.note.outcome, story.note.finished_at = _OUTCOME_EVENTS[event], _at(row)
            story.failed, story.denied = list(data.get("failed") or []), list(data.get("denied") or [])
        elif event == "rollback.refused":
            story.note.outcome, story.note.finished_at = "refused", _at(row)
    return story


def _when(at: datetime | None) -> str:
    return f" at {at:%Y-%m-%d %H:%M:%S}Z" if at else ""


def apply_rollback_outcome(status: RunStatus, rows: list[dict[str, Any]]) -> RunStatus:
    """Show the rollback's outcome in the run's status (`handrail show`, listings): the run's
    state, who rolled it back, when and as which run, and each step's change as it now stands."""
    story = _story(rows)
    if story.note is not None:
        status.rollback = story.note
    for step in status.steps:
        undone = story.undone.get(step.change_id or "")
        if undone is not None:
            step.state, step.expires_at = StepState.ROLLED_BACK, None  # nothing is left to expire
            step.note = f"rolled back by {undone.by}{_when(undone.at)}: {undone.detail}".rstrip(": ")
        elif step.change_id in story.failed:
            step.note = "the rollback could not undo this change: the tool still holds it"
        elif step.change_id in story.denied:
            step.note = "the rollback's undo of this change was denied: the tool still holds it"
    outcome = rollback_outcome(rows)
    if outcome is None:
        return status
    status.state = outcome.state
    if outcome.left:
        status.error = ("rollback could not finish; still held: " + ", ".join(outcome.left)
                        + " (run `handrail rollback " + status.run_id + "` again to retry them)")
    return status
