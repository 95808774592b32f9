"""`handrail run rogue-device --mac MAC`: check one device NAC has seen, by hand.

The run id comes from the MAC (`rogue-device-50c7bf3a910e`), the same id the `nac`
schedule's poller uses, so a device started by hand and by the schedule still runs once.
An analyst declares a disconnected device legitimate with
`handrail approve RUN --as YOU [--reason "register"]` (the word "register" in the
reason also registers it in the CMDB).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import typer

from starter.output import USAGE, command, fail

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowHandle

    from handrail.ops.config import Settings


async def start_rogue_device(client: Client, settings: Settings, mac: str,
                             requested_by: str | None) -> WorkflowHandle:
    from handrail.runbooks.rogue import RUNBOOK, RogueTrigger, normalise_mac, rogue_run_id

    normal = normalise_mac(mac)
    if normal is None:
        fail(f"--mac {mac!r} is not a MAC address like aa:bb:cc:dd:ee:ff.", USAGE)
    from starter import preflight
    from starter.start import start_run
    from workflows.rogue_device import RogueDevice

    await preflight.check(client, settings, preflight.PreflightRequest(runbook="rogue-device", nac_mac=normal))
    return await start_run(
        client, settings, RogueDevice.run,
        lambda who: RogueTrigger(mac=normal, requested_by=who), rogue_run_id(normal),
        requested_by=requested_by, runbook=RUNBOOK,
        duplicate=f"Device {normal} already has its run {{run_id}} (`handrail show {{run_id}}`).",
    )


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    from starter import common

    @run_app.command("rogue-device")
    @command
    async def run_rogue_device(
        mac: str = typer.Option(..., "--mac", help="The device's MAC address, e.g. 50:c7:bf:3a:91:0e."),
        requested_by: Optional[str] = typer.Option(
            None, "--requested-by",
            help="Check that the signing key (HANDRAIL_SIGNING_KEY or HANDRAIL_HOME/keys/USER_ed25519) "
                 "is this requester's; the request is signed."),
        wait: bool = typer.Option(False, "--wait", help="Wait for the run's outcome and print it (the recommit "
                                  "wait can last 24h)."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document and nothing else."),
    ):
        """Take a device off the network if the CMDB lacks it and its type or vendor is not provisioned."""
        from handrail.runbooks.rogue import normalise_mac

        if normalise_mac(mac) is None:
            fail(f"--mac {mac!r} is not a MAC address like aa:bb:cc:dd:ee:ff.", USAGE)
        settings = common._settings()
        client = await common._client(settings)
        handle = await start_rogue_device(client, settings, mac, requested_by)
        await common._started(client, settings, handle, wait, as_json)
