"""Firewall egress blocklist: the EDL that the perimeter firewalls poll."""

from __future__ import annotations

from handrail.gate.models import Change


def _state(entry) -> dict:
    return {"blocked": entry is not None, "comment": entry.comment if entry else None}


class EgressBlock:
    kind = "firewall.egress_block"

    async def read(self, tools, change):
        return _state(await tools.firewall.egress_get(change.target))

    def wanted(self, change, state):
        return bool(state["blocked"])

    async def apply(self, tools, change, key):
        """The firewall answers with the entry it now holds: that is the after-state."""
        return _state(await tools.firewall.egress_add(change.target, str(change.params.get("comment") or ""),
                                                      idempotency_key=key))

    def inverse(self, change, before):
        return Change(kind="firewall.egress_unblock", target=change.target)


class EgressUnblock:
    kind = "firewall.egress_unblock"

    async def read(self, tools, change):
        return await EgressBlock().read(tools, change)

    def wanted(self, change, state):
        return not state["blocked"]

    async def apply(self, tools, change, key):
        await tools.firewall.egress_remove(change.target, idempotency_key=key)

    def inverse(self, change, before):
        return Change(kind="firewall.egress_block", target=change.target,
                      params={"comment": before.get("comment") or ""})
