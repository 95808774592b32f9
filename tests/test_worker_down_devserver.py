"""With the worker down, `pending` and `show` still answer and `approve` is kept until a worker runs
(issue 15, item 5), on the dev server."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from handrail.gate.models import EgressBlockTrigger, RunState
from handrail.ops.liveness import live_pollers
from starter import ops, signing
from tests.support import make_policy, running_stack, send_decision
from workflows.egress_block import EgressBlock

pytestmark = pytest.mark.integration


async def _eventually(probe, timeout: float = 20.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.2)


async def test_pending_and_show_answer_from_visibility_and_the_ledger_with_no_worker(dev_env, tmp_path, monkeypatch):
    # With no worker every status query waits out its whole RPC timeout (5 s in `pending`, `show`
    # and `approve`) before the ledger answers; a fifth of it says the same and saves about 8 s.
    monkeypatch.setattr(ops, "_seconds", lambda n: timedelta(seconds=n / 5))
    ips = ["203.0.113.81", "203.0.113.82", "203.0.113.83"]
    async with running_stack(dev_env.client, tmp_path, make_policy(mode="approve")) as stack:
        handles = [await stack.start(EgressBlock.run, EgressBlockTrigger(ip=ip, reason="r", requested_by="alice"))
                   for ip in ips]
        seen = [await stack.wait_for(handle, lambda s: s.state == RunState.AWAITING_APPROVAL) for handle in handles]
        settings = stack.settings
        assert await live_pollers(dev_env.client, settings.task_queue) >= 1
        stack.started.clear()  # keep them waiting after the worker stops
    # The worker is gone; the runs still wait in Temporal.
    ids = {h.id for h in handles}

    async def probe():
        rows = [r for r in await ops.pending(dev_env.client, settings) if r["run_id"] in ids]
        return rows if len(rows) == len(ids) else None

    try:
        rows = await _eventually(probe)
        assert {r["target"] for r in rows} == set(ips)
        assert all(r["step"] == "s01-firewall.egress_block" for r in rows)
        later = datetime.now(timezone.utc) + timedelta(minutes=5)  # once the stopped worker's last poll is old
        assert await live_pollers(dev_env.client, settings.task_queue, now=later) == 0

        # `show` of one run, and `handrail approve` of another: each waits out one unanswered query,
        # so side by side. The decision is signed over the waiting step the ledger records (as
        # `show` prints it), sent at once, and reported kept until a worker runs.
        bob = signing.load_signer(settings, None, "bob")
        shown, sent = await asyncio.gather(
            ops.run_status(dev_env.client, settings, handles[0].id),
            ops.decide(dev_env.client, handles[1].id, "bob", True, None, "",
                       sign=ops.decision_signer(settings, handles[1].id, bob, True, None, "")))
        assert shown.live_note and "live status unavailable" in shown.live_note
        assert shown.pending_step() is not None and shown.pending_step().change.target == ips[0]
        # A decision sent now is kept by Temporal; a worker that comes back judges it. (It is signed
        # over the change digest the approver saw while the run was live.)
        await send_decision(handles[0], "bob", status=seen[0])
        assert sent["kept"] is True and sent["accepted"] is None and sent["live"] is False, sent
        assert "until a worker runs" in sent["why"] and sent["state"] == "awaiting_approval"
        async with running_stack(dev_env.client, tmp_path, make_policy(mode="approve"),
                                 task_queue=settings.task_queue) as stack:
            assert (await handles[0].result()).state == RunState.COMPLETED
            judged = await handles[1].result()
            assert judged.state == RunState.COMPLETED
            assert [(d.decision.id, d.accepted) for d in judged.steps[0].decisions] == [(sent["decision_id"], True)]
            assert set(ips[:2]) <= set(await stack.edl())
    finally:
        for handle in handles:
            try:
                await handle.terminate("test finished")
            except Exception:
                pass
