"""Undo a recorded change, unless another run still relies on its state (`handrail.gate.holders`).

`GateActivities.revert_change` checks the record first (chained, applied, not yet undone,
the inverse the gate approved); `Keeper.undo` then decides at the moment it runs, on the
tool's state: another run holds it -> the change is kept (released or handed over, one
ledger transaction, `LedgerCore.keep_change`), the tool untouched; nobody does -> the
inverse is applied and the tool checked against the before-state, as before.

Race: a run applying at the same moment may read "already so" just before the undo changes
the tool, and record `unchanged`. So after the undo the ledger is asked again, against the
state read before it (waiting a moment for a record still settling); a run found relying
on that state now gets it back: the change is applied again through its action (a key of
its own) and handed over to that run, and the revert says so (`reapplied`). Two windows
remain: a run that read the tool before the undo and begins its record only after that
second look (the time of one ledger write), and an attempt that dies between the undo and
the second look (its retry reads the undone state and cannot tell who read it before).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.ledger_io import off_loop
from handrail.gate.holders import HOLDING, Keep, choose, find_holders, kept_audit, kept_detail
from handrail.gate.ledger_core import UntrustedRecord, revert_event_id
from handrail.gate.models import AuditEvent, ChangeRecord, RevertRequest, RevertResult

ROUNDS = 4  # looks at the tool and the ledger before the attempt gives up and is retried
SETTLE_WAIT_S = 3.0  # how long a record about to be `unchanged` is waited for
SETTLE_POLL_S = 0.1


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _reverted_event(request: RevertRequest, record: ChangeRecord, verified: bool, detail: str,
                    **extra: Any) -> AuditEvent:
    """The chained `change.reverted` of the change (its id is stable across retries)."""
    return AuditEvent(id=revert_event_id(request.change_id), at=_now(), run_id=request.run_id,
                      step_id=record.step_id, event="change.reverted", data={
                          "change_id": request.change_id, "reason": request.reason, "by": request.by,
                          "inverse": record.inverse.model_dump() if record.inverse else None,
                          "verified": verified, "detail": detail, **extra})


def already_result(ledger: Any, change_id: str, previous: Any) -> RevertResult:
    """A change undone before (a retry, a second rollback, an expiry after a rollback): what
    that revert came to, kept or not. Blocking: call it off the event loop."""
    data = ledger.verified_revert_event(change_id) or {}
    if data.get("kept"):
        held = data.get("held_by") or {}
        return RevertResult(change_id=change_id, reverted=False, already=True, detail=previous.detail,
                            kept=data["kept"], held_by_run=str(held.get("run_id", "")),
                            held_by_change=str(held.get("change_id", "")))
    return RevertResult(change_id=change_id, reverted=False, already=True,
                        detail=f"already reverted by {previous.reason} ({previous.by})")


class Keeper:
    """The revert of one trusted, applied change, for the gate's revert activity."""

    def __init__(self, ledger: Any, tools: Any, actions: Any, start_expiry: Any = None) -> None:
        self.ledger, self.tools, self.actions = ledger, tools, actions
        self.start_expiry = start_expiry  # async (record) -> None: a time-to-live for an heir

    async def undo(self, request: RevertRequest, record: ChangeRecord) -> RevertResult:
        action = self.actions.for_kind(record.change.kind)
        inverse = self.actions.for_kind(record.inverse.kind)
        attempt = activity.info().attempt if activity.in_activity() else 1
        reapplied = False
        for round_ in range(ROUNDS):
            # the inverse kind reads the state its change reads (every pair shares its `read`)
            current = await inverse.read(self.tools, record.inverse)
            holding = await self._holding(action, record, current)
            if holding:
                result = await self._keep(request, record, choose(action, record, holding), reapplied)
                if result is not None:
                    return result
                continue  # the holder was undone or taken over meanwhile: look again
            if request.keep_only:
                return RevertResult(change_id=request.change_id, reverted=False,
                                    detail="no other run relies on it: undoing it changes the tool")
            if not inverse.wanted(record.inverse, current):
                await inverse.apply(self.tools, record.inverse, _key(request.change_id, "revert", attempt, round_))
            state = await action.read(self.tools, record.change)
            late = [h for h in await self._holding(action, record, current) if h.status == "unchanged"]
            if not late:
                return await self._reverted(request, record, state)
            if not action.wanted(record.change, state):  # they read it before the undo: give it back
                await action.apply(self.tools, record.change, _key(request.change_id, "reapply", attempt, round_))
            reapplied = True
        raise ApplicationError(f"the state of {record.change.describe()} kept changing while it was being undone; "
                               "trying again", type="StateMoving")

    async def _holding(self, action: Any, record: ChangeRecord, state: dict[str, Any]) -> list[ChangeRecord]:
        """The trusted holders of `state`, once the records about to hold it have settled (or the wait is over)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_WAIT_S
        while True:
            found = await off_loop(find_holders, self.ledger, action, record, state)
            if not found.settling or loop.time() >= deadline:
                break
            await asyncio.sleep(SETTLE_POLL_S)
        try:
            return await off_loop(self._trusted, found.holding)
        except UntrustedRecord as exc:  # who holds the state cannot be told: refuse, as for the change itself
            raise ApplicationError(str(exc), type="UntrustedRecord", non_retryable=True) from None

    def _trusted(self, holding: list[ChangeRecord]) -> list[ChangeRecord]:
        """Each holder as the hash chain recorded it (a forged holder must not keep a state)."""
        trusted = []
        for holder in holding:
            checked = self.ledger.verified_change(holder.change_id)
            if checked is not None and checked.reverted_at is None and checked.status in HOLDING:
                trusted.append(checked)
        return trusted

    async def _keep(self, request: RevertRequest, record: ChangeRecord, keep: Keep,
                    reapplied: bool) -> RevertResult | None:
        """Record the change kept (None: the holder moved meanwhile, look again)."""
        if keep.heir is not None and keep.heir.expires_at is not None and self.start_expiry is not None:
            # first: a retry starts it again harmlessly; if the hand-over does not happen, it undoes nothing
            await self.start_expiry(keep.heir)
        detail = kept_detail(keep, reapplied)
        event = _reverted_event(request, record, True, detail, **kept_audit(keep, reapplied))
        outcome = await off_loop(self.ledger.keep_change, request.change_id, request.run_id, request.reason,
                                 request.by, _now(), detail, event, keep.holder.change_id, keep.heir)
        if outcome == "moved":
            return None
        if outcome == "already":
            previous = await off_loop(self.ledger.revert_of, request.change_id)
            return await off_loop(already_result, self.ledger, request.change_id, previous)
        return RevertResult(change_id=request.change_id, reverted=False, verified=True, detail=detail, kept=keep.how,
                            held_by_run=keep.holder.run_id, held_by_change=keep.holder.change_id)

    async def _reverted(self, request: RevertRequest, record: ChangeRecord, state: dict[str, Any]) -> RevertResult:
        verified = state == record.before
        detail = "tool state matches the recorded before-state" if verified else (
            f"tool state {state} differs from the recorded before-state {record.before}")
        recorded = await off_loop(self.ledger.record_revert, request.change_id, request.run_id, request.reason,
                                  request.by, _now(), verified, detail,
                                  event=_reverted_event(request, record, verified, detail))
        if not recorded:  # another revert (an expiry, a second rollback) was recorded meanwhile: it undid it
            first = await off_loop(self.ledger.revert_of, request.change_id)
            who = f"{first.reason} ({first.by})" if first is not None else "another revert"
            return RevertResult(change_id=request.change_id, reverted=False, already=True,
                                verified=verified, detail=f"already reverted by {who}")
        return RevertResult(change_id=request.change_id, reverted=True, verified=verified, detail=detail)


def _key(change_id: str, what: str, attempt: int, round_: int) -> str:
    """The idempotency key of a tool call of the revert: the first undo keeps the key it always
    had; a later one (another round or attempt) gets its own, or the tool would take it for a replay."""
    if what == "revert" and attempt == 1 and round_ == 0:
        return f"{change_id}:revert"
    return f"{change_id}:{what}-{attempt}-{round_}"
