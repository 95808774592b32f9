"""Nothing lost under faults (issue 15): write-ahead inverses, settling unknown outcomes,
patient retries, on the time-skipping server with the lab's fault injection."""

from __future__ import annotations

import pytest

from handrail.gate.decisions import change_digest
from handrail.gate.models import ChangeRecord, EgressBlockTrigger, Mode, RollbackTrigger, RunState, StepState
from tests.support import make_policy, running_stack, send_decision, skipping_seconds
from workflows.egress_block import EgressBlock
from workflows.rollback import RollbackRun, rollback_id

pytestmark = pytest.mark.workflow

IP = "203.0.113.77"
POST = "/firewall/egress"
GET = "/firewall/egress/*"


def policy(extra: str = "") -> str:
    """Approve-mode blocks; `extra` lines go into the firewall.egress_block action table."""
    text = make_policy()
    return text.replace('alert_priority = "P1"', 'alert_priority = "P1"\n' + extra, 1)


def trigger(ip: str = IP) -> EgressBlockTrigger:
    return EgressBlockTrigger(ip=ip, reason="C2 beacon", requested_by="alice")


def with_second_step(status, target: str = "203.0.113.78"):
    """The status as it will look once BlockMany's second step opens: a signer who knows the
    change it approves can sign for it before it waits (its digest covers what will be shown)."""
    first = status.steps[0]
    second = first.model_copy(update={"step_id": "s02-firewall.egress_block",
                                      "change": first.change.model_copy(update={"target": target})})
    second.change_digest = change_digest(second)
    return status.model_copy(update={"steps": [*status.steps, second]})


async def approve(stack, handle):
    await stack.wait_for(handle, lambda s: s.state == RunState.AWAITING_APPROVAL)
    await send_decision(handle, "bob")


async def test_503_after_the_firewall_accepted_is_settled_applied_and_rolls_back(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, policy()) as stack:
        await stack.tools.lab_set_fault(POST, method="POST", error_rate=1.0, count=1, after_apply=True)
        handle = await stack.start(EgressBlock.run, trigger())
        await approve(stack, handle)
        result = await handle.result()
        assert result.state == RunState.COMPLETED
        record = stack.ledger.change(result.steps[0].change_id)
        assert record.status == "applied" and record.inverse is not None
        assert IP in await stack.edl()
        rollback = await (await stack.start(
            RollbackRun.run, RollbackTrigger(run_id=handle.id, requested_by="carol"),
            id=rollback_id(handle.id))).result()
        assert rollback.state == "rolled_back"
        assert IP not in await stack.edl()


async def test_a_failed_run_still_undoes_a_change_the_tool_holds(time_env, tmp_path):
    """The call answered 503 after the firewall took the block, and reading it back failed too:
    the run fails, but compensation asks the firewall and removes the block."""
    async with running_stack(time_env.client, tmp_path, policy('tool_retry = "1s"')) as stack:
        handle = await stack.start(EgressBlock.run, trigger())
        await approve(stack, handle)
        await stack.tools.lab_set_fault(POST, method="POST", error_rate=1.0, count=1, after_apply=True)
        await stack.tools.lab_set_fault(GET, method="GET", error_rate=1.0, count=3, skip=1)
        result = await handle.result()
        assert result.state == RunState.COMPENSATED, result.error
        assert result.steps[0].state == StepState.COMPENSATED
        record = stack.ledger.change(result.steps[0].change_id)
        assert record.status == "applied" and record.reverted_at is not None
        assert IP not in await stack.edl()


async def test_a_pending_row_the_tool_holds_is_settled_and_undone_by_rollback(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, policy()) as stack:
        from datetime import datetime, timezone

        from handrail.gate.models import Change

        change = Change(kind="firewall.egress_block", target=IP, params={"comment": "x"})
        stack.ledger.begin_change(ChangeRecord(
            change_id="lost-run/s01", run_id="lost-run", step_id="s01", change=change,
            before={"blocked": False, "comment": None},
            inverse=Change(kind="firewall.egress_unblock", target=IP), mode=Mode.APPROVE,
            requested_by="alice", applied_at=datetime.now(timezone.utc)))
        await stack.tools.firewall.egress_add(IP, "x", idempotency_key="lost-run/s01")
        report = await (await stack.start(
            RollbackRun.run, RollbackTrigger(run_id="lost-run", requested_by="carol"),
            id=rollback_id("lost-run"))).result()
        assert report.state == "rolled_back", report
        assert IP not in await stack.edl()
        assert stack.ledger.change("lost-run/s01").status == "applied"


