"""What the ledger says about a run's rollbacks: rolled back, or left needing attention.

A rollback that could not finish leaves the run `needs_attention` and names the changes
still held; `handrail rollback RUN` again retries exactly those. The last rollback outcome
in the audit is the one that counts (a later successful retry clears the attention).

The rollback writes its story into the rolled-back run's own audit (`rollback.started`,
one `change.reverted` per change undone, then the outcome), so `handrail show RUN` folds
it in per step, as it does expiries: a step whose change the rollback undid is
`rolled_back` with what the tool now holds (and no expiry left to wait for), a step still
held says why, and the run says who asked, when, and which run did it.

A rollback run itself (`rollback-RUN`) is shown in one vocabulary by `handrail show` and
`handrail runs` alike (`rollback_view`): its outcome once it ended (`rolled_back`,
`partly_rolled_back`, `denied`, `needs_attention`; `completed` when there was nothing to
undo) — the HandrailState the workflow sets — or `refused` with the reason when the request
was refused. A refused request is an execution of the same workflow id that ended at once
(so that someone allowed may ask again): the listing folds the refused ones into the
rollback that followed them (`refused_before`), from the `rollback.started` and
`rollback.refused` events each execution writes into the rolled-back run's audit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from handrail.gate.models import RefusedRequest, RollbackNote, RunState, RunStatus, StepState

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


def rolled_back_on_request(rows: list[dict[str, Any]]) -> bool:
    """Whether someone rolled the run back: a rollback of it started (and its request was not
    found unproven afterwards) and its undos were not denied, in whole or in part. Such a run no
    longer relies on the states it found in place (`handrail.gate.holders`), although its
    rollback had nothing of theirs to undo (and then writes no outcome). A request refused
    before it started (its own execution: the event ids' prefix) changes nothing."""
    state, before, started = None, None, None
    for row in rows:
        event, data = row["event"], row.get("data") or {}
        execution = str(row.get("id", "")).rsplit(":orig-", 1)[0]
        if event == "rollback.started":
            before, state, started = state, "started", execution
        elif event == "rollback.refused" and state == "started" and execution == started:
            state = before  # that request was not proven: it rolled nothing back
        elif event == "run.rolled_back" or (event == "run.needs_attention" and "failed" in data):
            state = "rolled_back"
        elif event in ("rollback.denied", "rollback.partly_rolled_back"):
            state = "denied"
    return state in ("started", "rolled_back")


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


# -- a rollback run's own state ---------------------------------------------------------------
ROLLBACK_PREFIX = "rollback-"
_RETRY = re.compile(r"^(?P<run>.+)-retry-\d+$")
# what a rollback that ended may have come to (workflows/rollback.py upserts it as HandrailState);
# one with nothing to undo (`nothing_to_do`) upserts nothing and stays `completed`
_ENDINGS = {RunState.ROLLED_BACK.value, RunState.PARTLY_ROLLED_BACK.value, RunState.DENIED.value,
            RunState.NEEDS_ATTENTION.value}


def rolled_back_runs(workflow_id: str) -> list[str]:
    """The runs a rollback's workflow id may roll back, likeliest first: `rollback-RUN` rolls back
    RUN, and `rollback-RUN-retry-N` too (where RUN itself does not end in `-retry-N`)."""
    if not workflow_id.startswith(ROLLBACK_PREFIX) or len(workflow_id) == len(ROLLBACK_PREFIX):
        return []
    run = workflow_id[len(ROLLBACK_PREFIX):]
    retried = _RETRY.match(run)
    return [retried.group("run"), run] if retried else [run]


@dataclass
class Attempt:
    """One execution of a rollback's workflow id, as the rolled-back run's audit tells it."""

    run: str  # Temporal's run id of the execution
    by: str
    at: datetime | None
    refused: str | None = None  # why the request was refused; None when the rollback ran

    def request(self) -> RefusedRequest:
        return RefusedRequest(by=self.by, at=self.at, why=self.refused or "")


def rollback_attempts(workflow_id: str, rows: list[dict[str, Any]]) -> list[Attempt]:
    """Every execution of `workflow_id` the rolled-back run's audit `rows` heard of, oldest first.

    Each execution writes `rollback.started` (it ran) or `rollback.refused` (or both, when the
    request itself was not proven) into that audit, under an event id naming its workflow id and
    Temporal run id (`WORKFLOW:RUN:orig-N`, workflows/rollback.py)."""
    attempts: dict[str, Attempt] = {}
    for row in rows:
        if row.get("event") not in ("rollback.started", "rollback.refused"):
            continue
        parts = str(row.get("id") or "").rsplit(":", 2)
        if len(parts) != 3 or parts[0] != workflow_id:
            continue
        data = row.get("data") or {}
        attempt = attempts.setdefault(parts[1], Attempt(run=parts[1], by=str(data.get("by", "?")), at=_at(row)))
        if row["event"] == "rollback.refused":
            attempt.refused = str(data.get("why") or "no reason recorded")
    return list(attempts.values())


def rollback_run_state(state: str, summary: dict[str, Any] | None) -> str:
    """A rollback run's state from what the run itself says (its status, or its `run.finished`
    event): once it ended, its outcome, as the workflow sets HandrailState; until then its state."""
    outcome = str((summary or {}).get("outcome") or "")
    if state == RunState.COMPLETED.value and outcome in _ENDINGS:
        return outcome
    return state


@dataclass
class RollbackView:
    """How a rollback run is shown: its state (None: what the caller knows stands), the execution
    meant (None: one the audit has not heard of yet), the requests refused before it, and whether
    a later execution of its id followed it."""

    state: str | None
    current: Attempt | None = None
    refused_before: list[Attempt] = field(default_factory=list)
    superseded: bool = False


def rollback_view(workflow_id: str, rows: list[dict[str, Any]], own_state: str | None,
                  summary: dict[str, Any] | None = None, run: str | None = None) -> RollbackView:
    """The one reading of a rollback run that `handrail show` and `handrail runs` share.

    `rows`: the rolled-back run's audit; `own_state` and `summary`: what the rollback run says
    of itself (None when it never ran: a refused request writes no timeline); `run`: which
    execution of the id is meant (Temporal's run id; None: the latest the audit knows)."""
    attempts = rollback_attempts(workflow_id, rows)
    index = next((i for i, a in enumerate(attempts) if a.run == run), None) if run else (
        len(attempts) - 1 if attempts else None)
    current = attempts[index] if index is not None else None
    before = attempts[:index] if index is not None else attempts
    view = RollbackView(state=None, current=current, refused_before=[a for a in before if a.refused is not None],
                        superseded=index is not None and index < len(attempts) - 1)
    if current is not None and current.refused is not None:
        view.state = RunState.REFUSED.value
    elif own_state is not None:
        view.state = rollback_run_state(own_state, summary)
    return view


def refused_status(workflow_id: str, rolled_back: str, attempt: Attempt) -> RunStatus:
    """The status of a rollback request that was refused: nothing ran, so the audit's refusal is all."""
    return RunStatus(run_id=workflow_id, runbook="rollback", state=RunState.REFUSED, requested_by=attempt.by,
                     subject=rolled_back, started_at=attempt.at or datetime.fromtimestamp(0, timezone.utc),
                     finished_at=attempt.at, error=f"rollback refused: {attempt.refused}")
