"""`handrail bench chaos`: does Handrail lose, duplicate or misrecord anything under faults?

On an embedded stack of its own (real Temporal dev server, lab and worker processes, free
ports, a temporary HANDRAIL_HOME) it starts N egress-block runs that need approval and
approves each at a random moment (`--mode guarded`: runs that need no person, started at
random moments, each a one-activity step whose check applies it), while:
  - the worker is killed with SIGKILL at random moments (and `up` restarts only it),
  - the Temporal server is restarted once,
  - the firewall fails 30% of calls (some after applying the request: a lost response),
  - the firewall is down completely for 20 seconds once;
  - with `--ledger postgresql`, the ledger is on a PostgreSQL the benchmark starts, and that
    database is restarted once (a fast shutdown, as for an upgrade or a failover: every
    session of every pool is cut, what was committed is kept).
When every run has an outcome it rolls half of the completed runs back (retrying a
rollback that needs attention, as an operator would), turns the faults off and compares
the ledger with the lab:
  lost        approved changes neither applied nor reported failed (or decisions lost)
  duplicates  a change applied more than once (two ledger changes for one run and target)
  drift       the ledger and the firewall disagree (or a change was never settled)
  stuck       runs with no outcome after the faults stopped
  rolled_back_clean  rollbacks that ended rolled back with the before-state restored
It measures; it never asserts. The target is zeros and 100% clean rollbacks.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio.exceptions import WorkflowAlreadyStartedError

from handrail.gate.ledger import open_ledger
from handrail.gate.models import ChangeRecord, Decision, EgressBlockTrigger, RunState, RunStatus
from handrail.ops import stack
from handrail.ops.config import Settings, load_settings
from handrail.ops.ports import free_port
from handrail.ops.postgres import EmbeddedPostgres
from handrail.ops.temporal import connect
from handrail.tools import ToolClients

POLICY = """
[users]
alice = { roles = ["soc-analyst"] }
bob = { roles = ["soc-analyst"] }
carol = { roles = ["soc-lead"] }

[actions."firewall.egress_block"]
mode = "{mode}"
approvers = { roles = ["soc-analyst"] }
required_approvals = 1
approval_timeout = "4h"
on_timeout = "deny"
tool_retry = "1h"
tool_alert_after = "10m"
guardrails = [{ type = "never_block" }, { type = "no_reserved_space" }]

[actions."firewall.egress_unblock"]
mode = "guarded"
"""

FAULT_RATE = 0.3
OUTAGE_S = 20.0
WORKER_KILLS = 3
CHAOS_SPAN_S = 60.0  # approvals are spread over about this long, so they meet every disturbance
SETTLE_TIMEOUT_S = 900.0
APPROVE_WITHIN_S = 120.0  # per run, to start or approve it: longer than any restart the benchmark causes
OUTCOMES = {RunState.COMPLETED, RunState.DENIED, RunState.COMPENSATED, RunState.ROLLED_BACK,
            RunState.NEEDS_ATTENTION, RunState.FAILED, RunState.REJECTED}



def _ip(i: int) -> str:
    return f"45.{100 + (i // 65025) % 100}.{(i // 255) % 255}.{i % 255 + 1}"


PEOPLE = ("alice", "bob", "carol")


MODES = ("approve", "guarded")
LEDGERS = ("sqlite", "postgresql")


def chaos_settings(home: Path, mode: str = "approve", ledger_url: str = "") -> Settings:
    """A home with a key per person (where `handrail keys init` would put it) and a policy listing
    them; `mode`: the egress block's trust mode; `ledger_url`: HANDRAIL_LEDGER_URL ("": SQLite)."""
    from handrail.gate import signatures

    policy = POLICY.replace("{mode}", mode)
    (home / "keys").mkdir(parents=True, exist_ok=True)
    for user in PEOPLE:
        key = signatures.new_ed25519_key()
        path = home / "keys" / f"{user}_ed25519"
        path.write_bytes(signatures.private_key_file(key))
        path.chmod(0o600)
        line = signatures.public_key_of(key, f"{user}@chaos").line()
        policy = policy.replace(f'{user} = {{ roles = [', f'{user} = {{ keys = ["{line}"], roles = [', 1)
    (home / "policy.toml").write_text(policy)
    return load_settings({
        "HANDRAIL_HOME": str(home),
        "HANDRAIL_POLICY": str(home / "policy.toml"),
        "HANDRAIL_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "HANDRAIL_UI_PORT": str(free_port()),
        "HANDRAIL_LAB_URL": f"http://127.0.0.1:{free_port()}",
        "HANDRAIL_TASK_QUEUE": "handrail-chaos",
        "HANDRAIL_NAMESPACE": "default",
        "HANDRAIL_USER": "chaos",
        "HANDRAIL_LEDGER_URL": ledger_url,
    })


