"""A TTL whose expiry fell while no worker ran is undone when one comes back, and `handrail
show` says when it was undone and how late, not only when it was due."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from handrail.gate.expiry_outcome import apply_expiries
from handrail.gate.models import Change, RunState, RunStatus, StepRecord, StepState

pytestmark = pytest.mark.unit

DUE = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def _status() -> RunStatus:
    step = StepRecord(step_id="s01-firewall.egress_block", change=Change(kind="firewall.egress_block",
                      target="203.0.113.5"), state=StepState.APPLIED, change_id="r/s01", expires_at=DUE)
    return RunStatus(run_id="r", runbook="egress-block", state=RunState.COMPLETED, requested_by="alice",
                     subject="203.0.113.5", started_at=DUE - timedelta(hours=1), steps=[step])


def _reverted(at: datetime) -> list[dict]:
    return [{"event": "change.applied", "at": (DUE - timedelta(hours=1)).isoformat(),
             "data": {"change_id": "r/s01", "expires_at": DUE.isoformat()}},
            {"event": "change.reverted", "at": at.isoformat(),
             "data": {"change_id": "r/s01", "reason": "expiry", "by": "handrail",
                      "detail": "tool state matches the recorded before-state"}}]


def test_an_expiry_undone_late_says_when_and_how_late():
    shown = apply_expiries(_status(), _reverted(DUE + timedelta(hours=2, minutes=5)))
    step = shown.steps[0]
    assert step.state == StepState.EXPIRED and shown.summary["all_expired"]
    assert "undone 2026-03-01 14:05:00Z, 2h05m after it was due" in step.note
    assert step.note.startswith("tool state matches the recorded before-state")


def test_an_expiry_on_time_says_when_only():
    step = apply_expiries(_status(), _reverted(DUE + timedelta(seconds=2))).steps[0]
    assert step.note.endswith("undone 2026-03-01 12:00:02Z")
