"""Rebuild a run's status from the audit ledger.

Temporal forgets closed runs after the namespace retention; the ledger does not. When the
workflow can no longer be queried, `handrail show` reads the same story from here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from handrail.gate.kept_outcome import inherited_note
from handrail.gate.models import (
    Change,
    Decision,
    DecisionRecord,
    Mode,
    RunState,
    RunStatus,
    StepRecord,
    StepState,
    Verdict,
)

_CHANGE_STATE = {"change.applied": StepState.APPLIED, "change.unchanged": StepState.UNCHANGED}
_REVERTED_STATE = {"expiry": StepState.EXPIRED, "rollback": StepState.ROLLED_BACK}  # else compensation


def status_from_audit(run_id: str, rows: list[dict[str, Any]]) -> RunStatus | None:
    if not rows:
        return None
    started = next((r for r in rows if r["event"] == "run.started"), rows[0])
    data = started.get("data", {})
    status = RunStatus(
        run_id=run_id,
        runbook=data.get("runbook", "?"),
        state=RunState.RUNNING,
        requested_by=data.get("requested_by", "?"),
        subject=data.get("subject", ""),
        started_at=datetime.fromisoformat(started["at"]),
    )
    steps: dict[str, StepRecord] = {}
    for row in rows:
        event, data, step_id = row["event"], row.get("data", {}), row.get("step_id")
        if event == "step.requested":
            steps[step_id] = StepRecord(step_id=step_id, change=Change.model_validate(data["change"]),
                                        started_at=datetime.fromisoformat(row["at"]),
                                        expires_after_s=data.get("expires_after_s"))
            status.steps.append(steps[step_id])
        step = steps.get(step_id)
        if event == "guardrails.evaluated" and step:
            step.mode = Mode(data["mode"]) if data.get("mode") else None
            step.verdicts = [Verdict.model_validate(v) for v in data.get("verdicts", [])]
            step.thresholds = data.get("thresholds", {})
        elif event == "approval.requested" and step:
            step.state = StepState.AWAITING_APPROVAL
            step.approvals_needed = data.get("required", 1)
            step.change_digest = data.get("change_digest") or ""  # what a decision signed from here names
        elif event == "approval.escalated" and step:
            step.escalated = True
        elif event in ("decision.accepted", "decision.rejected"):
            record = DecisionRecord(decision=Decision.model_validate(data["decision"]), accepted=data["accepted"],
                                    why=data["why"], at=datetime.fromisoformat(data["at"]))
            (step.decisions if step and record.accepted else status.rejected_decisions).append(record)
        elif event == "step.denied" and step:
            step.state, step.note = StepState.DENIED, data.get("reason", "")
        elif event in _CHANGE_STATE and step:
            step.state, step.change_id = _CHANGE_STATE[event], data.get("change_id")
            step.unchanged = event == "change.unchanged"
            if data.get("inherited_from"):  # it took over another run's change (handrail.gate.holders)
                step.note = inherited_note(data)
            if data.get("expires_at"):
                step.expires_at = datetime.fromisoformat(data["expires_at"])
        elif event == "change.reverted":
            for candidate in status.steps:
                if candidate.change_id == data.get("change_id"):
                    reason = data.get("reason")
                    if data.get("kept"):  # the tool kept the state: another run relies on it
                        candidate.state = StepState.KEPT
                        candidate.note = f"{data.get('detail', '')} (undone for this run by {reason}, {data.get('by')})"
                        continue
                    candidate.state = _REVERTED_STATE.get(reason, StepState.COMPENSATED)
                    candidate.note = f"reverted by {reason} ({data.get('by')}): {data.get('detail', '')}"
        elif event == "change.undone" and step:  # a rollback's own step: what its revert came to
            step.change_id, step.note = data.get("change_id"), data.get("detail", "")
            step.state = StepState.APPLIED if data.get("reverted") else (
                StepState.KEPT if data.get("kept") else StepState.UNCHANGED)
        elif event == "run.requester_set":  # a runbook that names the affected person as requester
            status.requested_by = data.get("requested_by", status.requested_by)
        elif event == "run.finished":
            status.state = RunState(data["state"])
            status.error = data.get("error")
            status.summary = data.get("summary", {})
            status.finished_at = datetime.fromisoformat(row["at"])
    return status
