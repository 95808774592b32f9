"""What the CLI does, as plain async functions (the demo and tests call them too).

Each returns data; rendering is the CLI's job. Refusals raise `CliError` with one
sentence that says what to do next.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from handrail.gate.ledger import UntrustedRecord, open_ledger
from handrail.gate.models import Decision, EgressBlockTrigger, RollbackTrigger, RunState, RunStatus
from handrail.gate.policy import parse_duration
from handrail.gate.rollback_outcome import (
    apply_rollback_outcome,
    refused_status,
    rollback_attempts,
    rollback_outcome,
    rollback_view,
    rolled_back_runs,
)
from handrail.gate.timeline import status_from_audit
from handrail.ops.config import Settings
from handrail.ops.liveness import live_workers
from starter.output import USAGE, fail

# The workflow definitions (and the activities they pull in) are imported only where a run is
# started: `show`, `pending`, `approve` and `deny` read runs and never need them.
if TYPE_CHECKING:
    from starter.signing import Signer
    from workflows.rollback import RollbackReport

DECISION_WAIT_S = 10.0
RUN_MOVE_WAIT_S = 5.0  # after the step settled: how long to wait for a run still `running`


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
    if ttl is not None:
        try:
            ttl_s = parse_duration(ttl)
        except ValueError as exc:
            fail(f"--ttl {exc}.", USAGE)
        if ttl_s <= 0:  # a zero TTL would read as none: a block that never expires
            fail(f"--ttl {ttl!r} is not longer than zero; leave --ttl out for a block that stays until "
                 "rolled back.", USAGE)
    from starter import preflight
    from workflows.egress_block import RUNBOOK as EGRESS_BLOCK
    from workflows.egress_block import EgressBlock

    await preflight.check(client, settings, preflight.PreflightRequest(
        runbook="egress-block", changes=[preflight.egress_change(target, reason)]))
    from starter.start import start_run

    return await start_run(
        client, settings, EgressBlock.run,
        lambda who: EgressBlockTrigger(ip=target, reason=reason, requested_by=who, ttl_s=ttl_s),
        lambda t: egress_block_run_id(t.ip, t.reason, t.requested_by),
        requested_by=requested_by, runbook=EGRESS_BLOCK,
        duplicate="This request already ran as {run_id} (`handrail show {run_id}`); "
                  "give a new --reason to block again.",
    )


async def run_status(client: Client | None, settings: Settings, run_id: str, why_no_client: str = "") -> RunStatus:
    """The run's status from the workflow itself, or rebuilt from the ledger when Temporal no longer has it,
    is not answering at all (`client` None, `why_no_client` says why) or no worker can answer the query
    (then `live_note` says the live status is unavailable)."""
    status: RunStatus | None = None
    why_not_live = why_no_client
    try:
        if client is not None:
            handle = client.get_workflow_handle(run_id)
            status = await handle.query("status", result_type=RunStatus, rpc_timeout=_seconds(5))
    except RPCError as exc:  # no worker, history gone, server busy: the ledger still answers
        why_not_live = str(exc).splitlines()[0] if str(exc) else exc.status.name if exc.status else "RPC error"
    except Exception as exc:  # a query that fails (no worker, history gone) falls back to the ledger
        why_not_live = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    # in a thread: the ledger may be busy with a worker's write, and Ctrl-C on `--wait` must not wait for it
    rows = await asyncio.to_thread(_audit_rows, settings, run_id)
    rebuilt = status is None
    if rebuilt:
        status = status_from_audit(run_id, rows)
    if rolled_back_runs(run_id):  # a rollback run: its outcome, or its refusal, as `handrail runs` shows it
        status = await _rollback_status(client, settings, run_id, status)
        rebuilt = rebuilt and status is not None and status.state != RunState.REFUSED
    if rebuilt or status is None:
        if status is None:
            from starter.workflow_view import refuse_unknown

            if client is None:
                fail(f"The ledger has no run {run_id}, and {why_no_client}")
            await refuse_unknown(client, settings, run_id, why_not_live)  # Temporal knows it: say what it is
            fail(f"No run {run_id} is known to Temporal or to the ledger (see `handrail pending` or the Web UI).")
        if why_not_live and "not found" not in why_not_live.lower():
            status.live_note = f"live status unavailable ({why_not_live}); this timeline is rebuilt from the ledger"
        if status.state == RunState.RUNNING and status.pending_step() is not None:
            status.state = RunState.AWAITING_APPROVAL  # what the run's HandrailState says too
    from handrail.gate.expiry_outcome import apply_expiries
    from handrail.gate.kept_outcome import apply_inherited, apply_kept

    status = apply_rollback_outcome(apply_expiries(apply_inherited(status, rows), rows), rows)
    return apply_kept(status, rows)  # last: a change kept for another run is not "rolled back" nor "expired"


async def _rollback_status(client: Client | None, settings: Settings, workflow_id: str,
                           status: RunStatus | None) -> RunStatus | None:
    """A rollback run's status in the vocabulary `handrail runs` uses (`rollback_view`): its
    outcome once it ended, or, for a request that was refused (it has no timeline of its own), the
    refusal; with the requests refused before it under the same id. None: nothing is known."""
    execution = None
    if client is not None:
        try:  # which execution of the id is the latest: a new one may not have written anything yet
            execution = (await client.get_workflow_handle(workflow_id).describe(rpc_timeout=_seconds(5))).run_id
        except Exception:
            execution = None
    candidates = ([status.subject] if status is not None and status.subject else []) + rolled_back_runs(workflow_id)
    rolled_back, rows = "", []
    for candidate in dict.fromkeys(candidates):
        found = await asyncio.to_thread(_audit_rows, settings, candidate)
        if rollback_attempts(workflow_id, found):
            rolled_back, rows = candidate, found
            break
    if not rows:
        return status
    view = rollback_view(workflow_id, rows, status.state.value if status is not None else None,
                         status.summary if status is not None else None, run=execution)
    if view.state == RunState.REFUSED.value:
        status = refused_status(workflow_id, rolled_back, view.current)
    elif status is None:
        return None
    elif view.state is not None:
        status.state = RunState(view.state)
    status.refused_before = [a.request() for a in view.refused_before]
    return status


def _audit_rows(settings: Settings, run_id: str) -> list[dict[str, Any]]:
    ledger = open_ledger(settings)
    try:
        return list(ledger.audit_rows(run_id))
    finally:
        ledger.close()


OUTCOMES = {RunState.COMPLETED, RunState.DENIED, RunState.COMPENSATED, RunState.ROLLED_BACK,
            RunState.NEEDS_ATTENTION, RunState.FAILED, RunState.REJECTED, RunState.PARTLY_ROLLED_BACK,
            RunState.REFUSED}


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
    client: Client, run_id: str, approver: str, approve: bool, step: str | None, reason: str,
    sign=None,
) -> dict[str, Any]:
    """Send a decision and read back, through the status query, whether the run accepted it.

    `sign(client)` returns the signed Decision and the status it was signed from
    (decision_signer, below); only signed decisions count. When that status was
    rebuilt from the ledger (no worker answered), the signal is sent all the same: Temporal
    keeps it in the run's history and the next worker judges it, so this reports it kept.
    """
    handle = client.get_workflow_handle(run_id)
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            fail(f"No run {run_id} exists in Temporal.")
        fail(not_delivered(run_id, exc, sent=False))
    if desc.status != WorkflowExecutionStatus.RUNNING:
        fail(f"Run {run_id} has already finished ({desc.status.name.lower()}); there is nothing to decide.")
    signed_from: RunStatus | None = None
    if sign is not None:
        decision, signed_from = await sign(client)
    else:
        decision = Decision(id=uuid.uuid4().hex, step=step, approver=approver, approve=approve, reason=reason)
    try:
        await handle.signal("decide", decision)
    except RPCError as exc:  # Temporal went away (a restart): say so, never "failed unexpectedly"
        fail(not_delivered(run_id, exc, sent=exc.status in _UNKNOWN_OUTCOME))
    if signed_from is not None and signed_from.live_note:  # no worker answered: do not wait for one
        return {"run_id": run_id, "decision_id": decision.id, "accepted": None, "kept": True, "live": False,
                "state": signed_from.state.value, "why": kept_until_a_worker_runs(run_id)}
    deadline = asyncio.get_running_loop().time() + DECISION_WAIT_S
    while asyncio.get_running_loop().time() < deadline:
        try:
            status = await handle.query("status", result_type=RunStatus, rpc_timeout=_seconds(3))
        except Exception:
            status = None
        if status is not None:
            for record in status.kept_decisions:
                if record.decision.id == decision.id:  # its step has not opened yet
                    return {"run_id": run_id, "decision_id": decision.id, "accepted": None, "kept": True,
                            "why": record.why, "state": status.state.value}
            for record in status.rejected_decisions + [d for s in status.steps for d in s.decisions]:
                if record.decision.id == decision.id:  # judged: report the state it led to, once settled
                    from starter.settle import outcome_of, run_moved_on, settled_status

                    settled = await settled_status(handle, decision.id, DECISION_WAIT_S) or status
                    settled = await run_moved_on(handle, settled, RUN_MOVE_WAIT_S)
                    out = {"run_id": run_id, "decision_id": decision.id, **outcome_of(settled, decision.id)}
                    if settled.state == RunState.RUNNING:  # still on its way: say how to follow it
                        out["follow"] = f"handrail show {run_id}"
                    return out
        await asyncio.sleep(0.2)
    return {"run_id": run_id, "decision_id": decision.id, "accepted": None,
            "why": "the decision was sent, but no worker has judged it yet; Temporal keeps it and a worker "
                   f"judges it when one runs (follow it with `handrail show {run_id}`)"}


# an RPC that may have reached the server before its answer was lost
_UNKNOWN_OUTCOME = (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED, RPCStatusCode.UNKNOWN)


def not_delivered(run_id: str, why: BaseException | str, sent: bool = False) -> str:
    """The sentence for a decision Temporal did not take (it was down or restarting).

    `sent`: the signal went out but its answer was lost, so it may have arrived; sending the
    decision again is safe either way (a run counts one decision per approver and step)."""
    first = str(why).splitlines()[0].rstrip(".") if str(why) else type(why).__name__
    head = ("Your decision may not have been delivered" if sent
            else "Your decision was not delivered: the run has not received it")
    return (f"{head} (Temporal did not answer: {first}). Run the same command again once Temporal "
            f"answers (`handrail status`; `handrail up` starts what is down); follow the run with "
            f"`handrail show {run_id}`.")


def kept_until_a_worker_runs(run_id: str) -> str:
    return ("no worker answered, so the decision was signed over the waiting step as the ledger records it "
            "and sent; Temporal keeps it in the run's history until a worker runs (`handrail up`), which "
            f"judges it then (follow it with `handrail show {run_id}`)")


async def pending(client: Client, settings: Settings | None = None) -> list[dict[str, Any]]:
    """Runs waiting for a human, found through the HandrailState search attribute (visibility).

    With no worker polling, the runs' queries cannot answer: each waiting step is then read
    from the ledger timeline instead (rows say `"live": false`), so the list is never empty
    just because the workers are down.
    """
    found = []
    workers = await live_workers(client, settings) if settings is not None else None
    async for execution in client.list_workflows('HandrailState = "awaiting_approval" AND ExecutionStatus = "Running"'):
        status: RunStatus | None = None
        live = workers != 0
        if live:
            try:
                status = await client.get_workflow_handle(execution.id).query(
                    "status", result_type=RunStatus, rpc_timeout=_seconds(5))
            except Exception:  # no worker answers: do not wait on the same timeout for every run
                status, live, workers = None, False, 0
        if status is None and settings is not None:
            status = _status_from_ledger(settings, execution.id)
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
            "deciders": step.deciders,
            "expires_after_s": step.expires_after_s,
            "why": "; ".join(v.reason for v in step.verdicts) or f"mode {_mode_name(step.mode)}",
            "waiting_since": step.started_at.isoformat() if step.started_at else None,
            "live": live,
        })
    return sorted(found, key=lambda r: r["waiting_since"] or "")


def _mode_name(mode) -> str:
    return getattr(mode, "value", mode) or "?"


def _status_from_ledger(settings: Settings, run_id: str) -> RunStatus | None:
    ledger = open_ledger(settings)
    try:
        return status_from_audit(run_id, list(ledger.audit_rows(run_id)))
    finally:
        ledger.close()


def rollback_plan(settings: Settings, run_id: str) -> list[dict[str, Any]]:
    ledger = open_ledger(settings)
    try:
        changes = ledger.verified_changes_for_run(run_id)
        known = changes or list(ledger.audit_rows(run_id))
        holders = {r.change_id: _forecast_holder(ledger, r) for r in changes if not isinstance(r, UntrustedRecord)}
    finally:
        ledger.close()
    if not known:
        fail(f"No run {run_id} is in the ledger, so there is nothing to roll back.")
    plan = []
    for record in reversed(changes):
        if isinstance(record, UntrustedRecord):  # shown, never run: its row disagrees with the chain
            plan.append({"change_id": record.change_id, "change": record.change_id, "before": None,
                         "undo": f"refuse: {record}", "will_run": False})
            continue
        skip = record.why_not_undoable()
        holder = holders.get(record.change_id)
        action = f"skip: {skip}" if skip else f"{record.inverse.kind} {record.inverse.target}"
        if skip is None and holder is not None:  # a forecast: the rollback decides when it runs
            action = f"kept: run {holder.run_id} still relies on it (its change {holder.change_id}); the tool keeps it"
        plan.append({
            "change_id": record.change_id,
            "change": record.change.describe(),
            "before": record.before,
            "undo": action,
            "will_run": skip is None and holder is None,
        })
    return plan


def _forecast_holder(ledger, record):
    """Another run's change that would keep this one if it were undone now (`handrail.gate.holders`)."""
    from handrail.actions import SINGLE_ACTIONS
    from handrail.gate.holders import forecast_holder

    action = SINGLE_ACTIONS.get(record.change.kind)
    if action is None or record.why_not_undoable() is not None:
        return None
    return forecast_holder(ledger, action, record)


