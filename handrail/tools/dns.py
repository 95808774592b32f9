"""DNS sinkhole (the resolver's response-policy zone) and a resolver view that never
performs a real lookup."""

from __future__ import annotations

from typing import Protocol

from handrail.tools.http import LabHTTP, ToolModel, seg


class Sinkhole(ToolModel):
    domain: str
    address: str
    comment: str = ""
    added_at: str


class Resolution(ToolModel):
    name: str
    addresses: list[str]
    sinkholed: bool
    sinkhole: str | None = None


class Dns(Protocol):
    async def list_sinkholes(self) -> list[Sinkhole]: ...
    async def get_sinkhole(self, domain: str) -> Sinkhole | None: ...
    async def sinkhole(self, domain: str, *, address: str | None = None, comment: str = "",
                       idempotency_key: str | None = None) -> Sinkhole: ...
    async def remove_sinkhole(self, domain: str, *,
                              idempotency_key: str | None = None) -> None: ...
    async def resolve(self, name: str) -> Resolution: ...


class LabDns:
    def __init__(self, http: LabHTTP) -> None:
        self.http = http

    async def list_sinkholes(self) -> list[Sinkhole]:
        data = await self.http.json("GET", "/dns/sinkholes")
        return [Sinkhole.model_validate(s) for s in data["sinkholes"]]

    async def get_sinkhole(self, domain: str) -> Sinkhole | None:
        data = await self.http.get_or_none(f"/dns/sinkholes/{seg(domain)}")
        return Sinkhole.model_validate(data) if data is not None else None

    async def sinkhole(self, domain: str, *, address: str | None = None, comment: str = "",
                       idempotency_key: str | None = None) -> Sinkhole:
        payload: dict = {"domain": domain, "comment": comment}
        if address is not None:
            payload["address"] = address
        data = await self.http.json("POST", "/dns/sinkholes", json=payload,
                                    idempotency_key=idempotency_key)
        return Sinkhole.model_validate(data)

    async def remove_sinkhole(self, domain: str, *, idempotency_key: str | None = None) -> None:
        await self.http.request("DELETE", f"/dns/sinkholes/{seg(domain)}",
                                idempotency_key=idempotency_key)

    async def resolve(self, name: str) -> Resolution:
        return Resolution.model_validate(
            await self.http.json("GET", f"/dns/resolve/{seg(name)}"))
