"""`ExpireChanges`: revert a completed run's changes when their time-to-live ends.

One per run (`expiry-<run id>`), started by the run as it completes. It sleeps until each
change expires and reverts it with the gate's revert activity (reason `expiry`), which
leaves a change someone already rolled back alone. Its own `HandrailState` says where it
is: `expiring` while it waits, `expired` when done, `needs_attention` when an expiry
failed. Cancelling it reverts the remaining changes at once rather than leaving them
without an end.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.gate import GateActivities
    from handrail.gate.expiry import ExpiryItem, ExpiryPlan
    from handrail.gate.models import AuditEvent, RevertRequest

from workflows.gate import AWAITING_KEY, REQUESTER_KEY, RUNBOOK_KEY, STATE_KEY, _keep_awaiting

REVERT_OPTS = dict(
    start_to_close_timeout=timedelta(seconds=60),
    heartbeat_timeout=timedelta(seconds=10),  # revert_change heartbeats: a killed worker is noticed in seconds
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=8),
)

AUDIT_OPTS = dict(start_to_close_timeout=timedelta(seconds=30), retry_policy=RetryPolicy(maximum_attempts=10))
# an expiry that failed is written into the run's audit; expiries that failed before replay as they ran
EXPIRY_FAILED_AUDITED = "handrail-expiry-failed-audited"


@workflow.defn(name="ExpireChanges")
class ExpireChanges:
    def __init__(self) -> None:
        self._plan: ExpiryPlan | None = None

    @workflow.run
    async def run(self, plan: ExpiryPlan) -> ExpiryPlan:
        self._plan = plan
        workflow.upsert_search_attributes([
            STATE_KEY.value_set("expiring"), RUNBOOK_KEY.value_set("expiry"),
            REQUESTER_KEY.value_set("handrail"), AWAITING_KEY.value_set(""),
        ])
        items = sorted(plan.items, key=lambda i: i.expires_at)
        try:
            for item in items:
                delay = (item.expires_at - workflow.now()).total_seconds()
                if delay > 0:
                    await workflow.sleep(timedelta(seconds=delay))
                await self._expire(plan.run_id, item)
        except asyncio.CancelledError:
            async def remaining() -> None:
                for item in items:
                    if item.state == "pending":
                        await self._expire(plan.run_id, item)

            await _keep_awaiting(asyncio.ensure_future(remaining()))
        failed = [i for i in items if i.state == "failed"]
        workflow.upsert_search_attributes([STATE_KEY.value_set("needs_attention" if failed else "expired")])
        return plan

    async def _expire(self, run_id: str, item: ExpiryItem) -> None:
        audit = [AuditEvent(id=f"{workflow.info().workflow_id}:{item.step_id}:due", at=workflow.now(), run_id=run_id,
                            step_id=item.step_id, event="expiry.due", data={"change_id": item.change_id})]
        try:
            result = await workflow.execute_activity_method(
                GateActivities.revert_change,
                RevertRequest(change_id=item.change_id, reason="expiry", by="handrail", run_id=run_id, audit=audit),
                **REVERT_OPTS,
            )
        except ActivityError as err:
            item.state, item.detail = "failed", f"expiry failed: {err.cause or err}"
            workflow.upsert_search_attributes([STATE_KEY.value_set("needs_attention")])
            if workflow.patched(EXPIRY_FAILED_AUDITED):
                await self._audit_failure(run_id, item)
            return
        item.state = "expired" if result.reverted else ("kept" if result.kept else "skipped")
        item.detail = result.detail

    async def _audit_failure(self, run_id: str, item: ExpiryItem) -> None:
        """Write `expiry.failed` into the run's own audit, so `handrail show RUN` and `handrail runs`
        say the change is still held (the reconciler retries it; `handrail rollback` undoes it now)."""
        event = AuditEvent(id=f"{workflow.info().workflow_id}:{item.step_id}:failed", at=workflow.now(),
                           run_id=run_id, step_id=item.step_id, event="expiry.failed",
                           data={"change_id": item.change_id, "expires_at": item.expires_at.isoformat(),
                                 "error": item.detail})
        try:
            await workflow.execute_activity_method(GateActivities.record_audit, [event], **AUDIT_OPTS)
        except ActivityError:
            pass  # the ledger is down too: the workflow's own state still says needs_attention

    @workflow.query
    def status(self) -> ExpiryPlan | None:
        return self._plan
