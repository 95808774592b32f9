"""`handrail runs`: the visibility query is built from known names only, and the ledger corrects the state."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from starter.output import USAGE, CliError
from starter.runs_cmd import RUNBOOK_WORKFLOWS, build_query, choices, state_from_ledger

pytestmark = pytest.mark.unit

ALL_TYPES = ('WorkflowType IN ("EgressBlock", "ExfiltrationFollowUp", "ExfiltrationResponse", "IntelApply", '
             '"IntelSync", "PhishingResponse", "PrivilegeGuard", "RogueDevice", "RollbackRun")')


def test_no_filter_asks_for_every_runbook_workflow_and_nothing_else():
    assert build_query() == ALL_TYPES


def test_filters_become_clauses_on_the_search_attributes():
    query = build_query(["awaiting_approval"], ["egress-block"], datetime(2026, 10, 1, 12, 0, tzinfo=UTC))
    assert query == ('WorkflowType IN ("EgressBlock") AND HandrailRunbook IN ("egress-block") '
                     'AND HandrailState IN ("awaiting_approval") AND StartTime >= "2026-10-01T12:00:00Z"')


def test_states_repeat_or_come_as_a_comma_list():
    assert choices(["denied,rejected", "denied", " completed "], ("completed", "denied", "rejected"), "--state") \
        == ["denied", "rejected", "completed"]
    assert build_query(["denied,rejected"]).endswith('HandrailState IN ("denied", "rejected")')


def test_a_state_the_ledger_corrects_also_asks_for_what_temporal_still_says():
    assert build_query(["expired"]).endswith('HandrailState IN ("completed")')
    rolled = build_query(["rolled_back"])
    assert 'HandrailState IN ("compensated", "completed", "denied", "failed", "needs_attention", "rejected", ' \
           '"rolled_back")' in rolled
    stopped = build_query(["terminated", "awaiting_approval"])
    assert stopped.endswith('(HandrailState IN ("awaiting_approval") OR ExecutionStatus IN ("Terminated"))')


@pytest.mark.parametrize("states, runbooks", [
    (["bogus"], None),
    (['completed") OR WorkflowType = "Preflight'], None),
    (None, ["egress-block\" OR 1=1"]),
    (None, ["expiry"]),  # an engine workflow, not a runbook
])
def test_an_unknown_state_or_runbook_is_a_usage_error_not_query_text(states, runbooks):
    with pytest.raises(CliError) as refused:
        build_query(states, runbooks)
    assert refused.value.code == USAGE
    assert "is not one Handrail knows; use one of:" in str(refused.value)


def test_the_runbook_workflows_are_the_workers_runbook_workflows():
    from temporalio import workflow

    from handrail.runbooks.exfiltration import RUNBOOK as EXFILTRATION
    from handrail.runbooks.phishing.rules import RUNBOOK as PHISHING
    from handrail.runbooks.privilege import RUNBOOK as PRIVILEGE
    from handrail.runbooks.rogue import RUNBOOK as ROGUE
    from worker import WORKFLOWS
    from workflows.egress_block import RUNBOOK as EGRESS
    from workflows.gate import RunbookWorkflow
    from workflows.rollback import RUNBOOK as ROLLBACK

    runbook_types = {workflow._Definition.must_from_class(w).name for w in WORKFLOWS if issubclass(w, RunbookWorkflow)}
    assert set(RUNBOOK_WORKFLOWS) == runbook_types
    assert {RUNBOOK_WORKFLOWS[t] for t in ("EgressBlock", "PhishingResponse", "ExfiltrationResponse", "PrivilegeGuard",
                                           "RogueDevice", "RollbackRun")} \
        == {EGRESS, PHISHING, EXFILTRATION, PRIVILEGE, ROGUE, ROLLBACK}


def _event(event: str, **data) -> dict:
    return {"event": event, "data": data}


def test_the_ledger_knows_a_run_was_rolled_back_or_expired():
    applied = _event("change.applied", change_id="c1", expires_at="2026-10-02T00:00:00+00:00")
    assert state_from_ledger("completed", [applied]) == "completed"  # its change still held
    assert state_from_ledger("completed", [applied, _event("change.reverted", change_id="c1", reason="expiry")]) \
        == "expired"
    assert state_from_ledger("completed", [applied, _event("run.rolled_back")]) == "rolled_back"
    assert state_from_ledger("denied", [_event("run.needs_attention", failed=["c1"])]) == "needs_attention"
    untimed = _event("change.applied", change_id="c2")
    assert state_from_ledger("completed", [applied, untimed,
                                           _event("change.reverted", change_id="c1", reason="expiry")]) == "expired"
    assert state_from_ledger("completed", [untimed]) == "completed"  # nothing had a time-to-live
    assert state_from_ledger("awaiting_approval", []) == "awaiting_approval"
