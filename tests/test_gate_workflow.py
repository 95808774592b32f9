"""The step gate, approvals, saga, TTL and rollback on the time-skipping server."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from handrail.gate.decisions import change_digest
from handrail.gate.expiry import ExpiryPlan, expiry_id
from handrail.gate.expiry_outcome import apply_expiries
from handrail.gate.models import (
    Decision,
    EgressBlockTrigger,
    RollbackTrigger,
    RunState,
    RunStatus,
    StepState,
)
from handrail.gate.timeline import status_from_audit
from starter.runs_cmd import state_from_ledger
from tests.runbooks_for_tests import BlockMany, BlockManyRunbook
from tests.support import make_decision, make_policy, running_stack, skip_time, until_quiet
from workflows.egress_block import EgressBlock
from workflows.rollback import RollbackRun, rollback_id

pytestmark = pytest.mark.workflow

IP = "203.0.113.7"


def trigger(ip: str = IP, by: str = "alice", ttl_s: float | None = None) -> EgressBlockTrigger:
    return EgressBlockTrigger(ip=ip, reason="C2 beacon seen by EDR", requested_by=by, ttl_s=ttl_s)


async def decision(handle, approver: str, approve: bool = True, step: str | None = None, reason: str = "") -> Decision:
    """A decision signed by `approver`'s test key, bound to the run's step (the waiting one unless named)."""
    return make_decision(approver, approve, step, reason, await handle.query("status", result_type=RunStatus))


async def finished(handle, timeout: float = 20.0) -> None:
    """Wait for a workflow to close by polling, which (unlike awaiting its result) skips no time."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        assert asyncio.get_running_loop().time() < deadline, f"{handle.id} did not finish"
        await asyncio.sleep(0.05)


def awaiting(status: RunStatus) -> bool:
    return status.state == RunState.AWAITING_APPROVAL


async def test_approved_block_reaches_the_firewall(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path) as stack:
        handle = await stack.start(EgressBlock.run, trigger(by="alice"))
        waiting = await stack.wait_for(handle, awaiting)
        assert waiting.pending_step().change.target == IP
        assert IP not in await stack.edl()
        await handle.signal(EgressBlock.decide, await decision(handle, "bob"))
        result = await handle.result()
        assert result.state == RunState.COMPLETED
        assert result.steps[0].state == StepState.APPLIED
        assert IP in await stack.edl()
        [record] = stack.ledger.changes_for_run(handle.id)
        assert record.before == {"blocked": False, "comment": None}
        assert record.after["blocked"] is True
        assert record.approved_by == ["bob"]
        assert record.inverse.kind == "firewall.egress_unblock"
        events = [row["event"] for row in stack.ledger.audit_rows(handle.id)]
        for expected in ("run.started", "step.requested", "guardrails.evaluated", "approval.requested",
                         "decision.accepted", "approval.decided", "change.applied", "run.finished"):
            assert expected in events
        assert stack.ledger.verify().ok
        # Once Temporal forgets the run, `handrail show` rebuilds the same story from the ledger.
        rebuilt = status_from_audit(handle.id, list(stack.ledger.audit_rows(handle.id)))
        assert rebuilt.state == RunState.COMPLETED and rebuilt.requested_by == "alice"
        assert rebuilt.steps[0].state == StepState.APPLIED and rebuilt.steps[0].change_id == record.change_id
        assert [d.decision.approver for d in rebuilt.steps[0].decisions] == ["bob"]
        assert rebuilt.summary == result.summary


async def test_a_decision_signed_from_the_ledger_timeline_counts(time_env, tmp_path):
    """With no worker to answer the status query, `handrail show` and `handrail approve` read
    the waiting step from the ledger; a decision signed from that step (its mode, verdicts and
    change digest) is the one the run accepts."""
    async with running_stack(time_env.client, tmp_path) as stack:
        handle = await stack.start(EgressBlock.run, trigger())
        live = await stack.wait_for(handle, awaiting)
        rebuilt = status_from_audit(handle.id, list(stack.ledger.audit_rows(handle.id)))
        waiting = rebuilt.pending_step()
        assert waiting is not None and waiting.mode == live.steps[0].mode
        assert waiting.change_digest == live.steps[0].change_digest == change_digest(waiting)
        await handle.signal(EgressBlock.decide, make_decision("bob", status=rebuilt))
        assert (await handle.result()).state == RunState.COMPLETED


