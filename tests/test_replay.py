"""Recorded histories replay without nondeterminism through the worker's own sandbox.

Representative runs (egress block approved, denied and expired by TTL, a phishing run with
its mailbox poll, a rollback; the phishing run is replayed as far as it got, waiting on
its changes' TTLs) are recorded on the time-skipping server, then replayed with
Temporal's `Replayer` using the same workflow list and passthrough configuration as the
worker (`worker.WORKFLOWS`, `handrail.ops.sandbox.workflow_runner`). A passed-through module
that kept state, or read the clock, would make a replay diverge from its recording.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from handrail.gate.expiry import ExpiryPlan, expiry_id
from handrail.gate.models import EgressBlockTrigger, RollbackTrigger, RunState
from handrail.ops.sandbox import workflow_runner
from handrail.runbooks.phishing.rules import MailboxPoll
from tests.replay_decoy import DecoyEgressBlock
from tests.support import history_outline, make_policy, running_stack, send_decision, skip_time
from tests.test_phishing_runbook import POLICY, closed, deliver, make_eml
from worker import WORKFLOWS
from workflows.egress_block import EgressBlock
from workflows.phishing import PollMailbox
from workflows.rollback import RollbackRun, rollback_id

pytestmark = pytest.mark.workflow


def trigger(ip: str, ttl_s: float | None = None) -> EgressBlockTrigger:
    return EgressBlockTrigger(ip=ip, reason="replay test", requested_by="alice", ttl_s=ttl_s)


def replayer(workflows=WORKFLOWS) -> Replayer:
    return Replayer(workflows=workflows, workflow_runner=workflow_runner(), data_converter=pydantic_data_converter)


async def replay(handles: list[WorkflowHandle]) -> None:
    histories = [await h.fetch_history() for h in handles]

    async def each():
        for history in histories:
            yield history

    results = await replayer().replay_workflows(each(), raise_on_replay_failure=False)
    failures = {run_id: repr(err) for run_id, err in results.replay_failures.items()}
    assert failures == {}


async def test_egress_block_approved_denied_and_expired_replay(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path) as stack:
        approved = await stack.start(EgressBlock.run, trigger("203.0.113.61"))
        await stack.wait_for(approved, lambda s: s.state == RunState.AWAITING_APPROVAL)
        await send_decision(approved, "bob")
        denied = await stack.start(EgressBlock.run, trigger("203.0.113.62"))
        await stack.wait_for(denied, lambda s: s.state == RunState.AWAITING_APPROVAL)
        await send_decision(denied, "bob", approve=False, reason="that is our VPN")
        assert (await approved.result()).state == RunState.COMPLETED
        assert (await denied.result()).state == RunState.DENIED
        stack.set_policy(make_policy(mode="logged"))
        expiring = await stack.start(EgressBlock.run, trigger("203.0.113.63", ttl_s=86400))
        result = await expiring.result()  # completes at once; its TTL is the expiry workflow's
        assert result.steps[0].state.value == "applied"
        expiry = stack.client.get_workflow_handle(expiry_id(expiring.id), result_type=ExpiryPlan)
        stack.started.append(expiry)
        await skip_time(time_env, timedelta(days=1, hours=1))
        assert [i.state for i in (await expiry.result()).items] == ["expired"]
        await replay([approved, denied, expiring, expiry])


async def test_phishing_poll_run_and_rollback_replay(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        for message in await stack.tools.mailbox.list_messages(status="unprocessed"):
            await stack.tools.mailbox.mark_processed(message.id)
        delivered = await deliver(stack, make_eml("alice@corp.example", ["http://parcel-fees.example/pay"]))
        poll = await stack.start(PollMailbox.run, MailboxPoll())
        await closed(poll)
        run = stack.client.get_workflow_handle(delivered.run_id())
        stack.started.append(run)
        status = await stack.wait_for(run, lambda s: s.state == RunState.COMPLETED)
        assert status.summary["sinkholed"] == ["parcel-fees.example"]
        rollback = await stack.start(RollbackRun.run, RollbackTrigger(run_id=run.id, requested_by="carol"),
                                     id=rollback_id(run.id))
        await closed(rollback)
        assert (await rollback.result()).state == "rolled_back"
        await replay([poll, run, rollback])


async def test_a_diverging_workflow_fails_replay(time_env, tmp_path):
    """The replay check has teeth: a different EgressBlock cannot replay a recorded one."""
    stack_policy = make_policy(mode="logged")
    async with running_stack(time_env.client, tmp_path, stack_policy) as stack:
        handle = await stack.start(EgressBlock.run, trigger("203.0.113.64"), id=f"replay-{uuid.uuid4().hex[:8]}")
        assert (await handle.result()).state == RunState.COMPLETED
        history = await handle.fetch_history()
        outline = await history_outline(handle, into=tmp_path)  # what a failing status query reports
    with pytest.raises(NondeterminismError):
        await replayer([DecoyEgressBlock]).replay_workflow(history)
    lines = outline.splitlines()
    assert lines[1] == "  1 WORKFLOW_EXECUTION_STARTED"
    assert any(line.endswith(" ACTIVITY_TASK_SCHEDULED check_step") for line in lines)
    saved = WorkflowHistory.from_json(handle.id, (tmp_path / f"history-{handle.id}.json").read_text())
    assert len(saved.events) == len(lines) - 1
    await replayer().replay_workflow(saved)  # the saved history is the run's, replayable as it was


async def test_a_run_replays_with_the_verdicts_it_got_when_the_guardrails_change(time_env, tmp_path, monkeypatch):
    # A worker upgraded to guardrails that read a target differently must replay a run that
    # waited for (and got) its approval exactly as it ran: the check records the verdicts.
    from handrail.gate import guardrails
    from handrail.gate.models import Outcome, Verdict

    async with running_stack(time_env.client, tmp_path) as stack:
        handle = await stack.start(EgressBlock.run, trigger("203.0.113.64"))
        await stack.wait_for(handle, lambda s: s.state == RunState.AWAITING_APPROVAL)
        await send_decision(handle, "bob")
        assert (await handle.result()).state == RunState.COMPLETED
        history = await handle.fetch_history()
    monkeypatch.setitem(guardrails.GUARDRAILS, "never_block",
                        lambda change, options, ctx: Verdict(guardrail="never_block", outcome=Outcome.DENY,
                                                             reason="a later release reads it as protected"))
    await replayer().replay_workflow(history)
