"""The rogue-device runbook on the time-skipping server, against the shipped policy."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from handrail.gate.models import RollbackTrigger, RunState, StepState
from handrail.runbooks.rogue import RogueTrigger, rogue_run_id
from tests.support import running_stack, send_decision
from workflows.rogue_device import RogueDevice
from workflows.rollback import RollbackRun, rollback_id

pytestmark = pytest.mark.workflow

POLICY = (Path(__file__).resolve().parents[1] / "policy.toml").read_text()
ROGUE_AP = "50:c7:bf:3a:91:0e"  # a TP-Link consumer access point in a desk port (corp-wired)
ROGUE_PI = "b8:27:eb:44:10:7c"  # a Raspberry Pi (corp-wired)
NAC_LIMIT = '{ type = "rate_limit", per_hour = 10, outcome = "hold" },\n]\n\n[actions."nac.reconnect"]'


def recommit_waiting(status) -> bool:
    waiting = status.pending_step()
    return waiting is not None and waiting.change.kind == "nac.recommit_device"


async def start(stack, mac: str):
    return await stack.start(RogueDevice.run, RogueTrigger(mac=mac), id=f"{rogue_run_id(mac)}-{uuid.uuid4().hex[:6]}")


async def test_rogue_ap_is_disconnected_then_declared_legitimate_and_registered(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        handle = await start(stack, ROGUE_AP)
        status = await stack.wait_for(handle, recommit_waiting)
        disconnect = status.steps[0]
        assert disconnect.change.kind == "nac.disconnect" and disconnect.state == StepState.APPLIED
        assert disconnect.mode.value == "guarded"
        assert not (await stack.tools.nac.get_device(ROGUE_AP)).connected
        assert "vendor 'TP-Link' is not provisioned" in status.summary["why_rogue"]
        [alert] = [a for a in await stack.tools.alerts.list_alerts() if a.run_id == handle.id]
        assert alert.title.startswith("Rogue device disconnected") and "rogue-device" in alert.tags
        case = await stack.tools.cases.get_case(status.summary["case_id"])
        assert case.status == "open" and case.run_id == handle.id and ROGUE_AP in case.title

        await send_decision(handle, "bob", True, "facilities' test AP; register it")
        result = await handle.result()
        assert result.state == RunState.COMPLETED
        kinds = [s.change.kind for s in result.steps]
        assert kinds == ["nac.disconnect", "cases.open", "nac.recommit_device", "cmdb.register_device", "cases.close"]
        assert all(s.state == StepState.APPLIED for s in result.steps)
        assert result.summary["declared_legitimate_by"] == ["bob"] and result.summary["registered"] == "applied"
        assert (await stack.tools.nac.get_device(ROGUE_AP)).connected
        record = await stack.tools.cmdb.find_by_mac(ROGUE_AP)
        assert record is not None and record.vendor == "TP-Link" and record.network == "corp-wired"
        assert (await stack.tools.cases.get_case(case.id)).status == "closed"


async def test_declared_legitimate_without_register_only_reconnects(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        handle = await start(stack, ROGUE_PI)
        await stack.wait_for(handle, recommit_waiting)
        await send_decision(handle, "alice", True, "lab kit")
        result = await handle.result()
        assert [s.change.kind for s in result.steps] == ["nac.disconnect", "cases.open", "nac.recommit_device",
                                                         "cases.close"]
        assert (await stack.tools.nac.get_device(ROGUE_PI)).connected
        assert await stack.tools.cmdb.find_by_mac(ROGUE_PI) is None


async def test_known_cmdb_device_is_ignored(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        [known] = await stack.tools.cmdb.list_devices(hostname="ap-floor1-01")
        result = await (await start(stack, known.mac)).result()
        assert result.state == RunState.COMPLETED and result.steps == []
        assert known.id in result.summary["outcome"]
        assert (await stack.tools.nac.get_device(known.mac)).connected


async def test_protected_network_holds_and_blast_radius_holds(time_env, tmp_path):
    protected = POLICY.replace('tags = ["network:datacenter", "network:prod-db"]',
                               'tags = ["network:datacenter", "network:prod-db", "network:corp-wired"]')
    assert protected != POLICY
    async with running_stack(time_env.client, tmp_path, protected) as stack:
        handle = await start(stack, ROGUE_PI)
        status = await stack.wait_for(handle, lambda s: s.steps and s.steps[0].state == StepState.AWAITING_APPROVAL)
        assert [v.guardrail for v in status.steps[0].verdicts] == ["protected_tags"]
        assert "network:corp-wired" in status.steps[0].verdicts[0].reason
        assert (await stack.tools.nac.get_device(ROGUE_PI)).connected
        await send_decision(handle, "bob", False, "OT kit")
        result = await handle.result()  # the held disconnect is refused: it is not made
        assert result.state == RunState.COMPLETED and "not disconnected" in result.summary["outcome"]
        assert (await stack.tools.nac.get_device(ROGUE_PI)).connected

    limited = POLICY.replace(NAC_LIMIT, NAC_LIMIT.replace("per_hour = 10", "per_hour = 1"))
    assert limited != POLICY
    async with running_stack(time_env.client, tmp_path / "limit", limited) as stack:
        first = await start(stack, ROGUE_AP)
        await stack.wait_for(first, recommit_waiting)
        second = await start(stack, ROGUE_PI)
        status = await stack.wait_for(second, lambda s: s.steps and s.steps[0].state == StepState.AWAITING_APPROVAL)
        assert [v.guardrail for v in status.steps[0].verdicts] == ["rate_limit"]
        assert (await stack.tools.nac.get_device(ROGUE_PI)).connected


async def test_timeout_keeps_the_disconnection_and_rollback_reconnects(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        handle = await start(stack, ROGUE_PI)
        result = await handle.result()
        assert result.state == RunState.COMPLETED and "the disconnection stands" in result.summary["outcome"]
        assert not (await stack.tools.nac.get_device(ROGUE_PI)).connected
        rollback = await stack.start(RollbackRun.run, RollbackTrigger(run_id=handle.id, requested_by="carol"),
                                     id=rollback_id(handle.id))
        # reconnecting is a change too: nac.reconnect waits for an analyst's approval
        waiting = await stack.wait_for(rollback, lambda s: s.state == RunState.AWAITING_APPROVAL)
        assert waiting.pending_step().change.kind == "nac.reconnect"
        assert not (await stack.tools.nac.get_device(ROGUE_PI)).connected
        await send_decision(rollback, "bob")
        report = await rollback.result()
        assert report.state == "rolled_back" and all(r.verified for r in report.results)
        assert (await stack.tools.nac.get_device(ROGUE_PI)).connected


async def test_malformed_or_unknown_devices_are_rejected_with_nothing_changed(time_env, tmp_path):
    async with running_stack(time_env.client, tmp_path, POLICY) as stack:
        before = (await stack.tools.lab_state()).hash
        for mac, why in (("not-a-mac", "is not a MAC address"), ("02:00:00:00:00:99", "NAC has never seen")):
            result = await (await stack.start(RogueDevice.run, RogueTrigger(mac=mac))).result()
            assert result.state == RunState.REJECTED and why in result.error and result.steps == []
        assert (await stack.tools.lab_state()).hash == before
