"""`handrail show` of a rolled-back run: the rollback folded into each step, from the run's audit rows."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from handrail.gate.models import Change, RunState, RunStatus, StepRecord, StepState
from handrail.gate.rollback_outcome import apply_rollback_outcome
from handrail.gate.timeline import status_from_audit
from starter.common import rollback_lines

pytestmark = pytest.mark.unit

RUN = "egress-block-203.0.113.7-3c88908c71"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)


def _status() -> RunStatus:
    steps = [StepRecord(step_id=f"s0{i}-firewall.egress_block", change=Change(kind="firewall.egress_block",
                        target=f"203.0.113.{i}"), state=StepState.APPLIED, change_id=f"c{i}",
                        note="applied after approval", expires_at=datetime(2025, 3, 2, tzinfo=timezone.utc))
             for i in (1, 2)]
    return RunStatus(run_id=RUN, runbook="egress-block", state=RunState.COMPLETED, requested_by="alice",
                     subject="203.0.113.1", started_at=T0, steps=steps)


def _row(event: str, at: str, **data) -> dict:
    return {"event": event, "at": at, "run_id": RUN, "data": data}


def _rolled_back(*, failed=()) -> list[dict]:
    rows = [_row("rollback.started", "2025-03-01T10:00:00+00:00", by="carol", rollback=f"rollback-{RUN}"),
            _row("change.reverted", "2025-03-01T10:00:05+00:00", change_id="c2", reason="rollback", by="carol",
                 verified=True, detail="tool state matches the recorded before-state")]
    if not failed:
        rows.append(_row("change.reverted", "2025-03-01T10:00:06+00:00", change_id="c1", reason="rollback",
                         by="carol", verified=True, detail="tool state matches the recorded before-state"))
    name = "run.needs_attention" if failed else "run.rolled_back"
    rows.append(_row(name, "2025-03-01T10:00:07+00:00", by="carol", failed=list(failed), denied=[]))
    return rows


def test_each_undone_step_is_rolled_back_with_what_the_tool_holds_and_no_expiry():
    status = apply_rollback_outcome(_status(), _rolled_back())
    assert status.state == RunState.ROLLED_BACK
    for step in status.steps:
        assert step.state == StepState.ROLLED_BACK and step.expires_at is None
        assert step.note.startswith("rolled back by carol at 2025-03-01 10:00:0")
        assert step.note.endswith("tool state matches the recorded before-state")
    note = status.rollback
    assert note.requested_by == "carol" and note.outcome == "rolled_back" and note.rollback_ids == [f"rollback-{RUN}"]
    assert rollback_lines(note) == [
        "rollback requested by carol at 2025-03-01 10:00:00Z: rolled_back (ended 2025-03-01 10:00:07Z)",
        f"rollback run: handrail show rollback-{RUN}"]
    # the JSON `show --json` prints carries the same
    dumped = status.model_dump(mode="json")
    assert dumped["steps"][0]["state"] == "rolled_back" and dumped["rollback"]["requested_by"] == "carol"


def test_a_change_the_rollback_left_stays_applied_and_says_so_and_a_retry_is_named():
    rows = _rolled_back(failed=["c1"])
    status = apply_rollback_outcome(_status(), rows)
    assert status.state == RunState.NEEDS_ATTENTION and "still held: c1" in status.error
    held, undone = status.steps
    assert held.state == StepState.APPLIED and held.expires_at is not None  # its TTL still runs
    assert "could not undo" in held.note and undone.state == StepState.ROLLED_BACK
    rows += [_row("rollback.started", "2025-03-01T11:00:00+00:00", by="dave", rollback=f"rollback-{RUN}-retry-2"),
             _row("change.reverted", "2025-03-01T11:00:01+00:00", change_id="c1", reason="rollback", by="dave",
                  verified=True, detail="tool state matches the recorded before-state"),
             _row("run.rolled_back", "2025-03-01T11:00:02+00:00", by="dave", failed=[], denied=[])]
    status = apply_rollback_outcome(_status(), rows)
    assert status.state == RunState.ROLLED_BACK and all(s.state == StepState.ROLLED_BACK for s in status.steps)
    assert status.rollback.requested_by == "dave"
    assert status.rollback.rollback_ids == [f"rollback-{RUN}", f"rollback-{RUN}-retry-2"]
    assert status.steps[0].note.startswith("rolled back by dave")


def test_expiry_and_compensation_are_left_alone_and_a_run_never_rolled_back_is_unchanged():
    status = _status()
    status.steps[0].state = StepState.EXPIRED
    rows = [_row("change.reverted", "2025-03-02T00:00:01+00:00", change_id="c1", reason="expiry", by="handrail",
                 detail="tool state matches the recorded before-state")]
    out = apply_rollback_outcome(status, rows)
    assert out.rollback is None and out.state == RunState.COMPLETED
    assert [s.state for s in out.steps] == [StepState.EXPIRED, StepState.APPLIED]


def test_a_timeline_rebuilt_from_the_ledger_says_rolled_back_too():
    rows = [{"event": "run.started", "at": "2025-03-01T09:00:00+00:00",
             "data": {"runbook": "egress-block", "requested_by": "alice", "subject": "203.0.113.1"}},
            {"event": "step.requested", "at": "2025-03-01T09:00:01+00:00", "step_id": "s01",
             "data": {"change": {"kind": "firewall.egress_block", "target": "203.0.113.1"}}},
            {"event": "change.applied", "at": "2025-03-01T09:00:02+00:00", "step_id": "s01",
             "data": {"change_id": "c1", "expires_at": "2025-03-02T09:00:00+00:00"}},
            _row("rollback.started", "2025-03-01T10:00:00+00:00", by="carol", rollback=f"rollback-{RUN}"),
            _row("change.reverted", "2025-03-01T10:00:05+00:00", change_id="c1", reason="rollback", by="carol",
                 detail="tool state matches the recorded before-state"),
            _row("run.rolled_back", "2025-03-01T10:00:07+00:00", by="carol", failed=[], denied=[])]
    status = apply_rollback_outcome(status_from_audit(RUN, rows), rows)
    assert status.steps[0].state == StepState.ROLLED_BACK and status.steps[0].expires_at is None
    assert status.state == RunState.ROLLED_BACK and status.rollback.outcome == "rolled_back"


# -- a rollback run's own state: one reading for `handrail show rollback-RUN` and `handrail runs` --------
ROLLBACK = f"rollback-{RUN}"


def _by(execution: str, event: str, at: str, seq: int = 1, **data) -> dict:
    """An event a rollback execution writes into the rolled-back run's audit (workflows/rollback.py)."""
    return {"id": f"{ROLLBACK}:{execution}:orig-{seq}", **_row(event, at, **data)}