async def rollback(client: Client, settings: Settings, run_id: str, requested_by: str, *,
                   now: datetime | None = None) -> RollbackReport:
    """Start the gated rollback and report its outcome, or that an inverse now waits for approval.

    A refused request fails its workflow (so someone allowed may ask again); one that ran
    or waits keeps its id, so a run is rolled back once.
    """
    rollback_plan(settings, run_id)  # refuses unknown runs with a clear sentence
    try:
        desc = await client.get_workflow_handle(run_id).describe()
        if desc.status == WorkflowExecutionStatus.RUNNING:
            status = await run_status(client, settings, run_id)
            if status.state not in ("completed", "denied", "compensated", "failed", "rejected",
                                    "needs_attention", "rolled_back"):
                fail(f"Run {run_id} is still {status.state}; let it finish (or deny it) before rolling it back.")
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    from starter.signing import load_signer
    from starter.start import signed_request
    from workflows.gate import start_attributes
    from workflows.rollback import RollbackRun, rollback_id

    signer = load_signer(settings, None, requested_by)  # the rollback is a request too: signed
    requested_by = signer.user
    trigger = RollbackTrigger(run_id=run_id, requested_by=requested_by)
    workflow_id = rollback_id(run_id)
    for attempt in range(2, 1000):
        try:
            handle = await client.start_workflow(
                RollbackRun.run,
                trigger,
                id=workflow_id,
                task_queue=settings.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                memo=signed_request(signer, RollbackRun.run, workflow_id, trigger, issued_at=now),
                search_attributes=start_attributes("rollback", requested_by),
            )
            return await _rollback_outcome(handle, run_id, requested_by)
        except WorkflowAlreadyStartedError:
            if await _still_running(client, workflow_id):  # asked twice at once (two shells): one rollback
                fail(f"A rollback of run {run_id} is under way ({workflow_id}); follow it with "
                     f"`handrail show {workflow_id}` rather than starting another.")
            if not _rollback_left_changes(settings, run_id):
                fail(f"Run {run_id} has already been rolled back ({workflow_id}); a run is rolled back once.")
            workflow_id = f"{rollback_id(run_id)}-retry-{attempt}"  # retry what the last one left
    fail(f"Run {run_id} has been rolled back too many times; look at it in the Web UI.")


