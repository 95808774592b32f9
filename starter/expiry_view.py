"""`show` for a run whose changes expire: read the expiries from the ledger.

The run completes as soon as its changes are made; its expiry workflow reverts them later.
The run's own status still says `applied`, so `show` folds in what the ledger recorded
since: a change reverted for `expiry` is shown expired, and the count still pending.
"""

from __future__ import annotations

from handrail.gate.ledger import open_ledger
from handrail.gate.models import RunStatus, StepState


def reflect_expiries(status: RunStatus, settings) -> RunStatus:
    expiring = [s for s in status.steps if s.expires_at and s.change_id]
    if not expiring:
        return status
    ledger = open_ledger(settings)
    try:
        pending = 0
        for step in expiring:
            revert = ledger.revert_of(step.change_id)
            if revert is None:
                pending += step.state == StepState.APPLIED
            elif revert.reason == "expiry" and step.state == StepState.APPLIED:
                step.state, step.note = StepState.EXPIRED, revert.detail
        status.summary["expiries_pending"] = pending
    finally:
        ledger.close()
    return status
