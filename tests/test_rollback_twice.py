"""Two `handrail rollback RUN` at once (two shells): one rollback runs, the other is told it is
under way, also when the first rollback needed attention and both would retry what it left."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.service import RPCError, RPCStatusCode

from starter import ops
from starter.output import CliError
from tests.support import running_stack, skipping_seconds
from tests.test_nothing_lost_workflow import GET, IP, approve, policy, trigger
from workflows.egress_block import EgressBlock
from workflows.rollback import rollback_id

pytestmark = pytest.mark.workflow


async def test_a_second_retry_asked_while_the_first_runs_is_refused_not_started(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, policy()) as stack:
        handle = await stack.start(EgressBlock.run, trigger())
        await approve(stack, handle)
        await handle.result()
        await stack.tools.lab_set_fault(GET, method="DELETE", error_rate=1.0, count=5)  # the undo's five attempts
        first = await skipping_seconds(
            time_env, ops.rollback(stack.client, stack.settings, handle.id, "carol", now=await stack.server_now()))
        assert first.state == "needs_attention"

        # the retry's DELETE is held in the lab while a second shell asks too
        await stack.tools.lab_clear_faults()
        await stack.tools.lab_set_fault(GET, method="DELETE", latency_ms=3000, count=1)
        retry = asyncio.ensure_future(
            ops.rollback(stack.client, stack.settings, handle.id, "carol", now=await stack.server_now()))
        retry_id = f"{rollback_id(handle.id)}-retry-2"

        async def held():
            return any(f.hits for f in await stack.tools.lab_faults())

        deadline = asyncio.get_running_loop().time() + 30
        while not await held():
            assert asyncio.get_running_loop().time() < deadline, "the retry never reached the firewall"
            await asyncio.sleep(0.05)
        with pytest.raises(CliError, match=f"is under way \\({retry_id}\\)"):
            await ops.rollback(stack.client, stack.settings, handle.id, "erin", now=await stack.server_now())
        report = await retry
        assert report.state == "rolled_back" and report.rollback_id == retry_id
        assert IP not in await stack.edl()
        with pytest.raises(RPCError) as none:  # no third rollback was started beside the retry
            await stack.client.get_workflow_handle(f"{rollback_id(handle.id)}-retry-3").describe()
        assert none.value.status == RPCStatusCode.NOT_FOUND
