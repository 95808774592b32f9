"""SaaS web proxy: per-indicator policy (block, tightened monitoring). Unknown indicators
are `allowed`."""

from __future__ import annotations

from typing import Literal, Protocol

from handrail.tools.http import LabHTTP, ToolModel, seg


class ProxyBlock(ToolModel):
    comment: str = ""
    at: str


class ProxyIndicator(ToolModel):
    value: str
    status: Literal["allowed", "blocked", "monitored"]
    blocked: bool = False
    block: ProxyBlock | None = None
    tightened: bool = False
    logging: Literal["normal", "extra"] = "normal"
    packet_capture: bool = False


class Proxy(Protocol):
    async def list_indicators(self) -> list[ProxyIndicator]: ...
    async def get_indicator(self, value: str) -> ProxyIndicator: ...
    async def block(self, value: str, *, comment: str = "",
                    idempotency_key: str | None = None) -> ProxyIndicator: ...
    async def unblock(self, value: str, *,
                      idempotency_key: str | None = None) -> ProxyIndicator: ...
    async def tighten(self, value: str, *, logging: Literal["normal", "extra"] = "extra",
                      packet_capture: bool = True,
                      idempotency_key: str | None = None) -> ProxyIndicator: ...
    async def relax(self, value: str, *,
                    idempotency_key: str | None = None) -> ProxyIndicator: ...
    async def bulk_status(self, values: list[str]) -> ProxyBulkStatus: ...
    async def bulk_block(self, values: list[str], *, comment: str = "",
                         idempotency_key: str | None = None) -> BulkResult: ...
    async def bulk_unblock(self, values: list[str], *,
                           idempotency_key: str | None = None) -> BulkResult: ...
    async def bulk_tighten(self, values: list[str], *, logging: Literal["normal", "extra"] = "extra",
                           packet_capture: bool = True,
                           idempotency_key: str | None = None) -> BulkResult: ...
    async def bulk_relax(self, values: list[str], *,
                         idempotency_key: str | None = None) -> BulkResult: ...


class LabProxy:
    def __init__(self, http: LabHTTP) -> None:
        self.http = http

    async def list_indicators(self) -> list[ProxyIndicator]:
        data = await self.http.json("GET", "/proxy/indicators")
        return [ProxyIndicator.model_validate(i) for i in data["indicators"]]

    async def get_indicator(self, value: str) -> ProxyIndicator:
        return ProxyIndicator.model_validate(
            await self.http.json("GET", f"/proxy/indicators/{seg(value)}"))

    async def block(self, value: str, *, comment: str = "",
                    idempotency_key: str | None = None) -> ProxyIndicator:
        data = await self.http.json("POST", "/proxy/blocks",
                                    json={"value": value, "comment": comment},
                                    idempotency_key=idempotency_key)
        return ProxyIndicator.model_validate(data)

    async def unblock(self, value: str, *,
                      idempotency_key: str | None = None) -> ProxyIndicator:
        data = await self.http.json("DELETE", f"/proxy/blocks/{seg(value)}",
                                    idempotency_key=idempotency_key)
        return ProxyIndicator.model_validate(data)

    async def tighten(self, value: str, *, logging: Literal["normal", "extra"] = "extra",
                      packet_capture: bool = True,
                      idempotency_key: str | None = None) -> ProxyIndicator:
        data = await self.http.json(
            "POST", "/proxy/tightened",
            json={"value": value, "logging": logging, "packet_capture": packet_capture},
            idempotency_key=idempotency_key)
        return ProxyIndicator.model_validate(data)

    async def relax(self, value: str, *,
                    idempotency_key: str | None = None) -> ProxyIndicator:
        data = await self.http.json("DELETE", f"/proxy/tightened/{seg(value)}",
                                    idempotency_key=idempotency_key)
        return ProxyIndicator.model_validate(data)


    # -- bulk calls (lab routes /proxy/bulk/*; at most 10,000 values per call) -----------
    async def bulk_status(self, values: list[str]) -> ProxyBulkStatus:
        data = await self.http.json("POST", "/proxy/bulk/status", json={"values": values})
        return ProxyBulkStatus.model_validate(data)

    async def bulk_block(self, values: list[str], *, comment: str = "",
                         idempotency_key: str | None = None) -> BulkResult:
        data = await self.http.json("POST", "/proxy/bulk/block",
                                    json={"values": values, "comment": comment},
                                    idempotency_key=idempotency_key)
        return BulkResult.model_validate(data)

    async def bulk_unblock(self, values: list[str], *,
                           idempotency_key: str | None = None) -> BulkResult:
        data = await self.http.json("POST", "/proxy/bulk/unblock", json={"values": values},
                                    idempotency_key=idempotency_key)
        return BulkResult.model_validate(data)

    async def bulk_tighten(self, values: list[str], *,
                           logging: Literal["normal", "extra"] = "extra",
                           packet_capture: bool = True,
                           idempotency_key: str | None = None) -> BulkResult:
        data = await self.http.json("POST", "/proxy/bulk/tighten",
                                    json={"values": values, "logging": logging,
                                          "packet_capture": packet_capture},
                                    idempotency_key=idempotency_key)
        return BulkResult.model_validate(data)

    async def bulk_relax(self, values: list[str], *,
                         idempotency_key: str | None = None) -> BulkResult:
        data = await self.http.json("POST", "/proxy/bulk/relax", json={"values": values},
                                    idempotency_key=idempotency_key)
        return BulkResult.model_validate(data)


class ProxyBulkStatus(ToolModel):
    """Which of the values asked about are blocked, and which are tightened."""

    blocked: list[str] = []
    tightened: list[str] = []


class BulkResult(ToolModel):
    """Which of the given values changed, and which already were in the wanted state."""

    added: list[str] = []
    already: list[str] = []
    removed: list[str] = []
    absent: list[str] = []
