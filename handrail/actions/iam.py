"""IAM actions (owner: privilege-guard runbook): revoke and re-grant a group membership.

The target is the member (a username or a computer account's hostname) so that the
`never_touch` guardrail can name break-glass accounts; `params["group"]` is the group.
The state both sides compare is "is the target a member of the group".

- `iam.revoke_privilege` removes the membership; its inverse `iam.grant_privilege` puts
  it back.
- `iam.recommit_privilege` is the analyst's "that change was legitimate": it re-grants the
  membership a revert removed. It is a kind of its own so the policy can pin it to
  `approve` (a human, never the affected person, decides); its inverse revokes again.
"""

from __future__ import annotations

from handrail.gate.models import Change


def _group(change: Change) -> str:
    group = str(change.params.get("group") or "")
    if not group:
        raise ValueError(f"{change.kind} needs params.group")
    return group


async def _membership(tools, change: Change) -> dict:
    group = _group(change)
    return {"group": group, "member": change.target, "is_member": await tools.iam.is_member(group, change.target)}


class IamRevokePrivilege:
    kind = "iam.revoke_privilege"

    async def read(self, tools, change):
        return await _membership(tools, change)

    def wanted(self, change, state):
        return not state["is_member"]

    async def apply(self, tools, change, key):
        await tools.iam.revoke(_group(change), change.target, idempotency_key=key)

    def inverse(self, change, before):
        return Change(kind="iam.grant_privilege", target=change.target, params={"group": before["group"]})


class IamGrantPrivilege:
    kind = "iam.grant_privilege"

    async def read(self, tools, change):
        return await _membership(tools, change)

    def wanted(self, change, state):
        return bool(state["is_member"])

    async def apply(self, tools, change, key):
        await tools.iam.grant(_group(change), change.target, idempotency_key=key)

    def inverse(self, change, before):
        return Change(kind="iam.revoke_privilege", target=change.target, params={"group": before["group"]})


class IamRecommitPrivilege(IamGrantPrivilege):
    kind = "iam.recommit_privilege"
