"""A change's time-to-live: a durable timer that undoes the change when it runs out.

Each change with `expires_after` gets one of these, started by its run and left running
when the run closes, so the run reports its result at once while the timer survives
worker and server restarts for as long as the TTL lasts. If the change was already undone
(rollback, compensation), the revert is a no-op the ledger reports as `already`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from handrail.models import AuditEvent, RevertRequest, RevertResult


class ExpiryTrigger(BaseModel):
    change_id: str
    run_id: str
    expires_at: datetime


@workflow.defn(name="ExpireChange")
class ExpireChange:
    @workflow.run
    async def run(self, trigger: ExpiryTrigger) -> RevertResult:
        wait = (trigger.expires_at - workflow.now()).total_seconds()
        if wait > 0:
            await workflow.sleep(timedelta(seconds=wait))
        event = AuditEvent(
            id=f"{trigger.change_id}:expired",
            at=workflow.now(),
            run_id=trigger.run_id,
            event="change.expired",
            data={"change_id": trigger.change_id, "expires_at": trigger.expires_at.isoformat()},
        )
        return await workflow.execute_activity(
            "revert_change",
            RevertRequest(change_id=trigger.change_id, reason="expiry", by="handrail-ttl",
                          run_id=trigger.run_id, audit=[event]),
            result_type=RevertResult,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=10)),
        )
