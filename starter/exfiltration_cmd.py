"""`handrail run exfiltration --alert-id ID`: start the data exfiltration runbook by hand.

The run id comes from the alert (`exfiltration-DLP-0001`), the same id the DLP poller
uses, so an alert started by hand and by the schedule still runs once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import typer

from starter.output import USAGE, fail

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowHandle

    from handrail.ops.config import Settings


async def start_exfiltration(client: Client, settings: Settings, alert_id: str,
                             requested_by: str | None) -> WorkflowHandle:
    from handrail.runbooks.exfiltration import RUNBOOK, ExfiltrationTrigger, alert_id_problem, run_id_for

    alert_id = alert_id.strip()
    problem = alert_id_problem(alert_id)
    if problem:
        fail(f"--alert-id {problem}.", USAGE)
    from starter import preflight
    from starter.start import start_run
    from workflows.exfiltration import ExfiltrationResponse

    await preflight.check(client, settings, preflight.PreflightRequest(runbook="exfiltration", dlp_alert=alert_id))
    return await start_run(
        client, settings, ExfiltrationResponse.run,
        lambda who: ExfiltrationTrigger(alert_id=alert_id, requested_by=who), run_id_for(alert_id),
        requested_by=requested_by, runbook=RUNBOOK,
        duplicate=f"DLP alert {alert_id} already has its run {{run_id}} (`handrail show {{run_id}}`).",
    )


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    from starter import common
    from starter.output import command

    @run_app.command("exfiltration")
    @command
    async def run_exfiltration(
        alert_id: str = typer.Option(..., "--alert-id", help="The DLP alert to handle, e.g. DLP-0005."),
        requested_by: Optional[str] = typer.Option(
            None, "--requested-by",
            help="Check that the signing key (HANDRAIL_SIGNING_KEY or HANDRAIL_HOME/keys/USER_ed25519) "
                 "is this requester's; the request is signed."),
        wait: bool = typer.Option(False, "--wait", help="Wait for the run's outcome and print it."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document and nothing else."),
    ):
        """Handle one DLP alert: classify it, then train the user or investigate and contain."""
        from handrail.runbooks.exfiltration import alert_id_problem

        problem = alert_id_problem(alert_id.strip())
        if problem:
            fail(f"--alert-id {problem}.", USAGE)
        settings = common._settings()
        client = await common._client(settings)
        handle = await start_exfiltration(client, settings, alert_id, requested_by)
        await common._started(client, settings, handle, wait, as_json)
