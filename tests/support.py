"""Shared test plumbing: a real lab, a real ledger and a real worker per test.

Each test gets its own HANDRAIL_HOME, lab database, ledger and task queue, so tests never
see each other's state; the Temporal server (time-skipping or dev) is shared per session.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from handrail.gate.ledger import Ledger
from handrail.gate.models import Decision, RunStatus
from handrail.ops.config import Settings, load_settings
from handrail.tools import ToolClients
from lab.app import create_app
from lab.testing import prepare
from worker import build_worker

FIXTURES = Path(os.environ.get("HANDRAIL_FIXTURES") or Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "real")

USERS = """
[users]
alice = { roles = ["soc-analyst"] }
bob = { roles = ["soc-analyst"] }
erin = { roles = ["soc-analyst"] }
carol = { roles = ["soc-lead"] }
dave = { roles = [] }

[[protected_networks]]
name = "SaaS CRM"
cidr = "161.71.0.0/16"

[[protected_networks]]
name = "Largest customer"
cidr = "146.75.0.0/16"
"""


def make_policy(
    mode: str = "approve",
    required: int = 1,
    timeout: str = "1h",
    escalation: str = "1h",
    on_timeout: str = "deny",
    escalate_to: str = '{ roles = ["soc-lead"] }',
    guardrails: str = '{ type = "never_block" }, { type = "no_reserved_space" }',
) -> str:
    block = f"""
mode = "{mode}"
approvers = {{ roles = ["soc-analyst"] }}
required_approvals = {required}
approval_timeout = "{timeout}"
escalate_to = {escalate_to}
escalation_timeout = "{escalation}"
on_timeout = "{on_timeout}"
alert_priority = "P1"
guardrails = [{guardrails}]
"""
    return (
        USERS
        + '\n[actions."firewall.egress_block"]'
        + block
        + '\n[actions."firewall.egress_unblock"]\nmode = "guarded"\n'
    )


@dataclass
class Stack:
    client: Client
    settings: Settings
    tools: ToolClients
    ledger: Ledger
    home: Path
    started: list = field(default_factory=list)

    def set_policy(self, text: str) -> None:
        path = self.settings.policy_path
        path.write_text(text)
        stat = path.stat()  # make sure the worker sees a new mtime even within one second
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    async def start(self, workflow, arg, *, id: str | None = None, **kw) -> WorkflowHandle:
        handle = await self.client.start_workflow(
            workflow, arg, id=id or f"test-{uuid.uuid4().hex[:10]}", task_queue=self.settings.task_queue, **kw
        )
        self.started.append(handle)
        return handle

    async def terminate_leftovers(self) -> None:
        """A failed test must not leave timers behind on the shared time-skipping server."""
        expiries = [self.client.get_workflow_handle(f"expiry-{h.id}") for h in self.started]  # a run's TTLs
        for handle in [*self.started, *expiries]:
            try:
                if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                    await handle.terminate("test finished")
            except Exception:
                pass

    async def status(self, handle: WorkflowHandle) -> RunStatus | None:
        return await handle.query("status", result_type=RunStatus)

    async def wait_for(self, handle: WorkflowHandle, predicate, timeout: float = 20.0) -> RunStatus:
        """Poll the status query until predicate(status) holds (real time, not skipped)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            status = await self.status(handle)
            if status is not None and predicate(status):
                return status
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"condition not reached; last status: {status}")
            await asyncio.sleep(0.05)

    async def edl(self) -> list[str]:
        return [line for line in (await self.tools.firewall.edl()).splitlines() if line.strip()]


@asynccontextmanager
async def running_stack(
    client: Client, tmp_path: Path, policy: str | None = None, workflows=None, task_queue: str | None = None
):
    """A worker with its own lab and ledger; reusing tmp_path (and task_queue) resumes the same estate."""
    home = tmp_path / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "policy.toml").write_text(policy or make_policy())
    settings = load_settings(
        {
            "HANDRAIL_HOME": str(home),
            "HANDRAIL_POLICY": str(home / "policy.toml"),
            "HANDRAIL_TASK_QUEUE": task_queue or f"tq-{uuid.uuid4().hex[:8]}",
            "HANDRAIL_USER": "tester",
        }
    )
    prepare(settings)  # a copy of a once-seeded estate: fast, and the same for every test
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    ledger = Ledger(settings.ledger_path)
    async with ToolClients.from_settings(settings, transport=transport) as tools:
        worker = build_worker(client, settings, tools, ledger, extra_workflows=workflows or ())
        async with worker:
            stack = Stack(client=client, settings=settings, tools=tools, ledger=ledger, home=home)
            try:
                yield stack
            finally:
                await stack.terminate_leftovers()
    ledger.close()


async def schedule_results(client: Client, name: str, count: int, result_type=None, timeout: float = 30.0) -> list:
    """The results of a Handrail schedule's first `count` runs, once each has finished."""
    from handrail.ops import schedules

    handle = client.get_schedule_handle(schedules.definition(name).schedule_id)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        actions = (await handle.describe()).info.recent_actions
        if len(actions) >= count:
            ids = [a.action.workflow_id for a in actions[:count]]
            return [await client.get_workflow_handle(i, result_type=result_type).result() for i in ids]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"schedule {name} ran {len(actions)} time(s), wanted {count}")
        await asyncio.sleep(0.2)


def make_decision(approver: str, approve: bool = True, step: str | None = None, reason: str = "",
                  status: RunStatus | None = None) -> Decision:
    """The one way tests build a decision signal (given the run's status when the decision must
    be bound to the waiting step's change). Tests send decisions only through this and
    `send_decision`, so how a decision is made (and signed) can change in one place."""
    return Decision(id=uuid.uuid4().hex, approver=approver, approve=approve, step=step, reason=reason)


async def send_decision(handle: WorkflowHandle, approver: str, approve: bool = True, reason: str = "",
                        status: RunStatus | None = None) -> Decision:
    """Decide the step the run waits on now (read from its status unless given)."""
    status = status or await handle.query("status", result_type=RunStatus)
    step = status.pending_step() if status else None
    decision = make_decision(approver, approve, step.step_id if step else None, reason, status)
    await handle.signal("decide", decision)
    return decision
