"""NAC and CMDB actions (owner: rogue-device runbook).

The target is the device's MAC address throughout.

- `nac.disconnect` takes a device off the network (switch port / SSID); its inverse
  `nac.reconnect` lets it back. Its `facts()` are `network:<segment>` tags, so the policy's
  `protected_tags` guardrail can hold a disconnect on a protected network segment.
- `nac.recommit_device` is the analyst's "this device is legitimate": it reconnects a device
  the runbook disconnected. A kind of its own so the policy pins it to `approve`.
- `cmdb.register_device` registers the device in the CMDB (params: hostname, type, vendor,
  network, ip); its inverse `cmdb.deregister_device` removes the record again (found by MAC).
"""

from __future__ import annotations

from handrail.gate.models import Change


async def _connection(tools, change: Change) -> dict:
    device = await tools.nac.get_device(change.target)
    return {"connected": device.connected}


class NacDisconnect:
    kind = "nac.disconnect"

    async def read(self, tools, change):
        return await _connection(tools, change)

    def wanted(self, change, state):
        return not state["connected"]

    async def apply(self, tools, change, key):
        await tools.nac.disconnect(change.target, reason=str(change.params.get("reason") or ""), idempotency_key=key)

    def inverse(self, change, before):
        return Change(kind="nac.reconnect", target=change.target)

    async def facts(self, tools, change):
        device = await tools.nac.get_device(change.target)
        return {"tags": [f"network:{device.network}"] if device.network else []}


class NacReconnect:
    kind = "nac.reconnect"

    async def read(self, tools, change):
        return await _connection(tools, change)

    def wanted(self, change, state):
        return bool(state["connected"])

    async def apply(self, tools, change, key):
        await tools.nac.reconnect(change.target, idempotency_key=key)

    def inverse(self, change, before):
        return Change(kind="nac.disconnect", target=change.target, params={"reason": "restoring the disconnection"})


class NacRecommitDevice(NacReconnect):
    kind = "nac.recommit_device"


_RECORD_FIELDS = ("hostname", "type", "vendor", "network", "ip")


async def _record(tools, change: Change) -> dict:
    device = await tools.cmdb.find_by_mac(change.target)
    if device is None:
        return {"registered": False}
    return {"registered": True, **{f: getattr(device, f) for f in _RECORD_FIELDS}}


class CmdbRegisterDevice:
    kind = "cmdb.register_device"

    async def read(self, tools, change):
        return await _record(tools, change)

    def wanted(self, change, state):
        return bool(state["registered"])

    async def apply(self, tools, change, key):
        p = change.params
        await tools.cmdb.register_device(
            hostname=str(p.get("hostname") or "unnamed-" + change.target.replace(":", "")),
            type=str(p.get("type") or "unknown"),
            vendor=str(p.get("vendor") or "unknown"),
            network=str(p.get("network") or "unknown"),
            mac=change.target,
            ip=str(p["ip"]) if p.get("ip") else None,
            tags=[t for t in str(p.get("tags") or "").split(",") if t],
            idempotency_key=key,
        )

    def inverse(self, change, before):
        return Change(kind="cmdb.deregister_device", target=change.target)


class CmdbDeregisterDevice:
    kind = "cmdb.deregister_device"

    async def read(self, tools, change):
        return await _record(tools, change)

    def wanted(self, change, state):
        return not state["registered"]

    async def apply(self, tools, change, key):
        device = await tools.cmdb.find_by_mac(change.target)
        if device is not None:
            await tools.cmdb.deregister_device(device.id, idempotency_key=key)

    def inverse(self, change, before):
        return Change(kind="cmdb.register_device", target=change.target,
                      params={f: before.get(f) for f in _RECORD_FIELDS})
