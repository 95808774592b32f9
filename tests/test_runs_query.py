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


# -- a rollback id: one row, in the state `handrail show` gives it ---------------------------------------
RUN = "egress-block-203.0.113.7-3c88908c71"
ROLLBACK = f"rollback-{RUN}"
T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


def _at(minutes: int) -> datetime:
    from datetime import timedelta

    return T0 + timedelta(minutes=minutes)


class _Execution:
    def __init__(self, run: str, status: str, start: int, state: str | None, requested_by: str):
        from temporalio.client import WorkflowExecutionStatus
        from temporalio.common import SearchAttributePair, TypedSearchAttributes

        from handrail.gate.search import REQUESTER_KEY, RUNBOOK_KEY, STATE_KEY

        self.id, self.run_id, self.workflow_type = ROLLBACK, run, "RollbackRun"
        self.status = WorkflowExecutionStatus[status]
        self.start_time, self.close_time = _at(start), _at(start) if status != "RUNNING" else None
        pairs = [SearchAttributePair(RUNBOOK_KEY, "rollback"), SearchAttributePair(REQUESTER_KEY, requested_by)]
        self.typed_search_attributes = TypedSearchAttributes(
            pairs + ([SearchAttributePair(STATE_KEY, state)] if state else []))


class _Ledger:
    def __init__(self, rows: dict[str, list[dict]]):
        self.rows = rows

    def audit_rows(self, run_id: str):
        return list(self.rows.get(run_id, []))

    def close(self):
        pass


class _Client:
    """Visibility (newest first) and the latest execution's status query, as Temporal answers them."""

    def __init__(self, executions: list[_Execution], status):
        self.executions, self.status = executions, status

    async def list_workflows(self, query: str, page_size: int):
        for execution in self.executions:
            yield execution

    def get_workflow_handle(self, workflow_id: str):
        client = self

        class Handle:
            async def query(self, name, **_):
                return client.status

            async def describe(self, **_):
                return type("Description", (), {"run_id": client.executions[0].run_id})()

        return Handle()


def _audit_event(run_id: str, event: str, minute: int, event_id: str = "", **data) -> dict:
    return {"id": event_id or f"{run_id}:x:{event}", "event": event, "at": _at(minute).isoformat(),
            "run_id": run_id, "data": data}


def _refused(execution: str, minute: int, by: str, why: str) -> dict:
    return _audit_event(RUN, "rollback.refused", minute, f"{ROLLBACK}:{execution}:orig-1", by=by, why=why)


ALICE_WHY = f"alice is a party to run {RUN} (its requester) and can never roll it back (separation of duties)"
DAVE_WHY = "dave may not roll back egress-block runs (allowed: role soc-lead)"


def _scenario(outcome: str | None):
    """alice and dave asked first and were refused; then carol's rollback ran to `outcome` (None: not
    yet asked by anyone allowed, so the latest execution is dave's refused request)."""
    from handrail.gate.models import RunState, RunStatus

    original = [_audit_event(RUN, "run.started", 0, runbook="egress-block", requested_by="alice",
                             subject="203.0.113.7"),
                _refused("r1", 5, "alice", ALICE_WHY), _refused("r2", 6, "dave", DAVE_WHY)]
    executions = [_Execution("r2", "FAILED", 6, "running", "dave"), _Execution("r1", "FAILED", 5, "running", "alice")]
    own, status = [], None
    if outcome is not None:
        original.append(_audit_event(RUN, "rollback.started", 7, f"{ROLLBACK}:r3:orig-1", by="carol",
                                     rollback=ROLLBACK))
        summary = {"rolls_back": RUN, "outcome": outcome, "failed": [], "denied": []}
        own = [_audit_event(ROLLBACK, "run.started", 7, runbook="rollback", requested_by="carol", subject=RUN),
               _audit_event(ROLLBACK, "run.finished", 8, state="completed", summary=summary)]
        handrail_state = outcome if outcome != "nothing_to_do" else "completed"
        executions.insert(0, _Execution("r3", "COMPLETED", 7, handrail_state, "carol"))
        status = RunStatus(run_id=ROLLBACK, runbook="rollback", state=RunState.COMPLETED, requested_by="carol",
                           subject=RUN, started_at=_at(7), summary=summary)
    return _Ledger({RUN: original, ROLLBACK: own}), _Client(executions, status)


@pytest.mark.parametrize("outcome, state", [
    ("rolled_back", "rolled_back"), ("partly_rolled_back", "partly_rolled_back"), ("denied", "denied"),
    ("needs_attention", "needs_attention"), ("nothing_to_do", "completed"), (None, "refused")])
async def test_a_rollback_id_is_one_row_and_show_says_the_same_state(monkeypatch, outcome, state):
    from starter import ops, runs_cmd

    ledger, client = _scenario(outcome)
    monkeypatch.setattr(runs_cmd, "_open_ledger", lambda settings: ledger)
    monkeypatch.setattr(ops, "_audit_rows", lambda settings, run_id: ledger.audit_rows(run_id))
    [row] = await runs_cmd.list_runs(client, settings=None)  # refused requests are folded, not listed again
    shown = await ops.run_status(client, None, ROLLBACK)
    offline = await ops.run_status(None, None, ROLLBACK, "Temporal is not answering")  # rebuilt from the ledger
    assert row["run_id"] == ROLLBACK and row["subject"] == RUN
    assert row["state"] == shown.state.value == offline.state.value == state
    refused_before = [(r["by"], r["why"]) for r in row["refused_before"]]
    assert refused_before == [(r.by, r.why) for r in shown.refused_before]
    if outcome is None:  # dave's request is the latest: refused, alice's folded into it
        assert row["why"] == DAVE_WHY and row["requested_by"] == "dave" and refused_before == [("alice", ALICE_WHY)]
        assert shown.error == f"rollback refused: {DAVE_WHY}" and shown.requested_by == "dave"
        assert runs_cmd.note(row) == f"refused: {DAVE_WHY}; 1 earlier request refused (alice): {ALICE_WHY}"
    else:
        assert row["why"] is None and row["requested_by"] == "carol"
        assert refused_before == [("alice", ALICE_WHY), ("dave", DAVE_WHY)]
        assert runs_cmd.note(row) == f"2 earlier requests refused (alice, dave); the last: {DAVE_WHY}"
    # a filter sees the row's state, never a superseded request's
    wanted = await runs_cmd.list_runs(client, None, states=["refused"])
    assert [r["run_id"] for r in wanted] == ([ROLLBACK] if outcome is None else [])


def test_refused_and_partly_rolled_back_are_states_to_filter_on():
    assert build_query(["refused"]).endswith('ExecutionStatus IN ("Failed")')
    assert build_query(["partly_rolled_back"]).endswith('HandrailState IN ("partly_rolled_back")')
