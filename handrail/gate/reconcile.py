"""Expiry that cannot be lost, and drift between the ledger and the tools (issue 15, item 4).

A run keeps its changes' time-to-live as a durable timer. If that run is terminated, reset
or its history is gone (`temporal workflow terminate`, the Web UI), the timer is gone too and
the change would stay for ever. The reconciler, a Temporal schedule, looks at the ledger
instead: a change whose `expires_at` passed more than a grace period ago (the run's own
timer had its chance) and that is still held is reverted through the gate's revert
activity and audited as `expiry.reconciled`. Reverts are idempotent in the ledger, so a
late run timer finds "already reverted" and does nothing.

Drift: for the latest change to each (kind, target) the ledger says whether the tool should
hold it (applied and not reverted) or not (reverted); reading the tool tells what it holds.
Rows still `pending` past the grace period are reported as unsettled.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from handrail.gate.ledger import Ledger, iso
from handrail.gate.models import ChangeRecord


class ReconcileTrigger(BaseModel):
    revert_expired: bool = True  # False: report drift only (`handrail drift`)
    grace_s: float = 300.0
    drift_limit: int = Field(default=500, ge=1, le=100_000)  # latest (kind, target) pairs checked


class ExpiredChange(BaseModel):
    change_id: str
    run_id: str
    step_id: str
    expires_at: datetime


class DriftItem(BaseModel):
    change_id: str
    run_id: str
    change: str
    ledger: Literal["live", "reverted", "pending"]
    tool_holds: bool | None  # None: the tool could not be read
    detail: str


class ReconcileReport(BaseModel):
    reconciled: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)
    drift: list[DriftItem] = Field(default_factory=list)


def expired_changes(ledger: Ledger, now: datetime, grace: timedelta) -> list[ExpiredChange]:
    """Changes past their expiry (plus grace) that the ledger still counts as held."""
    rows = ledger.query("RECONCILE_EXPIRED", (iso(now - grace),))
    found = []
    for (body,) in rows:
        record = ChangeRecord.model_validate_json(body)
        if record.status in ("applied", "pending") and record.expires_at is not None:
            found.append(ExpiredChange(change_id=record.change_id, run_id=record.run_id, step_id=record.step_id,
                                       expires_at=record.expires_at))
    return found


def latest_changes(ledger: Ledger, limit: int) -> list[tuple[ChangeRecord, bool]]:
    """The newest ledger change per (kind, target) that touched the tool, with whether it was reverted."""
    rows = ledger.query("RECONCILE_LATEST", (limit,))
    return [(ChangeRecord.model_validate_json(body), bool(reverted)) for body, reverted in rows]
