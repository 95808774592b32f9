"""Two workers on two homes, one Temporal and one PostgreSQL: the same guarantees as one box (issue 13).

Real processes only: the Temporal dev server, the lab and worker A from `handrail up`, worker B
started by hand with a HANDRAIL_HOME of its own (nothing shared but Temporal, the lab — the
estate — and the PostgreSQL ledger), and an embedded PostgreSQL server.

Batch one: 100 egress blocks at once, each waiting for a signed approval, under a blast-radius
limit smaller than the batch; some are denied, some carry a TTL that expires, some are rolled
back. Afterwards the one chain verifies, every change appears once, every rollback and expiry
restored the lab's before-state, and the limit held. Batch two: worker A is killed with SIGKILL
while the batch is in flight; worker B finishes every run, and nothing is lost or applied twice.

Slow (about a minute): marked `scaleout`, left out of `make test`, run by `.ci/run` after it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from handrail.gate.ledger import open_ledger
from handrail.gate.models import EgressBlockTrigger, RunState, RunStatus
from handrail.ops import stack
from handrail.ops.config import Settings, load_settings
from handrail.ops.postgres import EmbeddedPostgres
from handrail.ops.temporal import connect
from handrail.tools import ToolClients
from starter import ops
from tests.support import key_file, make_policy, send_decision, signed_request_memo, with_test_keys
from tests.test_stack import pid_gone, stack_env
from workflows.egress_block import EgressBlock

pytestmark = [pytest.mark.scaleout, pytest.mark.timeout(600)]

RUNS = 100
LIMIT = 85  # egress blocks per hour: fewer than the batch, so the limit has to hold under concurrency
DENIED = range(0, 10)  # approvers deny these
EXPIRING = range(10, 25)  # approved with a 3 s TTL: the expiry reverts them
ROLLED_BACK = range(25, 40)  # approved, then `handrail rollback`
SECOND = 40  # runs in the second batch, during which worker A is killed


def _ip(batch: int, i: int) -> str:
    return f"45.{60 + batch}.{i // 250}.{i % 250 + 1}"


def _policy(per_hour: int) -> str:
    guardrails = ('{ type = "never_block" }, { type = "no_reserved_space" }, '
                  f'{{ type = "rate_limit", per_hour = {per_hour}, outcome = "deny" }}')
    return with_test_keys(make_policy(guardrails=guardrails))


def _start_worker(settings: Settings) -> subprocess.Popen:
    settings.home.mkdir(parents=True, exist_ok=True)
    log = open(settings.home / "worker-b.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "worker"], env=stack.child_env(settings), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


async def _status(handle) -> RunStatus | None:
    try:
        return await handle.query("status", result_type=RunStatus)
    except Exception:
        return None


async def _settled(handle, timeout: float = 120.0) -> RunStatus:
    """The run's status once it waits for a human or finished the gate's check."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = await _status(handle)
        if status is not None and status.state != RunState.RUNNING and (
                status.state != RunState.AWAITING_APPROVAL or status.pending_step() is not None):
            return status
        assert asyncio.get_running_loop().time() < deadline, f"{handle.id} never settled: {status}"
        await asyncio.sleep(0.2)


async def _start_batch(client, settings: Settings, batch: int, count: int, ttl: set[int] = frozenset()):
    handles = []
    for i in range(count):
        run_id = f"scale-{batch}-{i:03d}"
        trigger = EgressBlockTrigger(ip=_ip(batch, i), reason="scale-out test", requested_by="alice",
                                     ttl_s=3.0 if i in ttl else None)
        handles.append(await client.start_workflow(
            EgressBlock.run, trigger, id=run_id, task_queue=settings.task_queue,
            memo=signed_request_memo(EgressBlock.run, run_id, trigger, "alice")))
    return handles


async def _decide(handles, deny: set[int] = frozenset()) -> list[RunStatus]:
    statuses = await asyncio.gather(*(_settled(h) for h in handles))

    async def one(i, handle, status):
        if status.state == RunState.AWAITING_APPROVAL:
            approve = i not in deny
            await send_decision(handle, "bob", approve=approve, reason="" if approve else "not this address",
                                status=status)

    await asyncio.gather(*(one(i, h, s) for i, (h, s) in enumerate(zip(handles, statuses, strict=True))))
    return statuses


async def _worker_identities(client, run_ids) -> set[str]:
    """Which worker processes ran these runs' activities (pid@host, from the histories)."""
    seen = set()
    for run_id in run_ids:
        async for event in client.get_workflow_handle(run_id).fetch_history_events():
            if event.HasField("activity_task_started_event_attributes"):
                seen.add(event.activity_task_started_event_attributes.identity)
    return seen


