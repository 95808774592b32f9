"""The CLI's side of the pre-flight check: ask the worker, refuse with the reason, exit 1.

`check(...)` is one call each `handrail run ...` makes before it starts anything (and
before anything is posted anywhere). The worker answers through the short `Preflight`
workflow, so the CLI needs no tool credentials. When no worker answers in time the run
is started anyway (it is durable and will be checked by the gate), with a warning.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError

from handrail.gate.models import Change
from handrail.gate.preflight import PreflightRequest, PreflightResult
from handrail.ops.config import Settings
from starter.output import err_console, fail

ANSWER_WITHIN = timedelta(seconds=20)


async def check(client: Client, settings: Settings, request: PreflightRequest) -> PreflightResult | None:
    """Refuse (CliError, exit 1) when the worker says the run would be refused; None if unchecked."""
    from workflows.preflight import Preflight

    try:
        result = await client.execute_workflow(
            Preflight.run, request, id=f"preflight-{request.runbook}-{uuid.uuid4().hex[:12]}",
            task_queue=settings.task_queue, execution_timeout=ANSWER_WITHIN,
            result_type=PreflightResult,
        )
    except (WorkflowFailureError, RPCError) as exc:
        err_console.print(f"[yellow]warning:[/] the pre-flight check could not run ({_cause(exc)}); "
                          "starting the run anyway, the gate still checks every change.", highlight=False)
        return None
    if result.refusals:
        fail("Refused before starting: " + "; ".join(result.refusals) + ". Nothing was started or changed.")
    return result


def egress_change(ip: str, reason: str) -> Change:
    return Change(kind="firewall.egress_block", target=ip, params={"comment": reason})


def _cause(exc: BaseException) -> str:
    while getattr(exc, "cause", None) is not None:
        exc = exc.cause
    return str(exc) or type(exc).__name__
