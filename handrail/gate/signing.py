"""The signer's side of a decision or a run request: write the document, sign it.

Kept apart from `handrail.gate.decisions`, which the workflow uses to *verify* (and which
must therefore stay free of clocks and randomness): making a decision needs both, a fresh
nonce and the time it was issued. The CLI and the tests call these.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

from pydantic import BaseModel

from handrail.gate import signatures
from handrail.gate.decisions import DEFAULT_VALIDITY, DecisionDocument, change_digest
from handrail.gate.models import Decision, StepRecord
from handrail.gate.requests import RequestDocument, trigger_digest


def new_document(*, run_id: str, step: StepRecord, signer: str, approve: bool, reason: str = "",
                 issued_at: datetime | None = None, valid_for: timedelta = DEFAULT_VALIDITY,
                 nonce: str | None = None) -> DecisionDocument:
    issued = issued_at or datetime.now(timezone.utc)
    return DecisionDocument(
        run_id=run_id, step_id=step.step_id, change_digest=step.change_digest or change_digest(step),
        decision="approve" if approve else "deny", reason=reason, signer=signer,
        issued_at=issued, not_after=issued + valid_for, nonce=nonce or secrets.token_hex(16),
    )


def signed_decision(document: DecisionDocument, signature: str, decision_id: str | None = None) -> Decision:
    """The signal to send: the document's exact text, its signature, and a copy of its fields."""
    return Decision(
        id=decision_id or document.nonce, step=document.step_id, approver=document.signer,
        approve=document.decision == "approve", reason=document.reason,
        document=document.canonical(), signature=signature,
    )


def sign_decision(private_key, document: DecisionDocument, decision_id: str | None = None) -> Decision:
    """Sign in-process with an OpenSSH private key (ed25519 or ECDSA)."""
    armored = signatures.sign(private_key, document.canonical().encode(), signatures.DECISION_NAMESPACE)
    return signed_decision(document, armored, decision_id)


def new_request(workflow: str, run_id: str, trigger: BaseModel, requested_by: str,
                issued_at: datetime | None = None, valid_for: timedelta = DEFAULT_VALIDITY) -> RequestDocument:
    issued = issued_at or datetime.now(timezone.utc)
    return RequestDocument(workflow=workflow, run_id=run_id, trigger_digest=trigger_digest(trigger),
                           requested_by=requested_by, issued_at=issued, not_after=issued + valid_for,
                           nonce=secrets.token_hex(16))
