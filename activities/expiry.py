"""Start a run's expiry workflow: a side effect, so an activity with the Temporal client.

Started this way (not as a child the run abandons) the expiry workflow is an ordinary
top-level execution: it survives its parent closing and every server keeps its events.
Idempotent: a retry finds the workflow already started and is done.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from handrail.gate.expiry import ExpiryPlan, expiry_id
from handrail.gate.ledger import Ledger
from handrail.ops.config import Settings


class ExpiryActivities:
    def __init__(self, settings_or_ctx: Any, tools: Any = None, ledger: Ledger | None = None):
        """Takes (settings, tools, ledger) or one worker context with those attributes."""
        if tools is None and hasattr(settings_or_ctx, "settings"):
            settings_or_ctx, tools = settings_or_ctx.settings, settings_or_ctx.tools
        self.settings: Settings = settings_or_ctx
        self.tools = tools

    @activity.defn
    async def start_expiry(self, plan: ExpiryPlan) -> str:
        from workflows.expiry import ExpireChanges

        workflow_id = expiry_id(plan.run_id)
        try:
            await activity.client().start_workflow(
                ExpireChanges.run, plan, id=workflow_id, task_queue=activity.info().task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            pass
        return workflow_id

    def all(self) -> list:
        return [self.start_expiry]
