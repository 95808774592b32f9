"""The privilege guardrail runbook on the time-skipping server, against the shipped policy."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from handrail.gate.models import RollbackTrigger, RunState, StepState
from handrail.runbooks.privilege import PrivilegeTrigger, privilege_run_id
from tests.support import running_stack, send_decision, terminate_between_calls, until_quiet
from workflows.privilege_guard import PrivilegeGuard
from workflows.rollback import RollbackRun, rollback_id

pytestmark = pytest.mark.workflow

POLICY = (Path(__file__).resolve().parents[1] / "policy.toml").read_text()

NO_TICKET = "IAM-EVT-0003"  # a Marketing user added to domain-admins by svc-backup, no ticket
REJECTED_TICKET = "IAM-EVT-0005"  # enterprise-admins under a rejected change ticket
UNKNOWN_TICKET = "IAM-EVT-0007"  # finance-admins under a ticket the platform does not have
APPROVED_TICKET = "IAM-EVT-0001"  # finance-admins under approved CHG-1042, inside its window
REMOVAL = "IAM-EVT-0006"
ANALYST = "IAM-EVT-0009"  # alice (a policy analyst) made a server admin, no ticket
BREAK_GLASS = "IAM-EVT-0010"
CFO_PHONE = "IAM-EVT-0011"  # ph-rchen (CMDB tag executive) added to finance-admins


def recommit_waiting(status) -> bool:
    return len(status.steps) == 2 and status.steps[1].state == StepState.AWAITING_APPROVAL


async def start(stack, event_id: str):
    return await stack.start(PrivilegeGuard.run, PrivilegeTrigger(event_id=event_id),
                             id=f"{privilege_run_id(event_id)}-{uuid.uuid4().hex[:6]}")


async def members(stack, group: str) -> list[str]:
    return sorted((await stack.tools.iam.get_group(group)).members)


async def run_alerts(stack, run_id: str):
    return [a for a in await stack.tools.alerts.list_alerts() if a.run_id == run_id]


async def test_unauthorized_gain_is_reverted_alerted_and_the_revert_stands_on_timeout(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        event = await stack.tools.iam.get_event(NO_TICKET)
        handle = await start(stack, NO_TICKET)
        status = await stack.wait_for(handle, recommit_waiting)
        assert status.state == RunState.AWAITING_APPROVAL
        assert status.requested_by == event.principal  # the affected user: never their own approver
        revert = status.steps[0]
        assert revert.change.kind == "iam.revoke_privilege" and revert.state == StepState.APPLIED
        assert revert.mode.value == "guarded"
        assert status.steps[1].change.kind == "iam.recommit_privilege"
        assert not await stack.tools.iam.is_member(event.group, event.principal)
        assert status.summary["actor"] == "svc-backup" and "no change ticket" in status.summary["why_unauthorized"]
        [alert] = await run_alerts(stack, handle.id)
        assert alert.priority == "P2" and event.principal in alert.title and event.group in alert.title
        assert "svc-backup" in alert.body and "Revert: reverted" in alert.body and "Device:" in alert.body
        assert (await stack.tools.iam.get_event(NO_TICKET)).status == "processed"
        record = stack.ledger.change(f"{handle.id}/{revert.step_id}")
        assert record.before["is_member"] and record.inverse.kind == "iam.grant_privilege"

        result = await handle.result()  # nobody answers: 24 h pass, on_timeout deny
        assert result.state == RunState.COMPLETED
        assert result.steps[1].state == StepState.DENIED and "no decision in time" in result.steps[1].note
        assert "the revert stands" in result.summary["outcome"]
        assert not await stack.tools.iam.is_member(event.group, event.principal)


async def test_recommit_needs_someone_other_than_the_affected_user_and_restores_the_membership(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        before = await members(stack, "server-admins")
        assert "alice" in before
        handle = await start(stack, ANALYST)
        status = await stack.wait_for(handle, recommit_waiting)
        assert status.requested_by == "alice" and status.summary["actor"]
        assert "alice" not in await members(stack, "server-admins")

        await send_decision(handle, "alice")
        status = await stack.wait_for(handle, lambda s: s.rejected_decisions)
        assert "separation of duties" in status.rejected_decisions[0].why
        assert status.steps[1].state == StepState.AWAITING_APPROVAL

        await send_decision(handle, "bob", True, "planned")
        result = await handle.result()
        assert result.state == RunState.COMPLETED
        assert result.steps[1].state == StepState.APPLIED
        assert result.summary["recommitted_by"] == ["bob"] and result.summary["recommit"] == "re-granted"
        assert await members(stack, "server-admins") == before
        regrant = stack.ledger.change(f"{handle.id}/{result.steps[1].step_id}")
        assert regrant.change.kind == "iam.recommit_privilege" and regrant.approved_by == ["bob"]
        assert regrant.inverse.kind == "iam.revoke_privilege"


async def test_whoever_starts_the_run_by_hand_cannot_decide_its_recommit_either(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        handle = await stack.start(PrivilegeGuard.run, PrivilegeTrigger(event_id=NO_TICKET, requested_by="bob"),
                                   id=f"{privilege_run_id(NO_TICKET)}-{uuid.uuid4().hex[:6]}")
        status = await stack.wait_for(handle, recommit_waiting)
        assert status.summary["started_by"] == "bob" and status.requested_by != "bob"
        await send_decision(handle, "bob", True, "it was planned")
        status = await stack.wait_for(handle, lambda s: s.rejected_decisions)
        assert "bob started this run and cannot decide on it" in status.rejected_decisions[0].why
        await send_decision(handle, "alice", True, "planned")
        result = await handle.result()
        assert result.summary["recommitted_by"] == ["alice"]


async def test_covered_or_harmless_events_change_nothing(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        for event_id, expect in ((APPROVED_TICKET, "authorized by approved change CHG-1042"),
                                 (REMOVAL, "not a privilege gain")):
            result = await (await start(stack, event_id)).result()
            assert result.state == RunState.COMPLETED and result.steps == []
            assert expect in result.summary["outcome"]
            assert (await stack.tools.iam.get_event(event_id)).status == "processed"
        assert stack.ledger.changes_for_run(privilege_run_id(APPROVED_TICKET)) == []
        assert not [a for a in await stack.tools.alerts.list_alerts() if "privilege" in a.title.lower()]


async def test_break_glass_account_is_alerted_never_reverted(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        handle = await start(stack, BREAK_GLASS)
        result = await handle.result()
        assert result.state == RunState.COMPLETED
        [step] = result.steps
        assert step.state == StepState.DENIED and step.verdicts[0].guardrail == "never_touch"
        assert "break-glass" in result.summary["outcome"]
        assert await stack.tools.iam.is_member("enterprise-admins", "breakglass-admin")
        titles = {a.title for a in await run_alerts(stack, handle.id)}
        assert "Handrail refused iam.revoke_privilege breakglass-admin" in titles  # the guardrail's alert
        assert "Unauthorized privilege escalation: breakglass-admin added to enterprise-admins" in titles
        assert stack.ledger.changes_for_run(handle.id) == []


async def test_executive_device_gets_priority_one(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        handle = await start(stack, CFO_PHONE)
        status = await stack.wait_for(handle, recommit_waiting)
        assert status.summary["high_profile"] and status.summary["devices"] == ["ph-rchen"]
        assert not await stack.tools.iam.is_member("finance-admins", "ph-rchen")
        [alert] = await run_alerts(stack, handle.id)
        assert alert.priority == "P1" and "executive" in alert.tags and "the device ph-rchen" in alert.body
        await terminate_between_calls(handle, "test done")


async def test_blast_radius_holds_the_third_revert_in_an_hour_across_runs(time_env, tmp_path):
    limit = '{ type = "rate_limit", per_hour = 10, outcome = "hold" },\n]\n\n[actions."iam.grant_privilege"]'
    policy = POLICY.replace(limit, limit.replace("per_hour = 10", "per_hour = 2"))
    assert policy != POLICY
    async with running_stack(time_env.client, tmp_path, policy) as stack:
        first = await start(stack, NO_TICKET)
        second = await start(stack, REJECTED_TICKET)
        for handle in (first, second):  # both still open, waiting for their recommit
            await stack.wait_for(handle, recommit_waiting)
        third = await start(stack, UNKNOWN_TICKET)
        status = await stack.wait_for(third, lambda s: s.steps and s.steps[0].state == StepState.AWAITING_APPROVAL)
        assert status.steps[0].change.kind == "iam.revoke_privilege"
        assert [v.guardrail for v in status.steps[0].verdicts] == ["rate_limit"]
        event = await stack.tools.iam.get_event(UNKNOWN_TICKET)
        assert await stack.tools.iam.is_member(event.group, event.principal)  # held: not reverted yet
        await send_decision(third, "bob", False, "bad feed")
        status = await stack.wait_for(third, lambda s: s.steps[0].state == StepState.DENIED)
        result = await third.result()
        assert result.state == RunState.COMPLETED and "not reverted" in result.summary["outcome"]
        assert await stack.tools.iam.is_member(event.group, event.principal)


async def test_malformed_or_unknown_events_are_rejected_with_nothing_changed(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        before = (await stack.tools.lab_state()).hash
        for event_id, why in (("../etc/passwd", "is not an IAM event id"), ("IAM-EVT-9999", "IAM has no event")):
            result = await (await stack.start(PrivilegeGuard.run, PrivilegeTrigger(event_id=event_id))).result()
            assert result.state == RunState.REJECTED and why in result.error and "nothing was changed" in result.error
            assert result.steps == []
        assert (await stack.tools.lab_state()).hash == before


async def test_rollback_of_a_completed_run_restores_the_membership(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        event = await stack.tools.iam.get_event(REJECTED_TICKET)
        handle = await start(stack, REJECTED_TICKET)
        await stack.wait_for(handle, recommit_waiting)
        await send_decision(handle, "bob", False, "not planned")
        result = await handle.result()  # no timer left to skip: the denial ends the wait
        assert result.state == RunState.COMPLETED and "the revert stands" in result.summary["outcome"]
        assert not await stack.tools.iam.is_member(event.group, event.principal)
        rollback = await stack.start(RollbackRun.run, RollbackTrigger(run_id=handle.id, requested_by="carol"),
                                     id=rollback_id(handle.id))
        # the re-grant is a change too: iam.grant_privilege waits for an analyst other than carol
        waiting = await stack.wait_for(rollback, lambda s: s.state == RunState.AWAITING_APPROVAL)
        assert waiting.pending_step().change.kind == "iam.grant_privilege"
        await send_decision(rollback, "bob")
        report = await rollback.result()
        assert report.state == "rolled_back" and all(r.verified for r in report.results)
        assert await stack.tools.iam.is_member(event.group, event.principal)


class _MalformedIam:
    async def get_event(self, event_id):
        from handrail.tools.iam import PrivilegeEvent

        return PrivilegeEvent.model_validate({"id": event_id, "kind": "group_renamed", "principal": "x"})


@pytest.mark.unit
async def test_a_malformed_event_payload_is_a_problem_not_a_crash(tmp_path):
    from types import SimpleNamespace

    from activities.context import WorkerContext
    from activities.privilege import PrivilegeActivities
    from handrail.ops.config import load_settings

    settings = load_settings({"HANDRAIL_HOME": str(tmp_path)})
    acts = PrivilegeActivities(WorkerContext.build(settings, SimpleNamespace(iam=_MalformedIam())))
    facts = await acts.privilege_facts(PrivilegeTrigger(event_id="IAM-EVT-0042"))
    assert facts.problem and "malformed" in facts.problem


@pytest.mark.unit
def test_coverage_rules():
    from handrail.runbooks.privilege import PrivilegeFacts

    base = dict(event_id="E", kind="group_member_added", privileged=True)
    assert PrivilegeFacts(**base, standing_exception=True).covered_by() == "a standing exception in the policy"
    ok = PrivilegeFacts(**base, change_ticket="CHG-1", ticket_status="approved", ticket_in_window=True)
    assert ok.covered_by() == "approved change CHG-1"
    late = PrivilegeFacts(**base, change_ticket="CHG-1", ticket_status="approved", ticket_in_window=False)
    assert late.covered_by() is None and "outside its window" in late.why_not_covered()
    pending = PrivilegeFacts(**base, change_ticket="CHG-2", ticket_status="pending")
    assert pending.covered_by() is None and "is pending" in pending.why_not_covered()
    assert privilege_run_id("IAM-EVT-0003") == "privilege-guard-IAM-EVT-0003"


async def test_cancelling_the_run_keeps_the_revert(time_env, tmp_path):
    """A cancel (or a failure) after the revert must not hand the privilege back."""
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        event = await stack.tools.iam.get_event(NO_TICKET)
        handle = await start(stack, NO_TICKET)
        await stack.wait_for(handle, recommit_waiting)
        await until_quiet(handle)  # waiting for the approval, between calls
        await handle.cancel()
        result = await handle.result()
        assert result.state == RunState.COMPENSATED
        assert result.steps[0].state == StepState.APPLIED  # kept: it is protective
        assert not await stack.tools.iam.is_member(event.group, event.principal)
        skipped = [r for r in stack.ledger.audit_rows(handle.id) if r["event"] == "compensation.skipped"]
        assert len(skipped) == 1 and "protective" in skipped[0]["data"]["why"]


async def test_a_recommit_nobody_may_decide_says_so_while_it_waits(time_env, tmp_path):
    """alice's privilege, run by hand by bob: the shipped policy has no other analyst, so nobody
    may decide the recommit, and the waiting step says so (`pending`, `show`) instead of waiting
    out its 24 hours in silence; with another analyst in the policy, it names who may."""
    from starter.console_views import deciders_text

    dave = 'dave = { roles = [] }\n'
    with_erin = POLICY.replace(dave, dave + 'erin = { roles = ["soc-analyst"] }\n', 1)
    for policy, home, deciders in ((POLICY, "shipped", []), (with_erin, "with-erin", ["erin"])):
        async with running_stack(time_env.client, tmp_path / home, policy) as stack:
            handle = await stack.start(PrivilegeGuard.run, PrivilegeTrigger(event_id=ANALYST, requested_by="bob"),
                                       id=f"{privilege_run_id(ANALYST)}-{uuid.uuid4().hex[:6]}")
            status = await stack.wait_for(handle, lambda s: recommit_waiting(s) and s.steps[1].deciders is not None)
            assert status.steps[1].deciders == deciders
    assert deciders_text([]).startswith("nobody may decide it now") and deciders_text(["erin"]) == "erin"