async def _still_running(client: Client, workflow_id: str) -> bool:
    try:
        return (await client.get_workflow_handle(workflow_id).describe()).status == WorkflowExecutionStatus.RUNNING
    except RPCError:
        return False


def _rollback_left_changes(settings: Settings, run_id: str) -> bool:
    """True when the run's last rollback ended needing attention (so it may be retried)."""
    ledger = open_ledger(settings)
    try:
        outcome = rollback_outcome(list(ledger.audit_rows(run_id)))
    finally:
        ledger.close()
    return outcome is not None and outcome.state == RunState.NEEDS_ATTENTION


async def _rollback_outcome(handle: WorkflowHandle, run_id: str, requested_by: str,
                            poll_s: float = 0.3) -> RollbackReport:
    """The rollback's report once it ends, or an `awaiting_approval` report as soon as an inverse waits."""
    from workflows.rollback import RollbackReport

    try:
        while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            try:
                status = await handle.query("status", result_type=RunStatus)
            except Exception:  # not started yet, or between tasks
                status = None
            step = status.pending_step() if status else None
            if step is not None:
                return RollbackReport(run_id=run_id, requested_by=requested_by, state="awaiting_approval",
                                      rollback_id=handle.id,
                                      waiting=f"{step.change.describe()} waits for approval "
                                              f"(`handrail approve {handle.id}`; {requested_by} cannot approve it)")
            await asyncio.sleep(poll_s)
        return await handle.result()
    except WorkflowFailureError as exc:
        cause = exc.cause
        while getattr(cause, "cause", None) is not None:
            cause = cause.cause
        fail(str(getattr(cause, "message", None) or cause or exc).rstrip(".") + ".")