def approval(settings: Settings, approver: str, run_id: str, step) -> Decision:
    """The one place the benchmark builds a decision: signed by the approver's key, bound to the step."""
    from handrail.gate import signatures, signing

    key = signatures.load_private_key((settings.home / "keys" / f"{approver}_ed25519").read_bytes())
    document = signing.new_document(run_id=run_id, step=step, signer=approver, approve=True)
    return signing.sign_decision(key, document, decision_id=uuid.uuid4().hex)


async def _faults_on(tools: ToolClients, seed: int) -> None:
    await tools.lab_clear_faults()
    # a third of the failures are lost responses: the firewall applied the request, then 503
    await tools.lab_set_fault("/firewall/*", method="POST", error_rate=FAULT_RATE / 3, after_apply=True, seed=seed)
    await tools.lab_set_fault("/firewall/*", method="DELETE", error_rate=FAULT_RATE / 3, after_apply=True,
                              seed=seed + 1)
    await tools.lab_set_fault("/firewall/*", error_rate=FAULT_RATE * 2 / 3, seed=seed + 2)


async def _status(client, settings: Settings, run_id: str) -> RunStatus | None:
    from starter import ops

    try:
        return await ops.run_status(client, settings, run_id)
    except Exception:  # unknown yet, Temporal restarting: asked again on the next round
        return None


async def _approve(client, settings: Settings, run_id: str) -> bool:
    """Approve the run's waiting step, as bob would, through every restart: each attempt reads
    the status again (live, or the ledger's while no worker answers) and signs what it shows.
    False if the run never waited or the decision could not be sent within APPROVE_WITHIN_S:
    the measure then counts the run, the benchmark never hangs on it."""
    handle = client.get_workflow_handle(run_id)
    deadline = time.monotonic() + APPROVE_WITHIN_S
    while time.monotonic() < deadline:
        status = await _status(client, settings, run_id)
        step = status.pending_step() if status else None
        if status is not None and status.state in OUTCOMES:
            return False  # it ended without waiting (refused, failed)
        if step is None:
            await asyncio.sleep(0.2)
            continue
        try:
            await handle.signal("decide", approval(settings, "bob", run_id, step))
            return True
        except Exception:  # Temporal restarting: read and sign again
            await asyncio.sleep(0.5)
    return False


