"""Firewall egress blocklist (the external dynamic list perimeter firewalls poll)."""

from __future__ import annotations

from typing import Protocol

from handrail.tools.http import LabHTTP, ToolModel, seg


class EgressEntry(ToolModel):
    value: str
    comment: str = ""
    added_at: str


class Firewall(Protocol):
    async def egress_list(self) -> list[EgressEntry]: ...
    async def egress_get(self, value: str) -> EgressEntry | None: ...
    async def egress_add(self, value: str, comment: str, *,
                         idempotency_key: str | None = None) -> EgressEntry: ...
    async def egress_remove(self, value: str, *, idempotency_key: str | None = None) -> None: ...
    async def edl(self) -> str: ...
    async def egress_lookup_many(self, values: list[str]) -> list[str]: ...
    async def egress_add_many(self, values: list[str], comment: str, *,
                              idempotency_key: str | None = None) -> dict[str, list[str]]: ...
    async def egress_remove_many(self, values: list[str], *,
                                 idempotency_key: str | None = None) -> dict[str, list[str]]: ...


class LabFirewall:
    def __init__(self, http: LabHTTP) -> None:
        self.http = http

    async def egress_list(self) -> list[EgressEntry]:
        body = await self.http.json("GET", "/firewall/egress")
        return [EgressEntry.model_validate(e) for e in body["entries"]]

    async def egress_get(self, value: str) -> EgressEntry | None:
        body = await self.http.get_or_none(f"/firewall/egress/{seg(value)}")
        return EgressEntry.model_validate(body) if body is not None else None

    async def egress_add(self, value: str, comment: str, *,
                         idempotency_key: str | None = None) -> EgressEntry:
        body = await self.http.json("POST", "/firewall/egress",
                                    json={"value": value, "comment": comment},
                                    idempotency_key=idempotency_key)
        return EgressEntry.model_validate(body)

    async def egress_remove(self, value: str, *, idempotency_key: str | None = None) -> None:
        await self.http.request("DELETE", f"/firewall/egress/{seg(value)}",
                                idempotency_key=idempotency_key)

    async def edl(self) -> str:
        return (await self.http.request("GET", "/firewall/edl.txt")).text

    # -- bulk calls (lab routes /firewall/egress-bulk/*; at most 10,000 values per call) --
    async def egress_lookup_many(self, values: list[str]) -> list[str]:
        """The given values that are on the egress blocklist."""
        body = await self.http.json("POST", "/firewall/egress-bulk/lookup", json={"values": values})
        return list(body["present"])

    async def egress_add_many(self, values: list[str], comment: str, *,
                              idempotency_key: str | None = None) -> dict[str, list[str]]:
        """`{"added": [...], "already": [...]}`."""
        return await self.http.json("POST", "/firewall/egress-bulk/add",
                                    json={"values": values, "comment": comment},
                                    idempotency_key=idempotency_key)

    async def egress_remove_many(self, values: list[str], *,
                                 idempotency_key: str | None = None) -> dict[str, list[str]]:
        """`{"removed": [...], "absent": [...]}`."""
        return await self.http.json("POST", "/firewall/egress-bulk/remove",
                                    json={"values": values}, idempotency_key=idempotency_key)