async def test_a_firewall_outage_is_waited_out_visibly_with_one_alert(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, policy('tool_alert_after = "1s"')) as stack:
        handle = await stack.start(EgressBlock.run, trigger())
        await approve(stack, handle)
        await stack.tools.lab_set_fault(POST, method="POST", error_rate=1.0, count=7)
        waiting = await skipping_seconds(  # the round's retry backoff (1+2 s), not waited in real time
            time_env, stack.wait_for(handle, lambda s: s.state == RunState.WAITING_FOR_TOOL))
        info = waiting.summary["waiting_for_tool"]
        assert "503" in info["last_error"] and info["next_attempt_at"]
        assert waiting.steps[0].note.startswith("waiting for tool")
        result = await handle.result()
        assert result.state == RunState.COMPLETED
        assert IP in await stack.edl()
        alerts = [a for a in await stack.tools.alerts.list_alerts() if "Tool failing" in a.title]
        assert len(alerts) == 1


async def test_a_definite_refusal_fails_at_once_and_is_settled_not_applied(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, policy()) as stack:
        handle = await stack.start(EgressBlock.run, trigger())
        await approve(stack, handle)
        await stack.tools.lab_set_fault(POST, method="POST", status=403)
        result = await handle.result()
        assert result.state == RunState.FAILED
        record = stack.ledger.change(result.steps[0].change_id)
        assert record.status == "not_applied" and record.inverse is None
        events = [row["event"] for row in stack.ledger.audit_rows(handle.id)]
        assert "tool.waiting" not in events


async def test_a_replay_answered_with_an_error_reads_the_tool_first(time_env, tmp_path):
    """A tool that applies the request and answers 409 to it (as a replay would) is not a failure."""
    async with running_stack(time_env.client, tmp_path, policy()) as stack:
        handle = await stack.start(EgressBlock.run, trigger())
        await approve(stack, handle)
        await stack.tools.lab_set_fault(POST, method="POST", status=409, count=1, after_apply=True)
        result = await handle.result()
        assert result.state == RunState.COMPLETED
        assert stack.ledger.change(result.steps[0].change_id).status == "applied"


async def test_an_unfinished_rollback_needs_attention_and_a_second_one_retries_what_is_left(time_env, tmp_path):
    from starter import ops

    async with running_stack(time_env.client, tmp_path, policy()) as stack:
        handle = await stack.start(EgressBlock.run, trigger())
        await approve(stack, handle)
        assert (await handle.result()).state == RunState.COMPLETED
        # exactly the undo's five attempts fail (UNDO_OPTS): the first rollback gives up, the second succeeds
        await stack.tools.lab_set_fault(GET, method="DELETE", error_rate=1.0, count=5)
        first = await skipping_seconds(
            time_env, ops.rollback(stack.client, stack.settings, handle.id, "carol", now=await stack.server_now()))
        assert first.state == "needs_attention" and len(first.failed) == 1
        shown = await ops.run_status(stack.client, stack.settings, handle.id)
        assert shown.state == RunState.NEEDS_ATTENTION and first.failed[0] in shown.error
        assert IP in await stack.edl()
        second = await ops.rollback(stack.client, stack.settings, handle.id, "carol", now=await stack.server_now())
        assert second.state == "rolled_back" and [r.change_id for r in second.results] == first.failed
        assert IP not in await stack.edl()
        assert (await ops.run_status(stack.client, stack.settings, handle.id)).state == RunState.ROLLED_BACK
        from starter.output import CliError

        with pytest.raises(CliError, match="rolled back once"):
            await ops.rollback(stack.client, stack.settings, handle.id, "carol", now=await stack.server_now())


