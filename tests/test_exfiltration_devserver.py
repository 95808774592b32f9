"""The `dlp` schedule on the real dev server: one exfiltration run per new DLP alert, never two."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from handrail.gate.models import RunState, RunStatus
from handrail.ops import schedules
from handrail.runbooks.exfiltration import run_id_for
from tests.support import running_stack, schedule_results
from workflows.poller import PollReport

pytestmark = pytest.mark.integration

POLICY = (Path(__file__).resolve().parents[1] / "policy.toml").read_text()


async def test_dlp_schedule_starts_one_run_per_new_alert(dev_env, tmp_path):
    client = dev_env.client
    async with running_stack(client, tmp_path, POLICY) as stack:
        keep = ("DLP-0004", "DLP-0008")  # unknown host (rejected); inadvertent by rule
        for alert in await stack.tools.dlp.list_alerts(status="new"):
            if alert.id not in keep:
                await stack.tools.dlp.mark_processed(alert.id, by="tester")
        items = [run_id_for(a) for a in keep]
        try:
            assert await schedules.ensure(client, stack.settings, "dlp", every="1h") == "created"
            await schedules.pause(client, "dlp")  # only our triggers run it
            await schedules.trigger(client, "dlp")
            [first] = await schedule_results(client, "dlp", 1, PollReport)
            assert sorted(first.started) == items and first.already == []
            states = {}
            for rid in items:
                handle = client.get_workflow_handle(rid)
                deadline = asyncio.get_running_loop().time() + 20
                while True:
                    status = await handle.query("status", result_type=RunStatus)
                    if status and status.state in (RunState.COMPLETED, RunState.REJECTED):
                        break
                    assert asyncio.get_running_loop().time() < deadline, status
                    await asyncio.sleep(0.1)
                states[rid] = status.state
            assert states == {items[0]: RunState.REJECTED, items[1]: RunState.COMPLETED}
            await schedules.trigger(client, "dlp")
            _, second = await schedule_results(client, "dlp", 2, PollReport)
            assert second.started == [] and second.already == [items[0]]  # DLP-0008 is closed as processed
        finally:
            try:
                await client.get_schedule_handle(schedules.definition("dlp").schedule_id).delete()
            except RPCError:
                pass
            for rid in items:
                handle = client.get_workflow_handle(rid)
                try:
                    if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                        await handle.terminate("test finished")
                except RPCError:
                    pass
