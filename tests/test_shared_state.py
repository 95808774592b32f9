"""Shared state across runs, through the real gate, the lab firewall and the time-skipping server.

Two egress-block runs for one address: the first blocks it, the second finds it already
blocked (`unchanged`) and relies on it. Undoing the first (rollback, expiry) must leave the
block for the second; undoing the second as well restores the address as the first found it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from handrail.gate.expiry import ExpiryPlan, expiry_id, inherited_expiry_id
from handrail.gate.kept_outcome import runs_note
from handrail.gate.models import EgressBlockTrigger, RollbackTrigger, RunState, StepState
from starter import ops
from starter.workflow_view import expiry_facts
from tests.support import make_policy, running_stack, send_decision, skip_time
from tests.test_replay import replay
from workflows.egress_block import EgressBlock
from workflows.rollback import RollbackRun, rollback_id

pytestmark = pytest.mark.workflow

IP = "203.0.113.77"
UNBLOCK_NEEDS_APPROVAL = make_policy(mode="logged").replace(
    '[actions."firewall.egress_unblock"]\nmode = "guarded"\n',
    '[actions."firewall.egress_unblock"]\nmode = "approve"\napprovers = { roles = ["soc-analyst"] }\n'
    'approval_timeout = "1h"\n')


def block(ttl_s: float | None = None) -> EgressBlockTrigger:
    return EgressBlockTrigger(ip=IP, reason="C2 beacon", requested_by="alice", ttl_s=ttl_s)


async def blocked_by(stack, ttl_s: float | None = None, state: StepState = StepState.APPLIED):
    """An egress-block run of the address, finished; its step's state checked."""
    handle = await stack.start(EgressBlock.run, block(ttl_s))
    result = await stack.wait_for(handle, lambda s: s.state == RunState.COMPLETED)
    assert result.steps[0].state == state
    return handle, result.steps[0].change_id


async def roll_back(stack, run_id: str):
    rb = await stack.start(RollbackRun.run, RollbackTrigger(run_id=run_id, requested_by="bob"), id=rollback_id(run_id))
    return rb, await rb.result()


def events(stack, run_id: str, name: str) -> list[dict]:
    return [r["data"] for r in stack.ledger.audit_rows(run_id) if r["event"] == name]


async def test_rolling_back_the_first_run_keeps_the_block_the_second_relies_on(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(mode="logged")) as stack:
        first, mine = await blocked_by(stack)
        second, theirs = await blocked_by(stack, state=StepState.UNCHANGED)
        [planned] = ops.rollback_plan(stack.settings, first.id)  # the dry run forecasts it
        assert planned["undo"].startswith(f"kept: run {second.id} still relies on it") and not planned["will_run"]

        rb, report = await roll_back(stack, first.id)
        [result] = report.results
        assert report.state == "rolled_back" and (result.kept, result.held_by_run) == ("handed_over", second.id)
        assert result.detail.startswith(f"kept: run {second.id} still relies on it")
        assert IP in await stack.edl()  # the tool was left alone
        [step] = (await stack.status(rb)).steps
        assert step.state == StepState.KEPT and step.change_id == mine
        [reverted] = events(stack, first.id, "change.reverted")
        assert reverted["kept"] == "handed_over" and reverted["held_by"] == {"run_id": second.id, "change_id": theirs}
        heir = stack.ledger.verified_change(theirs)
        assert (heir.status, heir.inherited_from, heir.before["blocked"]) == ("applied", mine, False)
        assert stack.ledger.verify().ok  # the rewritten holder and the kept revert are in the chain

        [shown] = (await ops.run_status(stack.client, stack.settings, first.id)).steps  # what `handrail show` prints
        assert shown.state == StepState.KEPT and f"kept: run {second.id} still relies on it" in shown.note
        assert runs_note(list(stack.ledger.audit_rows(first.id))) == f"kept: run {second.id} still relies on it"
        took = (await ops.run_status(stack.client, stack.settings, second.id)).steps[0]
        assert took.state == StepState.APPLIED and f"took over change {mine}" in took.note

        _, report = await roll_back(stack, second.id)  # now nobody relies on it: the first before-state is back
        assert report.state == "rolled_back" and report.results[0].reverted and report.results[0].verified
        assert not report.results[0].kept and IP not in await stack.edl()
        assert stack.ledger.verify().ok


async def test_a_kept_undo_is_never_put_to_an_approver(time_env, tmp_path):
    """The unblock needs an approval; the first run's rollback keeps the block without asking
    anyone (its undo would not happen); the second's, with nobody left relying on it, asks."""
    async with running_stack(time_env.client, tmp_path, UNBLOCK_NEEDS_APPROVAL) as stack:
        first, _ = await blocked_by(stack)
        second, _ = await blocked_by(stack, state=StepState.UNCHANGED)
        rb, report = await roll_back(stack, first.id)
        assert report.state == "rolled_back" and report.results[0].kept == "handed_over"
        assert not events(stack, rb.id, "approval.requested") and IP in await stack.edl()
        await replay([rb])  # the keep-first branch replays (and is patched for rollbacks begun before it)

        rb = await stack.start(RollbackRun.run, RollbackTrigger(run_id=second.id, requested_by="bob"),
                               id=rollback_id(second.id))
        waiting = await stack.wait_for(rb, lambda s: s.state == RunState.AWAITING_APPROVAL)
        assert waiting.pending_step().change.kind == "firewall.egress_unblock"
        await send_decision(rb, "erin", reason="the beacon was a false positive")
        report = await rb.result()
        assert report.state == "rolled_back" and report.results[0].reverted and IP not in await stack.edl()


