"""`python worker.py`: one worker with every Handrail workflow and activity.

Scale out by starting more of these against the same Temporal cluster and task queue.
"""

from __future__ import annotations

import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.worker import PollerBehaviorAutoscaling, Worker

from activities.checkpointer import Checkpointer
from activities.context import WorkerContext
from activities.registry import all_activities
from handrail.gate.ledger import Ledger, open_ledger
from handrail.gate.ledger_core import LedgerUnavailable
from handrail.ops.config import Settings, load_settings
from handrail.ops.credentials import CredentialError
from handrail.ops.log import configure, get_logger
from handrail.ops.sandbox import workflow_runner
from handrail.tools import ToolClients
from workflows.egress_block import EgressBlock
from workflows.exfiltration import ExfiltrationFollowUp, ExfiltrationResponse, PollDlp
from workflows.expiry import ExpireChanges
from workflows.intel_sync import IntelApply, IntelSync
from workflows.phishing import PhishingResponse, PollMailbox
from workflows.phishing_intake import PhishingIntake
from workflows.preflight import Preflight
from workflows.privilege_guard import PollIamEvents, PrivilegeGuard
from workflows.reconcile import Reconcile
from workflows.rogue_device import PollNacDevices, RogueDevice
from workflows.rollback import RollbackRun

# Every runbook and engine workflow the worker registers. Kept here, outside the sandboxed
# `workflows` package, so that no run pays for importing the others.
WORKFLOWS = [PhishingResponse, PollMailbox, EgressBlock, RollbackRun, ExfiltrationResponse, ExfiltrationFollowUp,
             PollDlp, PrivilegeGuard, PollIamEvents, RogueDevice, PollNacDevices, IntelSync, IntelApply, Reconcile,
             PhishingIntake, Preflight, ExpireChanges]


def build_worker(
    client: Client,
    settings: Settings,
    tools: ToolClients,
    ledger: Ledger | None = None,
    extra_workflows=(),
    extra_activities=(),
    **options,
) -> Worker:
    """The worker every process uses (the real one, tests, benchmarks): same code, same settings."""
    ctx = WorkerContext.build(settings, tools, ledger)
    defaults = {
        "workflow_runner": workflow_runner(),
        # Pollers follow the server's hints instead of a fixed five per task type: an idle
        # worker keeps one poller, a busy one adds more. With several workers on one queue,
        # fixed pollers multiply with the workers and every extra one is matching work for the
        # server and wake-ups for the worker (measured: about 7% more runs/s for two worker
        # processes on two cores, `handrail bench runbooks --workers 2`).
        "workflow_task_poller_behavior": PollerBehaviorAutoscaling(),
        "activity_task_poller_behavior": PollerBehaviorAutoscaling(),
    }
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[*WORKFLOWS, *extra_workflows],
        activities=[*all_activities(ctx), *extra_activities],
        activity_executor=ThreadPoolExecutor(max_workers=8),  # for the sync (blocking) activities
        **{**defaults, **options},
    )


async def main() -> None:
    from handrail.ops.temporal import connect

    configure()
    settings = load_settings()
    log = get_logger(task_queue=settings.task_queue)
    try:  # a tool URL off loopback never runs with an empty or built-in token
        tools_for_worker = ToolClients.from_settings(settings)
    except CredentialError as exc:
        raise SystemExit(f"worker: {exc}") from None
    client = await connect(settings)
    async with tools_for_worker as tools:
        try:
            ledger = open_ledger(settings)  # one per process: activities and checkpoints share its pool
        except LedgerUnavailable as exc:
            raise SystemExit(f"worker: {exc}") from None
        worker = build_worker(client, settings, tools, ledger)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info("worker started", temporal=settings.temporal_address, namespace=settings.namespace)
        checkpointer = Checkpointer(settings, ledger, tools)
        ticking = asyncio.ensure_future(checkpointer.run(stop))  # a signed audit checkpoint every 5 min
        async with worker:
            await stop.wait()
        await ticking
        await checkpointer.checkpoint_safely()  # the shutdown checkpoint, once the last activity wrote
        log.info("worker stopped")


if __name__ == "__main__":
    asyncio.run(main())
