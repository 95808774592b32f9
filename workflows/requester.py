"""Proving a run's requester in workflow code (the rules are in handrail.gate.requests).

Called by the gate before a run's first change, against that step's policy snapshot, so
a run never changes anything in the name of someone who did not ask for it. The workflow
only gathers what Temporal says about the run's start (`requester_evidence`); the proof is
the pure `handrail.gate.requests.prove_requester`, which the gate's activity uses too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from handrail.gate.models import GatePolicy
    from handrail.gate.requests import REQUEST_MEMO, RequesterEvidence
    from handrail.gate.requests import prove_requester as prove

SCHEDULED_BY = SearchAttributeKey.for_keyword("TemporalScheduledById")


def requester_evidence() -> RequesterEvidence:
    """How this run was started, as Temporal tells the workflow."""
    info = workflow.info()
    if info.parent is not None:
        return RequesterEvidence(workflow=info.workflow_type, run_id=info.workflow_id,
                                 parent=info.parent.workflow_id)
    try:
        schedule = info.typed_search_attributes.get(SCHEDULED_BY)
    except Exception:
        schedule = None
    if schedule:
        return RequesterEvidence(workflow=info.workflow_type, run_id=info.workflow_id, schedule=schedule)
    try:
        memo = workflow.memo_value(REQUEST_MEMO, None, type_hint=dict)
    except Exception:
        memo = None
    return RequesterEvidence(workflow=info.workflow_type, run_id=info.workflow_id, memo=memo)


def prove_requester(claimed: str, digest: str | None, policy: GatePolicy, started_at: datetime) -> dict[str, Any]:
    """How the requester is known (for the audit); raises Refused when it is not."""
    return prove(requester_evidence(), claimed, digest, policy, started_at)
