"""Undoing is a change too: rollback through the gate, and only from records the chain vouches for."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.common import WorkflowIDReusePolicy

from handrail.gate.expiry import ExpiryPlan, expiry_id
from handrail.gate.models import EgressBlockTrigger, RollbackTrigger, RunState, StepState
from handrail.gate.search import STATE_KEY
from handrail.runbooks.privilege import PrivilegeTrigger, privilege_run_id
from tests.support import make_policy, running_stack, send_decision
from workflows.egress_block import EgressBlock
from workflows.privilege_guard import PrivilegeGuard
from workflows.rollback import RollbackRun, rollback_id

pytestmark = pytest.mark.workflow

IP = "203.0.113.7"
POLICY = (Path(__file__).resolve().parents[1] / "policy.toml").read_text()
NO_TICKET = "IAM-EVT-0003"  # a Marketing user added to domain-admins by svc-backup, no ticket
ANALYST = "IAM-EVT-0009"  # alice (a policy analyst) made a server admin, no ticket
BLOCK_THE_CRM = ("UPDATE changes SET body = json_set(body, '$.inverse.kind', 'firewall.egress_block',"
                 " '$.inverse.target', '161.71.0.0/16')")


def tamper(stack, sql: str) -> None:
    db = sqlite3.connect(stack.settings.ledger_path)
    db.execute(sql)
    db.commit()
    db.close()


def recommit_waiting(status) -> bool:
    return len(status.steps) == 2 and status.steps[1].state == StepState.AWAITING_APPROVAL


def block(by: str = "alice", ttl_s: float | None = None) -> EgressBlockTrigger:
    return EgressBlockTrigger(ip=IP, reason="C2 beacon", requested_by=by, ttl_s=ttl_s)


async def test_expiry_refuses_an_inverse_edited_in_the_ledger(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(mode="logged")) as stack:
        handle = await stack.start(EgressBlock.run, block(ttl_s=3600))
        status = await stack.wait_for(handle, lambda s: s.state == RunState.COMPLETED)
        change_id = status.steps[0].change_id
        tamper(stack, BLOCK_THE_CRM)
        expiry = stack.client.get_workflow_handle(expiry_id(handle.id), result_type=ExpiryPlan)
        stack.started.append(expiry)
        await time_env.sleep(timedelta(hours=1, minutes=5))
        [item] = (await expiry.result()).items
        assert item.state == "failed" and change_id in item.detail and "does not verify" in item.detail
        assert (await expiry.describe()).typed_search_attributes.get(STATE_KEY) == "needs_attention"
        assert "161.71.0.0/16" not in await stack.edl()
        verdict = stack.ledger.verify()
        assert not verdict.ok and verdict.bad_change == change_id


async def test_rollback_refuses_an_inverse_edited_in_the_ledger(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(mode="logged")) as stack:
        handle = await stack.start(EgressBlock.run, block())
        result = await handle.result()
        tamper(stack, BLOCK_THE_CRM)
        rb = await stack.start(RollbackRun.run, RollbackTrigger(run_id=handle.id, requested_by="bob"),
                               id=rollback_id(handle.id))
        report = await rb.result()
        change_id = result.steps[0].change_id
        assert report.state == "needs_attention" and report.failed == [change_id]
        assert "does not verify" in report.results[0].detail and change_id in report.results[0].detail
        edl = await stack.edl()
        assert "161.71.0.0/16" not in edl and IP in edl  # neither the forged block nor the undo ran


async def test_egress_block_rollback_goes_through_the_gate_and_restores_the_edl(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(mode="logged")) as stack:
        handle = await stack.start(EgressBlock.run, block())
        await handle.result()
        rb = await stack.start(RollbackRun.run, RollbackTrigger(run_id=handle.id, requested_by="bob"),
                               id=rollback_id(handle.id))
        report = await rb.result()
        assert report.state == "rolled_back" and all(r.verified for r in report.results)
        assert IP not in await stack.edl()
        status = await stack.status(rb)
        [step] = status.steps
        assert step.change.kind == "firewall.egress_unblock" and step.mode.value == "guarded"
        assert step.state == StepState.APPLIED and step.change_id == report.results[0].change_id
        events = [r["event"] for r in stack.ledger.audit_rows(handle.id)]
        assert events[-1] == "run.rolled_back" and "change.reverted" in events
        assert stack.ledger.verify().ok


async def test_the_requester_of_a_run_can_never_roll_it_back(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(mode="logged")) as stack:
        handle = await stack.start(EgressBlock.run, block(by="alice"))
        await handle.result()
        for who, why in (("alice", "is a party to run"), ("dave", "may not roll back"), ("mallory", "not a user")):
            rb = await stack.start(RollbackRun.run, RollbackTrigger(run_id=handle.id, requested_by=who))
            with pytest.raises(WorkflowFailureError) as failure:
                await rb.result()
            assert why in str(failure.value.cause)
        assert IP in await stack.edl()
        refused = [r for r in stack.ledger.audit_rows(handle.id) if r["event"] == "rollback.refused"]
        assert [r["data"]["by"] for r in refused] == ["alice", "dave", "mallory"]


async def test_a_refused_request_then_a_rollback_under_one_id_read_as_one_rollback_by_show_and_runs(
        time_env, tmp_path):
    from starter import ops
    from starter.runs_cmd import rollback_row

    async with running_stack(time_env.client, tmp_path, make_policy(mode="logged")) as stack:
        handle = await stack.start(EgressBlock.run, block(by="alice"))
        await handle.result()
        again = dict(id=rollback_id(handle.id), id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY)
        refused = await stack.start(RollbackRun.run, RollbackTrigger(run_id=handle.id, requested_by="alice"), **again)
        with pytest.raises(WorkflowFailureError):
            await refused.result()
        shown = await ops.run_status(stack.client, stack.settings, rollback_id(handle.id))
        assert shown.state == RunState.REFUSED and shown.requested_by == "alice" and shown.subject == handle.id
        assert "alice is a party to run" in shown.error and not shown.refused_before
        ran = await stack.start(RollbackRun.run, RollbackTrigger(run_id=handle.id, requested_by="bob"), **again)
        assert (await ran.result()).state == "rolled_back"
        shown = await ops.run_status(stack.client, stack.settings, rollback_id(handle.id))
        assert shown.state == RunState.ROLLED_BACK  # not the `completed` its own status query says
        assert [(r.by, "alice is a party to run" in r.why) for r in shown.refused_before] == [("alice", True)]
        # `handrail runs` reads the same executions from the same audit the same way
        rows = list(stack.ledger.audit_rows(rollback_id(handle.id)))
        first = refused.result_run_id  # the refused execution, not the latest one of its id
        assert rollback_row(rollback_id(handle.id), first, "failed", [], stack.ledger)["superseded"] is True
        latest = rollback_row(rollback_id(handle.id), ran.result_run_id, "rolled_back", rows, stack.ledger)
        assert latest["state"] == "rolled_back" and not latest["superseded"] and latest["why"] is None
        assert [r["by"] for r in latest["refused_before"]] == ["alice"]


async def test_the_affected_user_of_a_privilege_guard_run_cannot_roll_it_back(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        handle = await stack.start(PrivilegeGuard.run, PrivilegeTrigger(event_id=ANALYST),
                                   id=f"{privilege_run_id(ANALYST)}-{uuid.uuid4().hex[:6]}")
        status = await stack.wait_for(handle, recommit_waiting)
        assert status.requested_by == "alice"  # alice is the user whose privilege the run reverted
        await send_decision(handle, "bob", approve=False, reason="not planned")
        await handle.result()
        rb = await stack.start(RollbackRun.run, RollbackTrigger(run_id=handle.id, requested_by="alice"),
                               id=rollback_id(handle.id),
                               id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY)
        with pytest.raises(WorkflowFailureError) as failure:
            await rb.result()
        why = str(failure.value.cause)
        assert "alice is a party to run" in why and "can never roll it back" in why
        assert "alice" not in sorted((await stack.tools.iam.get_group("server-admins")).members)


async def test_a_privilege_guard_rollback_by_an_analyst_holds_for_approval_of_the_regrant(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        event = await stack.tools.iam.get_event(NO_TICKET)
        handle = await stack.start(PrivilegeGuard.run, PrivilegeTrigger(event_id=NO_TICKET),
                                   id=f"{privilege_run_id(NO_TICKET)}-{uuid.uuid4().hex[:6]}")
        await stack.wait_for(handle, recommit_waiting)
        await send_decision(handle, "alice", approve=False, reason="not planned")
        await handle.result()
        assert not await stack.tools.iam.is_member(event.group, event.principal)

        rb = await stack.start(RollbackRun.run, RollbackTrigger(run_id=handle.id, requested_by="bob"),
                               id=rollback_id(handle.id))
        waiting = await stack.wait_for(rb, lambda s: s.state == RunState.AWAITING_APPROVAL)
        step = waiting.pending_step()
        assert step.change.kind == "iam.grant_privilege" and step.mode.value == "approve"
        assert not await stack.tools.iam.is_member(event.group, event.principal)  # nothing yet
        await send_decision(rb, "bob")  # the rollback's requester cannot approve its own re-grant
        waiting = await stack.wait_for(rb, lambda s: s.rejected_decisions)
        assert "separation of duties" in waiting.rejected_decisions[0].why
        await send_decision(rb, "alice", reason="the revert was a mistake")
        report = await rb.result()
        assert report.state == "rolled_back" and report.results[0].verified
        assert await stack.tools.iam.is_member(event.group, event.principal)
        assert stack.ledger.revert_of(report.results[0].change_id).by == "bob"


async def test_the_cli_rollback_reports_a_wait_for_approval_and_a_refusal(time_env, tmp_path):
    from starter import ops
    from starter.output import CliError

    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        event = await stack.tools.iam.get_event(NO_TICKET)
        handle = await stack.start(PrivilegeGuard.run, PrivilegeTrigger(event_id=NO_TICKET),
                                   id=f"{privilege_run_id(NO_TICKET)}-{uuid.uuid4().hex[:6]}")
        await stack.wait_for(handle, recommit_waiting)
        await send_decision(handle, "alice", approve=False, reason="not planned")
        await stack.wait_for(handle, lambda s: s.state == RunState.COMPLETED)

        # the affected user holds no key the policy lists, so cannot even ask (the policy's own refusal
        # of the people a run acted against is tested above, at the workflow)
        with pytest.raises(CliError, match="No signing key"):
            await ops.rollback(stack.client, stack.settings, handle.id, event.principal, now=await stack.server_now())
        # allowed again after a refusal
        report = await ops.rollback(stack.client, stack.settings, handle.id, "bob", now=await stack.server_now())
        stack.started.append(stack.client.get_workflow_handle(report.rollback_id))
        assert report.state == "awaiting_approval" and report.rollback_id == rollback_id(handle.id)
        assert "iam.grant_privilege" in report.waiting and "bob cannot approve it" in report.waiting
        with pytest.raises(CliError, match="is under way"):  # not "already rolled back": it waits
            await ops.rollback(stack.client, stack.settings, handle.id, "carol", now=await stack.server_now())
