"""The `intel` schedule on the real dev server (the time-skipping server has no Schedules)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from temporalio.service import RPCError

from handrail.gate.models import RunState, RunStatus
from handrail.ops import schedules
from tests.support import running_stack, schedule_results

pytestmark = pytest.mark.integration

POLICY = re.sub(r'(\[actions\."firewall\.egress_block"\][^\[]*?\nmode = )"approve"', r'\1"guarded"',
                (Path(__file__).resolve().parents[1] / "policy.toml").read_text(), count=1)


async def test_intel_schedule_create_show_retime_pause_trigger(dev_env, tmp_path):
    client = dev_env.client
    async with running_stack(client, tmp_path, POLICY) as stack:
        try:
            assert await schedules.ensure(client, stack.settings, "intel") == "created"
            shown = await schedules.show(client, "intel")
            assert shown["workflow"] == "IntelSync" and shown["every_seconds"] == 3600  # hourly by default
            assert shown["overlap"] == "skip" and shown["paused"] is False
            assert await schedules.ensure(client, stack.settings, "intel", every="30m") == "updated"
            assert (await schedules.show(client, "intel"))["every_seconds"] == 1800
            await schedules.pause(client, "intel")
            assert (await schedules.show(client, "intel"))["paused"] is True
            await schedules.trigger(client, "intel")  # runs even while paused
            [first] = await schedule_results(client, "intel", 1, RunStatus)
            assert first.runbook == "intel-sync" and first.state == RunState.COMPLETED, first.error
            assert first.requested_by == "schedule"
            assert first.summary["validated"] >= 3 and first.summary["rejected"] == 0
            assert "91.92.241.17" in await stack.edl()
            await schedules.trigger(client, "intel")
            _, second = await schedule_results(client, "intel", 2, RunStatus)
            assert second.state == RunState.COMPLETED
            assert all(f["cached"] for f in second.summary["feeds"].values())
            assert second.summary["applied"] == {}  # nothing new: no tool was changed
            await schedules.pause(client, "intel", paused=False)
            assert (await schedules.show(client, "intel"))["paused"] is False
        finally:
            try:
                await client.get_schedule_handle(schedules.definition("intel").schedule_id).delete()
            except RPCError:
                pass
