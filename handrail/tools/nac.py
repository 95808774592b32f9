"""NAC: devices seen on the wire by passive scanning, and the port/SSID kill switch."""

from __future__ import annotations

from typing import Protocol

from handrail.tools.http import LabHTTP, ToolModel, seg


class Disconnection(ToolModel):
    reason: str = ""
    at: str


class NacDevice(ToolModel):
    mac: str
    ip: str | None = None
    vendor: str = ""
    type: str = ""
    hostname: str | None = None
    network: str = ""
    port: str = ""
    ssid: str | None = None
    first_seen: str
    last_seen: str
    connected: bool = True
    disconnection: Disconnection | None = None


class Nac(Protocol):
    async def list_devices(self, *, network: str | None = None, type: str | None = None,
                           connected: bool | None = None) -> list[NacDevice]: ...
    async def get_device(self, mac: str) -> NacDevice: ...
    async def disconnect(self, mac: str, *, reason: str = "",
                         idempotency_key: str | None = None) -> NacDevice: ...
    async def reconnect(self, mac: str, *, idempotency_key: str | None = None) -> NacDevice: ...


class LabNac:
    def __init__(self, http: LabHTTP) -> None:
        self.http = http

    async def list_devices(self, *, network: str | None = None, type: str | None = None,
                           connected: bool | None = None) -> list[NacDevice]:
        data = await self.http.json("GET", "/nac/devices", params={
            "network": network, "type": type, "connected": connected})
        return [NacDevice.model_validate(d) for d in data["devices"]]

    async def get_device(self, mac: str) -> NacDevice:
        return NacDevice.model_validate(await self.http.json("GET", f"/nac/devices/{seg(mac)}"))

    async def disconnect(self, mac: str, *, reason: str = "",
                         idempotency_key: str | None = None) -> NacDevice:
        data = await self.http.json("POST", f"/nac/devices/{seg(mac)}/disconnect",
                                    json={"reason": reason}, idempotency_key=idempotency_key)
        return NacDevice.model_validate(data)

    async def reconnect(self, mac: str, *, idempotency_key: str | None = None) -> NacDevice:
        data = await self.http.json("POST", f"/nac/devices/{seg(mac)}/reconnect",
                                    idempotency_key=idempotency_key)
        return NacDevice.model_validate(data)
