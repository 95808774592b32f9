"""Start a run's expiry workflow: a side effect, so an activity with the Temporal client.

Started this way (not as a child the run abandons) the expiry workflow is an ordinary
top-level execution: it survives its parent closing and every server keeps its events.
Idempotent: a retry finds the workflow already started and is done.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.context import WorkerContext
from handrail.gate.expiry import EXPIRY_WORKFLOW, ExpiryItem, ExpiryPlan, expiry_id, inherited_expiry_id
from handrail.gate.models import ChangeRecord


class ExpiryActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.settings, self.tools = ctx.settings, ctx.tools

    @activity.defn
    async def start_expiry(self, plan: ExpiryPlan) -> str:
        workflow_id = expiry_id(plan.run_id)
        try:
            await activity.client().start_workflow(
                EXPIRY_WORKFLOW, plan, id=workflow_id, task_queue=activity.info().task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            pass
        return workflow_id


async def start_inherited_expiry(record: ChangeRecord) -> None:
    """Give a change that took over another's undo its own expiry workflow (`expiry-<change id>`).

    It was `unchanged`, so its run's expiry workflow has no timer for it; now that undoing it
    restores a before-state, its time-to-live must end it like any change's. Idempotent; no-op
    outside an activity. If it never took over after all, its expiry finds nothing to undo.
    """
    if record.expires_at is None or not activity.in_activity():
        return
    plan = ExpiryPlan(run_id=record.run_id, items=[ExpiryItem(
        step_id=record.step_id, change_id=record.change_id, change=record.change.describe(),
        expires_at=record.expires_at)])
    try:
        await activity.client().start_workflow(
            EXPIRY_WORKFLOW, plan, id=inherited_expiry_id(record.change_id), task_queue=activity.info().task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        pass
