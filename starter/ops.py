"""What the CLI does, as plain async functions (the demo and tests call them too).

Each returns data; rendering is the CLI's job. Refusals raise `CliError` with one
sentence that says what to do next.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import uuid
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from handrail.gate.ledger import Ledger
from handrail.gate.models import Decision, EgressBlockTrigger, RollbackTrigger, RunState, RunStatus
from handrail.gate.policy import parse_duration
from handrail.gate.timeline import status_from_audit
from handrail.ops.config import Settings
from starter.output import USAGE, fail
from workflows.egress_block import EgressBlock
from workflows.rollback import RollbackReport, RollbackRun, rollback_id

DECISION_WAIT_S = 10.0


def egress_block_run_id(ip: str, reason: str, requested_by: str) -> str:
    """Same request, same run: an alert processed twice never blocks twice."""
    digest = hashlib.sha256(f"{ip}\n{reason}\n{requested_by}".encode()).hexdigest()[:10]
    return f"egress-block-{ip.replace('/', '_').replace(':', '.')}-{digest}"


def parse_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError:
        fail(f"{value!r} is not a valid IP address or network (e.g. 203.0.113.7 or 198.51.100.0/24).", USAGE)


async def start_egress_block(
    client: Client, settings: Settings, ip: str, reason: str, requested_by: str, ttl: str | None
) -> WorkflowHandle:
    target = parse_ip(ip)
    if target.endswith("/32") or target.endswith("/128"):
        target = target.rsplit("/", 1)[0]
    if not reason.strip():
        fail("--reason must say why the address is blocked.", USAGE)
    ttl_s = None
    if ttl:
        try:
            ttl_s = parse_duration(ttl)
        except ValueError as exc:
            fail(f"--ttl {exc}.", USAGE)
    run_id = egress_block_run_id(target, reason, requested_by)
    from starter import preflight

    await preflight.check(client, settings, preflight.PreflightRequest(
        runbook="egress-block", changes=[preflight.egress_change(target, reason)]))
    try:
        return await client.start_workflow(
            EgressBlock.run,
            EgressBlockTrigger(ip=target, reason=reason, requested_by=requested_by, ttl_s=ttl_s),
            id=run_id,
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        fail(f"This request already ran as {run_id} (`handrail show {run_id}`); give a new --reason to block again.")


async def run_status(client: Client, settings: Settings, run_id: str) -> RunStatus:
    """The run's status from the workflow itself, or rebuilt from the ledger when Temporal no longer has it."""
    status: RunStatus | None = None
    try:
        handle = client.get_workflow_handle(run_id)
        status = await handle.query("status", result_type=RunStatus, rpc_timeout=_seconds(5))
    except RPCError as exc:
        if exc.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE,
                              RPCStatusCode.INVALID_ARGUMENT):
            raise
    except Exception:  # a query that fails (no worker, history gone) falls back to the ledger
        status = None
    ledger = Ledger(settings.ledger_path)
    try:
        rows = list(ledger.audit_rows(run_id))
    finally:
        ledger.close()
    if status is None:
        status = status_from_audit(run_id, rows)
        if status is None:
            fail(f"No run {run_id} is known to Temporal or to the ledger (see `handrail pending` or the Web UI).")
    from starter.expiry_view import reflect_expiries

    reflect_expiries(status, settings)
    if any(r["event"] == "run.rolled_back" for r in rows):
        status.state = RunState.ROLLED_BACK
    return status


OUTCOMES = {RunState.COMPLETED, RunState.DENIED, RunState.COMPENSATED, RunState.ROLLED_BACK,
            RunState.NEEDS_ATTENTION, RunState.FAILED, RunState.REJECTED}


async def wait_for_outcome(client: Client, settings: Settings, run_id: str, poll_s: float = 0.5) -> RunStatus:
    """Wait until the run has an outcome; a run kept open only by TTL timers counts as done."""
    while True:
        status = await run_status(client, settings, run_id)
        if status.state in OUTCOMES:
            return status
        await asyncio.sleep(poll_s)


def _seconds(n: float):
    from datetime import timedelta

    return timedelta(seconds=n)


