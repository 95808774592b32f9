"""Read a run's state only after the workflow has acted on what we just sent it.

A decision is recorded by the signal handler at once, but the step it unblocks moves on
only after the gate has flushed its audit (an activity). Reading the status right after
the decision shows the step still waiting, which tells an approver the wrong thing.
These helpers wait until the step has visibly moved (or provably still waits for more
approvals) before the CLI reports the state that resulted.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from handrail.gate.models import DecisionRecord, RunState, RunStatus, StepRecord, StepState

MOVING = {StepState.CHECKING, StepState.APPLYING}


def find_decision(status: RunStatus, decision_id: str) -> tuple[DecisionRecord | None, StepRecord | None]:
    """The record of one decision, and the step it was counted for (None when rejected)."""
    for step in status.steps:
        for record in step.decisions:
            if record.decision.id == decision_id:
                return record, step
    for record in status.rejected_decisions:
        if record.decision.id == decision_id:
            return record, None
    return None, None


def approvals_given(step: StepRecord) -> int:
    return sum(1 for d in step.decisions if d.accepted and d.decision.approve)


def has_settled(status: RunStatus, decision_id: str) -> bool:
    """True once the status reflects what the decision caused, not just that it arrived."""
    record, step = find_decision(status, decision_id)
    if record is None:
        return False
    if not record.accepted or step is None:
        return True
    if step.state == StepState.AWAITING_APPROVAL:
        # still waiting is the truth only when more approvals are needed
        return record.decision.approve and approvals_given(step) < (step.approvals_needed or 1)
    return step.state not in MOVING


def outcome_of(status: RunStatus, decision_id: str) -> dict[str, Any]:
    """What the CLI reports: the decision's verdict and the run and step state that followed."""
    record, step = find_decision(status, decision_id)
    out: dict[str, Any] = {"state": status.state.value}
    if record is not None:
        out.update(accepted=record.accepted, why=record.why)
    if step is not None:
        out.update(step=step.step_id, step_state=step.state.value,
                   approvals=f"{approvals_given(step)}/{step.approvals_needed or 1}")
    return out


async def settled_status(handle, decision_id: str, wait_s: float, poll_s: float = 0.2) -> RunStatus | None:
    """Poll the status query until the decision has visibly taken effect (or `wait_s` passes).

    Returns the last status read that contains the decision, or None when no worker has
    judged it yet.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    seen: RunStatus | None = None
    while True:
        try:
            status = await handle.query("status", result_type=RunStatus, rpc_timeout=timedelta(seconds=3))
        except Exception:
            status = None
        if status is not None and find_decision(status, decision_id)[0] is not None:
            seen = status
            if has_settled(status, decision_id):
                return status
        if loop.time() >= deadline:
            return seen
        await asyncio.sleep(poll_s)


def still_on_its_way(status: RunStatus) -> bool:
    """True while the run is between states: its step settled, but it has not yet completed,
    ended or come to wait again (a run that applies its last change completes a moment later)."""
    return status.state == RunState.RUNNING


async def run_moved_on(handle, status: RunStatus, wait_s: float, poll_s: float = 0.2) -> RunStatus:
    """Poll the status query for up to `wait_s` while the run is still on its way; return the
    last status read (the caller says how to follow a run that has not arrived anywhere yet)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while still_on_its_way(status) and loop.time() < deadline:
        await asyncio.sleep(poll_s)
        try:
            status = await handle.query("status", result_type=RunStatus, rpc_timeout=timedelta(seconds=3))
        except Exception:
            continue
    return status
