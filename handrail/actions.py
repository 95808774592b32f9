"""What each kind of action does to which tool, how to read its state and how to undo it.

The gate knows nothing about firewalls; it asks this registry. An action reads the state
it is about to change (the before-state the ledger keeps), applies the change with the
idempotency key, and names the inverse change that restores the before-state. When the
tool was already in the wanted state, the action changes nothing and has no inverse, so a
rollback never removes a block that someone else put there.

Adding an action kind is one class here plus its policy entry.
"""

from __future__ import annotations

from typing import Any, Protocol

from handrail.models import Change


class UnknownAction(LookupError):
    pass


class Action(Protocol):
    kind: str

    async def read(self, tools: Any, change: Change) -> dict[str, Any]:
        """The part of the tool's state this change touches."""

    def wanted(self, change: Change, state: dict[str, Any]) -> bool:
        """True when the state already is what the change asks for."""

    async def apply(self, tools: Any, change: Change, key: str) -> None:
        """Make the change; `key` makes a retried call harmless."""

    def inverse(self, change: Change, before: dict[str, Any]) -> Change:
        """The change that brings the before-state back."""


class EgressBlock:
    kind = "firewall.egress_block"

    async def read(self, tools, change):
        entry = await tools.firewall.egress_get(change.target)
        return {"blocked": entry is not None, "comment": entry.comment if entry else None}

    def wanted(self, change, state):
        return bool(state["blocked"])

    async def apply(self, tools, change, key):
        await tools.firewall.egress_add(change.target, str(change.params.get("comment") or ""), idempotency_key=key)

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
        return Change(kind="firewall.egress_block", target=change.target, params={"comment": before.get("comment") or ""})


ACTIONS: dict[str, Action] = {action.kind: action for action in (EgressBlock(), EgressUnblock())}


def action_for(kind: str) -> Action:
    try:
        return ACTIONS[kind]
    except KeyError:
        raise UnknownAction(f"no tool action is registered for kind {kind!r}") from None