async def test_a_run_that_re_applied_the_block_itself_is_released_to(time_env, tmp_path):
    """Someone unblocked the address between the runs, so the second run blocked it again with an
    undo of its own: rolling back the first releases its change; the second's rollback unblocks."""
    async with running_stack(time_env.client, tmp_path, make_policy(mode="logged")) as stack:
        first, mine = await blocked_by(stack)
        await stack.tools.firewall.egress_remove(IP, idempotency_key="by-hand")
        second, theirs = await blocked_by(stack)
        _, report = await roll_back(stack, first.id)
        [result] = report.results
        assert (result.kept, result.held_by_change) == ("released", theirs) and IP in await stack.edl()
        assert stack.ledger.verified_change(theirs).inherited_from is None  # it has its own before-state
        assert events(stack, first.id, "change.reverted")[0]["kept"] == "released"
        _, report = await roll_back(stack, second.id)
        assert report.results[0].reverted and report.results[0].verified and IP not in await stack.edl()
        assert stack.ledger.verify().ok


async def test_three_runs_hand_the_block_over_in_turn(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, make_policy(mode="logged")) as stack:
        first, mine = await blocked_by(stack)
        second, c2 = await blocked_by(stack, state=StepState.UNCHANGED)
        third, c3 = await blocked_by(stack, state=StepState.UNCHANGED)
        _, report = await roll_back(stack, first.id)
        assert report.results[0].held_by_change == c3  # both last for ever: the latest takes it over
        _, report = await roll_back(stack, third.id)
        assert (report.results[0].kept, report.results[0].held_by_change) == ("handed_over", c2)
        assert IP in await stack.edl()
        assert stack.ledger.verified_change(c2).before == stack.ledger.verified_change(mine).before
        _, report = await roll_back(stack, second.id)
        assert report.results[0].reverted and report.results[0].verified and IP not in await stack.edl()
        assert stack.ledger.verify().ok


async def test_a_run_rolled_back_first_relies_on_nothing_any_more(time_env, tmp_path):
    """The second run (its only change unchanged) is rolled back first: nothing of its own to
    undo, but it no longer relies on the block, so the first run's rollback unblocks."""
    async with running_stack(time_env.client, tmp_path, make_policy(mode="logged")) as stack:
        first, _ = await blocked_by(stack)
        second, _ = await blocked_by(stack, state=StepState.UNCHANGED)
        _, report = await roll_back(stack, second.id)
        assert report.state == "nothing_to_do" and IP in await stack.edl()
        _, report = await roll_back(stack, first.id)
        assert report.results[0].reverted and not report.results[0].kept and IP not in await stack.edl()


async def test_the_first_runs_ttl_ends_and_the_second_keeps_the_block_until_its_own(fresh_time_env, tmp_path):
    env = fresh_time_env
    async with running_stack(env.client, tmp_path, make_policy(mode="logged")) as stack:
        with env.auto_time_skipping_disabled():  # completed in real time: no timer is reached meanwhile
            first, mine = await blocked_by(stack, ttl_s=3600)
            second, theirs = await blocked_by(stack, ttl_s=3 * 3600, state=StepState.UNCHANGED)
        expiry = stack.client.get_workflow_handle(expiry_id(first.id), result_type=ExpiryPlan)
        stack.started.append(expiry)
        await skip_time(env, timedelta(hours=1, minutes=5))
        [item] = (await expiry.result()).items
        assert item.state == "kept" and item.detail.startswith(f"kept: run {second.id} still relies on it")
        assert IP in await stack.edl()
        shown = await ops.run_status(stack.client, stack.settings, first.id)
        assert shown.steps[0].state == StepState.KEPT and "undone for this run by expiry" in shown.steps[0].note

        heir_expiry = stack.client.get_workflow_handle(inherited_expiry_id(theirs), result_type=ExpiryPlan)
        stack.started.append(heir_expiry)  # the second run's TTL, now that undoing it restores the first before-state
        took = await ops.run_status(stack.client, stack.settings, second.id)
        assert took.steps[0].state == StepState.APPLIED and took.steps[0].expires_at is not None
        facts = expiry_facts(stack.settings, theirs)  # `show expiry-<change id>` names the change and its run
        assert facts["run_id"] == second.id and [c["change_id"] for c in facts["changes"]] == [theirs]
        await skip_time(env, timedelta(hours=2))
        [item] = (await heir_expiry.result()).items
        assert item.state == "expired" and IP not in await stack.edl()
        assert stack.ledger.revert_of(theirs).reason == "expiry" and stack.ledger.verify().ok
        await replay([expiry, heir_expiry])


async def test_a_kept_change_is_no_drift_and_its_older_holder_takes_it_over(time_env, tmp_path):
    """The second run found the address blocked by hand (before the first run); a person then
    unblocked it and the first run blocked it again. Undoing the first run hands it over to the
    older second run, and the drift report does not call the kept block drift."""
    from handrail.gate.reconcile import ReconcileTrigger
    from workflows.reconcile import Reconcile

    async with running_stack(time_env.client, tmp_path, make_policy(mode="logged")) as stack:
        await stack.tools.firewall.egress_add(IP, "by hand", idempotency_key="by-hand-add")
        second, theirs = await blocked_by(stack, state=StepState.UNCHANGED)
        await stack.tools.firewall.egress_remove(IP, idempotency_key="by-hand-remove")
        first, mine = await blocked_by(stack)
        _, report = await roll_back(stack, first.id)
        assert (report.results[0].kept, report.results[0].held_by_change) == ("handed_over", theirs)
        drift = await stack.start(Reconcile.run, ReconcileTrigger(revert_expired=False), id=f"drift-{first.id}")
        assert (await drift.result()).drift == []
        assert IP in await stack.edl()
