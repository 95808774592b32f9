"""`handrail run exfiltration --alert-id ID`: start the data exfiltration runbook by hand.

The run id comes from the alert (`exfiltration-DLP-0001`), the same id the DLP poller
uses, so an alert started by hand and by the schedule still runs once.
"""

from __future__ import annotations

from typing import Optional

import typer
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from handrail.ops.config import Settings
from handrail.runbooks.exfiltration import ExfiltrationTrigger, alert_id_problem, run_id_for
from starter.output import USAGE, fail


async def start_exfiltration(client: Client, settings: Settings, alert_id: str, requested_by: str) -> WorkflowHandle:
    alert_id = alert_id.strip()
    problem = alert_id_problem(alert_id)
    if problem:
        fail(f"--alert-id {problem}.", USAGE)
    from workflows.exfiltration import ExfiltrationResponse

    run_id = run_id_for(alert_id)
    from starter import preflight

    await preflight.check(client, settings, preflight.PreflightRequest(runbook="exfiltration", dlp_alert=alert_id))
    try:
        return await client.start_workflow(
            ExfiltrationResponse.run,
            ExfiltrationTrigger(alert_id=alert_id, requested_by=requested_by),
            id=run_id,
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        fail(f"DLP alert {alert_id} already has its run {run_id} (`handrail show {run_id}`).")


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    from starter import cli  # imported here: starter.cli imports this module while it loads
    from starter.output import command

    @run_app.command("exfiltration")
    @command
    async def run_exfiltration(
        alert_id: str = typer.Option(..., "--alert-id", help="The DLP alert to handle, e.g. DLP-0005."),
        requested_by: Optional[str] = typer.Option(None, "--requested-by", help="Requester (default HANDRAIL_USER)."),
        wait: bool = typer.Option(False, "--wait", help="Wait for the run's outcome and print it."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document and nothing else."),
    ):
        """Handle one DLP alert: classify it, then train the user or investigate and contain."""
        problem = alert_id_problem(alert_id.strip())
        if problem:
            fail(f"--alert-id {problem}.", USAGE)
        settings = cli._settings()
        client = await cli._client(settings)
        handle = await start_exfiltration(client, settings, alert_id, requested_by or settings.user)
        await cli._started(client, settings, handle, wait, as_json)
