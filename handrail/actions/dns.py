"""DNS sinkhole actions (owner: phishing runbook): resolve a domain to the awareness page.

The before-state is whether the domain is sinkholed and, if so, the entry (address and
comment), so undoing a sinkhole someone else had set never happens (`wanted` is then true
and the gate records "unchanged"), and undoing an unsinkhole puts the old entry back.
"""

from __future__ import annotations

from handrail.gate.models import Change


class DnsSinkhole:
    kind = "dns.sinkhole"

    async def read(self, tools, change):
        entry = await tools.dns.get_sinkhole(change.target)
        if entry is None:
            return {"sinkholed": False, "address": None, "comment": None}
        return {"sinkholed": True, "address": entry.address, "comment": entry.comment}

    def wanted(self, change, state):
        return bool(state["sinkholed"])

    async def apply(self, tools, change, key):
        address = change.params.get("address")
        await tools.dns.sinkhole(change.target, address=str(address) if address else None,
                                 comment=str(change.params.get("comment") or ""), idempotency_key=key)

    def inverse(self, change, before):
        return Change(kind="dns.unsinkhole", target=change.target)


class DnsUnsinkhole:
    kind = "dns.unsinkhole"

    async def read(self, tools, change):
        return await DnsSinkhole().read(tools, change)

    def wanted(self, change, state):
        return not state["sinkholed"]

    async def apply(self, tools, change, key):
        await tools.dns.remove_sinkhole(change.target, idempotency_key=key)

    def inverse(self, change, before):
        params = {"comment": before.get("comment") or ""}
        if before.get("address"):
            params["address"] = before["address"]
        return Change(kind="dns.sinkhole", target=change.target, params=params)
