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

A change a later one deliberately undid or replaced is not the ledger's word any more
(`superseded`): the rogue-device runbook disconnects a device and opens a case, then an
analyst's "legitimate" reconnects it (`nac.recommit_device`) and closes the case
(`cases.close`). Only the later change is compared with the tool. "Undoes" comes from the
actions' own inverses, never from a list of kinds: B undoes A when B is A's inverse kind or
A is B's; B replaces A when they share a kind or an inverse kind. Both must touch the same
target, and the same facet of it: a field A's change left as it was (the group of an IAM
membership, a training module) must read the same in B's snapshot, so re-granting one
group never hides the drift of another.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Callable, Literal

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


def inverse_kind(record: ChangeRecord, actions) -> str | None:
    """The kind that undoes `record`: the recorded inverse, else what its action would name
    (an `unchanged` record keeps no inverse); None when neither is known."""
    if record.inverse is not None:
        return record.inverse.kind
    try:
        return actions.for_kind(record.change.kind).inverse(record.change, record.before or {}).kind
    except Exception:  # an unknown kind, or an inverse that needs a before-state the row lacks
        return None


def _same_facet(earlier: ChangeRecord, later: ChangeRecord) -> bool:
    """False when a field `earlier` left unchanged (its identity: a group, a module) differs in `later`."""
    before, after = earlier.before or {}, earlier.after or {}
    seen = later.before or later.after or {}
    return all(seen[key] == value for key, value in after.items()
               if key in before and before[key] == value and key in seen)


def follows_on(earlier: ChangeRecord, later: ChangeRecord, inverse_of: Callable[[ChangeRecord], str | None]) -> bool:
    """True when `later` undid or replaced `earlier` (same target and facet; see the module notes)."""
    if later.change.target != earlier.change.target or not _same_facet(earlier, later):
        return False
    kind, later_kind = earlier.change.kind, later.change.kind
    undo, later_undo = inverse_of(earlier), inverse_of(later)
    return (later_kind == kind or later_kind == undo or later_undo == kind
            or (later_undo is not None and later_undo == undo))


def superseded(latest: list[tuple[ChangeRecord, bool]],
               inverse_of: Callable[[ChangeRecord], str | None]) -> set[str]:
    """Ids of the changes in `latest` that a later applied, unreverted change to the same target undid or replaced.

    A later change that was itself reverted supersedes nothing (its revert put the earlier
    change's state back). `latest` is newest-first per (kind, target), as `latest_changes`
    returns it: the newest change of each kind is enough, as any later one is in it too.
    """
    standing: dict[str, list[ChangeRecord]] = defaultdict(list)
    for record, reverted in latest:
        if not reverted and record.status in ("applied", "unchanged"):
            standing[record.change.target].append(record)
    return {record.change_id for record, _ in latest
            if any(later.applied_at > record.applied_at and later.change_id != record.change_id
                   and follows_on(record, later, inverse_of) for later in standing[record.change.target])}
