"""SIGKILL the worker while an approved block is in flight (issue 15, the first "Why").

Real processes: Temporal dev server, the lab (uvicorn) and the worker from `handrail up`.
The lab holds the firewall call for a moment; the worker is killed with SIGKILL while the
request is in the lab; `up` again starts only the worker. The block is applied exactly
once, the ledger records it applied with its inverse, and nothing poisoned the key.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from handrail.gate.ledger import Ledger
from handrail.gate.models import EgressBlockTrigger, RunState, RunStatus
from handrail.ops import stack
from handrail.ops.config import load_settings
from handrail.ops.temporal import connect
from handrail.tools import ToolClients
from tests.support import make_policy, send_decision, signed_request_memo
from tests.test_stack import stack_env
from tests.test_stack_partial import _wait_gone
from workflows.egress_block import EgressBlock

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # waits out a killed call's heartbeat: `make test-slow`

IP = "203.0.113.97"


async def _until(probe, timeout: float = 60.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.1)


async def test_a_worker_killed_mid_call_loses_nothing_and_applies_once(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(make_policy())
    settings = load_settings({**stack_env(tmp_path / "k", "handrail-kill"), "HANDRAIL_POLICY": str(policy)})
    try:
        first = await asyncio.to_thread(stack.start, settings, True)
        client = await connect(settings)
        async with ToolClients.from_settings(settings) as tools:
            await tools.lab_set_fault("/firewall/egress", method="POST", latency_ms=1500, count=1)
            trigger = EgressBlockTrigger(ip=IP, reason="C2", requested_by="alice")
            handle = await client.start_workflow(
                EgressBlock.run, trigger, id="kill-mid-call", task_queue=settings.task_queue,
                memo=signed_request_memo(EgressBlock.run, "kill-mid-call", trigger, "alice"))

            async def waiting():
                status = await handle.query("status", result_type=RunStatus)
                return status if status and status.state == RunState.AWAITING_APPROVAL else None

            await send_decision(handle, "bob", status=await _until(waiting))

            async def in_flight():
                return any(f.hits for f in await tools.lab_faults())

            await _until(in_flight)
            os.kill(first.pids["worker"], signal.SIGKILL)
            await asyncio.to_thread(_wait_gone, first.pids["worker"])
            second = await asyncio.to_thread(stack.start, settings, True)
            assert second.pids["temporal"] == first.pids["temporal"]

            result = await asyncio.wait_for(handle.result(), 120)
            assert result.state == RunState.COMPLETED, result.error
            edl = (await tools.firewall.edl()).split()
            assert edl.count(IP) == 1
            calls = [c for c in await tools.lab_calls(200) if c.path == "/firewall/egress" and c.method == "POST"]
            # 499: the killed worker's request never reached the handler (and stored nothing);
            # the retry's request ran once. No 400 "error parsing the body" was kept under the key.
            assert {c.status for c in calls} <= {201, 499} and [c.status for c in calls].count(201) == 1, calls
        ledger = Ledger(settings.ledger_path)
        try:
            record = ledger.change(result.steps[0].change_id)
            assert record.status == "applied" and record.inverse is not None
        finally:
            ledger.close()
    finally:
        await asyncio.to_thread(stack.stop, settings)
