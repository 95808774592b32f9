"""Tell a waiting step's approvers, as workflow code around the gate's approval wait.

`ask_and_tell` wraps `Runbook._ask_for_approval`: once the step waits it sends a notice
(what, why, until when, the exact approve/deny commands), again when the approval escalates,
and once more with the outcome. Only steps that wait pay for this; automatic steps never
reach it. Each notice is an activity started without waiting for it, so a slow or broken
channel never delays the decision or the change; `drain_notices` lets the run's end wait
for the last ones so that they are sent (and audited) before the workflow closes.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.notify import NotifyActivities
    from handrail.gate.models import GatePolicy, StepRecord, StepState
    from handrail.notify.message import Event, Notice, eligible_approvers
    from handrail.runbooks.exfiltration import CLASSIFY_KIND

# The activity retries each channel itself and never raises for a channel; Temporal retries
# only a lost worker.
NOTIFY_OPTS = dict(
    start_to_close_timeout=timedelta(minutes=2),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3),
)
PATCH = "handrail-notify-approvers"  # runs recorded before notices replay without them
_PENDING = "_notices_pending"  # the Runbook attribute holding the notices still being sent


async def ask_and_tell(rb, step: StepRecord, policy: GatePolicy, why: str,
                       excluded: tuple[str, ...] = ()) -> tuple[bool, list[str], str]:
    """`rb._ask_for_approval(...)`, telling the eligible approvers as the step waits, escalates and ends."""
    if not workflow.patched(PATCH):  # a run that was already waiting when this code was deployed
        return await rb._ask_for_approval(step, policy, why, excluded)
    # a guardrail runbook started by hand: its starter may not decide, so is not told to (unless the
    # run waited before that rule: `Runbook.book.starter_may_decide`, patched in workflows/gate.py)
    started_by = None if rb.book.starter_may_decide else rb.status.summary.get("started_by")
    teller = _Teller(rb, step, policy, why, (rb.status.requested_by, *excluded, *([started_by] if started_by else [])))
    watching = asyncio.ensure_future(teller.while_waiting())
    try:
        approved, approved_by, note = await rb._ask_for_approval(step, policy, why, excluded)
    finally:
        watching.cancel()
    teller.outcome(approved, approved_by, note)
    return approved, approved_by, note


async def drain_notices(rb) -> None:
    """Wait for the notices still being sent (none for a run no step of which waited)."""
    pending = getattr(rb, _PENDING, None)
    if not pending:
        return
    setattr(rb, _PENDING, [])
    try:
        await asyncio.gather(*pending, return_exceptions=True)
    except asyncio.CancelledError:  # a cancel at the very end: the notices were best effort
        return


def _at_timeout(step: StepRecord, policy: GatePolicy) -> str:
    """What an unanswered step comes to, as `handrail pending` says it: the policy's on_timeout,
    except for the exfiltration question, whose on_timeout only closes the gate (it must stay
    deny) while the runbook's on_unclassified_timeout decides the alert's verdict."""
    if step.change.kind == CLASSIFY_KIND:
        return "the verdict settings.exfiltration.on_unclassified_timeout names"
    return f"the policy's on_timeout applies ({policy.on_timeout})"


class _Teller:
    def __init__(self, rb, step: StepRecord, policy: GatePolicy, why: str, exclude: tuple[str, ...]):
        self.rb, self.step, self.policy, self.why, self.exclude = rb, step, policy, why, exclude

    async def while_waiting(self) -> None:
        step, policy = self.step, self.policy
        await workflow.wait_condition(lambda: step.state != StepState.CHECKING)
        if step.state != StepState.AWAITING_APPROVAL:
            return
        escalates = bool(policy.escalate_to.users or policy.escalate_to.roles)
        then = f"it escalates to {_group(policy.escalate_to)}" if escalates else _at_timeout(step, policy)
        self.send("waiting", deadline=workflow.now() + timedelta(seconds=policy.approval_timeout_s), then=then)
        await workflow.wait_condition(lambda: step.escalated)
        self.send("escalated", deadline=workflow.now() + timedelta(seconds=policy.escalation_timeout_s),
                  then=_at_timeout(step, policy))

    def outcome(self, approved: bool, approved_by: list[str], note: str) -> None:
        denied = any(not d.decision.approve for d in self.step.decisions)
        if approved and approved_by != ["on_timeout"]:
            event: Event = "approved"
        elif denied and not approved:
            event = "denied"
        else:
            event = "timed_out"
        outcome = note if not (approved and approved_by == ["on_timeout"]) else (
            "no decision in time; the policy's on_timeout is approve, so the change goes ahead")
        self.send(event, outcome=outcome)

    def send(self, event: Event, **fields) -> None:
        rb, step, policy = self.rb, self.step, self.policy
        notice = Notice(
            event=event, run_id=rb.run_id, step_id=step.step_id, runbook=rb.status.runbook,
            requested_by=rb.status.requested_by, subject=rb.status.subject, change=step.change, why=self.why,
            approvers=eligible_approvers(policy, step.escalated, self.exclude), required=policy.required_approvals,
            **fields,
        )
        if event in ("waiting", "escalated"):  # `pending` and `show` say who may decide, or that nobody may
            step.deciders = list(notice.approvers)
        task = asyncio.ensure_future(
            workflow.execute_activity_method(NotifyActivities.notify_approvers, notice, **NOTIFY_OPTS))
        pending = getattr(rb, _PENDING, None)
        if pending is None:
            pending = []
            setattr(rb, _PENDING, pending)
        pending.append(task)


def _group(group) -> str:
    parts = [f"role {r}" for r in group.roles] + [f"user {u}" for u in group.users]
    return ", ".join(parts)
