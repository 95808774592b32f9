"""The reconciler's reads: expired changes from the ledger, and drift against the tools."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from temporalio import activity

from activities.context import WorkerContext
from activities.ledger_io import off_loop
from handrail.actions import UnknownAction
from handrail.actions.intel import is_set_target, standing_part
from handrail.gate.ledger_core import UntrustedRecord
from handrail.gate.reconcile import (
    DriftItem,
    ExpiredChange,
    ReconcileTrigger,
    expired_changes,
    inverse_kind,
    latest_changes,
    superseded,
)
from handrail.tools.errors import ToolError


class ReconcileActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.tools, self.ledger = ctx.tools, ctx.ledger

    @activity.defn
    async def find_expired_changes(self, trigger: ReconcileTrigger) -> list[ExpiredChange]:
        return await off_loop(expired_changes, self.ledger, datetime.now(timezone.utc),
                              timedelta(seconds=trigger.grace_s))

    @activity.defn
    async def find_drift(self, trigger: ReconcileTrigger) -> list[DriftItem]:
        """Compare the ledger's latest word on each (kind, target) with what the tool holds; a change
        a later one undid or replaced (`superseded`) is not the ledger's word any more."""
        drift: list[DriftItem] = []
        grace_edge = datetime.now(timezone.utc) - timedelta(seconds=trigger.grace_s)
        latest = await off_loop(latest_changes, self.ledger, trigger.drift_limit)
        later_word = superseded(latest, lambda record: inverse_kind(record, self.ctx.actions))
        for record, reverted in latest:
            if record.status in ("unchanged", "not_applied") or record.change_id in later_word:
                continue
            try:
                action = self.ctx.actions.for_kind(record.change.kind)
            except UnknownAction:
                continue
            activity.heartbeat(record.change_id)
            ledger_says = "reverted" if reverted else ("pending" if record.status == "pending" else "live")
            judged = record.change
            if ledger_says == "live" and is_set_target(judged.target):  # what of the batch the sync still means
                judged = await asyncio.to_thread(standing_part, self.ctx.intel, judged)
                if judged is None:
                    continue
            try:
                holds = action.wanted(judged, await action.read(self.tools, judged))
            except ToolError as exc:
                drift.append(DriftItem(change_id=record.change_id, run_id=record.run_id,
                                       change=record.change.describe(), ledger=ledger_says, tool_holds=None,
                                       detail=f"the tool could not be read: {exc}"))
                continue
            if ledger_says == "pending":
                if record.applied_at < grace_edge:
                    drift.append(DriftItem(change_id=record.change_id, run_id=record.run_id,
                                           change=record.change.describe(), ledger="pending", tool_holds=holds,
                                           detail="the outcome of this change was never settled"))
            elif reverted and holds and await off_loop(_kept, self.ledger, record.change_id):
                continue  # undone but kept: another run's change relies on the state and holds it
            elif holds != (ledger_says == "live"):
                detail = ("the ledger says it is live but the tool does not hold it" if ledger_says == "live"
                          else "the ledger says it was reverted but the tool still holds it")
                drift.append(DriftItem(change_id=record.change_id, run_id=record.run_id,
                                       change=record.change.describe(), ledger=ledger_says, tool_holds=holds,
                                       detail=detail))
        return drift


def _kept(ledger, change_id: str) -> bool:
    """Whether the change's revert kept the tool as it was, for a run still relying on it
    (`handrail.gate.holders`); an untrusted revert is not taken at its word."""
    try:
        return bool((ledger.verified_revert_event(change_id) or {}).get("kept"))
    except UntrustedRecord:
        return False
