"""The rogue-device runbook's side effects: what NAC saw, what the CMDB knows, the case.

These activities decide nothing: they report NAC's record, the CMDB record with the same
MAC and the provisioned types/vendors, and the workflow decides.
"""

from __future__ import annotations

from temporalio import activity

from activities.context import WorkerContext
from activities.errors import tool_failure
from activities.triggers import valid_only
from handrail.runbooks.rogue import NacPoll, RogueFacts, RogueTrigger, normalise_mac
from handrail.tools.errors import NotFound, ToolError


class RogueActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.settings, self.tools, self.ledger = ctx.settings, ctx.tools, ctx.ledger

    @activity.defn
    async def rogue_facts(self, trigger: RogueTrigger) -> RogueFacts:
        mac = normalise_mac(trigger.mac)
        if mac is None:
            return RogueFacts(mac=trigger.mac, problem=f"{trigger.mac!r} is not a MAC address like aa:bb:cc:dd:ee:ff")
        try:
            device = await self.tools.nac.get_device(mac)
        except NotFound:
            return RogueFacts(mac=mac, problem=f"NAC has never seen a device with MAC {mac}")
        except ToolError as exc:
            raise tool_failure(exc, f"reading NAC device {mac} failed") from None
        try:
            record = await self.tools.cmdb.find_by_mac(mac)
            approved = await self.tools.cmdb.approved()
        except ToolError as exc:
            raise tool_failure(exc, f"looking {mac} up in the CMDB failed") from None
        return RogueFacts(
            mac=mac, ip=device.ip, vendor=device.vendor, type=device.type, hostname=device.hostname,
            network=device.network, port=device.port, ssid=device.ssid, connected=device.connected,
            cmdb_id=record.id if record else None,
            type_approved=device.type in approved.types, vendor_approved=device.vendor in approved.vendors,
        )

    @activity.defn
    async def new_nac_devices(self, poll: NacPoll) -> list[RogueTrigger]:
        """Connected devices the CMDB does not know (a known device needs no run)."""
        try:
            devices = await self.tools.nac.list_devices(connected=True)
            known = {d.mac for d in await self.tools.cmdb.list_devices()}
        except ToolError as exc:
            raise tool_failure(exc, "listing NAC devices failed") from None
        return valid_only(lambda d: RogueTrigger(mac=d.mac, requested_by=poll.requested_by),
                          [d for d in devices if d.mac not in known])