async def test_a_revert_whose_check_read_failed_is_settled_by_reading_again(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, policy()) as stack:
        handle = await stack.start(EgressBlock.run, trigger())
        await approve(stack, handle)
        result = await handle.result()
        await stack.tools.lab_set_fault(GET, method="DELETE", error_rate=1.0, count=1, after_apply=True)
        await stack.tools.lab_set_fault(GET, method="GET", error_rate=1.0, count=2, skip=1)
        report = await (await stack.start(
            RollbackRun.run, RollbackTrigger(run_id=handle.id, requested_by="carol"),
            id=rollback_id(handle.id))).result()
        assert report.state == "rolled_back" and report.results[0].verified
        assert stack.ledger.revert_of(result.steps[0].change_id).verified
        assert IP not in await stack.edl()


async def test_a_decision_sent_before_its_step_waits_is_kept_and_judged_when_it_opens(time_env, tmp_path):
    from tests.runbooks_for_tests import BlockMany, BlockManyRunbook
    from tests.support import make_decision

    async with running_stack(time_env.client, tmp_path, policy(), [BlockManyRunbook]) as stack:
        handle = await stack.start(BlockManyRunbook.run, BlockMany(targets=[IP, "203.0.113.78"], requested_by="alice"))
        status = await stack.wait_for(handle, lambda s: s.state == RunState.AWAITING_APPROVAL)
        early = make_decision("erin", step="s02-firewall.egress_block", status=with_second_step(status))
        await handle.signal("decide", early)
        status = await stack.wait_for(handle, lambda s: any(r.decision.id == early.id for r in s.kept_decisions))
        kept = next(r for r in status.kept_decisions if r.decision.id == early.id)
        assert kept.why == "no step is waiting yet; your decision is kept until one is"
        await send_decision(handle, "bob")  # step 1; step 2 then opens and finds erin's approval
        result = await handle.result()
        assert result.state == RunState.COMPLETED
        assert [d.decision.approver for d in result.steps[1].decisions] == ["erin"]
        assert result.kept_decisions == []
        events = [row["event"] for row in stack.ledger.audit_rows(handle.id)]
        assert "decision.kept" in events


async def test_a_kept_decision_is_still_judged_by_the_rules(time_env, tmp_path):
    from tests.runbooks_for_tests import BlockMany, BlockManyRunbook
    from tests.support import make_decision

    async with running_stack(time_env.client, tmp_path, policy(), [BlockManyRunbook]) as stack:
        handle = await stack.start(BlockManyRunbook.run, BlockMany(targets=[IP, "203.0.113.78"], requested_by="alice"))
        status = await stack.wait_for(handle, lambda s: s.state == RunState.AWAITING_APPROVAL)
        await handle.signal("decide", make_decision("alice", step="s02-firewall.egress_block",
                                                    status=with_second_step(status)))  # the requester
        await send_decision(handle, "bob")
        status = await stack.wait_for(handle, lambda s: len(s.steps) == 2 and s.state == RunState.AWAITING_APPROVAL)
        assert any("separation of duties" in r.why for r in status.rejected_decisions)


async def test_a_run_cancelled_while_waiting_for_the_tool_undoes_what_the_tool_took(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, policy()) as stack:
        handle = await stack.start(EgressBlock.run, trigger())
        await approve(stack, handle)
        await stack.tools.lab_set_fault(POST, method="POST", error_rate=1.0, count=1, after_apply=True)
        await stack.tools.lab_set_fault(GET, method="GET", error_rate=1.0, count=3, skip=1)
        await stack.wait_for(handle, lambda s: s.state == RunState.WAITING_FOR_TOOL)
        assert IP in await stack.edl()  # the firewall took it; the gate could not read it back
        await handle.cancel()
        result = await handle.result()
        assert result.state == RunState.COMPENSATED, result.error
        assert IP not in await stack.edl()
        assert stack.ledger.change(result.steps[0].change_id).reverted_at is not None
