"""`handrail run privilege-guard --event-id ID`: check one IAM privilege-change event by hand.

The run id comes from the event (`privilege-guard-IAM-EVT-0003`), the same id the `iam`
schedule's poller uses, so an event started by hand and by the schedule still runs once.
An unknown event id starts a run that ends `rejected` with nothing changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import typer

from starter.output import USAGE, command, fail

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowHandle

    from handrail.ops.config import Settings


async def start_privilege_guard(client: Client, settings: Settings, event_id: str,
                                requested_by: str | None) -> WorkflowHandle:
    from handrail.runbooks.privilege import RUNBOOK, PrivilegeTrigger, privilege_run_id, valid_event_id

    event_id = event_id.strip()
    if not valid_event_id(event_id):
        fail(f"--event-id {event_id!r} is not an IAM event id (e.g. IAM-EVT-0003).", USAGE)
    from starter import preflight
    from starter.start import start_run
    from workflows.privilege_guard import PrivilegeGuard

    await preflight.check(client, settings, preflight.PreflightRequest(runbook="privilege-guard", iam_event=event_id))
    return await start_run(
        client, settings, PrivilegeGuard.run,
        lambda who: PrivilegeTrigger(event_id=event_id, requested_by=who), privilege_run_id(event_id),
        requested_by=requested_by, runbook=RUNBOOK,
        duplicate=f"IAM event {event_id} already has its run {{run_id}} (`handrail show {{run_id}}`).",
    )


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    from starter import common

    @run_app.command("privilege-guard")
    @command
    async def run_privilege_guard(
        event_id: str = typer.Option(..., "--event-id", help="The IAM event to check, e.g. IAM-EVT-0003."),
        requested_by: Optional[str] = typer.Option(
            None, "--requested-by",
            help="Who starts it (default HANDRAIL_USER); the run's requester becomes the affected principal."),
        wait: bool = typer.Option(False, "--wait", help="Wait for the run's outcome and print it (the recommit "
                                  "wait can last 24h)."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document and nothing else."),
    ):
        """Revert a privileged group membership no approved change covers, alert, and wait for a recommit."""
        from handrail.runbooks.privilege import valid_event_id

        if not valid_event_id(event_id.strip()):
            fail(f"--event-id {event_id!r} is not an IAM event id (e.g. IAM-EVT-0003).", USAGE)
        settings = common._settings()
        client = await common._client(settings)
        handle = await start_privilege_guard(client, settings, event_id, requested_by)
        await common._started(client, settings, handle, wait, as_json)
