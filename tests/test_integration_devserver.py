"""On the real dev server: visibility through search attributes, and durability across a worker restart."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from handrail.gate.models import EgressBlockTrigger, RunState
from starter import ops
from tests.support import make_policy, running_stack, send_decision, signed_request_memo
from workflows.egress_block import EgressBlock

pytestmark = pytest.mark.integration


async def _eventually(probe, timeout: float = 15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("visibility did not catch up in time")
        await asyncio.sleep(0.2)


async def test_pending_lists_only_runs_waiting_for_a_human(dev_env, tmp_path):
    async with running_stack(dev_env.client, tmp_path, make_policy(mode="approve")) as stack:
        waiting = await stack.start(EgressBlock.run,
                                    EgressBlockTrigger(ip="203.0.113.50", reason="r", requested_by="alice"))
        await stack.wait_for(waiting, lambda s: s.state == RunState.AWAITING_APPROVAL)
        stack.set_policy(make_policy(mode="logged"))
        done = await stack.start(EgressBlock.run,
                                 EgressBlockTrigger(ip="203.0.113.51", reason="r", requested_by="alice"))
        assert (await done.result()).state == RunState.COMPLETED

        async def probe():
            rows = [r for r in await ops.pending(dev_env.client) if r["run_id"] in (waiting.id, done.id)]
            return rows or None

        rows = await _eventually(probe)
        assert [r["run_id"] for r in rows] == [waiting.id]
        row = rows[0]
        assert row["action"] == "firewall.egress_block" and row["requested_by"] == "alice"
        assert row["step"] == "s01-firewall.egress_block"
        query = f'HandrailRunbook = "egress-block" AND HandrailState = "completed" AND WorkflowId = "{done.id}"'
        assert await _eventually(lambda: _count(dev_env.client, query))
        await send_decision(waiting, "bob")
        assert (await waiting.result()).state == RunState.COMPLETED


async def _count(client, query: str) -> int:
    return (await client.count_workflows(query)).count


async def test_waiting_run_survives_a_worker_restart(dev_env, tmp_path):
    queue_home = tmp_path / "a"
    async with running_stack(dev_env.client, queue_home, make_policy(mode="approve")) as stack:
        trigger = EgressBlockTrigger(ip="203.0.113.60", reason="r", requested_by="alice")
        run_id = f"durable-{uuid.uuid4().hex[:8]}"
        handle = await stack.client.start_workflow(
            EgressBlock.run, trigger, id=run_id, task_queue=stack.settings.task_queue,
            memo=signed_request_memo(EgressBlock.run, run_id, trigger, "alice"))
        waiting = await stack.wait_for(handle, lambda s: s.state == RunState.AWAITING_APPROVAL)
        task_queue = stack.settings.task_queue
    # No worker now: the approval is a signal, stored by Temporal until a worker picks it up
    # (signed over the step the status showed before the worker stopped).
    await send_decision(handle, "bob", status=waiting)
    async with running_stack(dev_env.client, queue_home, make_policy(mode="approve"), task_queue=task_queue) as stack:
        result = await asyncio.wait_for(handle.result(), timeout=30)
        assert result.state == RunState.COMPLETED
        assert result.steps[0].decisions[0].decision.approver == "bob"
        assert "203.0.113.60" in await stack.edl()
