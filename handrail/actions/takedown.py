"""Takedown-provider actions (owner: phishing runbook): submit a malicious site, withdraw it.

The target is the URL (or bare domain) submitted; the provider never gets contacted by us
and nothing here opens the URL. `params["evidence"]` is a JSON list of `{"kind", "ref",
"description"}` (params are scalars, so the list travels as one string). The before-state
keeps a submission's reason and evidence, so withdrawing is undone by resubmitting them.
"""

from __future__ import annotations

import json

from handrail.gate.models import Change
from handrail.gate.redact import redact_text
from handrail.tools.takedown import Evidence


def _evidence(raw) -> list[Evidence]:
    if not raw:
        return []
    items = [Evidence.model_validate(e) for e in json.loads(str(raw))]
    # refs are indicators (the phishing URL itself) and stay; descriptions lose credentials
    return [e.model_copy(update={"description": redact_text(e.description)}) for e in items]


class TakedownSubmit:
    kind = "takedown.submit"

    async def read(self, tools, change):
        sub = await tools.takedown.find_by_url(change.target)
        if sub is None:
            return {"submitted": False, "reason": None, "evidence": None}
        return {"submitted": True, "reason": sub.reason,
                "evidence": json.dumps([e.model_dump() for e in sub.evidence], sort_keys=True)}

    def wanted(self, change, state):
        return bool(state["submitted"])

    async def apply(self, tools, change, key):
        await tools.takedown.submit(change.target, reason=str(change.params.get("reason") or "phishing"),
                                    evidence=_evidence(change.params.get("evidence")), idempotency_key=key)

    def inverse(self, change, before):
        return Change(kind="takedown.withdraw", target=change.target)


class TakedownWithdraw:
    kind = "takedown.withdraw"

    async def read(self, tools, change):
        return await TakedownSubmit().read(tools, change)

    def wanted(self, change, state):
        return not state["submitted"]

    async def apply(self, tools, change, key):
        sub = await tools.takedown.find_by_url(change.target)
        if sub is not None:
            await tools.takedown.withdraw(sub.id, idempotency_key=key)

    def inverse(self, change, before):
        return Change(kind="takedown.submit", target=change.target,
                      params={"reason": before.get("reason") or "phishing", "evidence": before.get("evidence")})
