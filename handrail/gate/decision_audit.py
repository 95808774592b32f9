"""Re-verify, offline, every decision the ledger says was accepted.

Each `decision.accepted` event keeps the signed document, its SSH signature and the
signer's key fingerprint; the `approval.requested` event of the same step keeps the
change digest and the policy's keys in force when the step asked. So years later,
with nothing but the ledger, anyone can check that every counted decision was signed
by a key the policy then listed for that person, over that exact change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from handrail.gate import decisions
from handrail.gate.models import Decision


@dataclass
class SignatureReport:
    checked: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def verify_decision_signatures(rows: Iterable[dict[str, Any]]) -> SignatureReport:
    """Rows as `Ledger.audit_rows()` yields them, in chain order."""
    report = SignatureReport()
    asked: dict[tuple[str, str | None], dict[str, Any]] = {}
    for row in rows:
        key = (row.get("run_id"), row.get("step_id"))
        data = row.get("data") or {}
        if row.get("event") == "approval.requested":
            asked[key] = data
            continue
        if row.get("event") != "decision.accepted":
            continue
        report.checked += 1
        why = _check(row, data, asked.get(key))
        if why:
            report.failures.append({"seq": row.get("seq"), "run_id": row.get("run_id"), "step_id": row.get("step_id"),
                                    "why": why})
    return report


def _check(row: dict[str, Any], data: dict[str, Any], request: dict[str, Any] | None) -> str | None:
    if request is None:
        return "no approval.requested event for this step precedes the decision"
    try:
        decision = Decision.model_validate(data.get("decision") or {})
        document = decisions.read_document(decision)
        fingerprint = decisions.verify_signer(decision, document, request.get("keys") or {})
    except decisions.Refused as refused:
        return str(refused)
    except ValueError as exc:
        return f"the stored decision is malformed ({exc.__class__.__name__})"
    if document.run_id != row.get("run_id") or document.step_id != row.get("step_id"):
        return f"the signature is for {document.run_id} step {document.step_id}, stored under another step"
    if document.change_digest != request.get("change_digest"):
        return "the signed change digest is not the digest the step asked about"
    if data.get("signer_fingerprint") != fingerprint:
        return f"the recorded signer key {data.get('signer_fingerprint')} is not the key that signed ({fingerprint})"
    return None