async def _edl(tools) -> set[str]:
    return {line.strip() for line in (await tools.firewall.edl()).splitlines() if line.strip()}


async def _blocks_made(tools) -> Counter:
    """How often the firewall created a block, per idempotency key (one key per change)."""
    calls = await tools.lab_calls(5000)
    return Counter(c.idempotency_key for c in calls
                   if c.path == "/firewall/egress" and c.method == "POST" and c.status == 201)


@pytest.fixture(scope="module")
def pg_url():
    with EmbeddedPostgres() as url:
        yield url


async def test_two_workers_one_chain_nothing_lost(tmp_path: Path, pg_url: str) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    policy = shared / "policy.toml"
    policy.write_text(_policy(LIMIT))
    env = {**stack_env(tmp_path / "a", "handrail-scale"), "HANDRAIL_POLICY": str(policy), "HANDRAIL_LEDGER_URL": pg_url}
    a = load_settings(env)
    b = load_settings({**env, "HANDRAIL_HOME": str(tmp_path / "b")})
    for user in ("alice", "bob", "erin"):
        (a.home / "keys").mkdir(parents=True, exist_ok=True)
        key_file(user, a.home / "keys")
    worker_b = None
    try:
        first = await asyncio.to_thread(stack.start, a, True)
        worker_b = _start_worker(b)
        client = await connect(a)
        async with ToolClients.from_settings(a) as tools:
            # -- batch one: approvals, denials, TTLs, rollbacks, a limit, spread over both workers
            handles = await _start_batch(client, a, 1, RUNS, ttl=set(EXPIRING))
            statuses = await _decide(handles, deny=set(DENIED))
            try:
                results = await asyncio.gather(*(asyncio.wait_for(h.result(), 120) for h in handles))
            except TimeoutError:
                for h in handles:
                    st = await _status(h)
                    print(h.id, st and st.state, st and [(x.state, x.note) for x in st.steps],
                          st and [d.why for d in st.rejected_decisions])
                raise
            applied = {i for i, r in enumerate(results) if r.state == RunState.COMPLETED and r.steps
                       and r.steps[0].change_id}
            limited = [i for i, s in enumerate(statuses) if s.state != RunState.AWAITING_APPROVAL]
            assert len(applied) <= LIMIT, f"{len(applied)} blocks passed a limit of {LIMIT}"
            assert limited, "the limit never refused a run: the batch did not test it"
            assert len(await _worker_identities(client, [h.id for h in handles])) == 2, "one worker did it all"
            for i in ROLLED_BACK:
                if i in applied:
                    await ops.rollback(client, a, handles[i].id, "erin")
            await asyncio.sleep(6)  # the 3 s TTLs expire (the expiry workflows run on either worker)
            edl = await _edl(tools)
            for i in applied:
                gone = i in EXPIRING or i in ROLLED_BACK
                assert (_ip(1, i) in edl) is not gone, (i, results[i].state)
            for i in DENIED:
                assert _ip(1, i) not in edl

            # -- batch two: SIGKILL worker A in the middle; B finishes everything
            policy.write_text(_policy(10_000))
            second = await _start_batch(client, a, 2, SECOND)
            await _decide(second[: SECOND // 2])
            os.kill(first.pids["worker"], signal.SIGKILL)
            await _decide(second[SECOND // 2:])
            done = await asyncio.gather(*(asyncio.wait_for(h.result(), 120) for h in second))
            assert all(r.state == RunState.COMPLETED for r in done), [r.state for r in done]
            assert {_ip(2, i) for i in range(SECOND)} <= await _edl(tools)

            made = await _blocks_made(tools)
            assert all(n == 1 for n in made.values()), [key for key, n in made.items() if n > 1]
            assert sum(made.values()) == len(applied) + SECOND

        ledger = open_ledger(a)
        try:
            verdict = ledger.verify()
            assert verdict.ok, verdict
            for handle in [*handles, *second]:
                changes = ledger.changes_for_run(handle.id)
                assert len({c.change_id for c in changes}) == len(changes)
        finally:
            ledger.close()
    finally:
        if worker_b is not None and worker_b.poll() is None:
            worker_b.terminate()
            worker_b.wait(timeout=20)
        await asyncio.to_thread(stack.stop, a)
        assert worker_b is None or pid_gone(worker_b.pid)