REFUSED_ALICE = _by("r1", "rollback.refused", "2025-03-01T09:59:00+00:00", by="alice",
                    why="alice is a party to run x")
REFUSED_DAVE = _by("r2", "rollback.refused", "2025-03-01T09:59:30+00:00", by="dave",
                   why="dave may not roll back egress-block runs")
STARTED_CAROL = _by("r3", "rollback.started", "2025-03-01T10:00:00+00:00", by="carol", rollback=ROLLBACK)


def test_a_rollback_run_ids_names_the_run_it_rolls_back():
    from handrail.gate.rollback_outcome import rolled_back_runs

    assert rolled_back_runs(ROLLBACK) == [RUN]
    assert rolled_back_runs(f"{ROLLBACK}-retry-2") == [RUN, f"{RUN}-retry-2"]
    assert rolled_back_runs(RUN) == [] and rolled_back_runs("rollback-") == []


def test_each_execution_of_a_rollback_id_is_one_attempt_refused_or_run():
    from handrail.gate.rollback_outcome import rollback_attempts

    other = {**REFUSED_ALICE, "id": f"{ROLLBACK}-retry-2:r9:orig-1"}  # another workflow id: not these
    rejected = _by("r4", "rollback.refused", "2025-03-01T10:01:01+00:00", seq=2, by="bob", why="not proven")
    rows = [REFUSED_ALICE, other, REFUSED_DAVE, STARTED_CAROL,
            _by("r4", "rollback.started", "2025-03-01T10:01:00+00:00", by="bob", rollback=ROLLBACK), rejected]
    attempts = rollback_attempts(ROLLBACK, rows)
    assert [(a.run, a.by, a.refused) for a in attempts] == [
        ("r1", "alice", "alice is a party to run x"), ("r2", "dave", "dave may not roll back egress-block runs"),
        ("r3", "carol", None), ("r4", "bob", "not proven")]  # a request not proven started, then was refused


@pytest.mark.parametrize("own, outcome, shown", [
    ("completed", "rolled_back", "rolled_back"),
    ("completed", "partly_rolled_back", "partly_rolled_back"),
    ("completed", "denied", "denied"),
    ("completed", "needs_attention", "needs_attention"),
    ("completed", "nothing_to_do", "completed"),  # nothing undone: the workflow leaves HandrailState completed
    ("awaiting_approval", None, "awaiting_approval"),
    ("rolled_back", "rolled_back", "rolled_back"),  # what visibility already says
])
def test_a_rollback_that_ran_is_shown_in_its_outcome_as_the_workflow_sets_handrail_state(own, outcome, shown):
    from handrail.gate.rollback_outcome import rollback_run_state, rollback_view

    assert rollback_run_state(own, {"outcome": outcome} if outcome else {}) == shown
    view = rollback_view(ROLLBACK, [REFUSED_ALICE, REFUSED_DAVE, STARTED_CAROL], own,
                         {"outcome": outcome} if outcome else {})
    assert view.state == shown and view.current.run == "r3" and not view.superseded
    assert [(a.by, a.refused) for a in view.refused_before] == [
        ("alice", "alice is a party to run x"), ("dave", "dave may not roll back egress-block runs")]


def test_a_refused_request_is_refused_with_its_reason_and_superseded_once_another_followed():
    from handrail.gate.rollback_outcome import refused_status, rollback_view

    alone = rollback_view(ROLLBACK, [REFUSED_ALICE], None)
    assert alone.state == "refused" and alone.current.refused == "alice is a party to run x"
    status = refused_status(ROLLBACK, RUN, alone.current)
    assert status.state == RunState.REFUSED and status.requested_by == "alice" and status.subject == RUN
    assert status.error == "rollback refused: alice is a party to run x" and not status.steps
    rows = [REFUSED_ALICE, REFUSED_DAVE, STARTED_CAROL]
    first = rollback_view(ROLLBACK, rows, None, run="r1")
    assert first.state == "refused" and first.superseded and first.refused_before == []
    second = rollback_view(ROLLBACK, rows, None, run="r2")
    assert second.superseded and [a.by for a in second.refused_before] == ["alice"]
    newest = rollback_view(ROLLBACK, rows, "running", run="r5")  # just started: the audit has not heard of it
    assert newest.state == "running" and newest.current is None and not newest.superseded
    assert [a.by for a in newest.refused_before] == ["alice", "dave"]
