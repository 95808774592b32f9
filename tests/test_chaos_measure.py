"""`handrail bench chaos` reports zeros only when nothing was lost, doubled or misrecorded.

The chaos benchmark's verdict (`starter.chaos.measure`) compares each run's outcome and its
ledger records with what the firewall holds. These cases build each failure it must count
and check that it is counted, so that a run of the benchmark saying "lost 0, duplicates 0,
drift 0" is evidence, not a default.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from handrail.gate.models import Change, ChangeRecord, Mode, RunState
from starter.chaos import _ip, measure

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 30, tzinfo=timezone.utc)
IDS = [f"chaos-{i:04d}" for i in range(4)]


def record(i: int, status: str = "applied", reverted: bool = False, n: int = 0) -> ChangeRecord:
    return ChangeRecord(change_id=f"c{i}-{n}", run_id=IDS[i], step_id="s01-firewall.egress_block",
                        change=Change(kind="firewall.egress_block", target=_ip(i)), status=status,
                        before={"blocked": False}, mode=Mode.APPROVE, requested_by="alice", applied_at=NOW,
                        reverted_at=NOW if reverted else None)


def healthy() -> tuple[dict, dict, dict, set]:
    """Run 0 and 1 completed and held; run 2 rolled back cleanly; run 3 denied, nothing applied."""
    records = {IDS[0]: [record(0)], IDS[1]: [record(1)], IDS[2]: [record(2, reverted=True)], IDS[3]: []}
    states = {IDS[0]: RunState.COMPLETED, IDS[1]: RunState.COMPLETED, IDS[2]: RunState.COMPLETED,
              IDS[3]: RunState.DENIED}
    rollbacks = {IDS[2]: "rolled_back"}
    return records, states, rollbacks, {_ip(0), _ip(1)}


def verdict(records, states, rollbacks, edl) -> dict:
    return measure(IDS, records, states, {r: None for r in IDS}, rollbacks, edl)


def test_a_clean_run_is_all_zeros_with_clean_rollbacks():
    result = verdict(*healthy())
    assert (result["lost"], result["duplicates"], result["drift"], result["stuck"]) == (0, 0, 0, 0)
    assert result["completed"] == 3 and result["reported_failed"] == 1
    assert result["rolled_back_clean"] == 1 and result["rolled_back_clean_pct"] == 100.0


def test_a_completed_change_the_firewall_does_not_hold_is_lost_and_drift():
    records, states, rollbacks, edl = healthy()
    result = verdict(records, states, rollbacks, edl - {_ip(1)})
    assert result["lost"] == 1 and result["drift"] == 1 and result["examples"]["lost"] == [IDS[1]]


def test_a_change_recorded_twice_is_a_duplicate():
    records, states, rollbacks, edl = healthy()
    records[IDS[0]] = [record(0), record(0, n=1)]
    assert verdict(records, states, rollbacks, edl)["duplicates"] == 1


def test_an_unsettled_change_is_drift_even_when_the_firewall_agrees():
    records, states, rollbacks, edl = healthy()
    records[IDS[1]] = [record(1, status="pending")]
    result = verdict(records, states, rollbacks, edl)
    assert result["drift"] == 1 and result["examples"]["drift"] == [IDS[1]]


def test_a_run_without_an_outcome_is_stuck_and_its_approval_lost():
    records, states, rollbacks, edl = healthy()
    states[IDS[3]] = RunState.AWAITING_APPROVAL
    result = verdict(records, states, rollbacks, edl)
    assert result["stuck"] == 1 and result["lost"] == 1


def test_a_rollback_that_left_the_block_in_place_is_not_clean():
    records, states, rollbacks, edl = healthy()
    result = verdict(records, states, rollbacks, edl | {_ip(2)})
    assert result["rolled_back_clean"] == 0 and result["rolled_back_clean_pct"] == 0.0
    assert result["drift"] == 1  # the ledger says reverted, the firewall still blocks
