"""IPS: Suricata rules on the network sensors, identified by sid."""

from __future__ import annotations

from typing import Protocol

from handrail.tools.http import LabHTTP, ToolModel


class IpsRule(ToolModel):
    sid: int
    rule: str
    action: str
    msg: str
    comment: str = ""
    deployed_at: str


class RuleHits(ToolModel):
    sid: int
    hits: int
    last_hit: str | None = None


class Ips(Protocol):
    async def list_rules(self) -> list[IpsRule]: ...
    async def get_rule(self, sid: int) -> IpsRule | None: ...
    async def deploy_rule(self, rule: str, *, comment: str = "",
                          idempotency_key: str | None = None) -> IpsRule: ...
    async def remove_rule(self, sid: int, *, idempotency_key: str | None = None) -> None: ...
    async def rule_hits(self, sid: int) -> RuleHits: ...
    async def rules_present(self, sids: list[int]) -> list[int]: ...
    async def deploy_rules(self, rules: list[str], *, comment: str = "",
                           idempotency_key: str | None = None) -> dict[str, list[int]]: ...
    async def remove_rules(self, sids: list[int], *,
                           idempotency_key: str | None = None) -> dict[str, list[int]]: ...


class LabIps:
    def __init__(self, http: LabHTTP) -> None:
        self.http = http

    async def list_rules(self) -> list[IpsRule]:
        data = await self.http.json("GET", "/ips/rules")
        return [IpsRule.model_validate(r) for r in data["rules"]]

    async def get_rule(self, sid: int) -> IpsRule | None:
        data = await self.http.get_or_none(f"/ips/rules/{int(sid)}")
        return IpsRule.model_validate(data) if data is not None else None

    async def deploy_rule(self, rule: str, *, comment: str = "",
                          idempotency_key: str | None = None) -> IpsRule:
        data = await self.http.json("POST", "/ips/rules", json={"rule": rule, "comment": comment},
                                    idempotency_key=idempotency_key)
        return IpsRule.model_validate(data)

    async def remove_rule(self, sid: int, *, idempotency_key: str | None = None) -> None:
        await self.http.request("DELETE", f"/ips/rules/{int(sid)}",
                                idempotency_key=idempotency_key)

    async def rule_hits(self, sid: int) -> RuleHits:
        return RuleHits.model_validate(await self.http.json("GET", f"/ips/rules/{int(sid)}/hits"))

    # -- bulk calls (lab routes /ips/rules-bulk/*; at most 10,000 per call) ---------------
    async def rules_present(self, sids: list[int]) -> list[int]:
        """The given sids that are deployed."""
        body = await self.http.json("POST", "/ips/rules-bulk/lookup", json={"sids": sids})
        return [int(s) for s in body["present"]]

    async def deploy_rules(self, rules: list[str], *, comment: str = "",
                           idempotency_key: str | None = None) -> dict[str, list[int]]:
        """`{"added": [sids], "already": [sids]}`."""
        return await self.http.json("POST", "/ips/rules-bulk/deploy",
                                    json={"rules": rules, "comment": comment},
                                    idempotency_key=idempotency_key)

    async def remove_rules(self, sids: list[int], *,
                           idempotency_key: str | None = None) -> dict[str, list[int]]:
        """`{"removed": [sids], "absent": [sids]}`."""
        return await self.http.json("POST", "/ips/rules-bulk/remove", json={"sids": sids},
                                    idempotency_key=idempotency_key)
