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
from handrail.gate.expiry import EXPIRY_WORKFLOW, ExpiryPlan, expiry_id


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
