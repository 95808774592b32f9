"""A TTL that could not be undone is not silently forgotten: the firewall is down for longer
than the expiry's retries, the expiry workflow gives up, and the run's own audit says so, so
`handrail show RUN` (and `handrail runs`) name the change still held instead of a quiet
`completed` with an expiry time in the past. The reconciler's later revert clears it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from handrail.gate.expiry import ExpiryPlan, expiry_id
from handrail.gate.expiry_outcome import apply_expiries
from handrail.gate.models import EgressBlockTrigger, RunState, StepState
from handrail.gate.reconcile import ReconcileTrigger
from starter.runs_cmd import state_from_ledger
from tests.support import make_policy, running_stack, skip_time
from workflows.egress_block import EgressBlock
from workflows.reconcile import Reconcile

pytestmark = pytest.mark.workflow

IP = "203.0.113.57"


async def test_an_expiry_the_tool_refused_to_undo_is_shown_as_needing_attention(fresh_time_env, tmp_path):
    env = fresh_time_env
    async with running_stack(env.client, tmp_path, make_policy(mode="logged")) as stack:
        handle = await stack.start(EgressBlock.run, EgressBlockTrigger(ip=IP, reason="C2", requested_by="alice",
                                                                       ttl_s=86400))
        with env.auto_time_skipping_disabled():
            result = await handle.result()
        assert result.state == RunState.COMPLETED
        change_id = result.steps[0].change_id
        await stack.tools.lab_set_fault(f"/firewall/egress/{IP}", method="DELETE", error_rate=1.0, error_status=503)
        expiry = stack.client.get_workflow_handle(expiry_id(handle.id), result_type=ExpiryPlan)
        stack.started.append(expiry)
        await skip_time(env, timedelta(days=1, hours=1))
        plan = await expiry.result()
        assert [i.state for i in plan.items] == ["failed"]
        assert IP in await stack.edl()

        rows = list(stack.ledger.audit_rows(handle.id))
        [failed] = [r for r in rows if r["event"] == "expiry.failed"]
        assert failed["data"]["change_id"] == change_id and "503" in failed["data"]["error"]
        shown = apply_expiries(result.model_copy(deep=True), rows)  # what `handrail show` prints
        assert shown.state == RunState.NEEDS_ATTENTION
        assert change_id in shown.error and "still holds" in shown.error
        assert shown.steps[0].state == StepState.APPLIED and "expiry failed" in shown.steps[0].note
        assert shown.summary["expiries_failed"] == [change_id]
        assert state_from_ledger("completed", rows) == RunState.NEEDS_ATTENTION.value

        # the firewall is back; the reconciler reverts what the expiry left, and the run reads expired
        # (a negative grace stands for the day the time-skipping server ran ahead of the wall clock)
        await stack.tools.lab_clear_faults()
        report = await stack.client.execute_workflow(Reconcile.run, ReconcileTrigger(grace_s=-2 * 86400),
                                                     id="reconcile-late", task_queue=stack.settings.task_queue)
        assert report.reconciled == [change_id]
        assert IP not in await stack.edl()
        rows = list(stack.ledger.audit_rows(handle.id))
        shown = apply_expiries(result.model_copy(deep=True), rows)
        assert shown.state == RunState.COMPLETED and shown.steps[0].state == StepState.EXPIRED
        assert "expiries_failed" not in shown.summary
        assert state_from_ledger("completed", rows) == "expired"
