"""Roll back a finished run on demand: each inverse through the step gate, newest first.

Undoing a change is a change. The rollback first checks who asks (`handrail.gate.rollback`:
a policy user allowed to roll back that runbook, and never someone the run acted against),
then sends every inverse through `Runbook.change` under its own kind's policy —
guardrails, trust mode, approvals (`iam.grant_privilege`, `nac.reconnect`, `edr.release`
wait for a human; the asker and the run's parties never decide) — and applies only the
inverse the hash chain recorded, checking the tool is back in its before-state. A change
that found the tool already in the wanted state has no inverse and is never undone.

Started as `rollback-<run id>`; a refused request fails the workflow, so someone allowed
may ask again, while a rollback that ran is never started twice.

A rollback that could not finish (`needs_attention`) may be asked for again: `handrail
rollback RUN` then starts `rollback-<run id>-retry-N`, which retries exactly the changes
still held (reverted ones are skipped; pending ones are settled by reading the tool).

A change another run still relies on (that run found the state already so) is kept, the
tool untouched (`handrail.gate.holders`). When the plan forecasts it, the step gate asks
the revert to keep it once the requester is proven and before anyone is asked to approve
the undo (`keep_first`), so nobody approves an undo that would not happen; the undo keeps
it too if a holder appeared after the forecast.
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.gate import GateActivities
    from activities.rollback import RollbackActivities
    from handrail.gate.models import AuditEvent, RevertResult, RollbackTrigger, RunState, StepState
    from handrail.gate.rollback import RollbackPlan, RollbackPlanRequest, refusal
    from handrail.gate.search import STATE_KEY

from workflows.gate import CHECK_OPTS, RunbookWorkflow

RUNBOOK = "rollback"


class RollbackReport(BaseModel):
    run_id: str
    requested_by: str
    state: str  # rolled_back | partly_rolled_back | denied | needs_attention | nothing_to_do
    results: list[RevertResult] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)
    denied: list[str] = Field(default_factory=list)
    rollback_id: str = ""
    waiting: str = ""  # set by the CLI when an inverse waits for a human


def rollback_id(run_id: str) -> str:
    return f"rollback-{run_id}"


@workflow.defn(name="RollbackRun")
class RollbackRun(RunbookWorkflow):
    @workflow.run
    async def run(self, trigger: RollbackTrigger) -> RollbackReport:
        plan: RollbackPlan = await workflow.execute_activity_method(
            RollbackActivities.rollback_plan, RollbackPlanRequest(run_id=trigger.run_id), **CHECK_OPTS)
        seq = 0

        def on_original(name: str, **data) -> AuditEvent:
            """An event in the rolled-back run's own audit, so its timeline tells the story."""
            nonlocal seq
            seq += 1
            return AuditEvent(id=f"{workflow.info().workflow_id}:{workflow.info().run_id}:orig-{seq}",
                              at=workflow.now(), run_id=trigger.run_id, event=name, data=data)

        why = refusal(trigger.requested_by, plan)
        if why is not None:
            if plan.known:
                await self._record([on_original("rollback.refused", by=trigger.requested_by, why=why)])
            raise ApplicationError(f"Rollback refused: {why}.", type="RollbackRefused", non_retryable=True)

        report = RollbackReport(run_id=trigger.run_id, requested_by=trigger.requested_by, state="nothing_to_do",
                                rollback_id=workflow.info().workflow_id)
        await self._record([on_original("rollback.started", by=trigger.requested_by,
                                        rollback=workflow.info().workflow_id)])
        async with self.runbook(RUNBOOK, trigger.requested_by, subject=trigger.run_id, trigger=trigger) as rb:
            rb.status.summary.update(rolls_back=trigger.run_id, parties=plan.parties)
            for item in plan.to_undo():
                if item.untrusted:
                    report.failed.append(item.change_id)
                    report.results.append(RevertResult(change_id=item.change_id, reverted=False, verified=False,
                                                       detail=item.untrusted))
                    rb.audit("rollback.untrusted_record", change_id=item.change_id, why=item.untrusted)
                    continue
                step = await rb.change(item.record.inverse, abort_on_deny=False,
                                       excluded_deciders=tuple(plan.parties), reverts=item.record,
                                       keep_first=bool(item.kept_by_run))
                result = rb.undone.get(item.change_id) or RevertResult(
                    change_id=item.change_id, reverted=False, verified=False, detail=step.note)
                report.results.append(result)
                if step.state == StepState.DENIED:
                    report.denied.append(item.change_id)
                elif step.state == StepState.FAILED or not result.verified:
                    report.failed.append(item.change_id)
            report.state = _outcome(report)
            rb.status.summary.update(outcome=report.state, failed=report.failed, denied=report.denied)
        if rb.status.state == RunState.REJECTED:  # the request itself was not proven: nothing was undone
            await self._record([on_original("rollback.refused", by=trigger.requested_by, why=rb.status.error)])
            raise ApplicationError(f"Rollback refused: {rb.status.error}.", type="RollbackRefused", non_retryable=True)
        if report.results:
            name = "run." + report.state if report.state in ("rolled_back", "needs_attention") else (
                "rollback." + report.state)
            await self._record([on_original(name, by=trigger.requested_by, failed=report.failed,
                                            denied=report.denied)])
        if report.results:  # the Web UI finds a rollback that needs attention by HandrailState
            workflow.upsert_search_attributes([STATE_KEY.value_set(report.state)])
        return report

    async def _record(self, events: list[AuditEvent]) -> None:
        await workflow.execute_activity_method(GateActivities.record_audit, events, **{
            **CHECK_OPTS, "retry_policy": RetryPolicy(maximum_attempts=10)})


def _outcome(report: RollbackReport) -> str:
    if not report.results:
        return "nothing_to_do"
    if report.failed:
        return "needs_attention"
    undone = len(report.results) - len(report.denied)
    if report.denied:
        return "partly_rolled_back" if undone else "denied"
    return "rolled_back"