async def test_denied_block_changes_nothing(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path) as stack:
        handle = await stack.start(EgressBlock.run, trigger())
        await stack.wait_for(handle, awaiting)
        await handle.signal(EgressBlock.decide, await decision(handle, "bob", approve=False, reason="that is our VPN"))
        result = await handle.result()
        assert result.state == RunState.DENIED
        assert "denied by bob" in result.error
        assert IP not in await stack.edl()
        assert stack.ledger.changes_for_run(handle.id) == []


async def test_unauthorized_self_and_unknown_decisions_are_rejected(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path) as stack:
        handle = await stack.start(EgressBlock.run, trigger(by="alice"))
        status = await stack.wait_for(handle, awaiting)
        step = status.pending_step().step_id
        await handle.signal(EgressBlock.decide, await decision(handle, "alice"))  # the requester
        await handle.signal(EgressBlock.decide, await decision(handle, "dave"))  # no role
        await handle.signal(EgressBlock.decide, await decision(handle, "mallory"))  # not in the policy
        await handle.signal(EgressBlock.decide, await decision(handle, "bob", step="s09-nope"))  # unknown step
        await handle.signal(EgressBlock.decide, await decision(handle, "carol"))  # soc-lead before escalation
        status = await stack.wait_for(handle, lambda s: len(s.rejected_decisions) == 5)
        whys = [r.why for r in status.rejected_decisions]
        assert "separation of duties" in whys[0]
        assert "dave may not decide" in whys[1]
        assert "no key for mallory in the policy" in whys[2]
        assert "the signature is for step s09-nope, this run waits on s01" in whys[3]
        assert "carol may not decide" in whys[4]
        assert status.state == RunState.AWAITING_APPROVAL and IP not in await stack.edl()
        await handle.signal(EgressBlock.decide, await decision(handle, "bob", step=step))
        assert (await handle.result()).state == RunState.COMPLETED
        rejected = [r for r in stack.ledger.audit_rows(handle.id) if r["event"] == "decision.rejected"]
        assert len(rejected) == 5


async def test_the_signed_approval_covers_how_long_the_change_lasts(time_env, tmp_path):
    """A TTL is part of what the approver sees and signs: a decision signed over the same block
    without its TTL (a block for good) is not an approval of this one."""
    from handrail.gate.decisions import digest_covers

    async with running_stack(time_env.client, tmp_path) as stack:
        handle = await stack.start(EgressBlock.run, trigger(ttl_s=120))
        status = await stack.wait_for(handle, awaiting)
        step = status.pending_step()
        assert step.expires_after_s == 120 and digest_covers(step)["expires_after_s"] == 120
        for_good = change_digest(step.model_copy(update={"expires_after_s": None}))
        assert for_good != step.change_digest
        await handle.signal(EgressBlock.decide, make_decision("bob", True, step.step_id, status=status,
                                                              digest=for_good))
        status = await stack.wait_for(handle, lambda s: len(s.rejected_decisions) == 1)
        assert "how long it lasts" in status.rejected_decisions[0].why, status.rejected_decisions[0].why
        await handle.signal(EgressBlock.decide, await decision(handle, "bob"))
        result = await handle.result()
        assert result.state == RunState.COMPLETED and result.steps[0].expires_at is not None
        rebuilt = status_from_audit(handle.id, list(stack.ledger.audit_rows(handle.id)))
        assert rebuilt.steps[0].expires_after_s == 120  # `show` and `pending` from the ledger say it too


async def test_two_of_three_needs_two_different_people(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(required=2)) as stack:
        handle = await stack.start(EgressBlock.run, trigger(by="carol"))
        await stack.wait_for(handle, awaiting)
        await handle.signal(EgressBlock.decide, await decision(handle, "alice"))
        await handle.signal(EgressBlock.decide, await decision(handle, "alice"))  # counts once
        status = await stack.wait_for(handle, lambda s: len(s.rejected_decisions) == 1)
        assert "already decided" in status.rejected_decisions[0].why
        assert status.state == RunState.AWAITING_APPROVAL
        await handle.signal(EgressBlock.decide, await decision(handle, "bob"))
        result = await handle.result()
        assert result.state == RunState.COMPLETED
        assert stack.ledger.changes_for_run(handle.id)[0].approved_by == ["alice", "bob"]


