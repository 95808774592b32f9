"""Signed decisions: the document an approver signs, and the change digest it is bound to.

The approver approves exactly what will run, like a saved Terraform plan: the decision
document names the run, the step and the step's *change digest* (sha256 over the
canonical JSON of the change's kind, target and params, the trust mode, and the
guardrail verdicts and thresholds the approver was shown). The document is signed with
the approver's SSH key (`ssh-keygen -Y sign -n handrail-decision`), so who decided is
proven, and anyone can re-verify it later from the audit alone.

Pure and deterministic: the workflow calls `check_decision` with `workflow.now()`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from handrail.gate import signatures
from handrail.gate.models import Decision, StepRecord

DEFAULT_VALIDITY = timedelta(minutes=15)
MAX_VALIDITY = timedelta(hours=24)
CLOCK_SKEW = timedelta(minutes=5)
MAX_DOCUMENT = 4096
MAX_SIGNATURE = 8192


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the same bytes on every machine for the same value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest_covers(step: StepRecord) -> dict[str, Any]:
    """What the change digest covers: exactly what the approver is shown."""
    return {
        "kind": step.change.kind,
        "target": step.change.target,
        "params": step.change.params,
        "mode": step.mode.value if step.mode else None,
        "verdicts": [
            {"guardrail": v.guardrail, "outcome": v.outcome.value, "reason": v.reason,
             "threshold": v.threshold, "threshold_source": v.threshold_source}
            for v in step.verdicts
        ],
        "thresholds": dict(step.thresholds),
        # only when set: digests of steps begun before the field existed stay what they were
        **({"expires_after_s": step.expires_after_s} if step.expires_after_s else {}),
    }


def change_digest(step: StepRecord) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(digest_covers(step))).hexdigest()


class SignedDocument(BaseModel):
    """What every signed document carries: a version, a validity window and a nonce, and one
    canonical text (sorted keys, no spaces) that the signature covers."""

    model_config = ConfigDict(extra="forbid")
    v: Literal[1] = 1
    issued_at: datetime
    not_after: datetime
    nonce: str

    def canonical(self) -> str:
        return canonical_json(self.model_dump(mode="json")).decode()


class DecisionDocument(SignedDocument):
    """What an approver signs. `signer` is the policy user the key must belong to."""

    run_id: str
    step_id: str
    change_digest: str
    decision: Literal["approve", "deny"]
    reason: str = ""
    signer: str


class Refused(ValueError):
    """A decision that cannot count; the message is the reason audited and shown."""


def read_document(decision: Decision) -> DecisionDocument:
    if not decision.document or not decision.signature:
        raise Refused("this decision is not signed (sign it with `handrail approve RUN --key KEY`)")
    if len(decision.document) > MAX_DOCUMENT or len(decision.signature) > MAX_SIGNATURE:
        raise Refused("this decision is too large to be a signed decision")
    try:
        document = DecisionDocument.model_validate_json(decision.document)
    except ValidationError:
        raise Refused("the signed decision document is malformed") from None
    if document.issued_at.tzinfo is None or document.not_after.tzinfo is None:
        raise Refused("the signed decision document's times carry no time zone")
    if (decision.approver and decision.approver != document.signer) or \
            (decision.step and decision.step != document.step_id) or \
            decision.approve != (document.decision == "approve"):
        raise Refused("the decision's fields do not match the document that was signed")
    return document


def user_holding(fingerprint: str, keys: dict[str, list[str]]) -> str | None:
    for user, lines in keys.items():
        for line in lines:
            try:
                if signatures.parse_public_key(line).fingerprint == fingerprint:
                    return user
            except signatures.SignatureError:
                continue
    return None


def verify_signer(decision: Decision, document: DecisionDocument, keys: dict[str, list[str]]) -> str:
    """Verify the signature against the signer's keys in the policy; return the key's fingerprint."""
    mine = keys.get(document.signer) or []
    if not mine:
        raise Refused(f"no key for {document.signer} in the policy")
    try:
        sig = signatures.parse_signature(decision.signature)
    except signatures.SignatureError as exc:
        raise Refused(f"the signature is unusable: {exc}") from None
    try:
        signatures.verify(decision.signature, document.canonical().encode(), signatures.DECISION_NAMESPACE, mine)
    except signatures.SignatureError as exc:
        owner = user_holding(sig.fingerprint, keys)
        if "not one of the allowed keys" in str(exc):
            if owner:
                raise Refused(f"the signing key {sig.fingerprint} belongs to {owner}, not {document.signer}") from None
            raise Refused(f"the signing key {sig.fingerprint} is not {document.signer}'s key in the policy") from None
        raise Refused(f"the signature does not verify: {exc}") from None
    if decision.document != document.canonical():
        raise Refused("the signed decision document is not in canonical form")
    return sig.fingerprint


def check_window(document: DecisionDocument, now: datetime) -> None:
    if document.not_after - document.issued_at > MAX_VALIDITY:
        raise Refused("a decision may be valid for at most 24 hours")
    if document.not_after <= document.issued_at:
        raise Refused("the decision's validity window is empty")
    if now > document.not_after:
        raise Refused(f"this decision expired {_ago(now - document.not_after)} ago")
    if document.issued_at - now > CLOCK_SKEW:
        ahead = _ago(document.issued_at - now)
        raise Refused(f"this decision is issued {ahead} in the future (check the signer's clock)")


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    if seconds < 7200:
        return f"{seconds // 60} minutes"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} hours"
    return f"{seconds // 86400} days"
