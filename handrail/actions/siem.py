"""SIEM/UBA watchlist actions (owner: phishing runbook). Target `user:NAME` or `host:NAME`.

The before-state is the watchlist entry (or its absence), so an entry someone else had
put there is never removed by a rollback, and undoing an unwatch restores its reason.
"""

from __future__ import annotations

from handrail.gate.models import Change


def _split(target: str) -> tuple[str, str]:
    kind, sep, value = target.partition(":")
    if not sep or kind not in ("user", "host") or not value:
        raise ValueError(f"a watchlist target is user:NAME or host:NAME, not {target!r}")
    return kind, value


class SiemWatch:
    kind = "siem.watch"

    async def read(self, tools, change):
        kind, value = _split(change.target)
        entry = await tools.siem.get_watch(kind, value)
        return {"watched": entry is not None, "reason": entry.reason if entry else None}

    def wanted(self, change, state):
        return bool(state["watched"])

    async def apply(self, tools, change, key):
        kind, value = _split(change.target)
        await tools.siem.watch(kind, value, reason=str(change.params.get("reason") or ""),
                               idempotency_key=key)

    def inverse(self, change, before):
        return Change(kind="siem.unwatch", target=change.target)


class SiemUnwatch:
    kind = "siem.unwatch"

    async def read(self, tools, change):
        return await SiemWatch().read(tools, change)

    def wanted(self, change, state):
        return not state["watched"]

    async def apply(self, tools, change, key):
        kind, value = _split(change.target)
        await tools.siem.unwatch(kind, value, idempotency_key=key)

    def inverse(self, change, before):
        return Change(kind="siem.watch", target=change.target, params={"reason": before.get("reason") or ""})
