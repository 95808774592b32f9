"""Training actions (shared by the phishing and exfiltration runbooks): enroll a user in
an awareness module and undo it.

`target` is the username, `params["module"]` the training module id (`data-handling`,
`phishing-awareness`, ...), `params["reason"]` why. A user already enrolled in that module
is "unchanged" (and so never unenrolled by a rollback).
"""

from __future__ import annotations

from handrail.gate.models import Change


class TrainingEnroll:
    kind = "training.enroll"

    async def read(self, tools, change):
        module = str(change.params.get("module") or "")
        found = await tools.training.get_enrollment(change.target, module)
        if found is None:
            return {"enrolled": False, "module": module, "reason": None}
        return {"enrolled": True, "module": module, "reason": found.reason}

    def wanted(self, change, state):
        return bool(state["enrolled"])

    async def apply(self, tools, change, key):
        await tools.training.enroll(change.target, str(change.params.get("module") or ""),
                                    reason=str(change.params.get("reason") or ""), idempotency_key=key)

    def inverse(self, change, before):
        return Change(kind="training.unenroll", target=change.target, params={"module": change.params.get("module")})


class TrainingUnenroll:
    kind = "training.unenroll"

    async def read(self, tools, change):
        return await TrainingEnroll().read(tools, change)

    def wanted(self, change, state):
        return not state["enrolled"]

    async def apply(self, tools, change, key):
        await tools.training.unenroll(change.target, str(change.params.get("module") or ""), idempotency_key=key)

    def inverse(self, change, before):
        return Change(kind="training.enroll", target=change.target,
                      params={"module": change.params.get("module"), "reason": before.get("reason") or ""})