async def test_timeout_escalates_then_applies_on_timeout(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(timeout="2h", escalation="2h")) as stack:
        handle = await stack.start(EgressBlock.run, trigger())
        result = await handle.result()  # time skips through both timeouts
        assert result.state == RunState.DENIED
        assert result.steps[0].escalated
        assert "on_timeout is deny" in result.error
        events = [r["event"] for r in stack.ledger.audit_rows(handle.id)]
        assert events.index("approval.escalated") < events.index("approval.timeout")
        alerts = await stack.tools.alerts.list_alerts()
        assert any("escalated" in a.title.lower() for a in alerts)
        assert IP not in await stack.edl()


async def test_escalated_lead_can_approve(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(timeout="1h", escalation="1h")) as stack:
        handle = await stack.start(EgressBlock.run, trigger())
        await stack.wait_for(handle, awaiting)
        await time_env.sleep(timedelta(hours=1, minutes=5))
        await stack.wait_for(handle, lambda s: s.steps[0].escalated)
        await handle.signal(EgressBlock.decide, await decision(handle, "carol"))
        assert (await handle.result()).state == RunState.COMPLETED


async def test_on_timeout_approve(time_env, tmp_path):
    policy = make_policy(timeout="1h", on_timeout="approve", escalate_to="{ roles = [] }")
    async with running_stack(time_env.client, tmp_path, policy) as stack:
        handle = await stack.start(EgressBlock.run, trigger())
        result = await handle.result()
        assert result.state == RunState.COMPLETED
        assert IP in await stack.edl()


async def test_guardrail_denies_protected_range_and_alerts(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path) as stack:
        handle = await stack.start(EgressBlock.run, trigger(ip="161.71.4.20"))
        result = await handle.result()
        assert result.state == RunState.DENIED
        assert result.steps[0].verdicts[0].guardrail == "never_block"
        assert "SaaS CRM" in result.error
        alerts = await stack.tools.alerts.list_alerts()
        assert len(alerts) == 1 and alerts[0].priority == "P1"
        assert "161.71.4.20" in alerts[0].body and "SaaS CRM" in alerts[0].body
        assert "161.71.4.20" not in await stack.edl()


async def test_covering_network_is_denied_too(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(mode="guarded")) as stack:
        handle = await stack.start(EgressBlock.run, trigger(ip="146.0.0.0/8"))
        result = await handle.result()
        assert result.state == RunState.DENIED
        assert "overlaps the protected network Largest customer" in result.error


async def test_failing_later_step_compensates_earlier_ones(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(mode="guarded"), [BlockManyRunbook]) as stack:
        before = await stack.edl()
        # host bits set: the gate reads it (wider), the lab refuses it, so the tool call fails
        handle = await stack.start(BlockManyRunbook.run,
                                   BlockMany(targets=["203.0.113.10", "203.0.113.11", "203.0.113.1/24"]))
        result = await handle.result()
        assert result.state == RunState.COMPENSATED
        assert [s.state for s in result.steps] == [StepState.COMPENSATED, StepState.COMPENSATED, StepState.FAILED]
        assert await stack.edl() == before
        reverts = [r for r in stack.ledger.audit_rows(handle.id) if r["event"] == "change.reverted"]
        assert [r["data"]["change_id"].rsplit("/", 1)[1] for r in reverts] == [
            "s02-firewall.egress_block", "s01-firewall.egress_block"]
        assert all(r["data"]["verified"] for r in reverts)


async def test_cancel_during_compensation_still_compensates(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(mode="guarded"), [BlockManyRunbook]) as stack:
        await stack.tools.lab_set_fault(route="/firewall/egress/*", method="DELETE", latency_ms=1500)
        handle = await stack.start(BlockManyRunbook.run,
                                   BlockMany(targets=["203.0.113.20", "203.0.113.21", "203.0.113.1/24"]))
        await stack.wait_for(handle, lambda s: s.summary.get("compensating"))
        await handle.cancel()
        result = await handle.result()
        assert result.state == RunState.COMPENSATED
        assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
        await stack.tools.lab_clear_faults()
        edl = await stack.edl()
        assert "203.0.113.20" not in edl and "203.0.113.21" not in edl


