"""SIGKILL the worker after the tool did its work but before the ledger heard of it.

Real processes: Temporal dev server, the lab and the worker from `handrail up`. The test
holds the ledger's write lock (another process with the SQLite file locked) while the tool
call is in flight, so the worker is stuck between the tool's answer and its ledger write
(`finish_change` for an apply, `record_revert` for a rollback or an expiry) when it is
killed. `up` again starts only the worker. Each change is made once at the tool, settled
from the tool's state once, and the revert is recorded once with who did it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from handrail.gate.expiry import ExpiryPlan, expiry_id
from handrail.gate.ledger import Ledger
from handrail.gate.models import EgressBlockTrigger, RollbackTrigger, RunState, RunStatus
from handrail.ops import stack
from handrail.ops.config import load_settings
from handrail.ops.temporal import connect
from handrail.tools import ToolClients
from tests.support import make_policy, send_decision, signed_request_memo
from tests.test_stack import stack_env
from tests.test_stack_partial import _wait_gone
from workflows.egress_block import EgressBlock
from workflows.rollback import RollbackRun, rollback_id

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # a minute of real timeouts: `make test-slow`

IP, TTL_IP = "203.0.113.98", "203.0.113.99"


async def _until(probe, timeout: float = 120.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.1)


def _lock(path: Path) -> sqlite3.Connection:
    """Another process's writer: every ledger write waits (and, past 30 s, fails)."""
    db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    db.execute("BEGIN IMMEDIATE")
    return db


async def _kill_between_tool_and_ledger(settings, tools, method: str, path_suffix: str, pid: int) -> dict:
    """With the tool call held in the lab, lock the ledger; once the tool answered, SIGKILL the worker."""
    async def calls():
        return [c for c in await tools.lab_calls(500) if c.method == method and c.path.endswith(path_suffix)]

    before = len(await calls())

    async def in_flight():
        return any(f.hits for f in await tools.lab_faults())

    await _until(in_flight)
    lock = await asyncio.to_thread(_lock, settings.ledger_path)
    try:
        async def answered():
            now = await calls()
            return len(now) > before and now[-1].status < 300
        await _until(answered)
        await asyncio.sleep(1.0)  # the worker reads the tool back, then waits on the ledger's lock
        os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(_wait_gone, pid)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    await tools.lab_clear_faults()
    return {}


async def test_a_worker_killed_between_the_tool_and_the_ledger_settles_each_change_once(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(make_policy())
    settings = load_settings({**stack_env(tmp_path / "k", "handrail-kill-ledger"), "HANDRAIL_POLICY": str(policy)})
    try:
        first = await asyncio.to_thread(stack.start, settings, True)
        client = await connect(settings)
        async with ToolClients.from_settings(settings) as tools:
            # 1. an approved block: killed between the firewall's 201 and finish_change
            await tools.lab_set_fault("/firewall/egress", method="POST", latency_ms=1500, count=1)
            trigger = EgressBlockTrigger(ip=IP, reason="C2", requested_by="alice")
            handle = await client.start_workflow(
                EgressBlock.run, trigger, id="kill-apply", task_queue=settings.task_queue,
                memo=signed_request_memo(EgressBlock.run, "kill-apply", trigger, "alice"))

            async def waiting():
                status = await handle.query("status", result_type=RunStatus)
                return status if status and status.state == RunState.AWAITING_APPROVAL else None

            await send_decision(handle, "bob", status=await _until(waiting))
            await _kill_between_tool_and_ledger(settings, tools, "POST", "/firewall/egress", first.pids["worker"])
            pids = (await asyncio.to_thread(stack.start, settings, True)).pids
            result = await asyncio.wait_for(handle.result(), 180)
            assert result.state == RunState.COMPLETED, result.error
            assert (await tools.firewall.edl()).split().count(IP) == 1
            posts = [c for c in await tools.lab_calls(500) if c.path == "/firewall/egress" and c.method == "POST"]
            assert [c.status for c in posts].count(201) == 1, posts

            # 2. its rollback: killed between the firewall's DELETE and record_revert
            await tools.lab_set_fault(f"/firewall/egress/{IP}", method="DELETE", latency_ms=1500, count=1)
            rollback = RollbackTrigger(run_id=handle.id, requested_by="carol")
            undo = await client.start_workflow(
                RollbackRun.run, rollback, id=rollback_id(handle.id), task_queue=settings.task_queue,
                memo=signed_request_memo(RollbackRun.run, rollback_id(handle.id), rollback, "carol"))
            await _kill_between_tool_and_ledger(settings, tools, "DELETE", IP, pids["worker"])
            pids = (await asyncio.to_thread(stack.start, settings, True)).pids
            report = await asyncio.wait_for(undo.result(), 180)
            assert report.state == "rolled_back", report
            assert [r.reverted for r in report.results] == [True], report

            # 3. an expiry: killed between the firewall's DELETE and record_revert
            trigger = EgressBlockTrigger(ip=TTL_IP, reason="C2", requested_by="alice", ttl_s=15)
            ttl = await client.start_workflow(
                EgressBlock.run, trigger, id="kill-expiry", task_queue=settings.task_queue,
                memo=signed_request_memo(EgressBlock.run, "kill-expiry", trigger, "alice"))
            await send_decision(ttl, "bob", status=await _until(
                lambda: _waiting(ttl)))
            assert (await asyncio.wait_for(ttl.result(), 60)).state == RunState.COMPLETED
            await tools.lab_set_fault(f"/firewall/egress/{TTL_IP}", method="DELETE", latency_ms=1500, count=1)
            await _kill_between_tool_and_ledger(settings, tools, "DELETE", TTL_IP, pids["worker"])
            await asyncio.to_thread(stack.start, settings, True)
            expiry = client.get_workflow_handle(expiry_id(ttl.id), result_type=ExpiryPlan)
            plan = await asyncio.wait_for(expiry.result(), 180)
            assert [i.state for i in plan.items] == ["expired"], plan

            edl = (await tools.firewall.edl()).split()
            assert IP not in edl and TTL_IP not in edl
            deletes = [c for c in await tools.lab_calls(500) if c.method == "DELETE" and c.status < 300]
            assert len(deletes) == 2, deletes
        ledger = Ledger(settings.ledger_path)
        try:
            for run_id, reason, by in ((handle.id, "rollback", "carol"), (ttl.id, "expiry", "handrail")):
                [record] = ledger.changes_for_run(run_id)
                assert record.status == "applied" and record.inverse is not None
                revert = ledger.revert_of(record.change_id)
                assert (revert.reason, revert.by, revert.verified) == (reason, by, True)
                events = [r for r in ledger.audit_rows(run_id) if r["event"] == "change.reverted"]
                assert len(events) == 1
            assert ledger.verify().ok
        finally:
            ledger.close()
    finally:
        await asyncio.to_thread(stack.stop, settings)


async def _waiting(handle):
    try:
        status = await handle.query("status", result_type=RunStatus)
    except Exception:
        return None
    return status if status and status.state == RunState.AWAITING_APPROVAL else None
