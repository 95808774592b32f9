"""Proven requesters: a run started by a person carries that person's signature over the trigger.

Separation of duties is only as good as the requester's identity. `handrail run …` signs
a request document (namespace `handrail-request`) naming the workflow type, the run id
and the sha256 of the trigger's canonical JSON, and starts the run with it in the memo
(`handrail-request`). The workflow verifies it against the run's policy snapshot before
its first change, and the requester is then the verified signer.

Runs nobody signs are the service's own, recognised by how Temporal started them, never
by a name someone typed:
  * a child workflow (a poller's run for a mailbox message, DLP alert, IAM or NAC event;
    a runbook's follow-up): only workflow code on Handrail's workers can start one, and
    the parent established the requester it passes down;
  * a run started by a Temporal Schedule (`TemporalScheduledById`, set by the server):
    it may carry only a service name (`handrail`, `mailbox`, `dlp-poller`, …), never the
    name of a policy user.
Any other run (a client call from the CLI, the Web UI or the `temporal` CLI) must carry a
valid signature by the requester it names, or it is rejected before changing anything.
So nobody can start a run as someone else, nor as `handrail`, from the CLI.

Pure and deterministic: the workflow passes in what Temporal told it and `workflow.now()`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from handrail.gate import signatures
from handrail.gate.decisions import (
    CLOCK_SKEW,
    MAX_DOCUMENT,
    MAX_SIGNATURE,
    Refused,
    SignedDocument,
    canonical_json,
    user_holding,
)
from handrail.gate.models import GatePolicy, RequesterEvidence

REQUEST_MEMO = "handrail-request"
SERVICE = "handrail"
DEFAULT_VALIDITY = timedelta(minutes=15)


def trigger_digest(trigger: Any) -> str:
    value = trigger.model_dump(mode="json") if isinstance(trigger, BaseModel) else trigger
    return "sha256:" + hashlib.sha256(canonical_json(value)).hexdigest()


class RequestDocument(SignedDocument):
    """What a requester signs to start a run."""

    workflow: str
    run_id: str
    trigger_digest: str
    requested_by: str


def request_memo(document: RequestDocument, signature: str) -> dict[str, str]:
    return {"document": document.canonical(), "signature": signature}


def check_request(memo: Any, *, workflow: str, run_id: str, digest: str | None, claimed: str,
                  keys: dict[str, list[str]], started_at: datetime) -> str:
    """Verify a signed request; return the signer's key fingerprint or raise Refused."""
    if not isinstance(memo, dict) or not memo.get("document") or not memo.get("signature"):
        raise Refused(f"the run names {claimed} as requester but carries no signature from {claimed} "
                      "(start runs with `handrail run …`, which signs the request)")
    text, armored = str(memo["document"]), str(memo["signature"])
    if len(text) > MAX_DOCUMENT or len(armored) > MAX_SIGNATURE:
        raise Refused("the run's signed request is too large")
    try:
        document = RequestDocument.model_validate_json(text)
    except ValidationError:
        raise Refused("the run's signed request is malformed") from None
    if document.canonical() != text:
        raise Refused("the run's signed request is not in canonical form")
    if document.requested_by != claimed:
        raise Refused(f"the run names {claimed} as requester but the request was signed for {document.requested_by}")
    mine = keys.get(claimed) or []
    if not mine:
        raise Refused(f"no key for {claimed} in the policy, so {claimed} cannot request a run")
    try:
        sig = signatures.verify(armored, text.encode(), signatures.REQUEST_NAMESPACE, mine)
    except signatures.SignatureError as exc:
        try:
            owner = user_holding(signatures.parse_signature(armored).fingerprint, keys)
        except signatures.SignatureError:
            owner = None
        if owner:
            raise Refused(f"the run's request is signed with {owner}'s key, not {claimed}'s") from None
        raise Refused(f"the run's request signature does not verify for {claimed}: {exc}") from None
    if document.workflow != workflow or document.run_id != run_id:
        raise Refused(f"the signed request is for {document.workflow} {document.run_id}, not {workflow} {run_id}")
    if digest is not None and document.trigger_digest != digest:
        raise Refused("the signed request is for another trigger than the one this run was started with")
    if started_at > document.not_after:
        raise Refused("the signed request had expired when the run started")
    if document.issued_at - started_at > CLOCK_SKEW:
        raise Refused("the signed request is issued in the future (check the requester's clock)")
    return sig.fingerprint


def prove_requester(evidence: RequesterEvidence, claimed: str, digest: str | None, policy: GatePolicy,
                    started_at: datetime) -> dict[str, Any]:
    """How the requester is known (for the audit); raises Refused when it is not."""
    if evidence.parent is not None:
        return {"how": f"started by workflow {evidence.parent}"}
    if evidence.schedule:
        if claimed in policy.user_roles:
            raise Refused(f"a run started by schedule {evidence.schedule} cannot act in the name of {claimed}")
        return {"how": f"started by schedule {evidence.schedule}"}
    memo = evidence.memo
    fingerprint = check_request(memo, workflow=evidence.workflow, run_id=evidence.run_id, digest=digest,
                                claimed=claimed, keys=policy.user_keys, started_at=started_at)
    return {"how": "signed request", "signer_fingerprint": fingerprint, "document": memo["document"],
            "signature": memo["signature"]}
