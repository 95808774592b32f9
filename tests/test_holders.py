"""Shared state, unit by unit: who holds a state (`handrail.gate.holders`), and the revert's
decision at the moment it runs (`activities.keep.Keeper`) against a real SQLite ledger and a
firewall that is a dict (the race of a run relying on the state while it is undone)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from activities.keep import Keeper
from handrail.actions import SINGLE_ACTIONS
from handrail.actions.edr import EdrSetTelemetry
from handrail.actions.firewall import EgressBlock
from handrail.gate.holders import choose, holders, inherit, kept_detail
from handrail.gate.ledger import Ledger
from handrail.gate.models import Change, ChangeRecord, Mode, RevertRequest

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
IP = "203.0.113.7"
BLOCKED = {"blocked": True, "comment": "C2"}
OPEN = {"blocked": False, "comment": None}


def record(run: str, status: str = "unchanged", *, kind: str = "firewall.egress_block", params=None,
           before=None, at: datetime = NOW - timedelta(hours=1), expires: datetime | None = None,
           reverted: bool = False) -> ChangeRecord:
    change = Change(kind=kind, target=IP, params=params or {})
    applied = status == "applied"
    rec = ChangeRecord(change_id=f"{run}/s01", run_id=run, step_id="s01", change=change, status=status,
                       before=before if before is not None else (OPEN if applied else BLOCKED),
                       inverse=SINGLE_ACTIONS[kind].inverse(change, before or OPEN) if applied else None,
                       mode=Mode.LOGGED, requested_by="alice", applied_at=at, expires_at=expires)
    if reverted:
        rec.reverted_at, rec.reverted_by = NOW, "bob"
    return rec


def found(mine: ChangeRecord, rows: list[ChangeRecord], state=BLOCKED, released=(), action=EgressBlock()):
    return holders(action, mine, rows, state, NOW, lambda run: run in released)


def test_live_records_of_other_runs_hold_the_state_the_tool_is_in():
    mine = record("run-1", "applied")
    rows = [mine, record("run-1b", reverted=True), record("run-2"), record("run-3", "applied"),
            record("run-4", expires=NOW - timedelta(seconds=1)), record("run-5", "not_applied")]
    same_run = record("run-1")
    same_run.change_id = "run-1/s02"
    assert [h.run_id for h in found(mine, [*rows, same_run]).holding] == ["run-2", "run-3"]
    assert found(mine, rows, state=OPEN).holding == []  # nobody holds what the tool does not hold
    # a run someone rolled back relies on nothing it found in place; an applied change still holds its own
    assert [h.run_id for h in found(mine, rows, released={"run-2", "run-3"}).holding] == ["run-3"]


def test_a_holder_of_another_level_does_not_hold_this_one():
    telemetry = EdrSetTelemetry()
    mine = record("run-1", "applied", kind="edr.set_telemetry", params={"level": "full"},
                  before={"telemetry": "normal"})
    high = record("run-2", kind="edr.set_telemetry", params={"level": "high"}, before={"telemetry": "high"})
    full = record("run-3", kind="edr.set_telemetry", params={"level": "full"}, before={"telemetry": "full"})
    held = found(mine, [mine, high, full], state={"telemetry": "full"}, action=telemetry).holding
    assert [h.run_id for h in held] == ["run-3"]


def test_a_record_about_to_be_unchanged_is_settling_unless_abandoned():
    mine = record("run-1", "applied")
    fresh = record("run-2", "pending", at=NOW - timedelta(seconds=5))
    stale = record("run-3", "pending", at=NOW - timedelta(hours=1))
    about_to_apply = record("run-4", "pending", at=NOW - timedelta(seconds=5), before=OPEN)
    result = found(mine, [fresh, stale, about_to_apply])
    assert [h.run_id for h in result.settling] == ["run-2"] and result.holding == []


def test_an_applied_holder_releases_else_the_longest_lasting_unchanged_one_inherits():
    action = EgressBlock()
    mine = record("run-1", "applied", before={"blocked": False, "comment": None})
    soon = record("run-2", expires=NOW + timedelta(hours=1), at=NOW - timedelta(minutes=1))
    later = record("run-3", expires=NOW + timedelta(hours=2), at=NOW - timedelta(minutes=30))
    never_old = record("run-4", at=NOW - timedelta(minutes=50))
    never_new = record("run-5", at=NOW - timedelta(minutes=40))
    assert choose(action, mine, [soon, later]).holder.run_id == "run-3"
    keep = choose(action, mine, [soon, never_old, later, never_new])
    assert (keep.how, keep.holder.run_id) == ("handed_over", "run-5")
    assert (keep.heir.status, keep.heir.before, keep.heir.inherited_from) == ("applied", mine.before, mine.change_id)
    assert keep.heir.inverse == Change(kind="firewall.egress_unblock", target=IP)
    assert keep.holder.status == "unchanged"  # the holder as read is left as it was
    released = choose(action, mine, [soon, record("run-6", "applied")])
    assert (released.how, released.holder.run_id, released.heir) == ("released", "run-6", None)
    assert "kept: run run-6 still relies on it" in kept_detail(released)


def test_an_heir_restores_the_first_before_state_of_a_parameter():
    telemetry = EdrSetTelemetry()
    mine = record("run-1", "applied", kind="edr.set_telemetry", params={"level": "full"},
                  before={"telemetry": "normal"})
    holder = record("run-2", kind="edr.set_telemetry", params={"level": "full"}, before={"telemetry": "full"})
    heir = inherit(telemetry, holder, mine)
    assert heir.inverse.params == {"level": "normal"} and heir.before == {"telemetry": "normal"}


# -- the revert at the moment it runs ----------------------------------------------------------
class Firewall:
    """An egress list; `on_remove` runs as the entry is removed (what another run does meanwhile)."""

    def __init__(self, on_remove=None):
        self.entries: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []
        self.on_remove = on_remove

    async def egress_get(self, target):
        return SimpleNamespace(comment=self.entries[target]) if target in self.entries else None

    async def egress_add(self, target, comment, idempotency_key):
        self.calls.append(("add", idempotency_key))
        self.entries[target] = comment
        return SimpleNamespace(comment=comment)

    async def egress_remove(self, target, idempotency_key):
        self.calls.append(("remove", idempotency_key))
        if self.on_remove is not None:
            self.on_remove()
        self.entries.pop(target, None)


class Actions:
    def for_kind(self, kind):
        return SINGLE_ACTIONS[kind]


def applied_in(ledger: Ledger, run: str, expires: datetime | None = None) -> ChangeRecord:
    rec = record(run, "applied", at=datetime.now(timezone.utc), expires=expires)
    ledger.begin_change(rec.model_copy(update={"status": "pending"}))
    rec.after = BLOCKED
    ledger.finish_change(rec)
    return rec


def unchanged_in(ledger: Ledger, run: str, expires: datetime | None = None) -> ChangeRecord:
    rec = record(run, "pending", at=datetime.now(timezone.utc), expires=expires)
    ledger.begin_change(rec)
    rec.status, rec.after = "unchanged", rec.before
    ledger.finish_change(rec)
    return rec


def revert(change_id: str) -> RevertRequest:
    return RevertRequest(change_id=change_id, reason="rollback", by="bob", run_id=change_id.split("/")[0])


@pytest.fixture
def ledger(tmp_path):
    opened = Ledger(tmp_path / "ledger.db")
    yield opened
    opened.close()


def test_a_run_relying_on_the_state_during_the_undo_gets_it_back_and_takes_it_over(ledger):
    """Run 2 read "already blocked" just before run 1's undo removed the entry, and records
    `unchanged` while the undo runs: the revert looks again after the undo, re-applies the
    block with a key of its own and hands it over to run 2."""
    mine = applied_in(ledger, "run-1")
    firewall = Firewall(on_remove=lambda: unchanged_in(ledger, "run-2"))
    firewall.entries[IP] = "C2"
    keeper = Keeper(ledger, SimpleNamespace(firewall=firewall), Actions())
    result = asyncio.run(keeper.undo(revert(mine.change_id), mine))
    assert (result.kept, result.held_by_run, result.reverted) == ("handed_over", "run-2", False)
    assert "re-applied" in result.detail and IP in firewall.entries
    assert firewall.calls == [("remove", "run-1/s01:revert"), ("add", "run-1/s01:reapply-1-0")]
    heir = ledger.verified_change("run-2/s01")
    assert heir.inherited_from == mine.change_id and heir.inverse.kind == "firewall.egress_unblock"
    assert ledger.verified_revert_event(mine.change_id)["reapplied"] is True and ledger.verify().ok


def test_the_revert_waits_for_a_run_about_to_rely_on_the_state(ledger):
    """Run 2 read "already blocked" and began its record (pending, no inverse): the revert waits
    the moment it takes to be recorded `unchanged`, then hands over instead of undoing."""
    mine = applied_in(ledger, "run-1")
    settling = record("run-2", "pending", at=datetime.now(timezone.utc))
    ledger.begin_change(settling)
    firewall = Firewall()
    firewall.entries[IP] = "C2"
    keeper = Keeper(ledger, SimpleNamespace(firewall=firewall), Actions())

    async def both():
        async def settle():
            await asyncio.sleep(0.3)
            settling.status, settling.after = "unchanged", settling.before
            await asyncio.to_thread(ledger.finish_change, settling)

        _, result = await asyncio.gather(settle(), keeper.undo(revert(mine.change_id), mine))
        return result

    result = asyncio.run(both())
    assert (result.kept, result.held_by_change) == ("handed_over", "run-2/s01") and firewall.calls == []


def test_keep_only_changes_nothing_when_nobody_relies_on_the_state(ledger):
    mine = applied_in(ledger, "run-1")
    firewall = Firewall()
    firewall.entries[IP] = "C2"
    keeper = Keeper(ledger, SimpleNamespace(firewall=firewall), Actions())
    result = asyncio.run(keeper.undo(revert(mine.change_id).model_copy(update={"keep_only": True}), mine))
    assert not result.kept and not result.reverted and firewall.calls == []
    assert ledger.revert_of(mine.change_id) is None


def _rows(*events: tuple[str, str, dict]) -> list[dict]:
    """Audit rows of a rolled-back run: (execution, event, data), ids as the rollback writes them."""
    return [{"id": f"rollback-r2:{execution}:orig-{i}", "event": event, "data": data}
            for i, (execution, event, data) in enumerate(events)]


def test_a_run_relies_on_nothing_once_someone_rolled_it_back():
    from handrail.gate.rollback_outcome import rolled_back_on_request

    started = ("x1", "rollback.started", {"by": "bob"})
    assert not rolled_back_on_request(_rows())
    assert rolled_back_on_request(_rows(started))  # nothing of its own to undo: no outcome is written
    assert rolled_back_on_request(_rows(started, ("x1", "run.rolled_back", {"failed": []})))
    assert not rolled_back_on_request(_rows(started, ("x1", "rollback.denied", {"denied": ["c"]})))
    assert not rolled_back_on_request(_rows(("x0", "rollback.refused", {"why": "a party"})))
    assert not rolled_back_on_request(_rows(started, ("x1", "rollback.refused", {"why": "not proven"})))
    # a later request refused at once (its own execution) does not undo an earlier rollback
    assert rolled_back_on_request(_rows(started, ("x2", "rollback.refused", {"why": "a party"})))
