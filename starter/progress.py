"""`--wait`: follow a run as it moves, one line per step event, and survive Ctrl-C.

The run id is printed at once (the one thing a person needs to follow the run later),
then one line each time a step moves: guardrails evaluated, waiting for whom and until
when, applied (and when it expires), denied, expired. On a terminal a spinner shows the
current state between lines; otherwise the lines are plain. Ctrl-C stops following,
never the run, and says how to follow it again.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, Awaitable, Callable

from rich.console import Console

from handrail.gate.models import RunStatus, StepRecord, StepState
from handrail.shown import one_line


def _approvers(policy, kind: str, escalated: bool) -> tuple[str, str | None]:
    """Who may decide and until when (from the policy, as the gate froze it when the step began)."""
    if policy is None:
        return "an approver", None
    try:
        gate = policy.gate_policy(kind)
    except Exception:
        return "an approver", None
    who = gate.approvers.users + [f"role {r}" for r in gate.approvers.roles]
    seconds = gate.approval_timeout_s
    if escalated:
        who += gate.escalate_to.users + [f"role {r}" for r in gate.escalate_to.roles]
        seconds += gate.escalation_timeout_s
    return (", ".join(who) or "an approver"), f"{seconds}"


def step_events(before: StepRecord | None, after: StepRecord, policy=None) -> list[str]:
    """What changed in one step between two reads of the status, as lines for a person."""
    lines: list[str] = []
    name = f"{after.step_id} {after.change.kind} {after.change.target}"
    if before is None:
        lines.append(f"{name}: requested")
    if after.mode is not None and (before is None or before.mode is None or after.verdicts != before.verdicts):
        shown = "; ".join(f"{v.outcome.value} {v.guardrail}: {v.reason}" for v in after.verdicts) or "pass"
        lines.append(f"{after.step_id}: guardrails {shown} (mode {after.mode.value})")
    moved = before is None or before.state != after.state or before.escalated != after.escalated
    if not moved:
        return lines
    state = after.state
    if state == StepState.AWAITING_APPROVAL:
        who, seconds = _approvers(policy, after.change.kind, after.escalated)
        until = ""
        if seconds and after.started_at:
            until = f" until {after.started_at + timedelta(seconds=float(seconds)):%Y-%m-%d %H:%M}Z"
        verb = "escalated; waiting" if after.escalated else "waiting"
        lines.append(f"{after.step_id}: {verb} for {after.approvals_needed or 1} approval(s) by {who}{until}")
    elif state == StepState.APPLIED:
        expires = f"; expires {after.expires_at:%Y-%m-%d %H:%M}Z" if after.expires_at else ""
        lines.append(f"{after.step_id}: applied{expires}")
    elif state in (StepState.CHECKING, StepState.APPLYING):
        lines.append(f"{after.step_id}: {state.value}")
    else:
        lines.append(f"{after.step_id}: {state.value}" + (f" — {after.note}" if after.note else ""))
    return lines


def run_events(before: RunStatus | None, after: RunStatus, policy=None) -> list[str]:
    old = {s.step_id: s for s in (before.steps if before else [])}
    lines: list[str] = []
    for step in after.steps:
        lines += step_events(old.get(step.step_id), step, policy)
    if before is None or before.state != after.state:
        lines.append(f"run: {after.state.value}" + (f" — {after.error}" if after.error else ""))
    return lines


async def follow(read: Callable[[], Awaitable[RunStatus]], done: Callable[[RunStatus], bool], run_id: str,
                 console: Console, policy=None, poll_s: float = 0.5, quiet: bool = False) -> RunStatus:
    """Print the run's events until `done`; Ctrl-C stops following and says how to resume."""
    last: RunStatus | None = None
    spinner = None
    if not quiet and console.is_terminal:
        spinner = console.status(f"following {run_id}")
        spinner.start()
    try:
        while True:
            try:
                status = await read()
            except Exception as exc:  # the status may be briefly unreadable (no worker yet): keep following
                status = None
                if spinner is not None:
                    spinner.update(f"{run_id}: waiting for a worker ({type(exc).__name__})")
            if status is not None:
                if not quiet:
                    for line in run_events(last, status, policy):
                        # a target, a reason or a note from outside: printed as written, one line
                        console.print(one_line(line), highlight=False, soft_wrap=True, markup=False)
                    if spinner is not None:
                        spinner.update(f"{run_id}: {status.state.value}")
                last = status
                if done(status):
                    return status
            await asyncio.sleep(poll_s)
    except (asyncio.CancelledError, KeyboardInterrupt):
        if not quiet:
            if spinner is not None:
                spinner.stop()
                spinner = None
            console.print(f"Stopped following; the run goes on. See where it stands: handrail show {run_id}",
                          highlight=False, soft_wrap=True)
        raise
    finally:
        if spinner is not None:
            spinner.stop()


def summary_line(status: RunStatus) -> dict[str, Any]:
    return {"run_id": status.run_id, "state": status.state.value}
