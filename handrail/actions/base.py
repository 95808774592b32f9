"""The contract every action kind fulfils: read the state, apply, name the inverse.

Each tool category has its own module in this package; adding a kind is one class there,
one line in `handrail/actions/__init__.py` and its policy entry.
"""

from __future__ import annotations

from typing import Any, Protocol

from handrail.gate.models import Change


class UnknownAction(LookupError):
    pass


class Action(Protocol):
    kind: str

    async def read(self, tools: Any, change: Change) -> dict[str, Any]:
        """The part of the tool's state this change touches."""

    def wanted(self, change: Change, state: dict[str, Any]) -> bool:
        """True when the state already is what the change asks for."""

    async def apply(self, tools: Any, change: Change, key: str) -> dict[str, Any] | None:
        """Make the change; `key` makes a retried call harmless.

        Return the after-state (the same shape as `read`) when the tool's answer to the write
        states it, e.g. the entry it created: the gate then records it instead of asking the
        tool again, one call fewer on a production tool. None: the gate reads the tool."""

    def inverse(self, change: Change, before: dict[str, Any]) -> Change:
        """The change that brings the before-state back."""

    # Optional: `async def facts(self, tools, change) -> dict` returning guardrail facts
    # about the target, e.g. {"tags": ["production"]} from the CMDB.
