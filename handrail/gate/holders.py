"""Shared state: undoing a change another run still relies on keeps the tool as it is.

Runs overlap. Five phishing runs for one user: the first raises his EDR telemetry and puts
him on the watchlist; the next four find that already so (`unchanged`, no inverse: nothing
of theirs to undo) and rely on it. Rolling back the first run (or its TTL ending) must not
take the state from under the other four.

So the state a change set is *held* by every live record of the same kind and target, from
another run, whose wanted state the tool's current state satisfies (`action.wanted(holder,
state)`: a holder that asked for telemetry "high" does not hold "full"). Live: `applied` or
`unchanged`, not undone, its time-to-live not over and, for an `unchanged` one, its run not
rolled back (such a change has no inverse, so the rollback of its run writes nothing of its
own; the run's audit says it was rolled back, `rolled_back_on_request`). A change held
when it is undone leaves the tool alone:

- released: a holder is `applied`, with an inverse of its own (the state was undone in
  between and that run applied it again): it restores what was there before it, itself;
- handed over: every holder is `unchanged`, relying on this very change: the one that
  lasts longest (no TTL first, then the latest expiry, then the latest applied) takes over
  its before-state and inverse, becoming `applied` with `inherited_from` naming it. Undoing
  that one later restores the original before-state, or hands it over again.

A pending record with no inverse read "already so" a moment ago and is about to be recorded
`unchanged` (`settling`): the revert waits for it rather than undo the state it is about to
rely on. The decision is taken by the revert as it runs (`activities.keep`), on the tool's
state then; a rollback plan's `forecast` says ahead of time, from the ledger alone.

Known limit: a change in the middle of a stack of different parameter values (telemetry
"full" by run 1, then "high" by run 2, then "verbose" by run 3) is not untangled: undoing
run 1 keeps "verbose" (run 3 holds it), and run 2's undo later restores run 1's "full".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from handrail.gate.models import ChangeRecord
from handrail.gate.rollback_outcome import rolled_back_on_request

HOLDING = ("applied", "unchanged")
SETTLING = timedelta(minutes=2)  # a pending record older than this was abandoned, not about to settle


@dataclass
class Found:
    holding: list[ChangeRecord] = field(default_factory=list)
    settling: list[ChangeRecord] = field(default_factory=list)  # pending, no inverse: about to be `unchanged`


@dataclass
class Keep:
    """How a held change is kept: released to an applied holder, or handed over to `heir`."""

    how: Literal["released", "handed_over"]
    holder: ChangeRecord
    heir: ChangeRecord | None = None  # the holder's record as it takes the change over (handed_over)


def holders(action: Any, record: ChangeRecord, rows: list[ChangeRecord], state: dict[str, Any] | None,
            now: datetime, run_released: Callable[[str], bool]) -> Found:
    """The live records of other runs in `rows` (the change's kind and target) that hold
    `state`, and those about to. `run_released(run_id)`: whether that run was rolled back."""
    found = Found()
    if state is None:
        return found
    for other in rows:
        if other.run_id == record.run_id or other.change_id == record.change_id or other.reverted_at is not None:
            continue
        if other.expires_at is not None and other.expires_at <= now:
            continue  # its time is up: it relies on nothing any more
        if other.status == "pending":
            if (other.inverse is None and other.before is not None and other.applied_at > now - SETTLING
                    and action.wanted(other.change, other.before) and action.wanted(other.change, state)):
                found.settling.append(other)
            continue
        if other.status not in HOLDING or not action.wanted(other.change, state):
            continue
        if other.status == "unchanged" and run_released(other.run_id):
            continue
        found.holding.append(other)
    return found


def _lasting(record: ChangeRecord) -> tuple:
    never = record.expires_at is None
    return never, record.expires_at or datetime.min.replace(tzinfo=timezone.utc), record.applied_at


def choose(action: Any, record: ChangeRecord, holding: list[ChangeRecord]) -> Keep:
    """Release to an applied holder (the latest), else hand over to the unchanged one that lasts longest."""
    applied = [h for h in holding if h.status == "applied"]
    if applied:
        return Keep("released", max(applied, key=lambda h: h.applied_at))
    holder = max(holding, key=_lasting)
    return Keep("handed_over", holder, inherit(action, holder, record))


def inherit(action: Any, holder: ChangeRecord, record: ChangeRecord) -> ChangeRecord:
    """The holder's record once it takes over `record`: applied, with `record`'s before-state and
    the inverse that restores it, so its rollback or expiry now restores what `record` replaced."""
    heir = holder.model_copy(deep=True)
    heir.status, heir.before, heir.inherited_from = "applied", record.before, record.change_id
    heir.inverse = action.inverse(holder.change, record.before)
    heir.reverted_at = heir.reverted_by = None
    return heir


def kept_detail(keep: Keep, reapplied: bool = False) -> str:
    """The sentence the revert row, the audit and the people reading them get."""
    holder = keep.holder
    if keep.how == "released":
        how = f"its change {holder.change_id} holds the same state and undoes it itself"
    else:
        how = (f"handed over to its change {holder.change_id}, which now restores the before-state "
               "when it is undone or expires")
    again = "re-applied, as that run came to rely on it during the undo; " if reapplied else ""
    return f"kept: run {holder.run_id} still relies on it ({again}{how}); the tool keeps the state"


def kept_audit(keep: Keep, reapplied: bool = False) -> dict[str, Any]:
    """What the chained `change.reverted` event says beyond its row about a kept change."""
    return {"kept": keep.how, "held_by": {"run_id": keep.holder.run_id, "change_id": keep.holder.change_id},
            "reapplied": reapplied}


def forecast(action: Any, record: ChangeRecord, rows: list[ChangeRecord], now: datetime,
             run_released: Callable[[str], bool]) -> ChangeRecord | None:
    """The holder that would keep `record` if it were undone now, judged on the state the ledger
    says it left (its after-state): a rollback plan's forecast, never its decision."""
    found = holders(action, record, rows, record.after, now, run_released)
    return choose(action, record, found.holding).holder if found.holding else None


def _released_by(ledger: Any):
    """`run_released(run_id)` over the ledger, each run's audit read once."""
    seen: dict[str, bool] = {}

    def run_released(run_id: str) -> bool:
        if run_id not in seen:
            seen[run_id] = rolled_back_on_request(list(ledger.audit_rows(run_id)))
        return seen[run_id]

    return run_released


def find_holders(ledger: Any, action: Any, record: ChangeRecord, state: dict[str, Any] | None) -> Found:
    """Who holds `state` of the record's kind and target now, by the ledger's rows (blocking)."""
    rows = ledger.changes_of_target(record.change.kind, record.change.target)
    return holders(action, record, rows, state, datetime.now(timezone.utc), _released_by(ledger))


def forecast_holder(ledger: Any, action: Any, record: ChangeRecord) -> ChangeRecord | None:
    """The holder that would keep the record if it were undone now, by the ledger alone (a plan's forecast)."""
    rows = ledger.changes_of_target(record.change.kind, record.change.target)
    return forecast(action, record, rows, datetime.now(timezone.utc), _released_by(ledger))
