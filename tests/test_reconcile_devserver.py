"""Expiry that cannot be lost, and drift (issue 15, item 4), on the dev server (Schedules, visibility)."""

from __future__ import annotations

import pytest

from handrail.gate.expiry import expiry_id
from handrail.gate.models import EgressBlockTrigger, RunState
from handrail.gate.reconcile import ReconcileReport, ReconcileTrigger
from handrail.ops import schedules
from starter.drift_cmd import drift_report
from tests.support import make_policy, running_stack, schedule_results
from workflows.egress_block import EgressBlock
from workflows.reconcile import Reconcile

pytestmark = pytest.mark.integration

IP = "203.0.113.91"


async def test_a_terminated_runs_expired_change_is_reverted_by_the_reconciler(dev_env, tmp_path):
    client = dev_env.client
    async with running_stack(client, tmp_path, make_policy(mode="logged")) as stack:
        handle = await stack.start(EgressBlock.run, EgressBlockTrigger(ip=IP, reason="r", requested_by="alice",
                                                                       ttl_s=3600))
        status = await handle.result()
        assert status.state == RunState.COMPLETED
        # The run has handed its TTL to `expiry-<run>`; an operator terminates that from the Web UI.
        await client.get_workflow_handle(expiry_id(handle.id)).terminate("terminated from the Web UI")
        assert IP in await stack.edl()
        change_id = status.steps[0].change_id

        # Not expired yet: the reconciler leaves it alone.
        early = await client.execute_workflow(Reconcile.run, ReconcileTrigger(grace_s=0), id="reconcile-early",
                                              task_queue=stack.settings.task_queue)
        assert early.reconciled == [] and IP in await stack.edl()

        # An hour and ten seconds later (a negative grace stands for the time that passed):
        later = await client.execute_workflow(Reconcile.run, ReconcileTrigger(grace_s=-3610), id="reconcile-later",
                                              task_queue=stack.settings.task_queue)
        assert later.reconciled == [change_id] and later.drift == []
        assert IP not in await stack.edl()
        revert = stack.ledger.revert_of(change_id)
        assert revert.reason == "expiry" and revert.by == "reconciler" and revert.verified
        events = [r["event"] for r in stack.ledger.audit_rows(handle.id)]
        assert "expiry.reconciled" in events

        again = await client.execute_workflow(Reconcile.run, ReconcileTrigger(grace_s=-3610), id="reconcile-again",
                                              task_queue=stack.settings.task_queue)
        assert again.reconciled == []


async def test_the_reconcile_schedule_runs_and_drift_names_what_the_tool_lost(dev_env, tmp_path):
    client = dev_env.client
    async with running_stack(client, tmp_path, make_policy(mode="logged")) as stack:
        handle = await stack.start(EgressBlock.run, EgressBlockTrigger(ip=IP, reason="r", requested_by="alice"))
        assert (await handle.result()).state == RunState.COMPLETED
        assert (await drift_report(client, stack.settings.task_queue)).drift == []
        await stack.tools.firewall.egress_remove(IP)  # someone removed it by hand
        report = await drift_report(client, stack.settings.task_queue)
        [item] = report.drift
        assert item.ledger == "live" and item.tool_holds is False and item.run_id == handle.id
        try:
            assert await schedules.ensure_all(client, stack.settings, paused=True)
            shown = await schedules.show(client, "reconcile")
            assert shown["paused"] is False  # a safety net is never created paused
            await schedules.trigger(client, "reconcile")
            [result] = await schedule_results(client, "reconcile", 1, ReconcileReport)
            assert [d.change_id for d in result.drift] == [item.change_id]
        finally:
            for name in schedules.SCHEDULES:
                try:
                    await client.get_schedule_handle(schedules.definition(name).schedule_id).delete()
                except Exception:
                    pass
