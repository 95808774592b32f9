"""Web proxy block actions for one indicator (owner: phishing runbook): a URL, domain or IP.

The phishing runbook blocks the page itself (a URL) when the site around it cannot be
sinkholed: phishing hosted on a shared platform that the company also uses. The intel
sync blocks thousands at once through the batch kinds of the same name (`intel.py`).

The before-state is whether the proxy already blocks the value and with what comment, so
undoing a block that someone else had set never happens (`wanted` is then true and the
gate records "unchanged"), and undoing an unblock puts the old block back.
"""

from __future__ import annotations

from handrail.gate.models import Change


def _state(indicator) -> dict:
    """The before/after state the ledger keeps: blocked or not, and the block's comment."""
    return {"blocked": indicator.blocked, "comment": indicator.block.comment if indicator.block else None}


class ProxyBlock:
    kind = "proxy.block"

    async def read(self, tools, change):
        return _state(await tools.proxy.get_indicator(change.target))

    def wanted(self, change, state):
        return bool(state["blocked"])

    async def apply(self, tools, change, key):
        return _state(await tools.proxy.block(change.target, comment=str(change.params.get("comment") or ""),
                                              idempotency_key=key))

    def inverse(self, change, before):
        return Change(kind="proxy.unblock", target=change.target)


class ProxyUnblock:
    kind = "proxy.unblock"

    async def read(self, tools, change):
        return await ProxyBlock().read(tools, change)

    def wanted(self, change, state):
        return not state["blocked"]

    async def apply(self, tools, change, key):
        await tools.proxy.unblock(change.target, idempotency_key=key)

    def inverse(self, change, before):
        return Change(kind="proxy.block", target=change.target, params={"comment": before.get("comment") or ""})
