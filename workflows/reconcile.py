"""The reconciler workflow: revert changes whose expiry no live run will carry out, report drift.

Started every few minutes by the `reconcile` schedule (`handrail/ops/schedules.py`), and on
demand by `handrail drift` (report only). See `handrail.gate.reconcile` for the rules.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.gate import GateActivities
    from activities.reconcile import ReconcileActivities
    from handrail.gate.models import AuditEvent, RevertRequest
    from handrail.gate.reconcile import ReconcileReport, ReconcileTrigger

READ_OPTS = dict(start_to_close_timeout=timedelta(minutes=10), heartbeat_timeout=timedelta(minutes=2),
                 retry_policy=RetryPolicy(maximum_attempts=3))
REVERT_OPTS = dict(start_to_close_timeout=timedelta(seconds=60), heartbeat_timeout=timedelta(seconds=10),
                   retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=8))


@workflow.defn(name="Reconcile")
class Reconcile:
    @workflow.run
    async def run(self, trigger: ReconcileTrigger) -> ReconcileReport:
        report = ReconcileReport()
        me = workflow.info().workflow_id
        if trigger.revert_expired:
            expired = await workflow.execute_activity_method(
                ReconcileActivities.find_expired_changes, trigger, **READ_OPTS)
            for item in expired:
                event = AuditEvent(id=f"{me}:{item.change_id}:expiry.reconciled", at=workflow.now(),
                                   run_id=item.run_id, step_id=item.step_id, event="expiry.reconciled",
                                   data={"change_id": item.change_id, "expires_at": item.expires_at.isoformat(),
                                         "by": "reconciler", "why": "no live run reverted it at its expiry"})
                try:
                    result = await workflow.execute_activity_method(
                        GateActivities.revert_change,
                        RevertRequest(change_id=item.change_id, reason="expiry", by="reconciler",
                                      run_id=item.run_id, audit=[event]),
                        **REVERT_OPTS,
                    )
                except ActivityError:
                    report.failed.append(item.change_id)
                    continue
                if result.reverted or result.kept:  # kept: another run relies on it, its end is that run's
                    report.reconciled.append(item.change_id)
        report.drift = await workflow.execute_activity_method(ReconcileActivities.find_drift, trigger, **READ_OPTS)
        return report
