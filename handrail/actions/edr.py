"""EDR actions (owner: exfiltration runbook): isolate/release a host, raise its telemetry.

`edr.isolate` takes a host off the network; its inverse `edr.release` puts it back. Its
`facts()` are the host's CMDB tags (every CMDB record with that hostname), which the
`protected_tags` guardrail holds on (`production`, `executive`).

`edr.set_telemetry` raises (or lowers) how much the agent reports; its inverse sets the
level that was there before. Setting the level the host already has is "unchanged".
"""

from __future__ import annotations

from handrail.gate.models import Change
from handrail.tools.errors import NotFound


async def cmdb_tags(tools, hostname: str) -> list[str]:
    """The CMDB tags of a host: union over every CMDB device with that hostname.

    An EDR host the CMDB does not know still has its agent's tags: both count, so a
    missing CMDB record never hides a `production` host from the guardrail.
    """
    tags: set[str] = set()
    for device in await tools.cmdb.list_devices(hostname=hostname):
        tags.update(device.tags)
    try:
        tags.update((await tools.edr.get_host(hostname)).tags)
    except NotFound:
        pass
    return sorted(tags)


class EdrIsolate:
    kind = "edr.isolate"

    async def read(self, tools, change):
        host = await tools.edr.get_host(change.target)
        return {"isolated": host.isolated}

    def wanted(self, change, state):
        return bool(state["isolated"])

    async def apply(self, tools, change, key):
        await tools.edr.isolate(change.target, reason=str(change.params.get("reason") or ""), idempotency_key=key)

    def inverse(self, change, before):
        return Change(kind="edr.release", target=change.target)

    async def facts(self, tools, change):
        return {"tags": await cmdb_tags(tools, change.target)}


class EdrRelease:
    kind = "edr.release"

    async def read(self, tools, change):
        return await EdrIsolate().read(tools, change)

    def wanted(self, change, state):
        return not state["isolated"]

    async def apply(self, tools, change, key):
        await tools.edr.release(change.target, idempotency_key=key)

    def inverse(self, change, before):
        return Change(kind="edr.isolate", target=change.target, params={"reason": "restoring isolation"})


class EdrSetTelemetry:
    """params: {"level": "normal|elevated|verbose"}."""

    kind = "edr.set_telemetry"

    async def read(self, tools, change):
        host = await tools.edr.get_host(change.target)
        return {"telemetry": host.telemetry}

    def wanted(self, change, state):
        return state["telemetry"] == change.params.get("level")

    async def apply(self, tools, change, key):
        await tools.edr.set_telemetry(change.target, str(change.params.get("level")), idempotency_key=key)

    def inverse(self, change, before):
        return Change(kind="edr.set_telemetry", target=change.target, params={"level": before["telemetry"]})

    async def facts(self, tools, change):
        return {"tags": await cmdb_tags(tools, change.target)}
