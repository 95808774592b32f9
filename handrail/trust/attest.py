"""Who changed how far a kind is trusted, or marked automated changes reviewed, is proven.

`handrail trust set` turns approvals off for a kind and `handrail review --mark` closes
the loop on automated changes: both are trust decisions, as weighty as an approval. So,
like an approval, the person is proven by an SSH signature made with a key the policy
lists for them (`--as YOU` is only a check), and the person must be one the policy
trusts with that decision:

* with ``[policy_admins]`` in the policy, a policy admin (their signatures are what make a
  policy edit take effect anyway);
* otherwise someone who may approve that kind's changes (its approvers or its escalation
  group): who may approve a change may judge whether it still needs approving. A review
  mark needs someone who may approve some kind.

The audit event keeps the signature and the keys the policy then listed for the person,
so `handrail audit verify --signatures` re-checks it offline, years later.

Pure functions (no I/O): the CLI signs, the ledger stores.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from handrail.gate import signatures
from handrail.gate.approvals import may_decide
from handrail.gate.policy import Policy

NAMESPACE = "handrail-trust"
SIGNED_EVENTS = ("trust.mode_changed", "review.marked")

Signer = Callable[[bytes], str]  # the statement's bytes -> an armored SSH signature


class AttestError(ValueError):
    """A trust act was refused; the message is one sentence."""


def statement(event: str, data: Mapping[str, Any]) -> bytes:
    """The exact bytes signed: the event name and its data (without the signature itself)."""
    body = {key: value for key, value in data.items() if key != "signed"}
    return json.dumps({"event": event, **body}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, default=str).encode()


def _holds(policy: Policy, user: str, users: list[str], roles: list[str]) -> bool:
    spec = policy.users.get(user)
    return user in users or (spec is not None and bool(set(spec.roles) & set(roles)))


def _may_approve(policy: Policy, user: str, kind: str) -> bool:
    return may_decide(user, policy.gate_policy(kind), escalated=True)


def check_authority(policy: Policy, user: str, kind: str | None) -> None:
    """Refuse a user the policy does not trust with this trust act (`kind` None: a review mark)."""
    if user not in policy.users:
        raise AttestError(f"{user!r} is not a user in the policy, so cannot decide how far Handrail is trusted.")
    admins = policy.policy_admins
    if admins is not None:
        if not _holds(policy, user, admins.users, admins.roles):
            raise AttestError(f"{user} is not a policy admin ([policy_admins]), so cannot "
                              + ("change trust modes." if kind else "mark automated changes reviewed."))
        return
    if kind is not None:
        if not _may_approve(policy, user, kind):
            raise AttestError(f"{user} may not approve {kind} changes, so cannot change how far {kind} is trusted.")
        return
    kinds = list(policy.actions) or ["*"]
    if not any(_may_approve(policy, user, k) for k in kinds):
        raise AttestError(f"{user} may approve no kind of change, so cannot mark automated changes reviewed.")


def sign_event(policy: Policy, user: str, event: str, data: dict[str, Any], sign: Signer) -> dict[str, Any]:
    """`data` with its signature and the keys the policy lists for `user` now; the signature
    is checked against those keys before anything is written."""
    keys = list(policy.users[user].keys) if user in policy.users else []
    armored = sign(statement(event, data))
    try:
        sig = signatures.verify(armored, statement(event, data), NAMESPACE, allowed=keys)
    except signatures.SignatureError as exc:
        raise AttestError(f"The signature does not prove {user}: {exc}.") from None
    return {**data, "signed": {"signature": armored, "key": sig.fingerprint, "keys": keys}}


def verify_event(event: str, data: Mapping[str, Any]) -> str | None:
    """None if the stored trust act verifies, else why not (one phrase)."""
    signed = data.get("signed")
    if not isinstance(signed, Mapping) or not isinstance(signed.get("signature"), str):
        return "it carries no signature"
    try:
        sig = signatures.verify(signed["signature"], statement(event, data), NAMESPACE,
                                allowed=list(signed.get("keys") or []))
    except signatures.SignatureError as exc:
        return str(exc)
    if sig.fingerprint != signed.get("key"):
        return f"the recorded key {signed.get('key')} is not the key that signed ({sig.fingerprint})"
    return None


def verify_acts(rows) -> tuple[int, list[dict[str, Any]]]:
    """Every signed trust act in the audit rows (`Ledger.audit_rows()`), re-verified: how many
    were checked, and the failures (seq, event, why). An act recorded without a signature
    (before acts were signed) fails: nothing proves who did it."""
    checked, failures = 0, []
    for row in rows:
        if row.get("event") not in SIGNED_EVENTS:
            continue
        checked += 1
        why = verify_event(row["event"], row.get("data") or {})
        if why:
            failures.append({"seq": row.get("seq"), "event": row["event"], "by": (row.get("data") or {}).get("by"),
                             "why": why})
    return checked, failures
