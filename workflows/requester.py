"""Proving a run's requester in workflow code (the rules are in handrail.gate.requests).

Called by the gate before a run's first change, against that step's policy snapshot, so
a run never changes anything in the name of someone who did not ask for it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from handrail.gate.decisions import Refused
    from handrail.gate.models import GatePolicy
    from handrail.gate.requests import REQUEST_MEMO, check_request

SCHEDULED_BY = SearchAttributeKey.for_keyword("TemporalScheduledById")


def prove_requester(claimed: str, digest: str | None, policy: GatePolicy, started_at: datetime) -> dict[str, Any]:
    """How the requester is known (for the audit); raises Refused when it is not."""
    info = workflow.info()
    if info.parent is not None:
        return {"how": f"started by workflow {info.parent.workflow_id}"}
    try:
        schedule = info.typed_search_attributes.get(SCHEDULED_BY)
    except Exception:
        schedule = None
    if schedule:
        if claimed in policy.user_roles:
            raise Refused(f"a run started by schedule {schedule} cannot act in the name of {claimed}")
        return {"how": f"started by schedule {schedule}"}
    try:
        memo = workflow.memo_value(REQUEST_MEMO, None, type_hint=dict)
    except Exception:
        memo = None
    fingerprint = check_request(memo, workflow=info.workflow_type, run_id=info.workflow_id, digest=digest,
                                claimed=claimed, keys=policy.user_keys, started_at=started_at)
    return {"how": "signed request", "signer_fingerprint": fingerprint, "document": memo["document"],
            "signature": memo["signature"]}
