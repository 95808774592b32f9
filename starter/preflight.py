"""The CLI's side of the pre-flight check: ask the worker, refuse with the reason, exit 1.

`check(...)` is one call each `handrail run ...` makes before it starts anything (and
before anything is posted anywhere). The worker answers through the short `Preflight`
workflow, so the CLI needs no tool credentials (the look-ups need the worker's); the CLI
reads the answer by update and deletes the still-running execution, so it never stays in
Temporal's workflow list. When no worker answers in time the run
is started anyway (it is durable and will be checked by the gate), with a warning.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError

from handrail.gate.models import Change
from handrail.gate.preflight import PreflightRequest, PreflightResult
from handrail.ops.config import Settings
from starter.output import err_console, fail, shown

ANSWER_WITHIN = timedelta(seconds=20)


async def check(client: Client, settings: Settings, request: PreflightRequest) -> PreflightResult | None:
    """Refuse (CliError, exit 1) when the worker says the run would be refused; None if unchecked."""
    from workflows.preflight import KEEP_FOR, Preflight

    workflow_id = f"preflight-{request.runbook}-{uuid.uuid4().hex[:12]}"
    try:
        handle = await client.start_workflow(
            Preflight.run, request, id=workflow_id, task_queue=settings.task_queue,
            execution_timeout=ANSWER_WITHIN + KEEP_FOR,
        )
        result = await handle.execute_update(Preflight.answer, result_type=PreflightResult,
                                             rpc_timeout=ANSWER_WITHIN)
    except (WorkflowFailureError, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError,
            RPCError) as exc:
        await forget(client, workflow_id)
        err_console.print(f"[yellow]warning:[/] the pre-flight check could not run ({shown(_cause(exc))}); "
                          "starting the run anyway, the gate still checks every change.", highlight=False)
        return None
    await forget(client, workflow_id)
    if result.refusals:
        fail("Refused before starting: " + "; ".join(result.refusals) + ". Nothing was started or changed.")
    return result


async def forget(client: Client, workflow_id: str) -> None:
    """Delete the check's workflow execution once it answered (it still runs, so Temporal removes
    it at once): a refused or merely checked `handrail run` leaves no `preflight-*` entry in the
    workflow list. The check changed and audited nothing, so nothing is lost; best effort."""
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest

    try:
        await client.workflow_service.delete_workflow_execution(DeleteWorkflowExecutionRequest(
            namespace=client.namespace, workflow_execution=WorkflowExecution(workflow_id=workflow_id)))
    except RPCError:
        pass  # an old server or a missing permission: the short, finished workflow stays listed


def egress_change(ip: str, reason: str) -> Change:
    return Change(kind="firewall.egress_block", target=ip, params={"comment": reason})


def _cause(exc: BaseException) -> str:
    while getattr(exc, "cause", None) is not None:
        exc = exc.cause
    return str(exc) or type(exc).__name__
