"""The rogue-device runbook's data: what crosses its workflow/activity boundaries.

NAC's passive scanning reports devices; each device not yet looked at becomes one
`RogueDevice` run (`rogue-device-<mac>`). An activity gathers the facts (`RogueFacts`):
the NAC record, the CMDB record with the same MAC if any, and whether its type and vendor
are ones the enterprise provisions. The workflow decides from those facts alone.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from handrail.gate.limits import Principal, ToolId

RUNBOOK = "rogue-device"
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def normalise_mac(mac: str) -> str | None:
    """`AA-BB-…` or `aa:bb:…` -> `aa:bb:cc:dd:ee:ff`; None when it is not a MAC address."""
    m = (mac or "").strip().lower().replace("-", ":")
    return m if _MAC.match(m) else None


def rogue_run_id(mac: str) -> str:
    """One run per device, whoever starts it (the poller or `handrail run rogue-device`)."""
    m = normalise_mac(mac)
    return f"{RUNBOOK}-{(m or re.sub(r'[^A-Za-z0-9]', '_', mac or '')[:32] or '_').replace(':', '')}"


class RogueTrigger(BaseModel):
    mac: ToolId
    requested_by: Principal = "nac-poller"


class NacPoll(BaseModel):
    """The argument of the `nac` schedule's `PollNacDevices` runs."""

    requested_by: str = "nac-poller"


class RogueFacts(BaseModel):
    mac: str
    problem: str | None = None  # unknown or malformed MAC: the run is rejected
    ip: str | None = None
    vendor: str = ""
    type: str = ""
    hostname: str | None = None
    network: str = ""
    port: str = ""
    ssid: str | None = None
    connected: bool = True
    cmdb_id: str | None = None  # the CMDB record with this MAC, if any
    type_approved: bool = False
    vendor_approved: bool = False

    @property
    def rogue(self) -> bool:
        """Not in the CMDB, and of a type or vendor the enterprise does not provision."""
        return self.cmdb_id is None and not (self.type_approved and self.vendor_approved)

    def describe(self) -> str:
        name = self.hostname or "no hostname"
        where = f"{self.network} port {self.port}" + (f", SSID {self.ssid!r}" if self.ssid else "")
        what = f"{self.vendor or 'unknown vendor'} {self.type or 'device'} {self.mac}"
        return f"{what} ({name}, {self.ip or 'no IP'}) on {where}"

    def why_rogue(self) -> str:
        parts = []
        if not self.type_approved:
            parts.append(f"type {self.type!r} is not provisioned")
        if not self.vendor_approved:
            parts.append(f"vendor {self.vendor!r} is not provisioned")
        return "not in the CMDB; " + " and ".join(parts)
