"""Roll back a finished run on demand: the ledger's inverses, newest first, each verified.

Started as `rollback-<run id>` with a reuse policy that refuses a second one, so a run is
rolled back at most once. Each revert checks the tool's state against the before-state the
ledger recorded and reports any difference instead of hiding it.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.gate import GateActivities
    from handrail.gate.models import (
        AuditEvent,
        ChangeRecord,
        RevertRequest,
        RevertResult,
        RollbackTrigger,
        RunChangesRequest,
    )

from workflows.gate import REQUESTER_KEY, RUNBOOK_KEY, STATE_KEY


class RollbackReport(BaseModel):
    run_id: str
    requested_by: str
    state: str  # rolled_back | needs_attention | nothing_to_do
    results: list[RevertResult] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)


def rollback_id(run_id: str) -> str:
    return f"rollback-{run_id}"


@workflow.defn(name="RollbackRun")
class RollbackRun:
    @workflow.run
    async def run(self, trigger: RollbackTrigger) -> RollbackReport:
        # The rolled-back run has usually closed and its search attributes cannot change any more;
        # this workflow (`rollback-<run id>`) carries the outcome: HandrailState="rolled_back" finds it.
        workflow.upsert_search_attributes([STATE_KEY.value_set("running"), RUNBOOK_KEY.value_set("rollback"),
                                           REQUESTER_KEY.value_set(trigger.requested_by)])
        changes: list[ChangeRecord] = await workflow.execute_activity_method(
            GateActivities.run_changes,
            RunChangesRequest(run_id=trigger.run_id),
            start_to_close_timeout=timedelta(seconds=30),
        )
        report = RollbackReport(run_id=trigger.run_id, requested_by=trigger.requested_by, state="nothing_to_do")
        seq = 0

        def event(name: str, **data) -> AuditEvent:
            nonlocal seq
            seq += 1
            return AuditEvent(id=f"{workflow.info().workflow_id}:{seq}", at=workflow.now(),
                              run_id=trigger.run_id, event=name, data=data)

        pending = [event("rollback.started", by=trigger.requested_by)]
        for record in reversed(changes):
            if record.inverse is None or record.reverted_at is not None:
                continue
            try:
                result = await workflow.execute_activity_method(
                    GateActivities.revert_change,
                    RevertRequest(change_id=record.change_id, reason="rollback", by=trigger.requested_by,
                                  run_id=trigger.run_id, audit=pending),
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=8),
                )
                report.results.append(result)
                if not result.verified:
                    report.failed.append(record.change_id)
            except ActivityError as err:
                report.failed.append(record.change_id)
                report.results.append(RevertResult(change_id=record.change_id, reverted=False, verified=False,
                                                   detail=str(err.cause or err)))
            pending = []
        if report.results:
            report.state = "needs_attention" if report.failed else "rolled_back"
        workflow.upsert_search_attributes([STATE_KEY.value_set(report.state)])
        pending.append(event("run." + report.state if report.results else "rollback.nothing_to_do",
                             by=trigger.requested_by, failed=report.failed))
        await workflow.execute_activity_method(GateActivities.record_audit, pending, start_to_close_timeout=timedelta(seconds=30),
                                        retry_policy=RetryPolicy(maximum_attempts=10))
        return report