class _Chaos:
    def __init__(self, settings: Settings, info: stack.StackInfo, rng: random.Random,
                 database: EmbeddedPostgres | None = None):
        self.settings = settings
        self.pids = dict(info.pids)
        self.rng = rng
        self.database = database
        self.kills = 0
        self.temporal_restarts = 0
        self.ledger_restarts = 0

    async def _restart(self, name: str, sig: int) -> None:
        pid = self.pids[name]
        os.kill(pid, sig)
        deadline = time.monotonic() + 20
        while not stack._gone(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        info = await asyncio.to_thread(stack.start, self.settings, True)
        self.pids = dict(info.pids)

    async def kill_worker(self) -> None:
        await self._restart("worker", signal.SIGKILL)
        self.kills += 1

    async def restart_temporal(self) -> None:
        await self._restart("temporal", signal.SIGTERM)
        self.temporal_restarts += 1

    async def restart_ledger(self) -> None:
        """Restart the ledger's PostgreSQL (none on SQLite): the workers keep running."""
        if self.database is not None:
            await asyncio.to_thread(self.database.restart)
            self.ledger_restarts += 1


async def run_chaos(runs: int, seed: int = 15, mode: str = "approve", ledger: str = "sqlite") -> dict[str, Any]:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    if ledger not in LEDGERS:
        raise ValueError(f"ledger must be one of {', '.join(LEDGERS)}")
    rng = random.Random(seed)
    home = Path(tempfile.mkdtemp(prefix="handrail-chaos-"))
    database = EmbeddedPostgres() if ledger == "postgresql" else None
    settings = None
    began = time.perf_counter()
    try:
        settings = chaos_settings(home, mode, await asyncio.to_thread(database.start) if database else "")
        info = await asyncio.to_thread(stack.start, settings, True)
        chaos = _Chaos(settings, info, rng, database)
        client = await connect(settings)
        async with ToolClients.from_settings(settings) as tools:
            await _faults_on(tools, seed)
            ids = [f"chaos-{i:04d}" for i in range(runs)]
            from starter.signing import load_signer
            from starter.start import signed_request
            from workflows.egress_block import EgressBlock

            alice = load_signer(settings, settings.home / "keys" / "alice_ed25519", "alice")

            async def start(i: int, run_id: str) -> None:
                trigger = EgressBlockTrigger(ip=_ip(i), reason="chaos", requested_by="alice")
                memo = signed_request(alice, EgressBlock.run, run_id, trigger)
                deadline = time.monotonic() + APPROVE_WITHIN_S
                while time.monotonic() < deadline:  # Temporal may be restarting
                    try:
                        await client.start_workflow(EgressBlock.run, trigger, id=run_id,
                                                    task_queue=settings.task_queue, memo=memo)
                        return
                    except WorkflowAlreadyStartedError:
                        return
                    except Exception:
                        await asyncio.sleep(0.5)
                # never started: the measure counts it stuck, the benchmark does not hang on it

            if mode == "approve":
                for i, run_id in enumerate(ids):
                    await start(i, run_id)

            async def approve_all() -> None:
                order = list(ids)
                rng.shuffle(order)
                for run_id in order:
                    await _approve(client, settings, run_id)
                    await asyncio.sleep(rng.uniform(0, 2 * CHAOS_SPAN_S / len(ids)))

            async def start_all() -> None:  # guarded: the runs themselves meet every disturbance
                for i, run_id in enumerate(ids):
                    await start(i, run_id)
                    await asyncio.sleep(rng.uniform(0, 2 * CHAOS_SPAN_S / len(ids)))

            async def disturb() -> None:
                for _ in range(WORKER_KILLS):
                    await asyncio.sleep(rng.uniform(1.0, 4.0))
                    await chaos.kill_worker()
                await asyncio.sleep(rng.uniform(0.5, 2.0))
                await chaos.restart_temporal()
                await asyncio.sleep(rng.uniform(0.5, 2.0))
                await chaos.restart_ledger()
                await asyncio.sleep(rng.uniform(0.5, 2.0))
                await tools.lab_set_fault("/firewall/*", error_rate=1.0)  # the firewall reboots
                await asyncio.sleep(OUTAGE_S)
                await _faults_on(tools, seed + 10)

            await asyncio.gather(approve_all() if mode == "approve" else start_all(), disturb())
            states = await _settle(client, settings, ids)

            completed = [r for r in ids if states.get(r) == RunState.COMPLETED]
            to_roll = completed[::2]
            rollbacks = await asyncio.gather(*(_rollback(client, settings, r) for r in to_roll))
            await tools.lab_clear_faults()
            edl = set((await tools.firewall.edl()).split())
            final = {r: await _status(client, settings, r) for r in ids}
        result = measure(ids, _ledger_records(settings, ids), states, final,
                         dict(zip(to_roll, rollbacks, strict=True)), edl)
        result.update(runs=runs, seed=seed, mode=mode, ledger=ledger, worker_kills=chaos.kills,
                      temporal_restarts=chaos.temporal_restarts, ledger_restarts=chaos.ledger_restarts,
                      outage_seconds=OUTAGE_S, fault_rate=FAULT_RATE,
                      wall_seconds=round(time.perf_counter() - began, 1))
        return result
    finally:
        if settings is not None:
            await asyncio.to_thread(stack.stop, settings)
        if database is not None:
            await asyncio.to_thread(database.stop)
        shutil.rmtree(home, ignore_errors=True)


async def _settle(client, settings: Settings, ids: list[str]) -> dict[str, RunState | None]:
    """Each run's outcome, polled until all have one or the settle timeout passes."""
    states: dict[str, RunState | None] = {r: None for r in ids}
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        for run_id in ids:
            if states[run_id] in OUTCOMES:
                continue
            status = await _status(client, settings, run_id)
            states[run_id] = status.state if status else None
        if all(s in OUTCOMES for s in states.values()):
            break
        await asyncio.sleep(1.0)
    return states


async def _rollback(client, settings: Settings, run_id: str, tries: int = 5) -> str:
    """Roll a run back as an operator would: again while it needs attention."""
    from starter import ops
    from starter.output import CliError

    state = "not_started"
    for _ in range(tries):
        try:
            report = await ops.rollback(client, settings, run_id, "carol")
        except CliError as exc:
            return f"refused: {exc}"
        state = report.state
        if state != "needs_attention":
            return state
    return state


def _ledger_records(settings: Settings, ids: list[str]) -> dict[str, list[ChangeRecord]]:
    ledger = open_ledger(settings)
    try:
        return {r: ledger.changes_for_run(r) for r in ids}
    finally:
        ledger.close()


def measure(ids: list[str], records: dict[str, list[ChangeRecord]], states: dict[str, RunState | None],
            final: dict[str, RunStatus | None], rollbacks: dict[str, str], edl: set[str]) -> dict[str, Any]:
    """The verdict: each run's outcome and ledger records against what the firewall holds (`edl`)."""
    lost, duplicates, drift, stuck, clean = [], [], [], [], []
    for i, run_id in enumerate(ids):
        ip = _ip(i)
        changes = [c for c in records.get(run_id, [])
                   if c.change.kind == "firewall.egress_block" and c.change.target == ip]
        held = ip in edl
        status = final.get(run_id)
        state = states.get(run_id)
        if state not in OUTCOMES:
            stuck.append(run_id)
        if len(changes) > 1:
            duplicates.append(run_id)
        live = [c for c in changes if c.status == "applied" and c.reverted_at is None]
        if any(c.status == "pending" for c in changes) or bool(live) != held:
            drift.append(run_id)
        if state == RunState.COMPLETED and run_id not in rollbacks and not held:
            lost.append(run_id)  # reported done, but the firewall does not hold it
        if state in (None, RunState.AWAITING_APPROVAL) or (status and status.pending_step()):
            lost.append(run_id)  # an approval that never counted
        if run_id in rollbacks and rollbacks[run_id] == "rolled_back" and not held \
                and all(c.reverted_at is not None for c in changes if c.status == "applied"):
            clean.append(run_id)
    rolled = len(rollbacks)
    return {
        "lost": len(set(lost)),
        "duplicates": len(duplicates),
        "drift": len(drift),
        "stuck": len(stuck),
        "completed": sum(1 for s in states.values() if s == RunState.COMPLETED),
        "reported_failed": sum(1 for s in states.values() if s in OUTCOMES and s != RunState.COMPLETED),
        "rolled_back": rolled,
        "rolled_back_clean": len(clean),
        "rolled_back_clean_pct": round(100.0 * len(clean) / rolled, 1) if rolled else 100.0,
        "examples": {"lost": sorted(set(lost))[:5], "duplicates": duplicates[:5], "drift": drift[:5],
                     "stuck": stuck[:5],
                     "unclean_rollbacks": [r for r in rollbacks if r not in clean][:5]},
    }