async def test_failed_compensation_needs_attention_and_names_the_entry(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(mode="guarded"), [BlockManyRunbook]) as stack:
        # The firewall refuses every removal (a fixed 4xx is not retried): the undo cannot happen.
        await stack.tools.lab_set_fault(route="/firewall/egress/*", method="DELETE", status=403)
        handle = await stack.start(BlockManyRunbook.run, BlockMany(targets=["203.0.113.70", "bad ip"]))
        result = await handle.result()
        assert result.state == RunState.NEEDS_ATTENTION
        change_id = f"{handle.id}/s01-firewall.egress_block"
        assert change_id in result.error
        assert result.steps[0].state == StepState.COMPENSATION_FAILED
        assert "203.0.113.70" in await stack.edl()  # nothing was silently dropped: it is still there, and named
        events = [r["event"] for r in stack.ledger.audit_rows(handle.id)]
        assert "compensation.failed" in events
        assert stack.ledger.revert_of(change_id) is None


async def test_cancel_while_waiting_compensates(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(mode="guarded"), [BlockManyRunbook]) as stack:
        handle = await stack.start(
            BlockManyRunbook.run, BlockMany(targets=["203.0.113.30", "203.0.113.31"], pause_after_first_s=3600))
        await stack.wait_for(handle, lambda s: s.steps and s.steps[0].state == StepState.APPLIED)
        await until_quiet(handle)  # in the hour's pause, between calls
        await handle.cancel()
        result = await handle.result()
        assert result.state == RunState.COMPENSATED
        assert "203.0.113.30" not in await stack.edl()


async def test_ttl_expiry_reverts_the_block(fresh_time_env, tmp_path):
    async with running_stack(fresh_time_env.client, tmp_path, make_policy(mode="logged")) as stack:
        handle = await stack.start(EgressBlock.run, trigger(ttl_s=30 * 86400))
        # The run completes (in Handrail and in Temporal) and hands the TTL to its expiry workflow;
        # waited for in real time, so the server cannot jump to the expiry's timer meanwhile.
        with fresh_time_env.auto_time_skipping_disabled():
            result = await handle.result()
        assert result.state == RunState.COMPLETED and result.steps[0].state == StepState.APPLIED
        assert result.steps[0].expires_at is not None and result.summary["expiries_pending"] == 1
        assert result.summary["expiry_workflow"] == expiry_id(handle.id)
        assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
        assert IP in await stack.edl()
        expiry = stack.client.get_workflow_handle(expiry_id(handle.id), result_type=ExpiryPlan)
        stack.started.append(expiry)
        await skip_time(fresh_time_env, timedelta(days=30, hours=1))  # skip the 30 days (the run itself has closed)
        plan = await expiry.result()
        assert [i.state for i in plan.items] == ["expired"]
        assert IP not in await stack.edl()
        assert stack.ledger.revert_of(result.steps[0].change_id).reason == "expiry"
        reflected = apply_expiries(result, list(stack.ledger.audit_rows(handle.id)))  # what `handrail show` prints
        assert reflected.steps[0].state == StepState.EXPIRED and reflected.summary["expiries_pending"] == 0
        assert reflected.summary["all_expired"]  # `show` says so, and `runs` lists the run expired
        assert state_from_ledger("completed", list(stack.ledger.audit_rows(handle.id))) == "expired"