async def signed_decision_for(client, settings: Settings, run_id: str, signer: Signer, approve: bool,
                              step: str | None, reason: str, valid_for_s: float | None = None):
    """Read the run's waiting step and its change digest, and sign a decision bound to them.

    The status comes from `starter.ops.run_status`, as for `handrail show`: the workflow's
    own query, or the ledger's timeline when no worker answers. So a decision can be signed
    while the workers are down; Temporal keeps the signal until one runs.
    Returns the signed Decision and the status it was signed from (`live_note` set when it
    was rebuilt from the ledger).
    """
    from datetime import timedelta

    from handrail.gate import decisions, signing
    from handrail.gate.signatures import DECISION_NAMESPACE
    from starter.signing import choose_step
    status = await run_status(client, settings, run_id)
    chosen = choose_step(status, run_id, step)
    if not chosen.change_digest:
        fail(f"Step {chosen.step_id} shows no change digest (is the worker older than this CLI?).")
    valid_for = timedelta(seconds=valid_for_s) if valid_for_s else decisions.DEFAULT_VALIDITY
    document = signing.new_document(run_id=run_id, step=chosen, signer=signer.user, approve=approve,
                                      reason=reason, valid_for=valid_for)
    armored = signer.sign(document.canonical().encode(), DECISION_NAMESPACE)
    return signing.signed_decision(document, armored), status


def decision_signer(settings: Settings, run_id: str, signer: Signer, approve: bool, step: str | None,
                    reason: str):
    """The `sign` callable `starter.ops.decide` takes: `sign(client) -> (Decision, RunStatus)`."""

    async def sign(client):
        return await signed_decision_for(client, settings, run_id, signer, approve, step, reason)

    return sign