async def decide(
    client: Client, run_id: str, approver: str, approve: bool, step: str | None, reason: str
) -> dict[str, Any]:
    """Send a decision and read back, through the status query, whether the run accepted it."""
    handle = client.get_workflow_handle(run_id)
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            fail(f"No run {run_id} exists in Temporal.")
        raise
    if desc.status != WorkflowExecutionStatus.RUNNING:
        fail(f"Run {run_id} has already finished ({desc.status.name.lower()}); there is nothing to decide.")
    decision = Decision(id=uuid.uuid4().hex, step=step, approver=approver, approve=approve, reason=reason)
    await handle.signal("decide", decision)
    from starter.settle import outcome_of, settled_status

    status = await settled_status(handle, decision.id, DECISION_WAIT_S)
    if status is not None:
        return {"run_id": run_id, "decision_id": decision.id, **outcome_of(status, decision.id)}
    return {"run_id": run_id, "decision_id": decision.id, "accepted": None,
            "why": "the decision was delivered, but no worker has judged it yet; it will be judged when one runs"}


async def pending(client: Client) -> list[dict[str, Any]]:
    """Runs waiting for a human, found through the HandrailState search attribute."""
    found = []
    async for execution in client.list_workflows('HandrailState = "awaiting_approval" AND ExecutionStatus = "Running"'):
        try:
            status = await client.get_workflow_handle(execution.id).query(
                "status", result_type=RunStatus, rpc_timeout=_seconds(5))
        except Exception:
            continue
        step = status.pending_step() if status else None
        if step is None:
            continue
        found.append({
            "run_id": status.run_id,
            "runbook": status.runbook,
            "step": step.step_id,
            "action": step.change.kind,
            "target": step.change.target,
            "change": step.change.model_dump(mode="json"),
            "requested_by": status.requested_by,
            "approvals": f"{sum(d.accepted and d.decision.approve for d in step.decisions)}/{step.approvals_needed}",
            "escalated": step.escalated,
            "why": "; ".join(v.reason for v in step.verdicts) or f"mode {step.mode.value if step.mode else '?'}",
            "waiting_since": step.started_at.isoformat() if step.started_at else None,
        })
    return sorted(found, key=lambda r: r["waiting_since"] or "")


def rollback_plan(settings: Settings, run_id: str) -> list[dict[str, Any]]:
    ledger = Ledger(settings.ledger_path)
    try:
        changes = ledger.changes_for_run(run_id)
        known = changes or list(ledger.audit_rows(run_id))
    finally:
        ledger.close()
    if not known:
        fail(f"No run {run_id} is in the ledger, so there is nothing to roll back.")
    plan = []
    for record in reversed(changes):
        if record.status == "unchanged":
            action = "skip: the tool already was in that state before the run"
        elif record.reverted_at is not None:
            action = f"skip: already reverted by {record.reverted_by}"
        elif record.inverse is None:
            action = "skip: nothing to undo"
        else:
            action = f"{record.inverse.kind} {record.inverse.target}"
        plan.append({
            "change_id": record.change_id,
            "change": record.change.describe(),
            "before": record.before,
            "undo": action,
            "will_run": action.startswith("skip") is False,
        })
    return plan


async def rollback(client: Client, settings: Settings, run_id: str, requested_by: str) -> RollbackReport:
    rollback_plan(settings, run_id)  # refuses unknown runs with a clear sentence
    try:
        desc = await client.get_workflow_handle(run_id).describe()
        if desc.status == WorkflowExecutionStatus.RUNNING:
            status = await run_status(client, settings, run_id)
            if status.state not in ("completed", "denied", "compensated", "failed", "rejected"):
                fail(f"Run {run_id} is still {status.state}; let it finish (or deny it) before rolling it back.")
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    try:
        handle = await client.start_workflow(
            RollbackRun.run,
            RollbackTrigger(run_id=run_id, requested_by=requested_by),
            id=rollback_id(run_id),
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        fail(f"Run {run_id} has already been rolled back ({rollback_id(run_id)}); a run is rolled back once.")
    return await handle.result()
