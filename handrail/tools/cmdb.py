"""CMDB: the asset inventory, approved device types/vendors and protected networks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from pydantic import Field

from handrail.tools.http import LabHTTP, ToolModel, seg


class Device(ToolModel):
    id: str
    hostname: str
    owner: str | None = None
    type: str
    vendor: str
    model: str = ""
    network: str = ""
    ip: str | None = None
    mac: str
    tags: list[str] = Field(default_factory=list)
    registered_at: str


class Approved(ToolModel):
    types: list[str]
    vendors: list[str]


class ProtectedNetwork(ToolModel):
    name: str
    cidr: str
    owner: str = ""
    reason: str = ""


class NetworkSegment(ToolModel):
    name: str
    cidr: str


class Cmdb(Protocol):
    async def list_devices(self, *, owner: str | None = None, ip: str | None = None,
                           mac: str | None = None, hostname: str | None = None,
                           type: str | None = None, tag: str | None = None) -> list[Device]: ...
    async def get_device(self, device_id: str) -> Device: ...
    async def find_by_mac(self, mac: str) -> Device | None: ...
    async def register_device(self, *, hostname: str, type: str, vendor: str, network: str,
                              mac: str, owner: str | None = None, model: str = "",
                              ip: str | None = None, tags: Iterable[str] = (),
                              idempotency_key: str | None = None) -> Device: ...
    async def deregister_device(self, device_id: str, *,
                                idempotency_key: str | None = None) -> None: ...
    async def approved(self) -> Approved: ...
    async def protected_networks(self) -> list[ProtectedNetwork]: ...
    async def networks(self) -> list[NetworkSegment]: ...


class LabCmdb:
    def __init__(self, http: LabHTTP) -> None:
        self.http = http

    async def list_devices(self, *, owner: str | None = None, ip: str | None = None,
                           mac: str | None = None, hostname: str | None = None,
                           type: str | None = None, tag: str | None = None) -> list[Device]:
        data = await self.http.json("GET", "/cmdb/devices", params={
            "owner": owner, "ip": ip, "mac": mac, "hostname": hostname, "type": type,
            "tag": tag})
        return [Device.model_validate(d) for d in data["devices"]]

    async def get_device(self, device_id: str) -> Device:
        return Device.model_validate(
            await self.http.json("GET", f"/cmdb/devices/{seg(device_id)}"))

    async def find_by_mac(self, mac: str) -> Device | None:
        found = await self.list_devices(mac=mac)
        return found[0] if found else None

    async def register_device(self, *, hostname: str, type: str, vendor: str, network: str,
                              mac: str, owner: str | None = None, model: str = "",
                              ip: str | None = None, tags: Iterable[str] = (),
                              idempotency_key: str | None = None) -> Device:
        payload = {"hostname": hostname, "type": type, "vendor": vendor, "network": network,
                   "mac": mac, "owner": owner, "model": model, "ip": ip, "tags": list(tags)}
        data = await self.http.json("POST", "/cmdb/devices", json=payload,
                                    idempotency_key=idempotency_key)
        return Device.model_validate(data)

    async def deregister_device(self, device_id: str, *,
                                idempotency_key: str | None = None) -> None:
        await self.http.request("DELETE", f"/cmdb/devices/{seg(device_id)}",
                                idempotency_key=idempotency_key)

    async def approved(self) -> Approved:
        return Approved.model_validate(await self.http.json("GET", "/cmdb/approved"))

    async def protected_networks(self) -> list[ProtectedNetwork]:
        data = await self.http.json("GET", "/cmdb/protected-networks")
        return [ProtectedNetwork.model_validate(n) for n in data["networks"]]

    async def networks(self) -> list[NetworkSegment]:
        data = await self.http.json("GET", "/cmdb/networks")
        return [NetworkSegment.model_validate(n) for n in data["networks"]]