async def test_rollback_restores_and_is_refused_twice(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(mode="logged"), [BlockManyRunbook]) as stack:
        state_before = await stack.tools.lab_state()
        handle = await stack.start(BlockManyRunbook.run, BlockMany(targets=["203.0.113.40", "198.51.100.0/24"]))
        assert (await handle.result()).state == RunState.COMPLETED
        assert "198.51.100.0/24" in await stack.edl()
        rb = await stack.start(RollbackRun.run, RollbackTrigger(run_id=handle.id, requested_by="bob"),
                               id=rollback_id(handle.id), id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
        report = await rb.result()
        assert report.state == "rolled_back" and len(report.results) == 2
        assert all(r.verified for r in report.results)
        state_after = await stack.tools.lab_state()
        assert state_after.tools["firewall"] == state_before.tools["firewall"]
        with pytest.raises(WorkflowAlreadyStartedError):
            await stack.start(RollbackRun.run, RollbackTrigger(run_id=handle.id, requested_by="bob"),
                              id=rollback_id(handle.id), id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)


async def test_already_blocked_address_is_left_alone_by_rollback(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(mode="logged")) as stack:
        await stack.tools.firewall.egress_add(IP, "put there by a human")
        handle = await stack.start(EgressBlock.run, trigger())
        result = await handle.result()
        assert result.steps[0].state == StepState.UNCHANGED
        rb = await stack.start(RollbackRun.run, RollbackTrigger(run_id=handle.id, requested_by="bob"))
        report = await rb.result()
        assert report.state == "nothing_to_do"
        assert IP in await stack.edl()


async def test_expiry_after_rollback_is_a_no_op(fresh_time_env, tmp_path):
    async with running_stack(fresh_time_env.client, tmp_path, make_policy(mode="logged")) as stack:
        handle = await stack.start(EgressBlock.run, trigger(ttl_s=86400))
        status = await stack.wait_for(handle, lambda s: s.state == RunState.COMPLETED)
        rb = await stack.start(RollbackRun.run, RollbackTrigger(run_id=handle.id, requested_by="bob"))
        await finished(rb)
        change_id = status.steps[0].change_id
        assert stack.ledger.revert_of(change_id).reason == "rollback"
        expiry = stack.client.get_workflow_handle(expiry_id(handle.id), result_type=ExpiryPlan)
        stack.started.append(expiry)
        await skip_time(fresh_time_env, timedelta(days=1, hours=1))  # the TTL fires after the rollback: a no-op
        plan = await expiry.result()
        assert plan.items[0].state == "skipped" and "already reverted by rollback (bob)" in plan.items[0].detail
        assert IP not in await stack.edl()
        assert stack.ledger.revert_of(change_id).reason == "rollback"


BASELINE_RAIL = ('{ type = "never_block" }, { type = "rate_limit", per_hour = 500, outcome = "hold", '
                 'baseline = { stat = "p99_hourly", factor = 1, floor = 1, min_days = 14 } }')


async def test_baseline_derived_threshold_holds_and_is_shown(time_env, tmp_path):
    from datetime import UTC, datetime

    from handrail.trust.synth import steady_history

    async with running_stack(time_env.client, tmp_path, make_policy(mode="guarded", guardrails=BASELINE_RAIL)) as stack:
        # Three weeks of four blocks an hour, and four in the last hour: a fifth exceeds the baseline.
        steady_history(stack.ledger, "firewall.egress_block", datetime.now(UTC), days=21, per_hour=4, recent=4)
        handle = await stack.start(EgressBlock.run, trigger())
        status = await stack.wait_for(handle, awaiting)
        [verdict] = status.steps[0].verdicts
        assert verdict.guardrail == "rate_limit" and verdict.threshold == 4
        assert verdict.threshold_source.startswith("baseline: p99 of hourly changes (4)")
        assert status.steps[0].thresholds["rate_limit"].startswith("4 (baseline")
        await handle.signal(EgressBlock.decide, await decision(handle, "bob"))
        assert (await handle.result()).state == RunState.COMPLETED


async def test_static_fallback_until_history_is_long_enough(time_env, tmp_path):
    from datetime import UTC, datetime

    from handrail.trust.synth import steady_history

    async with running_stack(time_env.client, tmp_path, make_policy(mode="guarded", guardrails=BASELINE_RAIL)) as stack:
        steady_history(stack.ledger, "firewall.egress_block", datetime.now(UTC), days=3, per_hour=4, recent=4)
        handle = await stack.start(EgressBlock.run, trigger())
        result = await handle.result()
        assert result.state == RunState.COMPLETED  # 5 of a static 500: no hold
        assert result.steps[0].thresholds["rate_limit"].startswith("500 (static: not enough history (3")
