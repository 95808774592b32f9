"""The `iam` and `nac` schedules on the real dev server: one run per item, never two."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from handrail.ops import schedules
from handrail.runbooks.privilege import privilege_run_id
from handrail.runbooks.rogue import rogue_run_id
from tests.support import running_stack, schedule_results
from workflows.poller import PollReport

pytestmark = pytest.mark.integration

POLICY = (Path(__file__).resolve().parents[1] / "policy.toml").read_text()


async def _eventually(probe, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await probe():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.2)


async def _all_processed(stack) -> bool:
    """Every run has handled its event (and marked it processed at the source)."""
    return not await stack.tools.iam.list_events("new")


async def _all_disconnected(stack, known: set[str]) -> bool:
    """Every rogue device's run has taken it off the network."""
    return not [d for d in await stack.tools.nac.list_devices(connected=True) if d.mac not in known]


async def _cleanup(client, name: str, run_ids: list[str]) -> None:
    try:
        await client.get_schedule_handle(schedules.definition(name).schedule_id).delete()
    except RPCError:
        pass
    for rid in run_ids:
        handle = client.get_workflow_handle(rid)
        try:
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("test finished")
        except RPCError:
            pass


@pytest.mark.parametrize("name", ["iam", "nac"])
async def test_poller_schedule_starts_one_run_per_item_and_no_duplicates(dev_env, tmp_path, name):
    client = dev_env.client
    async with running_stack(client, tmp_path, POLICY) as stack:
        if name == "iam":
            items = [privilege_run_id(e.id) for e in await stack.tools.iam.list_events("new")]
        else:
            known = {d.mac for d in await stack.tools.cmdb.list_devices()}
            items = [rogue_run_id(d.mac) for d in await stack.tools.nac.list_devices(connected=True)
                     if d.mac not in known]
        assert items
        try:
            assert await schedules.ensure(client, stack.settings, name, every="1h") == "created"
            await schedules.pause(client, name)  # only our triggers run it
            await schedules.trigger(client, name)
            [first] = await schedule_results(client, name, 1, PollReport)
            assert sorted(first.started) == sorted(items) and first.already == []
            for rid in items:
                assert (await client.get_workflow_handle(rid).describe()).id == rid

            # The source reports one item again (event reopened / device back on the wire).
            if name == "iam":
                again = items[0]
                event_id = again.removeprefix("privilege-guard-")
                await _eventually(lambda: _all_processed(stack))
                await stack.tools.iam.reopen_event(event_id)
            else:
                again = rogue_run_id("50:c7:bf:3a:91:0e")  # the rogue AP, disconnected by its run
                await _eventually(lambda: _all_disconnected(stack, known))
                await stack.tools.nac.reconnect("50:c7:bf:3a:91:0e")
            await schedules.trigger(client, name)
            _, second = await schedule_results(client, name, 2, PollReport)
            assert second.started == [] and second.already == [again]  # seen again: no second run
            shown = await schedules.show(client, name)
            assert shown["runs_total"] == 2 and shown["paused"]
        finally:
            await _cleanup(client, name, items)
